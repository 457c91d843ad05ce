// nn layers: forward values against numpy (tests/fixtures/generate_nn.py), shapes, the
// initializations' ranges, and the errors bad inputs get.
import assert from "node:assert/strict";
import "../src/uop/symbolic.ts";
import { dtypes } from "../src/dtype.ts";
import { Tensor } from "../src/tensor.ts";
import { nn } from "../src/nn/index.ts";
import { assertClose } from "./support/reference.ts";

interface Arr {
  dtype: string;
  shape: number[];
  data: (number | boolean)[];
}
interface LayerCase {
  layer: "Linear" | "Conv2d" | "LayerNorm" | "RMSNorm" | "Embedding" | "BatchNorm";
  args: unknown[];
  state: Record<string, Arr>;
  input: Arr;
  expected: Arr;
  training?: boolean;
  after?: Record<string, Arr>;
}
const ref = JSON.parse(
  Deno.readTextFileSync(new URL("./fixtures/nn/reference.json", import.meta.url)),
) as { layers: LayerCase[] };

const tensorOf = (a: Arr): Tensor =>
  Tensor.from(Float64Array.from(a.data, Number), { shape: a.shape, dtype: a.dtype });
const nums = (a: Arr): number[] => a.data.map(Number);
/** a tensor's elements as plain numbers */
const vals = (t: Tensor): number[] => Array.from(t.dataSync(), Number);

function build(c: LayerCase): { call(x: Tensor): Tensor } {
  const a = c.args as number[];
  switch (c.layer) {
    case "Linear":
      return new nn.Linear(a[0], a[1]);
    case "Conv2d":
      return new nn.Conv2d(a[0], a[1], a[2], c.args[3] as nn.Conv2dOpts);
    case "LayerNorm":
      return new nn.LayerNorm(a[0]);
    case "RMSNorm":
      return new nn.RMSNorm(a[0]);
    case "Embedding":
      return new nn.Embedding(a[0], a[1]);
    case "BatchNorm":
      return new nn.BatchNorm(a[0]);
  }
}

for (const c of ref.layers) {
  const mode = c.training === undefined ? "" : c.training ? " (training)" : " (eval)";
  Deno.test(`nn.${c.layer}${mode} forward matches numpy`, () => {
    const layer = build(c);
    nn.state.loadStateDict(
      layer,
      Object.fromEntries(
        Object.entries(c.state).map(([k, v]) => [k, tensorOf(v)]),
      ),
    );
    const was = Tensor.training;
    Tensor.training = c.training ?? false;
    try {
      const y = layer.call(tensorOf(c.input));
      assert.deepEqual(y.shape, c.expected.shape);
      assert.equal(y.dtype, dtypes.float32);
      assertClose(vals(y), nums(c.expected), 1e-4, 1e-5, `${c.layer}`);
    } finally {
      Tensor.training = was;
    }
    const sd = nn.state.getStateDict(layer);
    for (const [k, v] of Object.entries(c.after ?? {})) {
      assertClose(vals(sd[k]), nums(v), 1e-5, 1e-6, `${c.layer} ${k} after the call`);
    }
    // eval mode leaves the running statistics alone
    if (c.layer === "BatchNorm" && !c.training) {
      assertClose(vals(sd.running_mean), nums(c.state.running_mean));
      assert.deepEqual(vals(sd.num_batches_tracked), [5]);
    }
  });
}

Deno.test("layer parameters: shapes, requiresGrad, tinygrad's init ranges", () => {
  const lin = new nn.Linear(50, 20);
  assert.deepEqual(lin.weight.shape, [20, 50]);
  assert.deepEqual(lin.bias!.shape, [20]);
  assert.ok(lin.weight.requiresGrad && lin.bias!.requiresGrad);
  const w = vals(lin.weight), bound = 1 / Math.sqrt(50);
  assert.ok(w.every((v) => Math.abs(v) <= bound));
  // uniform over the whole range, not a constant or a narrow band
  assert.ok(Math.max(...w) > 0.8 * bound && Math.min(...w) < -0.8 * bound);
  assert.equal(new nn.Linear(3, 2, false).bias, null);

  const conv = new nn.Conv2d(4, 6, [3, 2], { groups: 2, bias: false });
  assert.deepEqual(conv.weight.shape, [6, 2, 3, 2]);
  assert.equal(conv.bias, null);
  const cb = 1 / Math.sqrt(2 * 3 * 2);
  assert.ok(vals(conv.weight).every((v) => Math.abs(v) <= cb));

  const emb = new nn.Embedding(10, 6);
  const eb = Math.sqrt(6 / 16);
  assert.ok(vals(emb.weight).every((v) => Math.abs(v) <= eb));

  const bn = new nn.BatchNorm(5);
  assert.deepEqual(vals(bn.running_var!), [1, 1, 1, 1, 1]);
  assert.equal(bn.running_mean!.requiresGrad, false);
  assert.equal(bn.num_batches_tracked!.dtype, dtypes.int32);
  assert.deepEqual(vals(new nn.LayerNorm([2, 3]).weight!), [1, 1, 1, 1, 1, 1]);
});

Deno.test("layer forward shapes: batched Linear, strided Conv2d, LayerNorm over 2 axes", () => {
  assert.deepEqual(new nn.Linear(3, 7).call(Tensor.ones([2, 5, 3])).shape, [2, 5, 7]);
  const conv = new nn.Conv2d(2, 4, 3, { stride: 2, padding: 1 });
  assert.deepEqual(conv.call(Tensor.ones([1, 2, 9, 8])).shape, [1, 4, 5, 4]);
  const ln = new nn.LayerNorm([2, 3]);
  const y = ln.call(Tensor.arange(12).reshape([2, 2, 3]).cast(dtypes.float32));
  assert.deepEqual(y.shape, [2, 2, 3]);
  // each [2, 3] block is normalized: mean 0
  assertClose(vals(y.sum([1, 2])), [0, 0], 0, 1e-5);
  const e = new nn.Embedding(5, 2).call(Tensor.from([[0, 4, 1]]));
  assert.deepEqual(e.shape, [1, 3, 2]);
});

Deno.test("layers reject bad inputs and arguments with errors that say what is expected", () => {
  assert.throws(
    () => new nn.Linear(4, 2).call(Tensor.ones([3, 5])),
    /nn.Linear\(4, 2\): input \[3, 5\] needs a last axis of 4/,
  );
  assert.throws(() => new nn.Linear(0, 2), /inFeatures must be a positive integer, got 0/);
  assert.throws(() => new nn.Conv2d(3, 4, 3, { groups: 2 }), /must both be divisible by groups 2/);
  assert.throws(
    () => new nn.Embedding(4, 2).call(Tensor.ones([3])),
    /indices must be an int tensor, got float32/,
  );
  assert.throws(
    () => new nn.BatchNorm(3).call(Tensor.ones([2, 4, 5])),
    /nn.BatchNorm\(3\): input \[2, 4, 5\] needs \[N, 3, ...\]/,
  );
  assert.throws(() => new nn.LayerNorm(4).call(Tensor.ones([2, 5])), /must end in \[4\]/);
  assert.throws(() => new nn.RMSNorm(4).call(Tensor.ones([2, 5])), /needs a last axis of 4/);
});
