// The device abstraction: what every back end provides (allocator, compiler, program, renderer
// language), the registry that picks one, and Buffer, the engine's handle on device memory.

import { DType, type TypedArray, typedArrayFor, viewAs } from "../dtype.ts";
import { CpuDevice } from "./cpu.ts";
import { JsDevice } from "./js.ts";
import { CudaDevice } from "./cuda.ts";
import { AmdDevice } from "./amd.ts";
import { openWebGpu, probeWebGpu } from "./webgpu.ts";

// ---- the program contract (docs/ir.md section 3) ----

/** the source language a device's renderer must produce */
export type Lang = "c" | "js" | "cuda" | "hip" | "wgsl";

export interface BufSpec {
  /** the DEFINE_GLOBAL slot; buffers come in increasing slot order (a slot the kernel never reads is left out) */
  readonly slot: number;
  readonly dtype: DType;
  /** elements the kernel may touch (its indexes are bounds-checked against this) */
  readonly size: number;
  /** whether the kernel writes it */
  readonly mutable: boolean;
}

export interface ProgramSpec {
  readonly name: string;
  readonly src: string;
  readonly lang: Lang;
  readonly globalSize: readonly number[];
  readonly localSize: readonly number[] | null;
  readonly bufs: readonly BufSpec[];
  /** int32 variables, passed after the buffers in this order */
  readonly vars: readonly string[];
  /** ALU ops one run executes (for GFLOP/s), where codegen counted them */
  readonly ops?: number;
  /** bytes one run moves in global memory (for GB/s) */
  readonly mem?: number;
  /** loop iterations one thread runs, all loops together (some devices cap them) */
  readonly loopIterations?: number;
  /** bytes of dynamic shared memory (`extern __shared__`) a GPU kernel is launched with */
  readonly sharedMem?: number;
}

// ---- what a device provides ----

/**
 * what an allocator hands out; the brand makes passing anything else to `Program.run` (a
 * `Buffer`, say, instead of `buffer.handle`) a type error
 */
export interface DeviceHandle {
  readonly deviceHandle: true;
}

/** device memory; `H` is the device's handle type */
export interface Allocator<H extends DeviceHandle = DeviceHandle> {
  alloc(nbytes: number): H;
  free(handle: H): void;
  copyin(handle: H, src: Uint8Array): void;
  /** a copy of the bytes, synchronously; absent on devices that can only read back async */
  copyout?(handle: H): Uint8Array;
  copyoutAsync(handle: H): Promise<Uint8Array>;
}

/** source to binary */
export interface Compiler {
  /** everything besides the source that decides the binary (path, version, flags, target) */
  readonly identity: string;
  compile(src: string, name: string): Uint8Array;
}

export interface RunOpts {
  /** defaults to the spec's */
  globalSize?: readonly number[];
  localSize?: readonly number[] | null;
  /** measure the kernel and return its time in seconds */
  timing?: boolean;
}

export interface Program<H extends DeviceHandle = DeviceHandle> {
  readonly spec: ProgramSpec;
  /** launch; with `timing`, wait for it and return its seconds */
  run(bufs: readonly H[], vars: readonly number[], opts?: RunOpts): number | undefined;
}

export interface DeviceInfo {
  name: string;
  compiler?: string;
  cores?: number;
  /** bytes */
  memory?: number;
  [extra: string]: string | number | boolean | undefined;
}

export interface DeviceImpl<H extends DeviceHandle = DeviceHandle> {
  readonly name: string;
  readonly lang: Lang;
  readonly allocator: Allocator<H>;
  /** compile (or fetch from the caches) and load; the same source compiles once per process */
  compile(spec: ProgramSpec): Program<H>;
  /**
   * compile several programs side by side into the caches, so that `compile` of each finds it
   * (BEAM's candidates); failures are left for `compile` to report. Absent: one at a time.
   */
  precompile?(specs: readonly ProgramSpec[]): void;
  /** resolves when all queued work has finished */
  synchronize(): Promise<void>;
  info(): DeviceInfo;
  /** buffers one kernel may bind (inputs and output); absent: no limit (src/rangeify/split.ts) */
  readonly maxBuffers?: number;
}

// ---- the registry ----

/** returns the device, or throws an error saying why it cannot work here */
export type DeviceFactory = () => DeviceImpl;

/** the order `Device.DEFAULT` tries; WEBGPU only when DEV names it */
export const DEVICE_PREFERENCE: readonly string[] = ["CUDA", "AMD", "CPU", "WEBGPU", "JS"];
const NOT_AUTO = new Set(["WEBGPU"]);

const factories = new Map<string, DeviceFactory>();
const opened = new Map<string, DeviceImpl>();
const failures = new Map<string, string>();
let defaultName: string | null = null;

