// Autograd: every derivative rule against central differences in float64, run on the engine (the
// backward graph goes through the same scheduler as the forward), plus the Tensor-level semantics.
import assert from "node:assert/strict";
import { dtypes } from "../src/dtype.ts";
import { Ops } from "../src/uop/ops.ts";
import { Tensor } from "../src/tensor.ts";

// JS compiles kernels in microseconds; the C compiler would dominate this file's time
const device = "JS";
const f64 = { dtype: dtypes.float64, device };
const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** deterministic values in [lo, hi), spread so that no two are close (no ties at kinks) */
function values(n: number, seed: number, lo = -2, hi = 2): number[] {
  let s = seed * 7919 + 13;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (s * 48271) % 2147483647;
    out.push(lo + ((s % 100003) / 100003) * (hi - lo));
  }
  return out;
}

const input = (d: number[], shape: number[], requiresGrad = false) =>
  Tensor.from(Float64Array.from(d), { shape, requiresGrad, device });

const vals = (t: Tensor): number[] => Array.from(t.dataSync() as Float64Array);

let checks = 0;

interface CheckOpts {
  /** input values per input (default: values(n, i + 1)) */
  data?: number[][];
  /** range of the default values */
  range?: [number, number];
  h?: number;
  tol?: number;
}

/**
 * backward() of sum(f(...xs) * w) (w fixed and distinct per element, so every output element
 * matters) against (L(x + h) - L(x - h)) / 2h for every element of every input.
 */
function check(
  name: string,
  f: (...xs: Tensor[]) => Tensor,
  shapes: number[][],
  o: CheckOpts = {},
) {
  const [lo, hi] = o.range ?? [-2, 2];
  const data = shapes.map((s, i) => o.data?.[i] ?? values(size(s), i + 1, lo, hi));
  let w: Tensor | null = null;
  const loss = (xs: Tensor[]): Tensor => {
    const out = f(...xs);
    if (!w) w = input(values(out.numel(), 99, 0.5, 1.5), out.shape);
    return out.cast(dtypes.float64).mul(w).sum();
  };
  const xs = data.map((d, i) => input(d, shapes[i], true));
  loss(xs).backward();
  const analytic = xs.map((x) => {
    assert.ok(x.grad, `${name}: input ${xs.indexOf(x)} got no gradient`);
    assert.deepEqual(x.grad.shape, x.shape);
    assert.equal(x.grad.dtype, dtypes.float64);
    return vals(x.grad);
  });
  const h = o.h ?? 1e-6, tol = o.tol ?? 1e-5;
  const at = (i: number, j: number, d: number): number => {
    const ds = data.map((v) => v.slice());
    ds[i][j] += d;
    return loss(ds.map((v, k) => input(v, shapes[k]))).item() as number;
  };
  data.forEach((d, i) => {
    d.forEach((_, j) => {
      const num = (at(i, j, h) - at(i, j, -h)) / (2 * h);
      const a = analytic[i][j];
      assert.ok(
        Math.abs(a - num) <= tol * (1 + Math.abs(num)),
        `${name}: d/dx${i}[${j}] analytic ${a} numeric ${num}`,
      );
    });
  });
  checks++;
}

const pos: CheckOpts = { range: [0.3, 2] };

