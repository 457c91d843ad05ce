// CUDA figures beside references measured in the same run: elementwise add of 64M float32 (GB/s,
// against the card's own device-to-device copy and torch's `a + b`) and matmul in float16 (4096,
// 8192) and float32 (4096) in TFLOP/s against torch.matmul. Without CUDA it prints why on stderr
// and stops; `--small` (or BENCH_SMALL=1) runs tiny sizes on whatever device there is (CUDA
// first), so the code path can be tried anywhere. Torch runs in a python3 subprocess; where
// python3, torch or its CUDA is missing, the `torch_error` field says why.
import { Device, GlobalCounters, Tensor } from "../mod.ts";
import { DEBUG, setDebug } from "../src/engine/counters.ts";
import { CudaDevice } from "../src/runtime/cuda.ts";
import { emit } from "./common.ts";

export const SMALL = Deno.args.includes("--small") || Deno.env.get("BENCH_SMALL") === "1";

/**
 * the device to measure: CUDA, or with --small the default device; null (after saying why on
 * stderr) when there is nothing to run
 */
export function benchDevice(script: string): string | null {
  if (Device.list().includes("CUDA")) return "CUDA";
  const why = Device.status().find((s) => s.name === "CUDA")?.error ?? "not registered";
  if (!SMALL) {
    console.error(`${script}: SKIP: no CUDA device here (${why}); --small runs tiny sizes anyway`);
    return null;
  }
  console.error(`${script}: no CUDA here (${why}); --small on ${Device.DEFAULT}`);
  return Device.DEFAULT;
}

export interface TgTiming {
  /** best wall seconds of one realize up to its synchronize */
  wallS: number;
  /** best summed kernel seconds of one realize from the runtime's timing (DEBUG>=2); null if none */
  kernelS: number | null;
  /** kernels one realize launches */
  kernels: number;
}

/**
 * `op().realize()` on pre-realized inputs: `warmup` untimed runs (the first counts the kernels),
 * then `reps` runs each timed by the wall clock up to its synchronize and by the runtime's kernel
 * timing (DEBUG>=2: CUDA events on CUDA, summed into GlobalCounters.timeSumS); best of each
 */
export async function timeTg(
  device: string,
  op: () => Tensor,
  reps: number,
  warmup = 2,
): Promise<TgTiming> {
  const k0 = GlobalCounters.kernelCount;
  op().realize();
  const kernels = GlobalCounters.kernelCount - k0;
  for (let i = 1; i < warmup; i++) op().realize();
  await Device.synchronize(device);
  // realize's per-kernel DEBUG lines are kept off stdout, which carries only the JSON lines
  const debug = DEBUG, log = console.log;
  let wallS = Infinity, kernelS = Infinity;
  try {
    setDebug(2);
    console.log = () => {};
    for (let i = 0; i < reps; i++) {
      const k = GlobalCounters.timeSumS, t0 = performance.now();
      op().realize();
      await Device.synchronize(device);
      wallS = Math.min(wallS, (performance.now() - t0) / 1e3);
      const t = GlobalCounters.timeSumS - k;
      if (t > 0) kernelS = Math.min(kernelS, t);
    }
  } finally {
    console.log = log;
    setDebug(debug);
  }
  return { wallS, kernelS: Number.isFinite(kernelS) ? kernelS : null, kernels };
}

/** the time a figure is computed from: the kernel time where the runtime measured one */
export const bestS = (t: TgTiming): number => t.kernelS ?? t.wallS;

export interface TorchFigure {
  /** best seconds of one op (CUDA events on cuda), or null with `error` saying why */
  s: number | null;
  error?: string;
  [k: string]: unknown;
}

// one op in torch, timed like ours: warm-up, then the best of `reps`; parameters come as JSON
const TORCH_SCRIPT = `
import json, sys, time
p = json.loads(sys.argv[1])
def out(**k):
    print(json.dumps(k)); sys.exit(0)
try:
    import torch
except Exception as e:
    out(s=None, error="python3 has no torch (%s: %s)" % (type(e).__name__, e))
dev = p["device"]
if dev == "cuda" and not torch.cuda.is_available():
    out(s=None, error="torch %s sees no CUDA device" % torch.__version__)
dt = getattr(torch, p["dtype"])
mk = lambda shape: torch.rand(shape, device=dev, dtype=torch.float32).to(dt)
op = p["op"]
if op == "add":
    a, b = mk(p["shape"]), mk(p["shape"])
    fn = lambda: a + b
elif op == "matmul":
    a, b = mk(p["shape"][:2]), mk(p["shape"][1:])
    fn = lambda: torch.matmul(a, b)
elif op == "sdpa":
    q, k, v = mk(p["shape"]), mk(p["shape"]), mk(p["shape"])
    fn = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v)
else:
    out(s=None, error="unknown op " + op)
def once():
    if dev == "cuda":
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); e.synchronize()
        return s.elapsed_time(e) / 1e3
    t = time.perf_counter(); fn(); return time.perf_counter() - t
for _ in range(p["warmup"]):
    fn()
if dev == "cuda":
    torch.cuda.synchronize()
best = min(once() for _ in range(p["reps"]))
out(s=best, torch=torch.__version__,
    gpu=torch.cuda.get_device_name() if dev == "cuda" else None,
    tf32=torch.backends.cuda.matmul.allow_tf32)
`;

