// Reductions and scans against direct JS loops over the same data.
import assert from "node:assert/strict";
import { dtypes } from "../src/dtype.ts";
import { Ops } from "../src/uop/ops.ts";
import { Tensor } from "../src/tensor.ts";
import { setBackend } from "../src/tensor/backend.ts";
import { assertClose, refBackend, refOf } from "./support/reference.ts";

setBackend(refBackend);

const data = [3, -1, 4, 1, -5, 9, 2, 6, -5, 3, 5, 8, -9, 7, 9, 3, 2, 3, 8, 4, -6, 2, 6, 4];
const shape = [2, 3, 4];
const X = () => Tensor.from(new Float32Array(data), { shape });

/** reduce `vals` of `shp` over `axes` with `f` (keepdim layout), in JS */
function jsReduce(
  vals: number[],
  shp: number[],
  axes: number[],
  f: (xs: number[]) => number,
): number[] {
  const outShape = shp.map((d, i) => (axes.includes(i) ? 1 : d));
  const groups = new Map<number, number[]>();
  vals.forEach((v, flat) => {
    let rem = flat, key = 0, mul = 1;
    const idx: number[] = [];
    for (let k = shp.length - 1; k >= 0; k--) {
      idx[k] = rem % shp[k];
      rem = Math.floor(rem / shp[k]);
    }
    for (let k = shp.length - 1; k >= 0; k--) {
      key += (axes.includes(k) ? 0 : idx[k]) * mul;
      mul *= outShape[k];
    }
    groups.set(key, [...(groups.get(key) ?? []), v]);
  });
  return [...groups.keys()].sort((a, b) => a - b).map((k) => f(groups.get(k)!));
}
const jsSum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const jsMean = (xs: number[]) => jsSum(xs) / xs.length;
const jsVar = (c: number) => (xs: number[]) => {
  const m = jsMean(xs);
  return xs.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(0, xs.length - c);
};

Deno.test("sum, prod, max, min, mean over axes with keepdim and negative axes", () => {
  const cases: [number | number[] | undefined, number[]][] = [
    [undefined, [0, 1, 2]],
    [0, [0]],
    [-1, [2]],
    [[0, 2], [0, 2]],
    [[-2], [1]],
  ];
  const ops: [
    string,
    (t: Tensor, a: number | number[] | undefined, k: boolean) => Tensor,
    (xs: number[]) => number,
  ][] = [
    ["sum", (t, a, k) => t.sum(a, k), jsSum],
    ["prod", (t, a, k) => t.prod(a, k), (xs) => xs.reduce((p, q) => p * q, 1)],
    ["max", (t, a, k) => t.max(a, k), (xs) => Math.max(...xs)],
    ["min", (t, a, k) => t.min(a, k), (xs) => Math.min(...xs)],
    ["mean", (t, a, k) => t.mean(a, k), jsMean],
  ];
  for (const [axis, axes] of cases) {
    for (const [name, op, f] of ops) {
      const want = jsReduce(data, shape, axes, f);
      const keep = op(X(), axis, true);
      assert.deepEqual(
        keep.shape,
        shape.map((d, i) => (axes.includes(i) ? 1 : d)),
        `${name} ${axis}`,
      );
      assertClose(refOf(keep), want, 1e-6, 1e-6, `${name} ${axis}`);
      const drop = op(X(), axis, false);
      assert.deepEqual(drop.shape, shape.filter((_, i) => !axes.includes(i)), `${name} ${axis}`);
      assertClose(refOf(drop), want, 1e-6, 1e-6, `${name} ${axis}`);
    }
  }
  assert.deepEqual(X().sum(undefined, true).shape, [1, 1, 1]);
  assert.equal(X().sum().ndim, 0);
});

