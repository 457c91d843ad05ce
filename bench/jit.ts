// Host overhead per kernel of a TinyJit replay against the plain realizes of the same function: a
// chain of 20 tiny kernels (one realize each) on [16] floats, per device (CUDA when DEV=CUDA).
// Calls are timed in a loop (one call is too short for the timer); `value` is host time (launches
// may still be queued on CUDA), `synced_us` includes draining the queue.
import { Device, Tensor, TinyJit } from "../mod.ts";
import { emit } from "./common.ts";

const KERNELS = 20;
function chain(x: Tensor): Tensor {
  let y = x;
  for (let i = 0; i < KERNELS; i++) y = y.mul(1.0001).add(i).realize();
  return y;
}

/** [host, synced] seconds per kernel over `reps` calls of `fn` */
async function perKernel(fn: () => void, device: string, reps: number): Promise<number[]> {
  for (let i = 0; i < Math.max(5, reps / 20); i++) fn();
  await Device.synchronize(device);
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  const host = performance.now() - t0;
  await Device.synchronize(device);
  const synced = performance.now() - t0;
  return [host, synced].map((ms) => ms / 1e3 / reps / KERNELS);
}

const wanted = ["JS", "CPU", ...(Deno.env.get("DEV")?.toUpperCase() === "CUDA" ? ["CUDA"] : [])];
for (const device of Device.list().filter((d) => wanted.includes(d))) {
  const x = Tensor.rand([16], { device }).realize();
  const jit = new TinyJit(chain);
  jit.call(x);
  jit.call(x);
  if (jit.kernelCount !== KERNELS) {
    throw new Error(`expected ${KERNELS} kernels, captured ${jit.kernelCount}`);
  }
  const [eager, eagerSynced] = await perKernel(() => chain(x), device, 200);
  const [replay, replaySynced] = await perKernel(() => jit.call(x), device, 2000);
  const common = { device, shape: [16], kernels: KERNELS };
  emit({
    bench: "jit_replay_per_kernel",
    ...common,
    value: replay * 1e6,
    unit: "us",
    synced_us: replaySynced * 1e6,
    ...(device === "CUDA" ? { target_us: 5 } : {}),
  });
  emit({
    bench: "realize_per_kernel",
    ...common,
    value: eager * 1e6,
    unit: "us",
    synced_us: eagerSynced * 1e6,
  });
  emit({ bench: "jit_speedup", ...common, value: eagerSynced / replaySynced, unit: "x" });
}