/** torch's best time for `op` on `shape`; on CUDA when our device is CUDA, else on its CPU */
export async function torchFigure(
  op: "add" | "matmul" | "sdpa",
  shape: number[],
  dtype: string,
  device: string,
  reps: number,
): Promise<TorchFigure> {
  const p = { op, shape, dtype, device: device === "CUDA" ? "cuda" : "cpu", reps, warmup: 3 };
  try {
    const r = await new Deno.Command("python3", {
      args: ["-c", TORCH_SCRIPT, JSON.stringify(p)],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(r.stdout).trim().split("\n").pop() ?? "";
    if (!r.success || !text.startsWith("{")) {
      const err = new TextDecoder().decode(r.stderr).trim().split("\n").slice(-3).join(" | ");
      return { s: null, error: `python3 failed (exit ${r.code}): ${err || text}` };
    }
    return JSON.parse(text) as TorchFigure;
  } catch (e) {
    return { s: null, error: `cannot run python3: ${(e as Error).message}` };
  }
}

/** the fields of one figure of ours beside torch's: `value` in `per` units of work per second */
export function withTorch(
  t: TgTiming,
  ref: TorchFigure,
  work: number,
  per: number,
): Record<string, unknown> {
  const value = work / bestS(t) / per;
  const torch = ref.s ? work / ref.s / per : null;
  return {
    value,
    timing: t.kernelS !== null ? "kernel" : "wall",
    kernel_ms: t.kernelS !== null ? t.kernelS * 1e3 : null,
    wall_ms: t.wallS * 1e3,
    wall_value: work / t.wallS / per,
    kernels: t.kernels,
    torch,
    ratio: torch ? value / torch : null,
    ...(ref.error ? { torch_error: ref.error } : {}),
    ...(ref.torch ? { torch_version: ref.torch, torch_tf32: ref.tf32 } : {}),
  };
}

/** GB/s of cuMemcpyDtoD of `nbytes` (counted twice: read and written), best of `reps` by events */
function d2dCopy(dev: CudaDevice, nbytes: number, reps: number): number {
  const a = dev.allocator.alloc(nbytes), b = dev.allocator.alloc(nbytes);
  try {
    const cu = dev.cu, [start, end] = dev.events();
    const ms = new Float32Array(1);
    let best = Infinity;
    for (let i = 0; i < reps + 2; i++) {
      cu.check(cu.sym.cuEventRecord(start, null), "cuEventRecord");
      dev.allocator.copy(b, a, nbytes);
      cu.check(cu.sym.cuEventRecord(end, null), "cuEventRecord");
      cu.check(cu.sym.cuEventSynchronize(end), "cuEventSynchronize");
      cu.check(cu.sym.cuEventElapsedTime(ms, start, end), "cuEventElapsedTime");
      if (i >= 2) best = Math.min(best, ms[0] / 1e3);
    }
    return 2 * nbytes / best / 1e9;
  } finally {
    dev.allocator.free(a);
    dev.allocator.free(b);
  }
}

async function main(): Promise<void> {
  const device = benchDevice("bench/gpu");
  if (device === null) return;
  const impl = Device.get(device);
  const gpu = String(impl.info().name);

  // ---- elementwise add ----
  const N = SMALL ? 2 ** 20 : 64 * 2 ** 20;
  {
    const a = Tensor.rand([N], { device }).realize(), b = Tensor.rand([N], { device }).realize();
    const t = await timeTg(device, () => a.add(b), 20);
    const ref = await torchFigure("add", [N], "float32", device, 20);
    const d2d = impl instanceof CudaDevice ? d2dCopy(impl, 4 * N, 20) : null;
    const line = withTorch(t, ref, 3 * 4 * N, 1e9);
    emit({
      bench: "gpu_add_f32",
      device,
      gpu,
      shape: [N],
      unit: "GB/s",
      ...line,
      value: line.value as number,
      d2d_copy: d2d,
      ratio_d2d: d2d ? (line.value as number) / d2d : null,
      note: "3 x 4N bytes moved; d2d_copy is cuMemcpyDtoD counting 2 x 4N",
    });
  }

  // ---- matmul ----
  const cases: [number, string, number][] = SMALL
    ? [[128, "float16", 5], [256, "float32", 5]]
    : [[4096, "float16", 10], [8192, "float16", 5], [4096, "float32", 10]];
  for (const [n, dtype, reps] of cases) {
    const a = Tensor.rand([n, n], { device }).cast(dtype).realize();
    const b = Tensor.rand([n, n], { device }).cast(dtype).realize();
    const t = await timeTg(device, () => a.matmul(b), reps);
    const ref = await torchFigure("matmul", [n, n, n], dtype, device, reps);
    const line = withTorch(t, ref, 2 * n ** 3, 1e12);
    emit({
      bench: `gpu_matmul_${dtype === "float16" ? "f16" : "f32"}`,
      device,
      gpu,
      shape: [n, n, n],
      unit: "TFLOP/s",
      ...line,
      value: line.value as number,
    });
  }
}

if (import.meta.main) await main();
