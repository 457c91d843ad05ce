// The WEBGPU device: WGSL kernels run through Deno's built-in WebGPU (navigator.gpu). The adapter
// and device are requested once, starting when this module loads (WebGPU only answers
// asynchronously and the device registry is synchronous); where there is no adapter the device
// is listed as unavailable with the reason, and nothing throws at import.
//
// Every wait on the GPU is expensive (about 11 ms on the software adapter), so nothing here
// waits per kernel: kernels are encoded as compute passes into one pending command encoder that
// is submitted only when something must be ordered after it (an upload, a readback, a
// synchronize, or a full batch). Reads are async only: the allocator has no `copyout`, so
// dataSync says to await, and a copy to another device reads back async (src/engine/pending.ts).
//
// Launch convention (src/codegen/gpudims.ts): spec.globalSize is the number of workgroups per
// dimension and spec.localSize the workgroup size, which the WGSL declares itself.
import type {
  Allocator,
  DeviceHandle,
  DeviceImpl,
  DeviceInfo,
  Program,
  ProgramSpec,
  RunOpts,
} from "./device.ts";
import { checkSpec, numbered } from "./js.ts";

/** a GPU buffer; `nbytes` is what the engine asked for, the GPU buffer is rounded up to 4 */
export class GpuMem implements DeviceHandle {
  readonly deviceHandle = true;
  constructor(readonly buf: GPUBuffer, readonly nbytes: number) {}
}

const STORAGE_USAGE = 0x80 | 0x04 | 0x08; // STORAGE | COPY_SRC | COPY_DST
const round4 = (n: number): number => Math.max(4, Math.ceil(n / 4) * 4);
/** submit after this many queued passes, so a long schedule starts running early */
const MAX_PENDING = 256;

interface Opened {
  adapter: GPUAdapter;
  device: GPUDevice;
  features: Set<string>;
}

/** the adapter limits tg requests explicitly (WebGPU gives the low defaults otherwise) */
const LIMITS = [
  "maxBufferSize",
  "maxStorageBufferBindingSize",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupsPerDimension",
  "maxComputeWorkgroupStorageSize",
] as const;

async function openGpu(): Promise<Opened | string> {
  try {
    if (Deno.env.get("TG_WEBGPU") === "0") return "disabled by TG_WEBGPU=0";
  } catch { /* no env permission: probe anyway */ }
  const gpu = (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
  if (!gpu) return "this runtime has no navigator.gpu";
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const timeout = new Promise<null>((res) => timer = setTimeout(() => res(null), 10_000));
    Deno.unrefTimer(timer as unknown as number); // a hung request must not keep the process alive
    const adapter = await Promise.race([gpu.requestAdapter(), timeout]);
    if (!adapter) return "navigator.gpu.requestAdapter() found no adapter";
    const requiredLimits: Record<string, number> = {};
    for (const k of LIMITS) requiredLimits[k] = adapter.limits[k];
    const features = new Set<string>(
      (["shader-f16", "timestamp-query"] as const).filter((f) => adapter.features.has(f)),
    );
    const device = await adapter.requestDevice({
      requiredFeatures: [...features] as GPUFeatureName[],
      requiredLimits,
    });
    return { adapter, device, features };
  } catch (e) {
    return `opening the WebGPU adapter failed: ${(e as Error).message}`;
  } finally {
    clearTimeout(timer);
  }
}

// no top-level await: it would make every module above this one async, and esbuild's bundle
// deadlocks on the tensor modules' import cycle; the registry re-registers WEBGPU on resolution
let opened: Opened | string | null = null;
let probe: Promise<void> | null = null;
/**
 * Ask for the adapter (once); resolves when it has answered. Not asked at import unless DEV=WEBGPU
 * or TG_WEBGPU=1, so other programs pay no start-up or exit delay for it.
 */
export function probeWebGpu(): Promise<void> {
  return probe ??= openGpu().then((o) => void (opened = o));
}
try {
  const dev = Deno.env.get("DEV")?.toUpperCase();
  if (dev === "WEBGPU" || Deno.env.get("TG_WEBGPU") === "1") probeWebGpu();
} catch { /* no env permission: probe on demand */ }

