// Device memory of the GPU runtimes (CUDA, AMD): a pointer-sized handle and a caching allocator.
// Freed blocks are kept by size and handed out again (the runtimes' malloc/free synchronize the
// device and cost tens of microseconds); when an allocation fails the cache is released first,
// and an out-of-memory error names the sizes. The runtime supplies the raw calls.
import type { Allocator, DeviceHandle, ProgramSpec } from "./device.ts";
import { checkArgs } from "./js.ts";

/** device memory: a device pointer and its size */
export class GpuMem implements DeviceHandle {
  readonly deviceHandle = true;
  constructor(readonly ptr: bigint, readonly nbytes: number) {}
}

/** what a GPU runtime provides to the allocator */
export interface GpuMemOps<M extends GpuMem> {
  /** the device name, for messages */
  readonly device: string;
  /** a new block: its pointer, or "oom" when the device is out of memory (other errors throw) */
  malloc(nbytes: number): bigint | "oom";
  release(ptr: bigint): void;
  /** free and total device bytes, where the runtime can tell */
  memInfo(): [number, number] | null;
  h2d(ptr: bigint, src: Uint8Array): void;
  d2h(dst: Uint8Array, ptr: bigint): void;
  d2d(dst: bigint, src: bigint, nbytes: number): void;
  /** the handle type of this runtime */
  wrap(ptr: bigint, nbytes: number): M;
}

export const fmtBytes = (n: number): string =>
  n >= 2 ** 30
    ? `${(n / 2 ** 30).toFixed(2)} GiB`
    : n >= 2 ** 20
    ? `${(n / 2 ** 20).toFixed(1)} MiB`
    : `${n} bytes`;

export class CachingAllocator<M extends GpuMem> implements Allocator<M> {
  private readonly pool = new Map<number, M[]>();
  /** bytes held in the pool */
  cached = 0;
  /** bytes handed out and not yet freed */
  inUse = 0;
  constructor(private readonly ops: GpuMemOps<M>) {}

  alloc(nbytes: number): M {
    // a zero-byte buffer still gets a distinct, valid pointer
    const size = Math.max(nbytes, 1);
    const reuse = this.pool.get(size)?.pop();
    if (reuse) {
      this.cached -= size;
      this.inUse += size;
      return reuse;
    }
    let p = this.ops.malloc(size);
    if (p === "oom" && this.cached > 0) {
      this.releaseCache();
      p = this.ops.malloc(size);
    }
    if (p === "oom") {
      const m = this.ops.memInfo();
      const info = m ? `${fmtBytes(m[0])} free of ${fmtBytes(m[1])}` : "free memory unknown";
      throw new Error(
        `${this.ops.device}: out of memory allocating ${fmtBytes(nbytes)} (${info}; ` +
          `${fmtBytes(this.inUse)} held by live tg buffers)`,
      );
    }
    this.inUse += size;
    return this.ops.wrap(p, size);
  }

  free(h: M): void {
    this.inUse -= h.nbytes;
    let l = this.pool.get(h.nbytes);
    if (!l) this.pool.set(h.nbytes, l = []);
    l.push(h);
    this.cached += h.nbytes;
  }

  /** give every cached block back to the runtime */
  releaseCache(): void {
    for (const l of this.pool.values()) for (const h of l) this.ops.release(h.ptr);
    this.pool.clear();
    this.cached = 0;
  }

  copyin(h: M, src: Uint8Array): void {
    if (src.byteLength > h.nbytes) {
      throw new Error(
        `copyin: ${src.byteLength} bytes into a ${h.nbytes}-byte ${this.ops.device} buffer`,
      );
    }
    if (src.byteLength) this.ops.h2d(h.ptr, src);
  }

  copyout(h: M, nbytes = h.nbytes): Uint8Array {
    const out = new Uint8Array(nbytes);
    // on the default stream this waits for the kernels queued before it
    if (nbytes) this.ops.d2h(out, h.ptr);
    return out;
  }

  copyoutAsync(h: M): Promise<Uint8Array> {
    return Promise.resolve(this.copyout(h));
  }

  /** device-to-device copy of `nbytes` (default: all of `src`), queued on the default stream */
  copy(dst: M, src: M, nbytes = src.nbytes): void {
    if (nbytes > dst.nbytes || nbytes > src.nbytes) {
      throw new Error(
        `copy: ${nbytes} bytes between ${this.ops.device} buffers of ${src.nbytes}/${dst.nbytes}`,
      );
    }
    if (nbytes) this.ops.d2d(dst.ptr, src.ptr, nbytes);
  }
}

/**
 * A kernel's parameter block for cuLaunchKernel/hipModuleLaunchKernel: 8 bytes per buffer
 * pointer and int32 variable, and the void* array pointing at them. Filled per launch after the
 * arguments are checked against the kernel's spec.
 */
export class KernelParams {
  private readonly values: ArrayBuffer;
  private readonly view: DataView;
  /** the void** the launch takes */
  readonly params: BigUint64Array;

  constructor(
    private readonly spec: ProgramSpec,
    private readonly device: string,
    private readonly Mem: abstract new (...a: never[]) => GpuMem,
  ) {
    const n = spec.bufs.length + spec.vars.length;
    this.values = new ArrayBuffer(Math.max(8, 8 * n));
    this.view = new DataView(this.values);
    this.params = new BigUint64Array(Math.max(1, n));
    const base = BigInt(
      Deno.UnsafePointer.value(Deno.UnsafePointer.of(new Uint8Array(this.values))),
    );
    for (let i = 0; i < n; i++) this.params[i] = base + BigInt(8 * i);
  }

  /** check `bufs` and `vars` against the spec and write them into the block */
  fill(bufs: readonly GpuMem[], vars: readonly number[]): void {
    const spec = this.spec;
    checkArgs(spec, bufs.length, vars);
    for (let i = 0; i < bufs.length; i++) {
      const b = spec.bufs[i], need = b.size * b.dtype.itemsize, h = bufs[i];
      if (!(h instanceof this.Mem) || h.nbytes < need) {
        throw new Error(
          `kernel '${spec.name}': data${b.slot} needs a ${this.device} buffer of ${need} bytes ` +
            `(${b.size} ${b.dtype.name}), got ${
              h instanceof this.Mem ? `${h.nbytes} bytes` : String(h)
            }`,
        );
      }
      this.view.setBigUint64(8 * i, h.ptr, true);
    }
    for (let i = 0; i < vars.length; i++) this.view.setInt32(8 * (bufs.length + i), vars[i], true);
  }
}
