// Elementwise ops against JS Math on the same inputs (reference interpreter evaluation).
import assert from "node:assert/strict";
import { dtypes } from "../src/dtype.ts";
import { Tensor } from "../src/tensor.ts";
import { setBackend } from "../src/tensor/backend.ts";
import { assertClose, refBackend, refOf } from "./support/reference.ts";

setBackend(refBackend);

const xs = [-3.5, -2, -1.25, -0.5, 0, 0.3, 0.5, 1, 2.5, 4];
const f32 = (v: number[]) => v.map(Math.fround);
const X = () => Tensor.from(xs);

function checkUnary(name: string, t: Tensor, f: (v: number) => number, rtol = 1e-5, atol = 1e-6) {
  assert.deepEqual(t.shape, [xs.length], name);
  assert.equal(t.dtype, dtypes.float32, name);
  assertClose(refOf(t), f32(xs).map(f), rtol, atol, name);
}

Deno.test("transcendental and rounding ops match Math", () => {
  checkUnary("exp", X().exp(), Math.exp);
  checkUnary("exp2", X().exp2(), (v) => 2 ** v);
  checkUnary("log", X().abs().add(0.1).log(), (v) => Math.log(Math.abs(v) + Math.fround(0.1)));
  checkUnary("log2", X().abs().add(0.1).log2(), (v) => Math.log2(Math.abs(v) + Math.fround(0.1)));
  checkUnary("sqrt", X().abs().sqrt(), (v) => Math.sqrt(Math.abs(v)));
  checkUnary("rsqrt", X().abs().add(1).rsqrt(), (v) => 1 / Math.sqrt(Math.abs(v) + 1));
  checkUnary("reciprocal", X().add(10).reciprocal(), (v) => 1 / (v + 10));
  checkUnary("square", X().square(), (v) => v * v);
  checkUnary("abs", X().abs(), Math.abs);
  checkUnary("neg", X().neg(), (v) => -v);
  checkUnary("sign", X().sign(), Math.sign);
  checkUnary("sin", X().sin(), Math.sin);
  checkUnary("cos", X().cos(), Math.cos, 1e-5, 1e-6);
  checkUnary("tan", X().tan(), Math.tan, 1e-4);
  checkUnary("tanh", X().tanh(), Math.tanh, 1e-5, 1e-6);
  checkUnary("sigmoid", X().sigmoid(), (v) => 1 / (1 + Math.exp(-v)));
  checkUnary("floor", X().floor(), Math.floor);
  checkUnary("ceil", X().ceil(), Math.ceil);
  checkUnary("trunc", X().trunc(), Math.trunc);
  // half to even: -0.5 -> -0, 0.5 -> 0, 2.5 -> 2, -3.5 -> -4
  const r = refOf(Tensor.from([-3.5, -2.5, -0.5, 0.5, 1.5, 2.5, 2.6, -1.4]).round());
  assert.deepEqual(r.map((v) => v + 0), [-4, -2, 0, 0, 2, 2, 3, -1]);
  const erfRef = (v: number) => {
    // erf by its series, enough terms for |v| <= 4 at double precision
    let sum = 0, term = v;
    for (let n = 0; n < 120; n++) {
      sum += term / (2 * n + 1);
      term *= (-v * v) / (n + 1);
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  };
  checkUnary("erf", X().erf(), erfRef, 0, 3e-7);
});

Deno.test("activations match their definitions", () => {
  const sig = (v: number) => 1 / (1 + Math.exp(-v));
  checkUnary("relu", X().relu(), (v) => Math.max(v, 0));
  checkUnary("leakyRelu", X().leakyRelu(0.1), (v) => (v < 0 ? 0.1 * v : v));
  checkUnary(
    "gelu",
    X().gelu(),
    (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
    1e-5,
    1e-6,
  );
  checkUnary("quickGelu", X().quickGelu(), (v) => v * sig(1.702 * v));
  checkUnary("silu", X().silu(), (v) => v * sig(v));
  checkUnary("swish", X().swish(), (v) => v * sig(v));
  checkUnary("softplus", X().softplus(), (v) => Math.log1p(Math.exp(v)), 1e-5, 1e-6);
  checkUnary("softplus beta", X().softplus(2), (v) => Math.log1p(Math.exp(2 * v)) / 2, 1e-5, 1e-6);
  checkUnary("elu", X().elu(0.5), (v) => (v > 0 ? v : 0.5 * (Math.exp(v) - 1)));
  checkUnary("logsigmoid", X().logsigmoid(), (v) => Math.log(sig(v)), 1e-5, 1e-6);
  assertClose(refOf(Tensor.from([100, -100]).softplus()), [100, 0]);
  assert.equal(Tensor.from([1, -2]).relu().dtype, dtypes.int32);
  assert.deepEqual(refOf(Tensor.from([1, -2]).relu()), [1, 0]);
});

Deno.test("binary arithmetic broadcasts and matches JS", () => {
  const a = Tensor.from([[1, 2, 3], [4, 5, 6]], { dtype: dtypes.float32 });
  const b = Tensor.from([10, 20, 30], { dtype: dtypes.float32 });
  assert.deepEqual(refOf(a.add(b)), [11, 22, 33, 14, 25, 36]);
  assert.deepEqual(refOf(a.sub(b)), [-9, -18, -27, -6, -15, -24]);
  assert.deepEqual(refOf(a.mul(b)), [10, 40, 90, 40, 100, 180]);
  assertClose(refOf(a.div(b)), [0.1, 0.1, 0.1, 0.4, 0.25, 0.2]);
  assert.deepEqual(refOf(a.maximum(3)), [3, 3, 3, 4, 5, 6]);
  assert.deepEqual(refOf(a.minimum(Tensor.from([[2], [5]]))), [1, 2, 2, 4, 5, 5]);
  const col = Tensor.from([[1], [2]]);
  assert.deepEqual(col.add(Tensor.from([1, 2, 3])).shape, [2, 3]);
  assert.deepEqual(refOf(Tensor.from(5).sub(Tensor.from([1, 2]))), [4, 3]);
  assert.deepEqual(refOf(Tensor.from([7, 7]).div(2)), [3.5, 3.5]);
  assert.deepEqual(refOf(a.clamp(2, 5)), [2, 2, 3, 4, 5, 5]);
  assert.deepEqual(refOf(a.clamp(undefined, 2)), [1, 2, 2, 2, 2, 2]);
  assertClose(refOf(Tensor.from([0, 10]).lerp(Tensor.from([10, 20]), 0.25)), [2.5, 12.5]);
  assert.deepEqual(refOf(Tensor.from([5, 200], { dtype: dtypes.uint8 }).minimum(100)), [5, 100]);
  assert.deepEqual(refOf(Tensor.from([-5, 3], { dtype: dtypes.int8 }).minimum(0)), [-5, 0]);
  assert.throws(
    () => a.add(Tensor.from([1, 2])),
    /add: cannot broadcast shapes \[2, 3\] and \[2\]: axis -1 has sizes 3 and 2/,
  );
  assert.throws(() => a.clamp(), /clamp: give at least one of min and max/);
  assert.throws(() => Tensor.from([true]).sub(true), /sub: not supported on bool tensors/);
  assert.throws(
    () => a.add("x" as unknown as number),
    /add: expected a Tensor, number or boolean, got string/,
  );
});

Deno.test("pow: exact small integer exponents, signs and zero for the general case", () => {
  const b = Tensor.from([-2, -1.5, 0, 1.5, 3]);
  assertClose(refOf(b.pow(2)), [4, 2.25, 0, 2.25, 9]);
  assertClose(refOf(b.pow(3)), [-8, -3.375, 0, 3.375, 27]);
  assertClose(refOf(b.pow(-1)), [-0.5, -1 / 1.5, Infinity, 1 / 1.5, 1 / 3]);
  assertClose(refOf(b.pow(0)), [1, 1, 1, 1, 1]);
  assertClose(refOf(b.abs().pow(0.5)), [
    Math.SQRT2,
    Math.sqrt(1.5),
    0,
    Math.sqrt(1.5),
    Math.sqrt(3),
  ]);
  assertClose(refOf(b.pow(1.7)), [NaN, NaN, 0, 1.5 ** 1.7, 3 ** 1.7], 1e-5);
  const e = Tensor.from([3, 2, 0, -1, 0.5]);
  assertClose(refOf(b.pow(e)), [-8, 2.25, 1, 1 / 1.5, Math.sqrt(3)], 1e-5);
  const ints = Tensor.from([2, -3, 5]);
  assert.equal(ints.pow(3).dtype, dtypes.int32);
  assert.deepEqual(refOf(ints.pow(3)), [8, -27, 125]);
  assert.deepEqual(refOf(ints.pow(Tensor.from([2, 3, 2]))), [4, -27, 25]);
});

Deno.test("idiv floors and mod takes the divisor's sign, on ints and floats", () => {
  const pairs: [number, number][] = [];
  for (const a of [-7, -6, -1, 0, 1, 6, 7]) for (const b of [-3, -2, 2, 3]) pairs.push([a, b]);
  const a = Tensor.from(pairs.map((p) => p[0])), b = Tensor.from(pairs.map((p) => p[1]));
  assert.equal(a.idiv(b).dtype, dtypes.int32);
  assert.deepEqual(refOf(a.idiv(b)), pairs.map(([x, y]) => Math.floor(x / y) + 0));
  assert.deepEqual(refOf(a.mod(b)), pairs.map(([x, y]) => x - y * Math.floor(x / y) + 0));
  const af = a.cast(dtypes.float32), bf = b.cast(dtypes.float32);
  assert.deepEqual(
    refOf(af.idiv(bf)).map((v) => v + 0),
    pairs.map(([x, y]) => Math.floor(x / y) + 0),
  );
  assert.deepEqual(
    refOf(af.mod(bf)).map((v) => v + 0),
    pairs.map(([x, y]) => x - y * Math.floor(x / y) + 0),
  );
  const u = Tensor.from([7, 250], { dtype: dtypes.uint8 });
  assert.deepEqual(refOf(u.idiv(3)), [2, 83]);
  assert.deepEqual(refOf(u.mod(3)), [1, 1]);
  assert.throws(() => Tensor.from([true]).idiv(true), /idiv: not supported on bool tensors/);
});

Deno.test("comparisons give bool and treat NaN like numpy", () => {
  const a = Tensor.from([1, 2, 3, NaN]), b = Tensor.from([2, 2, 2, 2]);
  for (
    const [name, t, f] of [
      ["lt", a.lt(b), (x: number, y: number) => x < y],
      ["le", a.le(b), (x: number, y: number) => x <= y],
      ["gt", a.gt(b), (x: number, y: number) => x > y],
      ["ge", a.ge(b), (x: number, y: number) => x >= y],
      ["eq", a.eq(b), (x: number, y: number) => x === y],
      ["ne", a.ne(b), (x: number, y: number) => x !== y],
    ] as const
  ) {
    assert.equal(t.dtype, dtypes.bool, name);
    assert.deepEqual(refOf(t), [1, 2, 3, NaN].map((x) => (f(x, 2) ? 1 : 0)), name);
  }
  assert.deepEqual(refOf(Tensor.from([0, 3, -1]).logicalNot()), [1, 0, 0]);
  assert.deepEqual(refOf(Tensor.from([NaN, 1, Infinity]).isnan()), [1, 0, 0]);
  assert.deepEqual(refOf(Tensor.from([NaN, -Infinity, Infinity, 1]).isinf()), [0, 1, 1, 0]);
  assert.deepEqual(refOf(Tensor.from([-Infinity, Infinity]).isinf(true, false)), [0, 1]);
  assert.deepEqual(refOf(Tensor.from([1, 2]).isnan()), [0, 0]);
});

Deno.test("where broadcasts the condition and promotes the branches", () => {
  const c = Tensor.from([true, false, true]);
  const w = c.where(Tensor.from([1, 2, 3]), 0);
  assert.equal(w.dtype, dtypes.int32);
  assert.deepEqual(refOf(w), [1, 0, 3]);
  const wf = c.where(1.5, Tensor.from([[1], [2]]));
  assert.deepEqual(wf.shape, [2, 3]);
  assert.equal(wf.dtype, dtypes.float32);
  assert.deepEqual(refOf(wf), [1.5, 1, 1.5, 1.5, 2, 1.5]);
  assert.equal(c.where(1, 0).dtype, dtypes.int32);
  assert.deepEqual(refOf(Tensor.from([0, 2]).where(true, false)), [0, 1]);
});

Deno.test("bitwise ops and shifts on ints and bools; floats are rejected", () => {
  const a = Tensor.from([12, -7, 5]), b = Tensor.from([10, 3, -1]);
  assert.deepEqual(refOf(a.bitwiseAnd(b)), [12 & 10, -7 & 3, 5 & -1]);
  assert.deepEqual(refOf(a.bitwiseOr(b)), [12 | 10, -7 | 3, 5 | -1]);
  assert.deepEqual(refOf(a.bitwiseXor(b)), [12 ^ 10, -7 ^ 3, 5 ^ -1]);
  assert.deepEqual(refOf(a.bitwiseNot()), [~12, ~-7, ~5]);
  assert.deepEqual(refOf(a.lshift(2)), [48, -28, 20]);
  assert.deepEqual(refOf(a.rshift(1)), [6, -4, 2]);
  assert.deepEqual(refOf(Tensor.from([200], { dtype: dtypes.uint8 }).lshift(1)), [144]);
  assert.deepEqual(refOf(Tensor.from([true, false]).bitwiseXor(true)), [0, 1]);
  assert.throws(
    () => Tensor.from([1.5]).bitwiseAnd(1),
    /bitwiseAnd: needs int or bool operands, got float32 and 1/,
  );
  assert.throws(() => a.bitwiseOr(1.5), /bitwiseOr: needs int or bool operands, got int32 and 1.5/);
  assert.throws(() => Tensor.from([1.5]).lshift(1), /lshift: needs an int tensor, got float32/);
  assert.throws(() => a.rshift(-1), /rshift: the shift must be a non-negative integer, got -1/);
  assert.throws(
    () => Tensor.from([1.5]).bitwiseNot(),
    /bitwiseNot: needs an int or bool tensor, got float32/,
  );
});

Deno.test("int arithmetic wraps in its dtype", () => {
  const i8 = Tensor.from([100, -100], { dtype: dtypes.int8 });
  assert.deepEqual(refOf(i8.add(100)), [-56, 0]);
  assert.deepEqual(refOf(i8.mul(3)), [44, -44]);
  assert.deepEqual(refOf(Tensor.from([3], { dtype: dtypes.uint8 }).neg()), [253]);
  assert.deepEqual(refOf(Tensor.from([2 ** 31 - 1]).add(1)), [-(2 ** 31)]);
  assert.deepEqual(refOf(Tensor.from([true, false]).neg()), [0, 1]);
  assert.deepEqual(refOf(Tensor.from([-3, 0, 4], { dtype: dtypes.int8 }).sign()), [-1, 0, 1]);
  assert.equal(Tensor.from([-3], { dtype: dtypes.int8 }).abs().dtype, dtypes.int8);
});