/** the WebGPU device, or throws the reason it is unavailable (used by the device registry) */
export function openWebGpu(): WebGpuDevice {
  if (opened === null) {
    throw new Error(
      "the WebGPU adapter has not been asked for (it answers asynchronously): " +
        "run with DEV=WEBGPU or TG_WEBGPU=1, or `await webgpuReady()` from src/runtime/device.ts first",
    );
  }
  if (typeof opened === "string") throw new Error(opened);
  return new WebGpuDevice(opened);
}

function debugLevel(): number {
  try {
    return Number(Deno.env.get("DEBUG") ?? 0) || 0;
  } catch {
    return 0;
  }
}

/** freed buffers are kept by size and handed out again; destroying waits for a submit */
class WebGpuAllocator implements Allocator<GpuMem> {
  private readonly pool = new Map<number, GPUBuffer[]>();
  private pooled = 0;
  static readonly maxPooledBytes = 256 * 2 ** 20;
  constructor(private readonly dev: WebGpuDevice) {}

  alloc(nbytes: number): GpuMem {
    const size = round4(nbytes);
    const max = this.dev.limits.maxBufferSize;
    if (size > max) {
      throw new Error(
        `WEBGPU: a buffer of ${nbytes} bytes exceeds the adapter's maxBufferSize (${max} bytes)`,
      );
    }
    const reuse = this.pool.get(size)?.pop();
    if (reuse) {
      this.pooled -= size;
      return new GpuMem(reuse, nbytes);
    }
    return new GpuMem(this.dev.gpu.createBuffer({ size, usage: STORAGE_USAGE }), nbytes);
  }
  free(h: GpuMem): void {
    const size = h.buf.size;
    if (this.pooled + size > WebGpuAllocator.maxPooledBytes) {
      this.dev.flush(); // a pass still pending may use it
      h.buf.destroy();
      return;
    }
    let l = this.pool.get(size);
    if (!l) this.pool.set(size, l = []);
    l.push(h.buf);
    this.pooled += size;
  }
  copyin(h: GpuMem, src: Uint8Array): void {
    if (src.byteLength > h.nbytes) {
      throw new Error(`copyin: ${src.byteLength} bytes into a ${h.nbytes}-byte WEBGPU buffer`);
    }
    if (src.byteLength === 0) return;
    // queued kernels must run before the write: submit them first
    this.dev.flush();
    let data = src;
    if (src.byteLength % 4) {
      data = new Uint8Array(round4(src.byteLength));
      data.set(src);
    }
    this.dev.gpu.queue.writeBuffer(h.buf, 0, data as Uint8Array<ArrayBuffer>);
  }
  async copyoutAsync(h: GpuMem): Promise<Uint8Array> {
    const size = h.buf.size;
    const staging = this.dev.gpu.createBuffer({ size, usage: 0x01 | 0x08 }); // MAP_READ | COPY_DST
    const enc = this.dev.encoder();
    enc.copyBufferToBuffer(h.buf, 0, staging, 0, size);
    this.dev.flush();
    try {
      await staging.mapAsync(GPUMapMode.READ);
    } catch (e) {
      await this.dev.throwErrors();
      throw e;
    }
    const out = new Uint8Array(staging.getMappedRange(0, size).slice(0, h.nbytes));
    staging.unmap();
    staging.destroy();
    await this.dev.throwErrors();
    await this.dev.reportTimes();
    return out;
  }
}

class WebGpuProgram implements Program<GpuMem> {
  constructor(
    readonly spec: ProgramSpec,
    private readonly dev: WebGpuDevice,
    private readonly pipeline: GPUComputePipeline,
    private readonly layout: GPUBindGroupLayout,
  ) {}