Deno.test("elementwise rules match central differences", () => {
  check("add (broadcast)", (a, b) => a.add(b), [[2, 3], [3]]);
  check("sub (broadcast)", (a, b) => a.sub(b), [[2, 1], [1, 3]]);
  check("mul", (a, b) => a.mul(b), [[2, 3], [2, 3]]);
  check("div", (a, b) => a.div(b), [[2, 3], [2, 3]], {
    data: [values(6, 1), values(6, 2, 0.5, 2)],
  });
  check("neg", (a) => a.neg(), [[4]]);
  check("exp", (a) => a.exp(), [[5]]);
  check("exp2", (a) => a.exp2(), [[5]]);
  check("log", (a) => a.log(), [[5]], pos);
  check("log2", (a) => a.log2(), [[5]], pos);
  check("sqrt", (a) => a.sqrt(), [[5]], pos);
  check("rsqrt", (a) => a.rsqrt(), [[5]], pos);
  check("reciprocal", (a) => a.reciprocal(), [[5]], pos);
  check("sin", (a) => a.sin(), [[6]]);
  check("cos", (a) => a.cos(), [[6]]);
  check("tanh", (a) => a.tanh(), [[6]]);
  check("sigmoid", (a) => a.sigmoid(), [[6]]);
  check("relu", (a) => a.relu(), [[8]]);
  check("gelu", (a) => a.gelu(), [[8]]);
  check("silu", (a) => a.silu(), [[6]]);
  check("softplus", (a) => a.softplus(), [[6]]);
  check("abs", (a) => a.abs(), [[6]]);
  check("square", (a) => a.square(), [[6]]);
  check("pow int exponent", (a) => a.pow(3), [[6]]);
  check("pow float exponent", (a) => a.pow(2.5), [[6]], pos);
  check("pow tensor exponent", (a, b) => a.pow(b), [[6], [6]], pos);
  check("maximum", (a, b) => a.maximum(b), [[2, 3], [2, 3]]);
  check("minimum", (a, b) => a.minimum(b), [[2, 3], [3]]);
  check("clamp", (a) => a.clamp(-1, 1), [[8]]);
  check("where", (a, b) => a.gt(0).where(a.mul(b), b), [[6], [6]]);
  check(
    "cast float32 and back",
    (a) => a.cast(dtypes.float32).square().cast(dtypes.float64),
    [[5]],
    {
      h: 1e-2,
      tol: 1e-4,
    },
  );
});

Deno.test("movement rules match central differences", () => {
  check("reshape", (a) => a.reshape([3, 2]).mul(a.reshape([3, 2])), [[2, 3]]);
  check("permute", (a) => a.permute([2, 0, 1]), [[2, 3, 2]]);
  check("transpose", (a, b) => a.T.mul(b), [[2, 3], [3, 2]]);
  check("expand", (a) => a.expand([3, 2, 4]), [[1, 2, 1]]);
  check("pad", (a) => a.pad([[1, 2], [0, 1]]), [[2, 3]]);
  check("pad with value", (a) => a.pad([[1, 0], [2, 1]], 3).square(), [[2, 3]]);
  check("shrink", (a) => a.shrink([[1, 3], null]), [[4, 3]]);
  check("flip", (a, b) => a.flip([0, 1]).mul(b), [[2, 3], [2, 3]]);
  check("slice with step", (a) => a.slice([1, 5, 2], [0, 3, -1]), [[5, 3]]);
  check("cat", (a, b) => Tensor.cat([a, b.square()], 1), [[2, 2], [2, 3]]);
  check("stack", (a, b) => Tensor.stack([a, b], 0), [[3], [3]]);
  check("repeat", (a) => a.repeat([2, 3]), [[2, 2]]);
  check("split", (a) => a.split([1, 2], 0)[1].mul(a.split([1, 2], 0)[0]), [[3, 2]]);
});

Deno.test("reduction rules match central differences", () => {
  check("sum axis", (a) => a.sum(1), [[3, 4]]);
  check("sum all", (a) => a.sum(), [[3, 4]]);
  check("mean", (a) => a.mean(0, true), [[3, 4]]);
  check("max axis", (a) => a.max(1), [[3, 4]]);
  check("min all", (a) => a.min(), [[3, 4]]);
  check("prod", (a) => a.prod(1), [[3, 3]]);
  check("prod with one zero", (a) => a.prod(), [[4]], { data: [[1.5, 0, -2, 0.7]] });
  check("prod with two zeros", (a) => a.prod(), [[4]], { data: [[1.5, 0, -2, 0]] });
  check("var", (a) => a.var(1), [[2, 4]]);
  check("std", (a) => a.std(), [[5]]);
  check("cumsum", (a) => a.cumsum(0), [[4]]);
});

