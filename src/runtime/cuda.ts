// The CUDA device: kernels compiled by NVRTC to CUBIN for the card's architecture (disk-cached by
// content), loaded and launched through the driver API (src/runtime/ffi/libcuda.ts), device
// memory from a caching allocator, kernel times from CUDA events.
//
// Launch convention (src/codegen/gpudims.ts): spec.globalSize is the grid in blocks,
// spec.localSize the block in threads.
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
import { DiskCache } from "./cache.ts";
import { checkSpec, numbered } from "./js.ts";
import {
  cstr,
  CUattr,
  CUDA_ERROR_OUT_OF_MEMORY,
  CudaError,
  LibCuda,
  outInt,
  outPtr,
} from "./ffi/libcuda.ts";
import { LibNvrtc, NvrtcError } from "./ffi/nvrtc.ts";

/** device memory: a CUdeviceptr */
export class CudaMem implements DeviceHandle {
  readonly deviceHandle = true;
  constructor(readonly ptr: bigint, readonly nbytes: number) {}
}

const fmtBytes = (n: number): string =>
  n >= 2 ** 30
    ? `${(n / 2 ** 30).toFixed(2)} GiB`
    : n >= 2 ** 20
    ? `${(n / 2 ** 20).toFixed(1)} MiB`
    : `${n} bytes`;

/**
 * Freed blocks are kept by size and handed out again (cuMemAlloc/cuMemFree synchronize the
 * device and cost tens of microseconds); when an allocation fails the cache is released first.
 */
export class CudaAllocator implements Allocator<CudaMem> {
  private readonly pool = new Map<number, CudaMem[]>();
  /** bytes held in the pool */
  cached = 0;
  /** bytes handed out and not yet freed */
  inUse = 0;
  constructor(private readonly cu: LibCuda, private readonly device: string) {}

  alloc(nbytes: number): CudaMem {
    // a zero-byte buffer still gets a distinct, valid pointer
    const size = Math.max(nbytes, 1);
    const reuse = this.pool.get(size)?.pop();
    if (reuse) {
      this.cached -= size;
      this.inUse += size;
      return reuse;
    }
    const out = outPtr();
    let r = this.cu.sym.cuMemAlloc_v2(out, BigInt(size));
    if (r === CUDA_ERROR_OUT_OF_MEMORY && this.cached > 0) {
      this.releaseCache();
      r = this.cu.sym.cuMemAlloc_v2(out, BigInt(size));
    }
    if (r === CUDA_ERROR_OUT_OF_MEMORY) {
      const free = outPtr(), total = outPtr();
      const info = this.cu.sym.cuMemGetInfo_v2(free, total) === 0
        ? `${fmtBytes(Number(free[0]))} free of ${fmtBytes(Number(total[0]))}`
        : "free memory unknown";
      throw new Error(
        `${this.device}: out of memory allocating ${fmtBytes(nbytes)} (${info}; ` +
          `${fmtBytes(this.inUse)} held by live tg buffers)`,
      );
    }
    this.cu.check(r, `cuMemAlloc_v2(${nbytes} bytes)`);
    this.inUse += size;
    return new CudaMem(out[0], size);
  }

  free(h: CudaMem): void {
    this.inUse -= h.nbytes;
    let l = this.pool.get(h.nbytes);
    if (!l) this.pool.set(h.nbytes, l = []);
    l.push(h);
    this.cached += h.nbytes;
  }

  /** give every cached block back to the driver */
  releaseCache(): void {
    for (const l of this.pool.values()) {
      for (const h of l) this.cu.check(this.cu.sym.cuMemFree_v2(h.ptr), "cuMemFree_v2");
    }
    this.pool.clear();
    this.cached = 0;
  }

  copyin(h: CudaMem, src: Uint8Array): void {
    if (src.byteLength > h.nbytes) {
      throw new Error(`copyin: ${src.byteLength} bytes into a ${h.nbytes}-byte CUDA buffer`);
    }
    if (src.byteLength === 0) return;
    this.cu.check(
      this.cu.sym.cuMemcpyHtoD_v2(h.ptr, src, BigInt(src.byteLength)),
      "cuMemcpyHtoD_v2",
    );
  }

  copyout(h: CudaMem, nbytes = h.nbytes): Uint8Array {
    const out = new Uint8Array(nbytes);
    // on the legacy default stream this waits for the kernels queued before it
    if (nbytes) {
      this.cu.check(this.cu.sym.cuMemcpyDtoH_v2(out, h.ptr, BigInt(nbytes)), "cuMemcpyDtoH_v2");
    }
    return out;
  }

  copyoutAsync(h: CudaMem): Promise<Uint8Array> {
    return Promise.resolve(this.copyout(h));
  }

