// nn.checkpointSequential: the loss and every gradient equal loss.backward()'s bit for bit, with
// fewer bytes alive at the peak (activations live one segment at a time); a head that is not a
// scalar loss is refused.
import assert from "node:assert/strict";
import { Device, memoryReport, nn, Tensor } from "../mod.ts";

Deno.test("checkpointSequential equals loss.backward() bit for bit, at a lower peak", async () => {
  const prev = Device.DEFAULT;
  Device.DEFAULT = "JS";
  try {
    Tensor.manualSeed(7);
    const layers = Array.from({ length: 4 }, () => new nn.Linear(64, 64));
    const params = layers.flatMap((l) => nn.state.getParameters(l));
    Tensor.realize(...params);
    const x = Tensor.randn([32, 64]).realize(), y = Tensor.randn([32, 64]).realize();
    // each segment keeps a wide intermediate alive for its backward
    const segments = layers.map((l) => (h: Tensor) => l.call(h).relu().add(h));
    const head = (h: Tensor) => h.sub(y).square().mean();
    const run = (checkpoint: boolean) => {
      for (const p of params) p.grad = null;
      let loss: Tensor;
      if (checkpoint) loss = nn.checkpointSequential(x, segments, head);
      else {
        loss = head(segments.reduce((h, f) => f(h), x));
        loss.backward();
      }
      const grads = params.map((p) => p.grad!);
      const peak = memoryReport(loss, ...grads).peakBytes;
      Tensor.realize(loss, ...grads);
      return { loss, grads, peak };
    };
    const plain = run(false), ck = run(true);
    assert.equal(await ck.loss.item(), await plain.loss.item());
    for (let i = 0; i < params.length; i++) {
      assert.deepEqual(await ck.grads[i].data(), await plain.grads[i].data(), `gradient ${i}`);
    }
    assert.ok(ck.peak < plain.peak, `checkpointed ${ck.peak} bytes, plain ${plain.peak}`);
  } finally {
    Device.DEFAULT = prev;
  }
});

Deno.test("checkpointSequential refuses a head that is not a scalar loss", () => {
  const x = Tensor.randn([2, 4], { device: "JS" });
  const w = Tensor.randn([4, 4], { device: "JS", requiresGrad: true });
  assert.throws(
    () => nn.checkpointSequential(x, [(h) => h.matmul(w)], (h) => h.relu()),
    /checkpointSequential: head must return a scalar loss, got shape \[2,4\]/,
  );
});
