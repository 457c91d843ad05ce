// nn.checkpointSequential: the loss and every gradient equal loss.backward()'s bit for bit, with
// fewer bytes alive at the peak (activations live one segment at a time); a head that is not a
// scalar loss is refused.
import assert from "node:assert/strict";
import { Device, nn, Tensor } from "../mod.ts";
import { checkpointedAgainstPlain } from "./support/checkpoint.ts";

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
    const { plainPeak, ckPeak } = await checkpointedAgainstPlain(
      params,
      () => {
        const loss = head(segments.reduce((h, f) => f(h), x));
        loss.backward();
        return loss;
      },
      () => nn.checkpointSequential(x, segments, head),
    );
    assert.ok(ckPeak < plainPeak, `checkpointed ${ckPeak} bytes, plain ${plainPeak}`);
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