Deno.test("nn rules match central differences", () => {
  check("matmul", (a, b) => a.matmul(b), [[3, 4], [4, 2]]);
  check("batched matmul", (a, b) => a.matmul(b), [[2, 2, 3], [3, 2]]);
  check("linear", (x, w, b) => x.linear(w, b), [[2, 3], [3, 4], [4]]);
  check(
    "conv2d",
    (x, w, b) => x.conv2d(w, b, { stride: 2, padding: 1 }),
    [[1, 2, 5, 5], [3, 2, 3, 3], [3]],
  );
  check("conv2d groups dilation", (x, w) => x.conv2d(w, undefined, { groups: 2, dilation: 2 }), [
    [1, 4, 5, 5],
    [2, 2, 2, 2],
  ]);
  check("maxPool2d", (x) => x.maxPool2d(2), [[1, 2, 4, 4]]);
  check("maxPool2d overlapping", (x) => x.maxPool2d(3, { stride: 2, padding: 1 }), [[1, 1, 5, 5]]);
  check("avgPool2d", (x) => x.avgPool2d(2, { stride: 1, padding: 1 }), [[1, 2, 3, 3]]);
  check("softmax", (x) => x.softmax(), [[2, 5]]);
  check("logSoftmax", (x) => x.logSoftmax(0), [[4, 3]]);
  check("logsumexp", (x) => x.logsumexp(1), [[3, 4]]);
  check("layernorm", (x) => x.layernorm(), [[3, 5]]);
  check("rmsnorm", (x) => x.rmsnorm(), [[2, 4]]);
  check(
    "scaledDotProductAttention",
    (q, k, v) => q.scaledDotProductAttention(k, v),
    [[1, 3, 4], [1, 3, 4], [1, 3, 4]],
  );
  check(
    "causal attention",
    (q, k, v) => q.scaledDotProductAttention(k, v, { isCausal: true }),
    [[2, 3, 2], [2, 3, 2], [2, 3, 2]],
  );
  const target = Tensor.from(Float64Array.from([0.2, 0.3, 0.5, 0.6, 0.1, 0.3]), {
    shape: [2, 3],
    device,
  });
  check("crossEntropy", (x) => x.crossEntropy(target), [[2, 3]]);
  const labels = Tensor.from([2, 0, 1], { device });
  check("sparseCategoricalCrossentropy", (x) => x.sparseCategoricalCrossentropy(labels), [[3, 4]]);
  check("binaryCrossentropyLogits", (x) => x.binaryCrossentropyLogits(target), [[2, 3]]);
});

Deno.test("ties: MAX shares the gradient equally among the maxima, as tinygrad", () => {
  const x = input([1, 3, 3, 2], [4], true);
  x.max().backward();
  assert.deepEqual(vals(x.grad!), [0, 0.5, 0.5, 0]);
  const y = input([2, 2], [2], true);
  const [g] = y.maximum(y.flip(0)).sum().gradient(y);
  assert.deepEqual(vals(g), [1, 1]);
});

Deno.test("a tensor used twice accumulates its gradient; backward() accumulates into .grad", () => {
  const x = input([1, -2, 3], [3], true);
  const loss = x.mul(x).add(x.exp().mul(x)).sum(); // d/dx = 2x + e^x (1 + x)
  loss.backward();
  const want = [1, -2, 3].map((v) => 2 * v + Math.exp(v) * (1 + v));
  const got = vals(x.grad!);
  got.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-12, `${v} vs ${want[i]}`));
  x.mul(3).sum().backward();
  const again = vals(x.grad!);
  again.forEach((v, i) => assert.ok(Math.abs(v - want[i] - 3) < 1e-12));
});

Deno.test("gradient(...targets) returns gradients without storing them", () => {
  const a = input([1, 2], [2], true), b = input([3, 4], [2], true);
  const [ga, gb] = a.mul(b).sum().gradient(a, b);
  assert.deepEqual(vals(ga), [3, 4]);
  assert.deepEqual(vals(gb), [1, 2]);
  assert.equal(a.grad, null);
  assert.equal(b.grad, null);
  // targets need not have requiresGrad
  const c = input([5], [1]);
  assert.deepEqual(vals(c.square().sum().gradient(c)[0]), [10]);
});

Deno.test("detach stops gradients", () => {
  const x = input([2, 3], [2], true);
  x.mul(x.detach()).sum().backward(); // the detached factor is a constant: d/dx = x
  assert.deepEqual(vals(x.grad!), [2, 3]);
  const y = input([1], [1], true);
  assert.throws(() => y.detach().mul(2).sum().backward(), /does not depend on any tensor/);
  assert.equal(y.grad, null);
  assert.throws(() => y.detach().sum().gradient(y), /does not depend on target 0.*detach/);
});