  /** device-to-device copy of `nbytes` (default: all of `src`), queued on the default stream */
  copy(dst: CudaMem, src: CudaMem, nbytes = src.nbytes): void {
    if (nbytes > dst.nbytes || nbytes > src.nbytes) {
      throw new Error(`copy: ${nbytes} bytes between CUDA buffers of ${src.nbytes}/${dst.nbytes}`);
    }
    if (nbytes) {
      this.cu.check(
        this.cu.sym.cuMemcpyDtoD_v2(dst.ptr, src.ptr, BigInt(nbytes)),
        "cuMemcpyDtoD_v2",
      );
    }
  }
}

/** NVRTC to CUBIN for one architecture */
export class NvrtcCompiler {
  readonly options: string[];
  constructor(private readonly nvrtc: LibNvrtc, readonly arch: string) {
    // --fmad=false: a*b+c rounds twice, as on the CPU device and in the reference values
    this.options = [`--gpu-architecture=${arch}`, "--fmad=false", "-std=c++17"];
  }
  get identity(): string {
    return JSON.stringify(["nvrtc", this.nvrtc.version, this.options]);
  }
  compile(src: string, name: string): Uint8Array {
    try {
      return this.nvrtc.compileToCubin(src, name, this.options);
    } catch (e) {
      if (!(e instanceof NvrtcError)) throw e;
      throw new Error(
        `CUDA compile of kernel '${name}' failed (NVRTC ${this.nvrtc.version}, ` +
          `${this.options.join(" ")}): ${e.message}\n--- source ---\n${numbered(src)}`,
        { cause: e },
      );
    }
  }
}

class CudaProgram implements Program<CudaMem> {
  /** the parameter values, 8 bytes each, and the void* array pointing at them */
  private readonly values: ArrayBuffer;
  private readonly view: DataView;
  private readonly params: BigUint64Array;

  constructor(
    readonly spec: ProgramSpec,
    private readonly dev: CudaDevice,
    private readonly fn: Deno.PointerValue,
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

  run(bufs: readonly CudaMem[], vars: readonly number[], opts?: RunOpts): number | undefined {
    const spec = this.spec;
    if (bufs.length !== spec.bufs.length || vars.length !== spec.vars.length) {
      throw new Error(
        `kernel '${spec.name}' takes ${spec.bufs.length} buffers and ${spec.vars.length} ` +
          `variables (${spec.vars.join(", ")}), got ${bufs.length} and ${vars.length}`,
      );
    }
    for (let i = 0; i < bufs.length; i++) {
      const b = spec.bufs[i], need = b.size * b.dtype.itemsize;
      if (!(bufs[i] instanceof CudaMem) || bufs[i].nbytes < need) {
        throw new Error(
          `kernel '${spec.name}': data${b.slot} needs a CUDA buffer of ${need} bytes ` +
            `(${b.size} ${b.dtype.name}), got ${
              bufs[i] instanceof CudaMem ? `${bufs[i].nbytes} bytes` : String(bufs[i])
            }`,
        );
      }
      this.view.setBigUint64(8 * i, bufs[i].ptr, true);
    }
    for (let i = 0; i < vars.length; i++) {
      if (!Number.isInteger(vars[i]) || vars[i] < -(2 ** 31) || vars[i] >= 2 ** 31) {
        throw new Error(
          `kernel '${spec.name}': variable ${spec.vars[i]} = ${vars[i]} is not an int32`,
        );
      }
      this.view.setInt32(8 * (bufs.length + i), vars[i], true);
    }
    const g = opts?.globalSize ?? spec.globalSize, l = opts?.localSize ?? spec.localSize ?? [1];
    const cu = this.dev.cu;
    // the hot path of a JIT replay: the error text is built only on failure
    const launch = () => {
      const r = cu.sym.cuLaunchKernel(
        this.fn,
        g[0] ?? 1,
        g[1] ?? 1,
        g[2] ?? 1,
        l[0] ?? 1,
        l[1] ?? 1,
        l[2] ?? 1,
        0,
        null,
        this.params,
        null,
      );
      if (r !== 0) cu.check(r, `cuLaunchKernel(${spec.name}, grid [${g}], block [${l}])`);
    };
    if (!opts?.timing) {
      launch();
      return undefined;
    }
    const [start, end] = this.dev.events();
    cu.check(cu.sym.cuEventRecord(start, null), "cuEventRecord");
    launch();
    cu.check(cu.sym.cuEventRecord(end, null), "cuEventRecord");
    cu.check(cu.sym.cuEventSynchronize(end), "cuEventSynchronize");
    const ms = new Float32Array(1);
    cu.check(cu.sym.cuEventElapsedTime(ms, start, end), "cuEventElapsedTime");
    return ms[0] / 1e3;
  }
}

export interface CudaDeviceOptions {
  /** device ordinal (default: 0) */
  ordinal?: number;
  /** the compile cache directory (default: CACHEDIR, else the user's cache directory) */
  cacheDir?: string;
}

export class CudaDevice implements DeviceImpl<CudaMem> {
  readonly name = "CUDA";
  readonly lang = "cuda";
  readonly cu: LibCuda;
  readonly allocator: CudaAllocator;
  readonly arch: string;
  readonly stats = { compiled: 0, diskHits: 0, memHits: 0 };
  private readonly ordinal: number;
  private readonly ctx: Deno.PointerValue;
  #compiler: NvrtcCompiler | null = null;
  #cache: DiskCache | null = null;
  #events: [Deno.PointerValue, Deno.PointerValue] | null = null;
  private programs = new Map<string, CudaProgram>();