Deno.test("reductions emit one REDUCE_AXIS with sorted axes", () => {
  const s = X().sum([2, 0], true);
  const r = s.uop.toposort().filter((u) => u.op === Ops.REDUCE_AXIS);
  assert.equal(r.length, 1);
  assert.deepEqual(r[0].arg, [Ops.ADD, [0, 2]]);
  assert.throws(
    () => X().sum(3),
    /sum: axis 3 is out of range for 3 dims; use an integer in -3..2/,
  );
  assert.throws(() => X().max([0, -3]), /max: repeated axis in \[0,-3\]/);
});

Deno.test("int and bool reductions accumulate wide and keep exact values", () => {
  const i8 = Tensor.from([100, 100, 100], { dtype: dtypes.int8 });
  assert.deepEqual(refOf(i8.sum()), [300]);
  assert.deepEqual(refOf(Tensor.from([200, 200], { dtype: dtypes.uint8 }).sum()), [400]);
  assert.deepEqual(refOf(Tensor.from([true, true, false]).sum()), [2]);
  assert.deepEqual(refOf(Tensor.from([[3, -7], [2, 9]]).min(1)), [-7, 2]);
  assert.deepEqual(refOf(Tensor.from([3, 250], { dtype: dtypes.uint8 }).min()), [3]);
  assert.deepEqual(refOf(Tensor.from([[true, false], [false, false]]).max(1)), [1, 0]);
  assert.deepEqual(refOf(Tensor.from([[true, false], [false, false]]).min(1)), [0, 0]);
  assertClose(refOf(Tensor.from([1, 2, 4]).mean()), [7 / 3], 1e-7);
  const h = Tensor.from([1000, 1000, 1000, 1000], { dtype: dtypes.float16 }).sum();
  assert.equal(h.dtype, dtypes.float16);
  assert.deepEqual(refOf(h), [4000]);
});

Deno.test("reductions over empty axes give the identity; mean gives NaN", () => {
  const e = Tensor.zeros([2, 0]);
  assert.deepEqual(refOf(e.sum(1)), [0, 0]);
  assert.deepEqual(refOf(e.prod(1)), [1, 1]);
  assert.deepEqual(refOf(e.max(1)), [-Infinity, -Infinity]);
  assert.ok(refOf(e.mean(1)).every(Number.isNaN));
});

Deno.test("var and std with correction", () => {
  for (const c of [0, 1, 2]) {
    assertClose(
      refOf(X().var(2, false, c)),
      jsReduce(data, shape, [2], jsVar(c)),
      1e-5,
      1e-5,
      `var ${c}`,
    );
    assertClose(
      refOf(X().std([0, 1], true, c)),
      jsReduce(data, shape, [0, 1], (xs) => Math.sqrt(jsVar(c)(xs))),
      1e-5,
      1e-5,
    );
  }
  assertClose(refOf(X().var()), [jsVar(1)(data)], 1e-5);
  assert.equal(Tensor.from([1, 2, 4]).var().dtype, dtypes.float32);
});

Deno.test("any and all", () => {
  const b = Tensor.from([[0, 0, 2], [0, 0, 0], [1, 1, 1]]);
  assert.deepEqual(refOf(b.any(1)), [1, 0, 1]);
  assert.deepEqual(refOf(b.all(1)), [0, 0, 1]);
  assert.deepEqual(refOf(b.any()), [1]);
  assert.deepEqual(refOf(b.all()), [0]);
  assert.equal(b.any(0).dtype, dtypes.bool);
  assert.deepEqual(b.all(0, true).shape, [1, 3]);
});

