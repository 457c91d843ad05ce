// examples/transformer.ts's checkpointedLoss: the same loss and gradients as loss.backward(), bit
// for bit, with fewer bytes alive (the forward keeps only the residual stream between segments).
import assert from "node:assert/strict";
import { Device, memoryReport, nn, Tensor } from "../mod.ts";
import {
  checkpointedLoss,
  randomTokens,
  Transformer,
  type TransformerConfig,
} from "../examples/transformer.ts";

const CFG: TransformerConfig = { vocab: 32, width: 32, heads: 2, layers: 2, maxSeq: 16 };

Deno.test("checkpointedLoss: loss and gradients equal loss.backward()'s, at a lower peak", async () => {
  const prev = Device.DEFAULT;
  Device.DEFAULT = "JS";
  try {
    Tensor.manualSeed(3);
    const model = new Transformer(CFG);
    const batch = randomTokens(4, 16, CFG.vocab).realize();
    const tokens = batch.slice(null, [0, 16]), targets = batch.slice(null, [1, 17]);
    const params = nn.state.getParameters(model);
    Tensor.realize(...params);
    const run = (checkpoint: boolean) => {
      for (const p of params) p.grad = null;
      let loss: Tensor;
      if (checkpoint) loss = checkpointedLoss(model, tokens, targets);
      else {
        loss = model.call(tokens).sparseCategoricalCrossentropy(targets);
        loss.backward();
      }
      const grads = params.map((p) => p.grad!);
      const peak = memoryReport(loss, ...grads).peakBytes;
      Tensor.realize(loss, ...grads);
      return { loss, grads, peak };
    };
    const plain = run(false), ck = run(true);
    assert.equal(await ck.loss.item(), await plain.loss.item());
    for (let i = 0; i < plain.grads.length; i++) {
      assert.deepEqual(await ck.grads[i].data(), await plain.grads[i].data(), `gradient ${i}`);
    }
    assert.ok(ck.peak < plain.peak, `checkpointed ${ck.peak} bytes, plain ${plain.peak}`);
  } finally {
    Device.DEFAULT = prev;
  }
});
