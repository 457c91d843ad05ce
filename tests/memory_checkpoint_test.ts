// examples/transformer.ts's checkpointedLoss: the same loss and gradients as loss.backward(), bit
// for bit, with fewer bytes alive (the forward keeps only the residual stream between segments).
import assert from "node:assert/strict";
import { Device, nn, Tensor } from "../mod.ts";
import { checkpointedAgainstPlain } from "./support/checkpoint.ts";
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
    const { plainPeak, ckPeak } = await checkpointedAgainstPlain(
      params,
      () => {
        const loss = model.call(tokens).sparseCategoricalCrossentropy(targets);
        loss.backward();
        return loss;
      },
      () => checkpointedLoss(model, tokens, targets),
    );
    assert.ok(ckPeak < plainPeak, `checkpointed ${ckPeak} bytes, plain ${plainPeak}`);
  } finally {
    Device.DEFAULT = prev;
  }
});