  run(bufs: readonly GpuMem[], vars: readonly number[], opts?: RunOpts): number | undefined {
    const spec = this.spec;
    if (bufs.length !== spec.bufs.length || vars.length !== spec.vars.length) {
      throw new Error(
        `kernel '${spec.name}' takes ${spec.bufs.length} buffers and ${spec.vars.length} ` +
          `variables (${spec.vars.join(", ")}), got ${bufs.length} and ${vars.length}`,
      );
    }
    const entries: GPUBindGroupEntry[] = bufs.map((b, i) => {
      const s = spec.bufs[i], need = s.size * s.dtype.itemsize;
      if (!(b instanceof GpuMem) || b.nbytes < need) {
        throw new Error(
          `kernel '${spec.name}': data${s.slot} needs a WEBGPU buffer of ${need} bytes ` +
            `(${s.size} ${s.dtype.name}), got ${
              b instanceof GpuMem ? `${b.nbytes} bytes` : String(b)
            }`,
        );
      }
      return { binding: i, resource: { buffer: b.buf } };
    });
    if (vars.length) {
      const data = new Int32Array(Math.ceil(vars.length / 4) * 4);
      vars.forEach((v, i) => {
        if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) {
          throw new Error(`kernel '${spec.name}': variable ${spec.vars[i]} = ${v} is not an int32`);
        }
        data[i] = v;
      });
      const ub = this.dev.gpu.createBuffer({ size: data.byteLength, usage: 0x40 | 0x08 }); // UNIFORM | COPY_DST
      this.dev.flush();
      this.dev.gpu.queue.writeBuffer(ub, 0, data);
      entries.push({ binding: bufs.length, resource: { buffer: ub } });
    }
    const g = opts?.globalSize ?? spec.globalSize;
    const maxGroups = this.dev.limits.maxComputeWorkgroupsPerDimension;
    if (g.some((n) => n > maxGroups)) {
      throw new Error(
        `kernel '${spec.name}': ${g.join("x")} workgroups exceed the adapter's ` +
          `maxComputeWorkgroupsPerDimension (${maxGroups})`,
      );
    }
    const bindGroup = this.dev.gpu.createBindGroup({ layout: this.layout, entries });
    const timed = opts?.timing ? this.dev.timestampWrites(spec) : undefined;
    const pass = this.dev.encoder().beginComputePass(
      timed ? { timestampWrites: timed } : undefined,
    );
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(g[0] ?? 1, g[1] ?? 1, g[2] ?? 1);
    pass.end();
    this.dev.passQueued();
    // a kernel's time is only known after an async readback: see WebGpuDevice.kernelTimes
    return undefined;
  }
}

export interface KernelTime {
  name: string;
  seconds: number;
  /** the spec's ALU ops and bytes moved, for GFLOP/s and GB/s */
  ops?: number;
  mem?: number;
}

export class WebGpuDevice implements DeviceImpl<GpuMem> {
  readonly name = "WEBGPU";
  readonly lang = "wgsl";
  readonly allocator: WebGpuAllocator;
  readonly gpu: GPUDevice;
  readonly limits: Record<(typeof LIMITS)[number], number>;
  readonly stats = { compiled: 0, memHits: 0, submits: 0 };
  /**
   * kernel times from timestamp queries (RunOpts.timing, which realize sets at DEBUG>=2), filled
   * by synchronize() and readbacks; at DEBUG>=2 they are printed and taken out there
   */
  readonly kernelTimes: KernelTime[] = [];
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly layouts = new Map<string, GPUBindGroupLayout>();
  private pending: GPUCommandEncoder | null = null;
  private passes = 0;
  private errors: Promise<string | null>[] = [];
  private timestamps:
    | { set: GPUQuerySet; specs: Pick<ProgramSpec, "name" | "ops" | "mem">[] }
    | null = null;
  private timeReads: Promise<void>[] = [];

  constructor(private readonly o: Opened) {
    this.gpu = o.device;
    this.limits = Object.fromEntries(LIMITS.map((k) => [k, o.device.limits[k]])) as Record<
      (typeof LIMITS)[number],
      number
    >;
    this.allocator = new WebGpuAllocator(this);
  }

  /** the scheduler splits kernels that would bind more storage buffers than this */
  get maxBuffers(): number {
    return this.limits.maxStorageBuffersPerShaderStage;
  }
  get hasF16(): boolean {
    return this.o.features.has("shader-f16");
  }
  get hasTimestamps(): boolean {
    return this.o.features.has("timestamp-query");
  }

