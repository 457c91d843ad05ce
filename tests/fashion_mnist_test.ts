// The Fashion-MNIST example, short: a few hundred steps must already learn (the README gives the
// full run's accuracy).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { train } from "../examples/fashion_mnist.ts";

const have = existsSync("/usr/share/datasets/fashion-mnist");
if (!have) console.log("SKIPPED fashion_mnist_test: install Debian's dataset-fashion-mnist");

Deno.test({
  name: "the Fashion-MNIST CNN reaches 75% test accuracy in 150 steps on the default device",
  ignore: !have,
  fn: async () => {
    const r = await train({ steps: 150, batch: 64, lr: 0.002, evalN: 2000 });
    console.log(
      `fashion-mnist short run: accuracy ${(r.accuracy * 100).toFixed(1)}%, ${
        r.examplesPerSecond.toFixed(0)
      } examples/s, step memPeak ${r.memRatio.toFixed(1)}x params`,
    );
    assert.ok(r.accuracy >= 0.75, `accuracy ${r.accuracy}`);
  },
});
