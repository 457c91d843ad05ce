// The AMD device: kernels compiled by amd_comgr (or hiprtc where comgr cannot be opened) to a code
// object for the card's gfx target (disk-cached by content), loaded and launched through the HIP
// runtime (src/runtime/ffi/hip.ts), device memory from a caching allocator, kernel times from HIP
// events. It mirrors the CUDA device call for call; the compile path is tested without a GPU
// (tests/hip_render_test.ts, tests/amd_comgr_test.ts), the launch path only where an AMD GPU is
// present (tests/gpu/amd_test.ts).
//
// Launch convention (src/codegen/gpudims.ts): spec.globalSize is the grid in blocks,
// spec.localSize the block in threads.
import type { DeviceImpl, DeviceInfo, Program, ProgramSpec, RunOpts } from "./device.ts";
import { programKey } from "./program_key.ts";
import { DiskCache } from "./cache.ts";
import { checkSpec } from "./js.ts";
import { cstr, outInt, outPtr } from "./ffi/libcuda.ts";
import { HipAttr, HipError, hipErrorOutOfMemory, LibHip } from "./ffi/hip.ts";
import { type AmdCompiler, amdCompiler } from "./amd_compile.ts";
import { AMD_LIMITS } from "../renderer/hip.ts";
import { CachingAllocator, GpuMem, KernelParams } from "./gpu_memory.ts";

/** device memory: a hipDeviceptr_t */
export class HipMem extends GpuMem {}

/** the caching allocator (src/runtime/gpu_memory.ts) over the HIP runtime's memory calls */
export class HipAllocator extends CachingAllocator<HipMem> {
  constructor(hip: LibHip, device: string) {
    super({
      device,
      malloc: (n) => {
        const out = outPtr(), r = hip.sym.hipMalloc(out, BigInt(n));
        if (r === hipErrorOutOfMemory) return "oom";
        hip.check(r, `hipMalloc(${n} bytes)`);
        return out[0];
      },
      release: (p) => hip.check(hip.sym.hipFree(p), "hipFree"),
      memInfo: () => {
        const free = outPtr(), total = outPtr();
        return hip.sym.hipMemGetInfo(free, total) === 0
          ? [Number(free[0]), Number(total[0])]
          : null;
      },
      h2d: (p, src) =>
        hip.check(hip.sym.hipMemcpyHtoD(p, src, BigInt(src.byteLength)), "hipMemcpyHtoD"),
      d2h: (dst, p) =>
        hip.check(hip.sym.hipMemcpyDtoH(dst, p, BigInt(dst.byteLength)), "hipMemcpyDtoH"),
      d2d: (d, sp, n) => hip.check(hip.sym.hipMemcpyDtoD(d, sp, BigInt(n)), "hipMemcpyDtoD"),
      wrap: (p, n) => new HipMem(p, n),
    });
  }
}

/** HIP source to an AMDGPU code object for one gfx target */
class HipProgram implements Program<HipMem> {
  private readonly args: KernelParams;

  constructor(
    readonly spec: ProgramSpec,
    private readonly dev: AmdDevice,
    private readonly fn: Deno.PointerValue,
  ) {
    this.args = new KernelParams(spec, "AMD", HipMem);
  }

  run(bufs: readonly HipMem[], vars: readonly number[], opts?: RunOpts): number | undefined {
    const spec = this.spec;
    this.args.fill(bufs, vars);
    const g = opts?.globalSize ?? spec.globalSize, l = opts?.localSize ?? spec.localSize ?? [1];
    const dim = (a: readonly number[], i: number) => a[i] ?? 1;
    const hip = this.dev.hip;
    const launch = () =>
      hip.check(
        hip.sym.hipModuleLaunchKernel(
          this.fn,
          dim(g, 0),
          dim(g, 1),
          dim(g, 2),
          dim(l, 0),
          dim(l, 1),
          dim(l, 2),
          0,
          null,
          this.args.params,
          null,
        ),
        `hipModuleLaunchKernel(${spec.name}, grid [${g}], block [${l}])`,
      );
    if (!opts?.timing) {
      launch();
      return undefined;
    }
    const [start, end] = this.dev.events();
    hip.check(hip.sym.hipEventRecord(start, null), "hipEventRecord");
    launch();
    hip.check(hip.sym.hipEventRecord(end, null), "hipEventRecord");
    hip.check(hip.sym.hipEventSynchronize(end), "hipEventSynchronize");
    const ms = new Float32Array(1);
    hip.check(hip.sym.hipEventElapsedTime(ms, start, end), "hipEventElapsedTime");
    return ms[0] / 1e3;
  }
}

