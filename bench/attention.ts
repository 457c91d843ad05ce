// Scaled dot product attention, softmax(q k^T / sqrt(d)) v, in TFLOP/s counting 4*B*H*N*N*D:
// on CUDA, [8,16,4096,64] float16 and [1,8,4096,64] float32 against torch's
// scaled_dot_product_attention in the same run (with --small or BENCH_SMALL=1: [1,4,256,64] on
// CUDA, else on the default device); then on the CPU, [1,4,1024,64] and [1,8,4096,64] float32
// against numpy in float32. `kernels` is what one realize launches (a fused attention is 1).
// Flags: --small, --skip-large (no CPU [1,8,4096,64]), --no-cpu (GPU lines only).
import { Tensor } from "../mod.ts";
import { emit } from "./common.ts";
import { benchDevice, bestS, SMALL, timeTg, torchFigure, withTorch } from "./gpu.ts";

const flops = ([b, h, n, d]: number[]) => 4 * b * h * n * n * d;

/** pre-realized q, k, v of `shape` in `dtype` on `device` */
function qkv(shape: number[], dtype: string, device: string): Tensor[] {
  return [0, 1, 2].map(() => Tensor.rand(shape, { device }).cast(dtype).realize());
}

function reportKernels(device: string, shape: number[], kernels: number): void {
  console.error(
    `bench/attention: ${device} ${JSON.stringify(shape)}: ${kernels} kernel${
      kernels === 1 ? "" : "s"
    } per attention${kernels === 1 ? "" : " (a fused attention is 1)"}`,
  );
}

const device = benchDevice("bench/attention");
if (device !== null) {
  const cases: [number[], string, number][] = SMALL
    ? [[[1, 4, 256, 64], "float16", 5], [[1, 4, 256, 64], "float32", 5]]
    : [[[8, 16, 4096, 64], "float16", 10], [[1, 8, 4096, 64], "float32", 10]];
  for (const [shape, dtype, reps] of cases) {
    const [q, k, v] = qkv(shape, dtype, device);
    const t = await timeTg(device, () => q.scaledDotProductAttention(k, v), reps);
    reportKernels(device, shape, t.kernels);
    const ref = await torchFigure("sdpa", shape, dtype, device, reps);
    const line = withTorch(t, ref, flops(shape), 1e12);
    emit({
      bench: `sdpa_${dtype === "float16" ? "f16" : "f32"}`,
      device,
      shape,
      unit: "TFLOP/s",
      ...line,
      value: line.value as number,
    });
  }
}

// numpy's attention in float32: best seconds of `reps`, after one untimed run
function numpyAttention(shape: number[], reps: number): { s: number | null; error?: string } {
  const code = `
import json, time
try:
    import numpy as np
except Exception as e:
    print(json.dumps({"s": None, "error": "python3 has no numpy (%s)" % e})); raise SystemExit
rng = np.random.default_rng(0)
q, k, v = (rng.random(${JSON.stringify(shape)}, dtype=np.float32) for _ in range(3))
scale = np.float32(1 / np.sqrt(${shape[3]}))
def f():
    s = (q @ k.transpose(0, 1, 3, 2)) * scale
    e = np.exp(s - s.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)) @ v
f()
ts = []
for _ in range(${reps}):
    t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
print(json.dumps({"s": min(ts)}))`;
  try {
    const r = new Deno.Command("python3", { args: ["-c", code], stdout: "piped", stderr: "piped" })
      .outputSync();
    const text = new TextDecoder().decode(r.stdout).trim().split("\n").pop() ?? "";
    if (!r.success || !text.startsWith("{")) {
      const err = new TextDecoder().decode(r.stderr).trim().split("\n").pop();
      return { s: null, error: `python3 failed (exit ${r.code}): ${err}` };
    }
    return JSON.parse(text);
  } catch (e) {
    return { s: null, error: `cannot run python3: ${(e as Error).message}` };
  }
}

if (!Deno.args.includes("--no-cpu")) {
  const cpuCases: [number[], number][] = [[[1, 4, 1024, 64], 3]];
  if (!Deno.args.includes("--skip-large")) cpuCases.push([[1, 8, 4096, 64], 1]);
  for (const [shape, reps] of cpuCases) {
    const [q, k, v] = qkv(shape, "float32", "CPU");
    const t = await timeTg("CPU", () => q.scaledDotProductAttention(k, v), reps, 1);
    reportKernels("CPU", shape, t.kernels);
    const ref = numpyAttention(shape, reps);
    const value = flops(shape) / bestS(t) / 1e9, numpy = ref.s ? flops(shape) / ref.s / 1e9 : null;
    emit({
      bench: "sdpa_f32",
      device: "CPU",
      shape,
      value,
      unit: "GFLOP/s",
      timing: t.kernelS !== null ? "kernel" : "wall",
      kernel_ms: t.kernelS !== null ? t.kernelS * 1e3 : null,
      wall_ms: t.wallS * 1e3,
      kernels: t.kernels,
      numpy,
      ratio: numpy ? value / numpy : null,
      ...(ref.error ? { numpy_error: ref.error } : {}),
    });
  }
}