function canonical(name: string): string {
  if (typeof name !== "string" || name.trim() === "") {
    throw new Error(`device name must be a non-empty string such as "CPU", got ${String(name)}`);
  }
  return name.trim().toUpperCase();
}

/** add (or replace) a device; later files register CUDA, AMD, WEBGPU this way */
export function registerDevice(name: string, factory: DeviceFactory): void {
  const n = canonical(name);
  factories.set(n, factory);
  opened.delete(n);
  failures.delete(n);
}

function registeredInOrder(): string[] {
  const known = DEVICE_PREFERENCE.filter((n) => factories.has(n));
  const extra = [...factories.keys()].filter((n) => !DEVICE_PREFERENCE.includes(n)).sort();
  return [...known, ...extra];
}

function tryOpen(n: string): DeviceImpl | string {
  const d = opened.get(n);
  if (d) return d;
  const failed = failures.get(n);
  if (failed !== undefined) return failed;
  const f = factories.get(n);
  if (!f) return "not registered";
  try {
    const dev = f();
    opened.set(n, dev);
    return dev;
  } catch (e) {
    const why = (e as Error).message;
    failures.set(n, why);
    return why;
  }
}

function listWorking(): string[] {
  return registeredInOrder().filter((n) => typeof tryOpen(n) !== "string");
}

function getDevice(name: string, via = ""): DeviceImpl {
  const n = canonical(name);
  const r = tryOpen(n);
  if (typeof r !== "string") return r;
  const avail = listWorking().join(", ") || "none";
  if (!factories.has(n)) {
    throw new Error(
      `${via}unknown device '${name}': devices available here are ${avail} ` +
        `(tg knows ${[...new Set([...DEVICE_PREFERENCE, ...factories.keys()])].join(", ")})`,
    );
  }
  throw new Error(
    `${via}device '${n}' is not available here: ${r}. Devices available here: ${avail}`,
  );
}

function chooseDefault(): string {
  let dev: string | undefined;
  try {
    dev = Deno.env.get("DEV") || undefined;
  } catch {
    dev = undefined; // no env permission: choose automatically
  }
  if (dev !== undefined) return getDevice(dev, `DEV=${dev}: `).name;
  for (const n of DEVICE_PREFERENCE) {
    if (NOT_AUTO.has(n) || !factories.has(n)) continue;
    const r = tryOpen(n);
    if (typeof r !== "string") return r.name;
  }
  throw new Error(`no device works here: ${[...failures].map(([n, w]) => `${n}: ${w}`)}`);
}

export interface DeviceStatus {
  name: string;
  available: boolean;
  /** why not, when unavailable */
  error?: string;
  info?: DeviceInfo;
}

export interface DeviceRegistry {
  /** `DEV`, else the first that works of CUDA, AMD, CPU, JS; assignable */
  DEFAULT: string;
  /** canonical (upper case) spelling of a device name */
  canonicalize(name: string): string;
  /** the names of the devices that work here, in order of preference */
  list(): string[];
  /** the device (default: DEFAULT); a clear error naming the available ones when unknown/absent */
  get(name?: string): DeviceImpl;
  /** every registered device, working or not, with the reason (for `tg devices`) */
  status(): DeviceStatus[];
  /** wait for queued work on `device` (default: every device opened so far) */
  synchronize(device?: string): Promise<void>;
}

/** the public `Device` object of API.md */
export const Device: DeviceRegistry = {
  get DEFAULT(): string {
    return defaultName ??= chooseDefault();
  },
  set DEFAULT(name: string) {
    defaultName = getDevice(name).name;
  },
  canonicalize(name: string): string {
    return canonical(name);
  },
  list(): string[] {
    return listWorking();
  },
  get(name?: string): DeviceImpl {
    return getDevice(name ?? Device.DEFAULT);
  },
  status(): DeviceStatus[] {
    return registeredInOrder().map((n) => {
      const r = tryOpen(n);
      return typeof r === "string"
        ? { name: n, available: false, error: r }
        : { name: n, available: true, info: r.info() };
    });
  },
  async synchronize(device?: string): Promise<void> {
    if (device !== undefined) return await getDevice(device).synchronize();
    await Promise.all([...opened.values()].map((d) => d.synchronize()));
  },
};

registerDevice("CPU", () => new CpuDevice());
registerDevice("JS", () => new JsDevice());
// unavailable (with the reason) where libcuda/libamdhip64 or a GPU is missing; nothing is opened
// at import
registerDevice("CUDA", () => new CudaDevice());
registerDevice("AMD", () => new AmdDevice());
// WebGPU answers asynchronously: once the adapter has answered, WEBGPU is registered afresh
// (dropping the "not asked yet" failure a synchronous look may have cached)
registerDevice("WEBGPU", () => openWebGpu());
/** asks for the WebGPU adapter; resolves when WEBGPU is usable or known to be absent */
export function webgpuReady(): Promise<void> {
  return probeWebGpu().then(() => registerDevice("WEBGPU", () => openWebGpu()));
}