export interface AmdDeviceOptions {
  /** device ordinal (default: 0) */
  ordinal?: number;
  /** the compile cache directory (default: CACHEDIR, else the user's cache directory) */
  cacheDir?: string;
}

export class AmdDevice implements DeviceImpl<HipMem> {
  readonly name = "AMD";
  readonly lang = "hip";
  readonly hip: LibHip;
  readonly allocator: HipAllocator;
  /** the gfx target kernels are compiled for, from the device's properties */
  readonly arch: string;
  readonly stats = { compiled: 0, diskHits: 0, memHits: 0 };
  private readonly ordinal: number;
  #compiler: AmdCompiler | null = null;
  #cache: DiskCache | null = null;
  #events: [Deno.PointerValue, Deno.PointerValue] | null = null;
  private programs = new Map<string, HipProgram>();

  constructor(private readonly opts: AmdDeviceOptions = {}) {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      throw new Error("the AMD device needs --allow-ffi");
    }
    let hip: LibHip;
    try {
      hip = LibHip.get();
    } catch (e) {
      // hipInit answers hipErrorInvalidDevice/hipErrorNoDevice where ROCm sees no GPU
      if (e instanceof HipError && (e.code === 100 || e.code === 101)) {
        throw new Error(`no AMD GPU: ${e.message}`);
      }
      throw e;
    }
    this.hip = hip;
    const count = outInt();
    const r = hip.sym.hipGetDeviceCount(count);
    if (r === 100) throw new Error(`no AMD GPU: hipGetDeviceCount says ${hip.errorName(r)}`);
    hip.check(r, "hipGetDeviceCount");
    this.ordinal = opts.ordinal ?? 0;
    if (this.ordinal >= count[0]) {
      throw new Error(`AMD device ${this.ordinal} requested, but HIP sees ${count[0]}`);
    }
    hip.check(hip.sym.hipSetDevice(this.ordinal), "hipSetDevice");
    this.arch = hip.archName(this.ordinal);
    this.allocator = new HipAllocator(hip, this.name);
  }

  attr(a: number): number {
    const out = outInt();
    this.hip.check(
      this.hip.sym.hipDeviceGetAttribute(out, a, this.ordinal),
      "hipDeviceGetAttribute",
    );
    return out[0];
  }

  /** the compiler is opened on the first compile: a device that only copies memory needs none */
  get compiler(): AmdCompiler {
    return this.#compiler ??= amdCompiler(this.arch);
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
      this.hip.check(this.hip.sym.hipEventCreate(out), "hipEventCreate");
      return Deno.UnsafePointer.create(out[0]);
    };
    return this.#events = [mk(), mk()];
  }

  compile(spec: ProgramSpec): Program<HipMem> {
    checkSpec(spec, "hip", this.name);
    const threads = spec.localSize?.reduce((a, b) => a * b, 1) ?? 0;
    if (!spec.localSize || threads > AMD_LIMITS.threads) {
      throw new Error(
        `kernel '${spec.name}': an AMD launch needs a block of at most ${AMD_LIMITS.threads} ` +
          `threads, got localSize ${JSON.stringify(spec.localSize)}`,
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
      ".hsaco",
      () => this.compiler.compile(spec.src, spec.name),
      this.stats,
    );
    const mod = outPtr();
    this.hip.check(
      this.hip.sym.hipModuleLoadData(mod, entry.bytes),
      `hipModuleLoadData(${spec.name})`,
    );
    const fn = outPtr();
    this.hip.check(
      this.hip.sym.hipModuleGetFunction(fn, Deno.UnsafePointer.create(mod[0]), cstr(spec.name)),
      `hipModuleGetFunction(${spec.name})`,
    );
    p = new HipProgram(spec, this, Deno.UnsafePointer.create(fn[0]));
    this.programs.set(memKey, p);
    return p;
  }

  synchronize(): Promise<void> {
    this.hip.check(this.hip.sym.hipDeviceSynchronize(), "hipDeviceSynchronize");
    return Promise.resolve();
  }

  info(): DeviceInfo {
    const name = new Uint8Array(256);
    this.hip.check(this.hip.sym.hipDeviceGetName(name, 256, this.ordinal), "hipDeviceGetName");
    const total = outPtr();
    this.hip.check(this.hip.sym.hipDeviceTotalMem(total, this.ordinal), "hipDeviceTotalMem");
    return {
      name: new TextDecoder().decode(name.subarray(0, name.indexOf(0))),
      arch: this.arch,
      cores: this.attr(HipAttr.MULTIPROCESSOR_COUNT),
      warpSize: this.attr(HipAttr.WARP_SIZE),
      memory: Number(total[0]),
      runtime: `${this.hip.path} (HIP ${this.hip.version()})`,
      cacheDir: this.cache.dir,
    };
  }
}

export { HipError };
