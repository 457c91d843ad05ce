// The JS device: host memory in ArrayBuffers, kernels compiled by V8 (`new Function`). Always
// available, also inside the single binary. The host memory and launch checks here are shared
// with the CPU device, whose buffers are the same ArrayBuffers handed to C by pointer.

import { type TypedArray, typedArrayFor } from "../dtype.ts";
import type {
  Allocator,
  DeviceHandle,
  DeviceImpl,
  DeviceInfo,
  Program,
  ProgramSpec,
  RunOpts,
} from "./device.ts";
import { programKey } from "./program_key.ts";

type ViewCtor = ReturnType<typeof typedArrayFor>;

/** a host allocation; `ptr` is its address for C (null on the JS device) */
export class HostMem implements DeviceHandle {
  readonly deviceHandle = true;
  private views = new Map<ViewCtor, TypedArray>();
  constructor(readonly bytes: Uint8Array, readonly ptr: Deno.PointerValue = null) {}

  /** a view of the whole allocation (cached: kernels are launched many times) */
  view(C: ViewCtor): TypedArray {
    let v = this.views.get(C);
    if (!v) {
      const b = this.bytes;
      v = new C(b.buffer, b.byteOffset, Math.floor(b.byteLength / C.BYTES_PER_ELEMENT));
      this.views.set(C, v);
    }
    return v;
  }
}

/** host memory; with `pointers`, 64-byte aligned (for vector loads) and with its C address */
export class HostAllocator implements Allocator<HostMem> {
  /**
   * Freed allocations kept for reuse, by size: a fresh large ArrayBuffer costs a page fault per
   * 4 KiB on first touch, which made a 16M-element add three times slower than reusing one.
   */
  private readonly pool = new Map<number, HostMem[]>();
  private pooledBytes = 0;
  static readonly maxPooledBytes = 1 << 30;
  constructor(private readonly pointers = false) {}

  alloc(nbytes: number): HostMem {
    const reuse = this.pool.get(nbytes)?.pop();
    if (reuse) {
      this.pooledBytes -= nbytes;
      return reuse;
    }
    return this.fresh(nbytes);
  }
  private fresh(nbytes: number): HostMem {
    if (!this.pointers) return new HostMem(new Uint8Array(new ArrayBuffer(nbytes)));
    // an ArrayBuffer's backing store never moves, so its address stays valid while we hold it
    const ab = new ArrayBuffer(nbytes + 64);
    const base = Deno.UnsafePointer.value(Deno.UnsafePointer.of(new Uint8Array(ab)));
    const off = Number((64n - BigInt(base) % 64n) % 64n);
    const bytes = new Uint8Array(ab, off, nbytes);
    return new HostMem(bytes, Deno.UnsafePointer.create(BigInt(base) + BigInt(off)));
  }
  free(h: HostMem): void {
    const n = h.bytes.byteLength;
    if (n < 4096 || this.pooledBytes + n > HostAllocator.maxPooledBytes) return; // garbage collected
    let l = this.pool.get(n);
    if (!l) this.pool.set(n, l = []);
    l.push(h);
    this.pooledBytes += n;
  }
  copyin(h: HostMem, src: Uint8Array): void {
    if (src.byteLength !== h.bytes.byteLength) {
      throw new Error(`copyin: ${src.byteLength} bytes into a ${h.bytes.byteLength}-byte buffer`);
    }
    h.bytes.set(src);
  }
  copyout(h: HostMem): Uint8Array {
    return h.bytes.slice();
  }
  copyoutAsync(h: HostMem): Promise<Uint8Array> {
    return Promise.resolve(this.copyout(h));
  }
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** reject a spec the runtime cannot launch correctly, before compiling it */
export function checkSpec(spec: ProgramSpec, lang: string, device: string): void {
  if (spec.lang !== lang) {
    throw new Error(
      `${device} runs ${lang} kernels, but kernel '${spec.name}' was rendered as ${spec.lang}`,
    );
  }
  if (!IDENT.test(spec.name)) throw new Error(`kernel name '${spec.name}' is not an identifier`);
  spec.bufs.forEach((b, i) => {
    if (i > 0 && b.slot <= spec.bufs[i - 1].slot) {
      throw new Error(
        `kernel '${spec.name}': bufs must be in increasing slot order (index ${i} has slot ${b.slot})`,
      );
    }
  });
}

/** check a launch against the spec: a short buffer would let the kernel write past its end */
export function checkLaunch(
  spec: ProgramSpec,
  bufs: readonly HostMem[],
  vars: readonly number[],
): void {
  checkArgs(spec, bufs.length, vars);
  for (let i = 0; i < bufs.length; i++) {
    const b = spec.bufs[i];
    const need = b.size * b.dtype.itemsize;
    if (bufs[i].bytes.byteLength < need) {
      throw new Error(
        `kernel '${spec.name}': data${i} needs ${b.size} ${b.dtype.name} (${need} bytes), ` +
          `got a ${bufs[i].bytes.byteLength}-byte buffer`,
      );
    }
  }
}

/** the launch passes as many buffers and variables as the kernel takes, the variables int32 */
export function checkArgs(spec: ProgramSpec, nbufs: number, vars: readonly number[]): void {
  if (nbufs !== spec.bufs.length || vars.length !== spec.vars.length) {
    throw new Error(
      `kernel '${spec.name}' takes ${spec.bufs.length} buffers and ${spec.vars.length} ` +
        `variables (${spec.vars.join(", ")}), got ${nbufs} and ${vars.length}`,
    );
  }
  for (let i = 0; i < vars.length; i++) {
    const v = vars[i];
    if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) {
      throw new Error(`kernel '${spec.name}': variable ${spec.vars[i]} = ${v} is not an int32`);
    }
  }
}

