// The same work on WEBGPU (here Deno's WebGPU on whatever adapter it finds: a software one in CI)
// and on CPU in one run: elementwise add of 4M float32, sum of 16M, matmul 512. WEBGPU queues
// kernels and waits only at a synchronize (each wait costs ~11 ms on the software adapter), so
// a batch of ops is timed up to one synchronize and the time per op is the batch's share.
import { Device, Tensor, webgpuReady } from "../mod.ts";
import { emit } from "./common.ts";

await webgpuReady();
const devices = Device.list().filter((d) => d === "CPU" || d === "WEBGPU");
if (!devices.includes("WEBGPU")) {
  const why = Device.status().find((s) => s.name === "WEBGPU")?.error;
  console.error(`bench/webgpu: no WEBGPU here (${why}); CPU figures only`);
}
const adapter = devices.includes("WEBGPU") ? String(Device.get("WEBGPU").info().name) : null;

/** median seconds per op: batches of `batch` ops up to one synchronize, after a warm-up batch */
async function timePerOp(device: string, op: () => Tensor, budgetS = 1.5): Promise<number> {
  const batchOf = async (n: number): Promise<number> => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) op().realize();
    await Device.synchronize(device);
    return (performance.now() - t0) / 1e3;
  };
  await batchOf(1); // compile
  const one = await batchOf(1);
  const batch = Math.max(1, Math.min(50, Math.floor(budgetS / 5 / one)));
  const ts: number[] = [];
  for (let r = 0; r < 5; r++) ts.push((await batchOf(batch)) / batch);
  ts.sort((a, b) => a - b);
  return ts[2];
}

function data(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

interface Work {
  bench: string;
  shape: number[];
  /** what one op computes or moves, and its unit */
  amount: number;
  unit: string;
  inputs: { n: number; shape: number[] }[];
  op: (x: Tensor[]) => Tensor;
}
const M4 = 4 * 2 ** 20, M16 = 16 * 2 ** 20, K = 512;
const work: Work[] = [
  {
    bench: "webgpu_add_f32",
    shape: [M4],
    amount: 3 * 4 * M4,
    unit: "GB/s",
    inputs: [{ n: M4, shape: [M4] }, { n: M4, shape: [M4] }],
    op: ([a, b]) => a.add(b),
  },
  {
    bench: "webgpu_sum_f32",
    shape: [M16],
    amount: 4 * M16,
    unit: "GB/s",
    inputs: [{ n: M16, shape: [M16] }],
    op: ([a]) => a.sum(),
  },
  {
    bench: "webgpu_matmul_f32",
    shape: [K, K, K],
    amount: 2 * K ** 3,
    unit: "GFLOP/s",
    inputs: [{ n: K * K, shape: [K, K] }, { n: K * K, shape: [K, K] }],
    op: ([a, b]) => a.matmul(b),
  },
];

for (const w of work) {
  const host = w.inputs.map((s, i) => data(s.n, 7 + i));
  const secs = new Map<string, number>();
  for (const device of devices) {
    const xs = host.map((h, i) => Tensor.from(h, { device }).reshape(w.inputs[i].shape).realize());
    secs.set(device, await timePerOp(device, () => w.op(xs)));
  }
  for (const device of devices) {
    const s = secs.get(device)!, cpu = secs.get("CPU");
    emit({
      bench: w.bench,
      device,
      shape: w.shape,
      value: w.amount / s / 1e9,
      unit: w.unit,
      ms_per_op: s * 1e3,
      // how many times longer than CPU one op takes on this device
      time_vs_cpu: cpu ? s / cpu : null,
      adapter: device === "WEBGPU" ? adapter : undefined,
    });
  }
}