Deno.test("ops without a gradient give zeros, not an error", () => {
  const x = input([0.5, 1.5], [2], true);
  const [g] = x.floor().add(x.gt(1).cast(dtypes.float64)).sum().gradient(x);
  assert.deepEqual(vals(g), [0, 0]);
});

Deno.test("clear errors: non-scalar backward, independent target, int target, int loss", () => {
  const x = input([1, 2, 3, 4], [2, 2], true);
  assert.throws(() => x.mul(2).backward(), /backward: the loss has shape \[2, 2\].*sum\(\)/);
  const other = input([1], [1], true);
  assert.throws(() => x.sum().gradient(other), /does not depend on target 0 \(shape \[1\]\)/);
  assert.throws(() => x.sum().gradient(Tensor.from([1, 2], { device })), /target 0 is int32/);
  assert.throws(() => x.cast(dtypes.int32).sum().backward(), /the loss is int32/);
  assert.throws(
    () => x.sum().backward(Tensor.ones([3], f64)),
    /the gradient has shape \[3\], the loss \[\]/,
  );
  // with an explicit gradient a non-scalar loss is fine
  x.mul(2).backward(Tensor.from([[1, 0], [0, 1]], f64));
  assert.deepEqual(vals(x.grad!), [2, 0, 0, 2]);
});

Deno.test("gradients reach a tensor realized after the loss was built, and equal constants stay apart", () => {
  const w = Tensor.rand([3], { ...f64, requiresGrad: true }).mul(2);
  w.requiresGrad = true; // a lazy graph over a buffer
  const loss = w.square().sum();
  const before = vals(w); // realizing swaps w's uop for a buffer
  loss.backward();
  const g = vals(w.grad!);
  g.forEach((v, i) => assert.ok(Math.abs(v - 2 * before[i]) < 1e-12));
  // two zero-initialized parameters are separate nodes, so their gradients differ
  const b1 = Tensor.zeros([2], { ...f64, requiresGrad: true });
  const b2 = Tensor.zeros([2], { ...f64, requiresGrad: true });
  assert.notEqual(b1.uop, b2.uop);
  b1.add(1).mul(b2.add(3)).sum().backward();
  assert.deepEqual(vals(b1.grad!), [3, 3]);
  assert.deepEqual(vals(b2.grad!), [1, 1]);
});

Deno.test("the backward graph is lazy tensor-graph UOps that the scheduler fuses", () => {
  const x = input(values(16, 3), [16], true);
  x.exp().mul(2).sin().sum().backward();
  const ops = new Set(x.grad!.uop.toposort().map((u) => u.op));
  for (const op of [Ops.SINK, Ops.NOOP, Ops.STORE, Ops.RANGE]) assert.ok(!ops.has(op));
  // the gradient of an elementwise chain under a sum is one elementwise kernel
  assert.equal(x.grad!.schedule().length, 1);
});

Deno.test("derivative check count", () => {
  // the four rule suites above ran in this file before this test
  assert.ok(checks >= 60, `only ${checks} derivative checks ran`);
  console.log(`gradient_test: ${checks} derivative checks against central differences`);
});

Deno.test("a small CNN's gradients agree between the default device (float32) and JS (float64)", () => {
  const run = (dev: string, dtype: typeof dtypes.float32) => {
    const mk = (shape: number[], seed: number) =>
      Tensor.from(Float64Array.from(values(size(shape), seed, -1, 1)), {
        shape,
        dtype,
        device: dev,
        requiresGrad: true,
      });
    const x = mk([2, 1, 6, 6], 1), w = mk([3, 1, 3, 3], 2), fc = mk([12, 4], 3);
    const y = Tensor.from([1, 3], { device: dev });
    const h = x.conv2d(w, undefined, { padding: 1 }).relu().maxPool2d(3).flatten(1);
    h.linear(fc).sparseCategoricalCrossentropy(y).backward();
    return [x, w, fc].map((t) => Array.from(t.grad!.dataSync() as Float32Array));
  };
  const got = run(Tensor.from(0).device, dtypes.float32), want = run(device, dtypes.float64);
  got.forEach((g, i) =>
    g.forEach((v, j) => assert.ok(Math.abs(v - want[i][j]) < 1e-5, `${i}[${j}]: ${v}`))
  );
});
