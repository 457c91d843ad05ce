// Recompute instead of store: elementwise values are recomputed where the backward reads them
// (by default; RECOMPUTE=0 stores them, and then a recompute() marker asks for it per tensor)
// instead of keeping their buffers alive; results are unchanged and the memory report shows the
// smaller peak.
import assert from "node:assert/strict";
import { memoryReport, Tensor } from "../mod.ts";

/** an MLP step whose activations the backward reads: gelu(x @ w1) @ w2 */
function mlp(mark: boolean) {
  Tensor.manualSeed(7);
  const x = Tensor.randn([64, 128], { device: "CPU" }).realize();
  const w1 = Tensor.randn([128, 512], { device: "CPU", requiresGrad: true }).realize();
  const w2 = Tensor.randn([512, 16], { device: "CPU", requiresGrad: true }).realize();
  let h = x.matmul(w1).gelu();
  if (mark) h = h.recompute();
  const loss = h.matmul(w2).square().mean();
  loss.backward();
  return { loss, grads: [w1.grad!, w2.grad!] };
}

/** `fn` with RECOMPUTE=0: elementwise values stored unless marked */
function storing<T>(fn: () => T): T {
  Deno.env.set("RECOMPUTE", "0");
  try {
    return fn();
  } finally {
    Deno.env.delete("RECOMPUTE");
  }
}

Deno.test("recompute() keeps fewer buffers alive and gives the same gradients", async () => {
  const plain = mlp(false), marked = mlp(true);
  const a = storing(() => memoryReport(plain.loss, ...plain.grads));
  const b = storing(() => memoryReport(marked.loss, ...marked.grads));
  assert.ok(
    b.peakBytes < a.peakBytes,
    `peak with recompute ${b.peakBytes} B, without ${a.peakBytes} B`,
  );
  assert.ok(b.buffers.length < a.buffers.length, "fewer intermediates are stored");
  Tensor.realize(plain.loss, ...plain.grads, marked.loss, ...marked.grads);
  for (let i = 0; i < 2; i++) {
    const x = await plain.grads[i].data() as Float32Array;
    const y = await marked.grads[i].data() as Float32Array;
    for (let j = 0; j < x.length; j++) {
      assert.ok(
        Math.abs(x[j] - y[j]) <= 1e-4 * Math.max(1, Math.abs(x[j])),
        `grad ${i}[${j}]: ${x[j]} vs ${y[j]}`,
      );
    }
  }
});

Deno.test("by default elementwise values are recomputed, so the peak is below RECOMPUTE=0's", () => {
  const stored = mlp(false);
  const a = storing(() => memoryReport(stored.loss, ...stored.grads));
  const recomputed = mlp(false);
  const b = memoryReport(recomputed.loss, ...recomputed.grads);
  assert.ok(b.peakBytes < a.peakBytes, `default peak ${b.peakBytes} B, RECOMPUTE=0 ${a.peakBytes}`);
});