// ---- buffers ----

/** bytes of live device buffers, over all devices */
export const memStats = { used: 0, peak: 0, buffers: 0 };

/** start a new peak window (GlobalCounters.reset): the peak becomes what is alive now */
export function resetMemPeak(): void {
  memStats.peak = memStats.used;
}

interface Held {
  impl: DeviceImpl;
  handle: DeviceHandle;
  nbytes: number;
}

function release(h: Held): void {
  h.impl.allocator.free(h.handle);
  memStats.used -= h.nbytes;
  memStats.buffers--;
}

// a Buffer dropped without free() still gives its memory back (GPU memory is not GC'd)
const finalizer = new FinalizationRegistry<Held>(release);

/** `size` elements of `dtype` on `device`; memory is allocated on first use */
export class Buffer {
  readonly device: string;
  readonly nbytes: number;
  #impl: DeviceImpl | null = null;
  #held: Held | null = null;
  #freed = false;

  constructor(device: string, readonly dtype: DType, readonly size: number) {
    if (!(dtype instanceof DType)) {
      throw new Error(`Buffer(device, dtype, size): dtype must be a DType, got ${String(dtype)}`);
    }
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new Error(`Buffer: size must be a non-negative integer, got ${size}`);
    }
    if (dtype.count !== 1 || dtype.itemsize === 0) {
      throw new Error(`Buffer: cannot store ${dtype.name}; use a scalar dtype with storage`);
    }
    typedArrayFor(dtype); // throws for dtypes without storage
    this.device = canonical(device);
    this.nbytes = size * dtype.itemsize;
  }

  get impl(): DeviceImpl {
    return this.#impl ??= getDevice(this.device);
  }

  get allocated(): boolean {
    return this.#held !== null;
  }

  /** the allocator's handle (what `Program.run` takes), allocating on first use */
  get handle(): DeviceHandle {
    return this.allocate().#held!.handle;
  }

  allocate(): this {
    if (this.#held) return this;
    if (this.#freed) {
      throw new Error(
        `Buffer: use after free (${this.describe()}): freed by Tensor.dispose() or Buffer.free()`,
      );
    }
    const impl = this.impl;
    const held = { impl, handle: impl.allocator.alloc(this.nbytes), nbytes: this.nbytes };
    this.#held = held;
    finalizer.register(this, held, this);
    memStats.used += this.nbytes;
    memStats.buffers++;
    if (memStats.used > memStats.peak) memStats.peak = memStats.used;
    return this;
  }

  /** write the whole buffer: a TypedArray of the dtype's storage type, or raw bytes */
  copyin(data: TypedArray): this {
    const C = typedArrayFor(this.dtype);
    const raw = data instanceof Uint8Array && data.byteLength === this.nbytes;
    if (!raw && !(data instanceof C && data.length === this.size)) {
      throw new Error(
        `Buffer.copyin: ${this.describe()} needs a ${C.name} of ${this.size} elements ` +
          `(or a Uint8Array of ${this.nbytes} bytes), got a ${data.constructor.name} of ` +
          `${data.length}`,
      );
    }
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.impl.allocator.copyin(this.handle, bytes);
    return this;
  }

  /** a copy of the contents as the dtype's TypedArray, synchronously where the device can */
  toTypedArraySync(): TypedArray {
    const a = this.impl.allocator;
    if (!a.copyout) {
      throw new Error(
        `${this.device} cannot read a buffer synchronously: use the async form ` +
          `(await toTypedArray(), await t.data())`,
      );
    }
    return this.view(a.copyout(this.handle));
  }

  async toTypedArray(): Promise<TypedArray> {
    return this.view(await this.impl.allocator.copyoutAsync(this.handle));
  }

  free(): void {
    if (this.#held) {
      finalizer.unregister(this);
      release(this.#held);
      this.#held = null;
    }
    this.#freed = true;
  }

  private view(bytes: Uint8Array): TypedArray {
    // copy out of any offset/shared storage so the result is a standalone, aligned array
    const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
      ? bytes
      : bytes.slice();
    return viewAs(this.dtype, own.buffer, 0, this.size);
  }

  private describe(): string {
    return `${this.device} buffer of ${this.size} ${this.dtype.name}`;
  }

  toString(): string {
    return `<Buffer ${this.describe()}${this.#held ? "" : " (unallocated)"}>`;
  }
}