/** the source with line numbers, for compile errors */
export function numbered(src: string): string {
  return src.split("\n").map((l, i) => `${String(i + 1).padStart(4)} | ${l}`).join("\n");
}

type JsKernel = (...args: (TypedArray | number)[]) => void;

class JsProgram implements Program<HostMem> {
  private ctors: ViewCtor[];
  private args: (TypedArray | number)[];
  constructor(readonly spec: ProgramSpec, private fn: JsKernel) {
    this.ctors = spec.bufs.map((b) => typedArrayFor(b.dtype));
    this.args = new Array(spec.bufs.length + spec.vars.length);
  }

  run(bufs: readonly HostMem[], vars: readonly number[], opts?: RunOpts): number | undefined {
    checkLaunch(this.spec, bufs, vars);
    const args = this.args;
    for (let i = 0; i < bufs.length; i++) args[i] = bufs[i].view(this.ctors[i]);
    for (let i = 0; i < vars.length; i++) args[bufs.length + i] = vars[i];
    if (!opts?.timing) {
      this.fn(...args);
      return undefined;
    }
    const t0 = performance.now();
    this.fn(...args);
    return (performance.now() - t0) / 1e3;
  }
}

/** compile JS kernel source (`function NAME(data0, ..., var0) { ... }`) */
export function compileJs(spec: ProgramSpec): JsKernel {
  let fn: unknown;
  try {
    fn = new Function(`"use strict";\n${spec.src}\nreturn ${spec.name};`)();
  } catch (e) {
    throw new Error(
      `JS compile of kernel '${spec.name}' failed: ${(e as Error).message}\n` +
        `--- source ---\n${numbered(spec.src)}`,
    );
  }
  if (typeof fn !== "function") {
    throw new Error(`JS kernel source does not define function '${spec.name}'`);
  }
  return fn as JsKernel;
}

export class JsDevice implements DeviceImpl<HostMem> {
  readonly name = "JS";
  readonly lang = "js";
  readonly allocator: HostAllocator = new HostAllocator(false);
  readonly stats = { compiled: 0, memHits: 0 };
  private programs = new Map<string, JsProgram>();

  compile(spec: ProgramSpec): Program<HostMem> {
    checkSpec(spec, "js", this.name);
    const key = programKey(spec);
    let p = this.programs.get(key);
    if (p) {
      this.stats.memHits++;
      return p;
    }
    p = new JsProgram(spec, compileJs(spec));
    this.stats.compiled++;
    this.programs.set(key, p);
    return p;
  }

  synchronize(): Promise<void> {
    return Promise.resolve();
  }

  info(): DeviceInfo {
    return { name: this.name, compiler: "V8 (new Function)", cores: 1, memory: hostMemory() };
  }
}

/** total host memory in bytes, when the process may ask */
export function hostMemory(): number | undefined {
  try {
    return Deno.systemMemoryInfo().total;
  } catch {
    return undefined;
  }
}