  constructor(private readonly opts: CudaDeviceOptions = {}) {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      throw new Error("the CUDA device needs --allow-ffi");
    }
    this.cu = LibCuda.get();
    const count = outInt();
    this.cu.check(this.cu.sym.cuDeviceGetCount(count), "cuDeviceGetCount");
    this.ordinal = opts.ordinal ?? 0;
    if (this.ordinal >= count[0]) {
      throw new Error(`CUDA device ${this.ordinal} requested, but the driver sees ${count[0]}`);
    }
    const dev = outInt();
    this.cu.check(this.cu.sym.cuDeviceGet(dev, this.ordinal), "cuDeviceGet");
    const ctx = outPtr();
    this.cu.check(this.cu.sym.cuDevicePrimaryCtxRetain(ctx, dev[0]), "cuDevicePrimaryCtxRetain");
    this.ctx = Deno.UnsafePointer.create(ctx[0]);
    this.cu.check(this.cu.sym.cuCtxSetCurrent(this.ctx), "cuCtxSetCurrent");
    this.arch = `sm_${this.attr(CUattr.COMPUTE_CAPABILITY_MAJOR)}${
      this.attr(CUattr.COMPUTE_CAPABILITY_MINOR)
    }`;
    this.allocator = new CudaAllocator(this.cu, this.name);
  }

  attr(a: number): number {
    const out = outInt();
    this.cu.check(this.cu.sym.cuDeviceGetAttribute(out, a, this.ordinal), "cuDeviceGetAttribute");
    return out[0];
  }

  /** NVRTC is opened on the first compile: a device that only copies memory needs no compiler */
  get compiler(): NvrtcCompiler {
    return this.#compiler ??= new NvrtcCompiler(LibNvrtc.get(), this.arch);
  }

  get cache(): DiskCache {
    return this.#cache ??= this.opts.cacheDir !== undefined
      ? new DiskCache(this.opts.cacheDir)
      : DiskCache.forDir();
  }

  /** a start/end event pair, made once (kernels are timed one at a time) */
  events(): [Deno.PointerValue, Deno.PointerValue] {
    if (this.#events) return this.#events;
    const mk = () => {
      const out = outPtr();
      this.cu.check(this.cu.sym.cuEventCreate(out, 0), "cuEventCreate");
      return Deno.UnsafePointer.create(out[0]);
    };
    return this.#events = [mk(), mk()];
  }

  compile(spec: ProgramSpec): Program<CudaMem> {
    checkSpec(spec, "cuda", this.name);
    if (!spec.localSize || spec.localSize.reduce((a, b) => a * b, 1) > 1024) {
      throw new Error(
        `kernel '${spec.name}': a CUDA launch needs a block of at most 1024 threads, ` +
          `got localSize ${JSON.stringify(spec.localSize)}`,
      );
    }
    const memKey = programKey(spec);
    let p = this.programs.get(memKey);
    if (p) {
      this.stats.memHits++;
      return p;
    }
    const key = DiskCache.key([this.compiler.identity, spec.src]);
    let entry = this.cache.load(key, ".cubin");
    if (entry) this.stats.diskHits++;
    else {
      entry = this.cache.store(key, ".cubin", this.compiler.compile(spec.src, spec.name));
      this.stats.compiled++;
    }
    const mod = outPtr();
    this.cu.check(this.cu.sym.cuModuleLoadData(mod, entry.bytes), `cuModuleLoadData(${spec.name})`);
    const fn = outPtr();
    this.cu.check(
      this.cu.sym.cuModuleGetFunction(fn, Deno.UnsafePointer.create(mod[0]), cstr(spec.name)),
      `cuModuleGetFunction(${spec.name})`,
    );
    p = new CudaProgram(spec, this, Deno.UnsafePointer.create(fn[0]));
    this.programs.set(memKey, p);
    return p;
  }

  synchronize(): Promise<void> {
    this.cu.check(this.cu.sym.cuCtxSynchronize(), "cuCtxSynchronize");
    return Promise.resolve();
  }

  info(): DeviceInfo {
    const name = new Uint8Array(256);
    this.cu.check(this.cu.sym.cuDeviceGetName(name, 256, this.ordinal), "cuDeviceGetName");
    const total = outPtr();
    this.cu.check(this.cu.sym.cuDeviceTotalMem_v2(total, this.ordinal), "cuDeviceTotalMem_v2");
    return {
      name: new TextDecoder().decode(name.subarray(0, name.indexOf(0))),
      arch: this.arch,
      cores: this.attr(CUattr.MULTIPROCESSOR_COUNT),
      memory: Number(total[0]),
      driver: this.cu.path,
      cacheDir: this.cache.dir,
    };
  }
}

export { CudaError };