Deno.test("argmax and argmin pick the first extreme index, int32", () => {
  const t = Tensor.from([[1, 7, 7, 2], [9, 0, 9, -3]]);
  const am = t.argmax(1);
  assert.equal(am.dtype, dtypes.int32);
  assert.deepEqual(refOf(am), [1, 0]);
  assert.deepEqual(refOf(t.argmin(1)), [0, 3]);
  assert.deepEqual(refOf(t.argmax(0)), [1, 0, 1, 0]);
  assert.deepEqual(refOf(t.argmax()), [4]);
  assert.deepEqual(t.argmax(-1, true).shape, [2, 1]);
  assert.deepEqual(
    refOf(X().argmax(2)),
    jsReduce(data, shape, [2], (xs) => xs.indexOf(Math.max(...xs))),
  );
  assert.deepEqual(
    refOf(X().argmin(0)),
    jsReduce(data, shape, [0], (xs) => xs.indexOf(Math.min(...xs))),
  );
  assert.deepEqual(refOf(Tensor.from([3, 200, 7], { dtype: dtypes.uint8 }).argmin()), [0]);
  assert.throws(() => Tensor.zeros([2, 0]).argmax(1), /argmax: axis 1 of \[2, 0\] is empty/);
});

Deno.test("softmax, logSoftmax and logsumexp", () => {
  const lse = (xs: number[]) => {
    const m = Math.max(...xs);
    return m + Math.log(xs.reduce((a, b) => a + Math.exp(b - m), 0));
  };
  assertClose(refOf(X().logsumexp(2)), jsReduce(data, shape, [2], lse), 1e-5);
  assertClose(refOf(X().logsumexp([0, 1], true)), jsReduce(data, shape, [0, 1], lse), 1e-5);
  assertClose(refOf(X().logsumexp()), [lse(data)], 1e-5);
  const sm = refOf(X().softmax());
  const want: number[] = [];
  for (let r = 0; r < 6; r++) {
    const row = data.slice(4 * r, 4 * r + 4), l = lse(row);
    want.push(...row.map((v) => Math.exp(v - l)));
  }
  assertClose(sm, want, 1e-5, 1e-7);
  assertClose(refOf(X().logSoftmax()), want.map(Math.log), 1e-5, 1e-5);
  const s0 = refOf(X().softmax(0));
  for (let i = 0; i < 12; i++) assertClose([s0[i] + s0[i + 12]], [1], 1e-6);
  assertClose(refOf(Tensor.from([1000, 1000]).softmax()), [0.5, 0.5]);
  assert.equal(Tensor.from([1, 2]).softmax().dtype, dtypes.float32);
});

Deno.test("cumsum, cumprod and cummax along any axis, long axes in two stages", () => {
  const t = Tensor.from([[1, 2, 3], [4, 5, 6]]);
  assert.deepEqual(refOf(t.cumsum(1)), [1, 3, 6, 4, 9, 15]);
  assert.deepEqual(refOf(t.cumsum(0)), [1, 2, 3, 5, 7, 9]);
  assert.deepEqual(refOf(t.cumsum(-1)), [1, 3, 6, 4, 9, 15]);
  assert.deepEqual(refOf(t.cumprod(1)), [1, 2, 6, 4, 20, 120]);
  assert.deepEqual(refOf(Tensor.from([3, 1, 4, 1, 5, -9, 2]).cummax()), [3, 3, 4, 4, 5, 5, 5]);
  assert.deepEqual(refOf(Tensor.from([-3, -1, -4], { dtype: dtypes.int8 }).cummax()), [-3, -1, -1]);
  assert.equal(Tensor.from([1], { dtype: dtypes.int8 }).cumsum().dtype, dtypes.int32);
  const n = 1300, v = Array.from({ length: n }, (_, i) => ((i * 7919) % 13) - 6);
  const cs = refOf(Tensor.from(v).cumsum());
  let acc = 0;
  assert.deepEqual(cs, v.map((x) => (acc += x)));
  const cm = refOf(Tensor.from(v).reshape([1, n]).cummax(1));
  let best = -Infinity;
  assert.deepEqual(cm, v.map((x) => (best = Math.max(best, x))));
  assert.deepEqual(refOf(Tensor.from(5).cumsum()), [5]);
  assert.throws(() => t.cumsum(2), /cumsum: axis 2 is out of range/);
});
