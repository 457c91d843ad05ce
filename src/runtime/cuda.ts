// The CUDA device: kernels compiled by NVRTC to CUBIN for the card's architecture (disk-cached by
// content), loaded and launched through the driver API (src/runtime/ffi/libcuda.ts), device
// memory from a caching allocator, kernel times from CUDA events.
//
// Launch convention (src/codegen/gpudims.ts): spec.globalSize is the grid in blocks,
// spec.localSize the block in threads.
import type { DeviceImpl, DeviceInfo, Program, ProgramSpec, RunOpts } from "./device.ts";
import { programKey } from "./program_key.ts";
import { DiskCache } from "./cache.ts";
import { checkSpec, numbered } from "./js.ts";
import {
  cstr,
  CU_FUNC_MAX_DYNAMIC_SHARED,
  CUattr,
  CUDA_ERROR_OUT_OF_MEMORY,
  CudaError,
  LibCuda,
  outInt,
  outPtr,
} from "./ffi/libcuda.ts";
import { LibNvrtc, NvrtcError } from "./ffi/nvrtc.ts";
import { CachingAllocator, GpuMem, KernelParams } from "./gpu_memory.ts";

/** device memory: a CUdeviceptr */
export class CudaMem extends GpuMem {}

/** the caching allocator (src/runtime/gpu_memory.ts) over the driver API's memory calls */
export class CudaAllocator extends CachingAllocator<CudaMem> {
  constructor(cu: LibCuda, device: string) {
    super({
      device,
      malloc: (n) => {
        const out = outPtr(), r = cu.sym.cuMemAlloc_v2(out, BigInt(n));
        if (r === CUDA_ERROR_OUT_OF_MEMORY) return "oom";
        cu.check(r, `cuMemAlloc_v2(${n} bytes)`);
        return out[0];
      },
      release: (p) => cu.check(cu.sym.cuMemFree_v2(p), "cuMemFree_v2"),
      memInfo: () => {
        const free = outPtr(), total = outPtr();
        return cu.sym.cuMemGetInfo_v2(free, total) === 0
          ? [Number(free[0]), Number(total[0])]
          : null;
      },
      h2d: (p, src) =>
        cu.check(cu.sym.cuMemcpyHtoD_v2(p, src, BigInt(src.byteLength)), "cuMemcpyHtoD_v2"),
      d2h: (dst, p) =>
        cu.check(cu.sym.cuMemcpyDtoH_v2(dst, p, BigInt(dst.byteLength)), "cuMemcpyDtoH_v2"),
      d2d: (d, sp, n) => cu.check(cu.sym.cuMemcpyDtoD_v2(d, sp, BigInt(n)), "cuMemcpyDtoD_v2"),
      wrap: (p, n) => new CudaMem(p, n),
    });
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

/** bytes of dynamic shared memory (`extern __shared__`) a kernel is launched with */
export function dynamicShared(spec: ProgramSpec): number {
  const n = spec.sharedMem;
  return typeof n === "number" && n > 0 ? n : 0;
}

class CudaProgram implements Program<CudaMem> {
  private readonly args: KernelParams;
  private readonly shared: number;

  constructor(
    readonly spec: ProgramSpec,
    private readonly dev: CudaDevice,
    private readonly fn: Deno.PointerValue,
  ) {
    this.args = new KernelParams(spec, "CUDA", CudaMem);
    this.shared = dynamicShared(spec);
  }

  run(bufs: readonly CudaMem[], vars: readonly number[], opts?: RunOpts): number | undefined {
    const spec = this.spec;
    this.args.fill(bufs, vars);
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
        this.shared,
        null,
        this.args.params,
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
    const entry = this.cache.compiled(
      this.compiler.identity,
      spec.src,
      ".cubin",
      () => this.compiler.compile(spec.src, spec.name),
      this.stats,
    );
    const mod = outPtr();
    this.cu.check(this.cu.sym.cuModuleLoadData(mod, entry.bytes), `cuModuleLoadData(${spec.name})`);
    const fn = outPtr();
    this.cu.check(
      this.cu.sym.cuModuleGetFunction(fn, Deno.UnsafePointer.create(mod[0]), cstr(spec.name)),
      `cuModuleGetFunction(${spec.name})`,
    );
    const shared = dynamicShared(spec);
    // above 48 KB a kernel must opt in to its dynamic shared memory before its first launch
    if (shared > 48 * 1024) {
      this.cu.check(
        this.cu.sym.cuFuncSetAttribute(
          Deno.UnsafePointer.create(fn[0]),
          CU_FUNC_MAX_DYNAMIC_SHARED,
          shared,
        ),
        `cuFuncSetAttribute(${spec.name}, max dynamic shared memory ${shared} bytes)`,
      );
    }
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