  /** the encoder that queued work goes into */
  encoder(): GPUCommandEncoder {
    return this.pending ??= this.gpu.createCommandEncoder();
  }
  passQueued(): void {
    if (++this.passes >= MAX_PENDING) this.flush();
  }
  /** submit the queued passes (no wait) */
  flush(): void {
    if (!this.pending) return;
    const readTimes = this.resolveTimestamps();
    this.gpu.pushErrorScope("validation");
    this.gpu.queue.submit([this.pending.finish()]);
    if (readTimes) this.timeReads.push(readTimes());
    this.errors.push(this.gpu.popErrorScope().then((e) => e && e.message));
    this.pending = null;
    this.passes = 0;
    this.stats.submits++;
  }
  /** throws the first validation error WebGPU reported since the last call */
  async throwErrors(): Promise<void> {
    const errs = this.errors;
    this.errors = [];
    for (const e of await Promise.all(errs)) if (e) throw new Error(`WEBGPU: ${e}`);
  }

  compile(spec: ProgramSpec): Program<GpuMem> {
    checkSpec(spec, "wgsl", this.name);
    const maxBufs = this.limits.maxStorageBuffersPerShaderStage;
    if (spec.bufs.length > maxBufs) {
      throw new Error(
        `kernel '${spec.name}' binds ${spec.bufs.length} storage buffers, more than this ` +
          `adapter's maxStorageBuffersPerShaderStage (${maxBufs}); realize part of the ` +
          `expression first (.realize()) so that each kernel reads fewer buffers`,
      );
    }
    if (!this.hasF16 && /^enable f16;/.test(spec.src)) {
      throw new Error(
        `kernel '${spec.name}' uses float16, which WGSL has only with the 'shader-f16' feature, ` +
          `and this adapter (${this.o.adapter.info.description || "unnamed"}) lacks it: ` +
          `use float32 or bfloat16 on WEBGPU`,
      );
    }
    const cap = loopCap(this.o.adapter.info.description);
    if (cap !== null && (spec.loopIterations ?? 0) > cap) {
      throw new Error(
        `kernel '${spec.name}' runs ${spec.loopIterations} loop iterations per invocation; this ` +
          `adapter (${this.o.adapter.info.description}) silently stops loops after ${cap} ` +
          `(Mesa llvmpipe's loop limiter), which would give wrong results: split the work ` +
          `(e.g. a reduce over a shorter axis) or use another device`,
      );
    }
    const local = spec.localSize ?? [1, 1, 1];
    const threads = local.reduce((a, b) => a * b, 1);
    if (threads > this.limits.maxComputeInvocationsPerWorkgroup) {
      throw new Error(
        `kernel '${spec.name}': a workgroup of ${local.join("x")} exceeds the adapter's ` +
          `maxComputeInvocationsPerWorkgroup (${this.limits.maxComputeInvocationsPerWorkgroup})`,
      );
    }
    const layoutKey = spec.bufs.map((b) => (b.mutable ? "w" : "r")).join("") + spec.vars.length;
    let layout = this.layouts.get(layoutKey);
    if (!layout) {
      const entries: GPUBindGroupLayoutEntry[] = spec.bufs.map((b, i) => ({
        binding: i,
        visibility: 0x4, // COMPUTE
        buffer: { type: b.mutable ? "storage" : "read-only-storage" },
      }));
      if (spec.vars.length) {
        entries.push({ binding: spec.bufs.length, visibility: 0x4, buffer: { type: "uniform" } });
      }
      layout = this.gpu.createBindGroupLayout({ entries });
      this.layouts.set(layoutKey, layout);
    }
    const key = `${layoutKey}\0${spec.name}\0${spec.src}`;
    let pipeline = this.pipelines.get(key);
    if (pipeline) this.stats.memHits++;
    else {
      this.gpu.pushErrorScope("validation");
      const module = this.gpu.createShaderModule({ code: spec.src });
      pipeline = this.gpu.createComputePipeline({
        layout: this.gpu.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint: spec.name },
      });
      // WebGPU reports compile errors asynchronously: they surface at the next readback/sync
      this.errors.push(
        this.gpu.popErrorScope().then((e) =>
          e &&
          `WGSL compile of kernel '${spec.name}' failed: ${e.message}\n--- source ---\n${
            numbered(spec.src)
          }`
        ),
      );
      this.pipelines.set(key, pipeline);
      this.stats.compiled++;
    }
    return new WebGpuProgram(spec, this, pipeline, layout);
  }

  /** timestampWrites for one pass, or undefined without the timestamp-query feature */
  timestampWrites(spec: ProgramSpec): GPUComputePassTimestampWrites | undefined {
    if (!this.hasTimestamps) return undefined;
    const cap = 2 * MAX_PENDING;
    this.timestamps ??= {
      set: this.gpu.createQuerySet({ type: "timestamp", count: cap }),
      specs: [],
    };
    const t = this.timestamps;
    const i = 2 * t.specs.length;
    t.specs.push(spec);
    return { querySet: t.set, beginningOfPassWriteIndex: i, endOfPassWriteIndex: i + 1 };
  }

  /** copy this batch's timestamps out; returns the read to start after the submit */
  private resolveTimestamps(): (() => Promise<void>) | null {
    const t = this.timestamps;
    if (!t || !t.specs.length || !this.pending) return null;
    const n = 2 * t.specs.length, bytes = 8 * n;
    const resolved = this.gpu.createBuffer({ size: bytes, usage: 0x200 | 0x04 }); // QUERY_RESOLVE | COPY_SRC
    const staging = this.gpu.createBuffer({ size: bytes, usage: 0x01 | 0x08 });
    this.pending.resolveQuerySet(t.set, 0, n, resolved, 0);
    this.pending.copyBufferToBuffer(resolved, 0, staging, 0, bytes);
    const specs = t.specs;
    this.timestamps = null; // the next batch gets its own query set
    return () =>
      staging.mapAsync(GPUMapMode.READ).then(() => {
        const ts = new BigUint64Array(staging.getMappedRange().slice(0));
        specs.forEach(({ name, ops, mem }, i) => {
          const seconds = Number(ts[2 * i + 1] - ts[2 * i]) / 1e9;
          this.kernelTimes.push({ name, seconds, ops, mem });
        });
        staging.unmap();
        staging.destroy();
        resolved.destroy();
        t.set.destroy();
      });
  }

  async synchronize(): Promise<void> {
    this.flush();
    await this.gpu.queue.onSubmittedWorkDone();
    await this.throwErrors();
    await this.reportTimes();
  }

  /** waits for the submitted batches' timestamps; at DEBUG>=2 prints them (realize's format) */
  async reportTimes(): Promise<void> {
    const reads = this.timeReads;
    this.timeReads = [];
    await Promise.all(reads);
    if (debugLevel() < 2) return;
    for (const t of this.kernelTimes.splice(0)) {
      const us = t.seconds * 1e6, s = Math.max(t.seconds, 1e-9);
      const gflops = (t.ops ?? 0) / s / 1e9, gbs = (t.mem ?? 0) / s / 1e9;
      console.log(
        `*** WEBGPU ${t.name.padEnd(30)} ${us.toFixed(2).padStart(10)} us  ` +
          `${gflops.toFixed(2).padStart(8)} GFLOPS ${
            gbs.toFixed(2).padStart(8)
          } GB/s (GPU timestamps)`,
      );
    }
  }

  info(): DeviceInfo {
    const i = this.o.adapter.info;
    return {
      name: i.description || `${i.vendor} ${i.device}`.trim() || "WebGPU adapter",
      compiler: "WGSL (Deno WebGPU)",
      fallbackAdapter: i.isFallbackAdapter,
      shaderF16: this.hasF16,
      timestampQuery: this.hasTimestamps,
      maxStorageBuffers: this.limits.maxStorageBuffersPerShaderStage,
      maxBufferSize: this.limits.maxBufferSize,
    };
  }
}

/**
 * Mesa's llvmpipe (the software adapter CI has) ends every loop of an invocation after 65535
 * iterations in all, without an error (measured: a 70000-iteration loop counts 65535)
 */
export function loopCap(description: string): number | null {
  return /llvmpipe/i.test(description) ? 65535 : null;
}
