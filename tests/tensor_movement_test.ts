// Movement ops are views (movement UOps only), with values checked by the reference interpreter.
import assert from "node:assert/strict";
import { dtypes } from "../src/dtype.ts";
import { Ops } from "../src/uop/ops.ts";
import { Tensor } from "../src/tensor.ts";
import { setBackend } from "../src/tensor/backend.ts";
import { refBackend, refOf } from "./support/reference.ts";

setBackend(refBackend);

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
/** a float tensor 0..n-1 of `shape` uploaded as data (so graphs start at a BUFFER) */
const seq = (shape: number[]) => {
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.from(new Float32Array(range(n)), { shape });
};
const movementOnly = (t: Tensor) =>
  t.uop.toposort().every((u) =>
    [Ops.BUFFER, Ops.RESHAPE, Ops.PERMUTE, Ops.EXPAND, Ops.PAD, Ops.SHRINK, Ops.FLIP].includes(u.op)
  );

Deno.test("reshape, with -1, and its errors", () => {
  const x = seq([2, 3, 4]);
  const r = x.reshape([4, -1]);
  assert.deepEqual(r.shape, [4, 6]);
  assert.deepEqual(refOf(r), range(24));
  assert.ok(movementOnly(r));
  assert.equal(x.reshape([2, 3, 4]), x);
  assert.throws(
    () => x.reshape([5, 5]),
    /reshape: cannot reshape \[2, 3, 4\] \(24 elements\) to \[5, 5\] \(25 elements\)/,
  );
  assert.throws(() => x.reshape([-1, -1]), /at most one -1/);
  assert.throws(() => x.reshape([5, -1]), /reshape: cannot infer -1 in \[5, -1\] for 24 elements/);
});

Deno.test("permute, transpose and T move axes", () => {
  const x = seq([2, 3]);
  assert.deepEqual(refOf(x.T), [0, 3, 1, 4, 2, 5]);
  assert.deepEqual(refOf(x.transpose()), [0, 3, 1, 4, 2, 5]);
  const y = seq([2, 3, 4]).permute([2, 0, 1]);
  assert.deepEqual(y.shape, [4, 2, 3]);
  // y[k][i][j] = x[i][j][k] = 12i + 4j + k
  const want: number[] = [];
  for (let k = 0; k < 4; k++) {
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) want.push(12 * i + 4 * j + k);
  }
  assert.deepEqual(refOf(y), want);
  assert.deepEqual(seq([2, 3, 4]).permute([-1, 0, 1]).shape, [4, 2, 3]);
  assert.deepEqual(seq([2, 3, 4]).transpose(-1, 0).shape, [4, 3, 2]);
  assert.throws(() => x.permute([0, 0]), /permute: order \[0,0\] repeats an axis/);
  assert.throws(
    () => x.permute([0]),
    /permute: order \[0\] must name each of the 2 axes of \[2, 3\] once/,
  );
  assert.throws(
    () => x.transpose(0, 2),
    /transpose: axis 2 is out of range for 2 dims; use an integer in -2..1/,
  );
});

Deno.test("expand broadcasts size-1 axes and adds leading axes", () => {
  const x = seq([3, 1]);
  const e = x.expand([2, 3, 4]);
  assert.deepEqual(e.shape, [2, 3, 4]);
  assert.deepEqual(refOf(e), [...range(2)].flatMap(() => [0, 1, 2].flatMap((v) => [v, v, v, v])));
  assert.deepEqual(x.expand([-1, 2]).shape, [3, 2]);
  assert.throws(
    () => x.expand([4, 2]),
    /expand: cannot expand shape \[3, 1\] to \[4, 2\]; only axes of size 1 can grow/,
  );
});

Deno.test("pad with zeros, with a value, and negative pads shrink", () => {
  const x = seq([2, 2]);
  const p = x.pad([[1, 0], [0, 2]]);
  assert.deepEqual(p.shape, [3, 4]);
  assert.deepEqual(refOf(p), [0, 0, 0, 0, 0, 1, 0, 0, 2, 3, 0, 0]);
  assert.ok(movementOnly(p));
  assert.deepEqual(refOf(x.pad([null, [1, 1]], -1)), [-1, 0, 1, -1, -1, 2, 3, -1]);
  assert.deepEqual(refOf(x.pad([[0, 0], [-1, 1]])), [1, 0, 3, 0]);
  assert.deepEqual(refOf(Tensor.from([true]).pad([[1, 1]], 1)), [1, 1, 1]);
  assert.deepEqual(refOf(seq([3]).pad([[1, 0]], -Infinity)), [-Infinity, 0, 1, 2]);
  assert.throws(
    () => x.pad([[1, 1], [1, 1], [1, 1]]),
    /pad: expected at most one pair per axis of \[2, 2\]/,
  );
  assert.throws(
    () => x.pad([[-3, 0]]),
    /pad: negative padding .* removes more than shape \[2, 2\] has/,
  );
});

Deno.test("shrink and flip", () => {
  const x = seq([3, 4]);
  const s = x.shrink([[1, 3], [0, 2]]);
  assert.deepEqual(refOf(s), [4, 5, 8, 9]);
  assert.deepEqual(refOf(x.shrink([null, [3, 4]])), [3, 7, 11]);
  assert.deepEqual(refOf(x.flip(1)), [3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8]);
  assert.deepEqual(refOf(x.flip([0, -1])), range(12).reverse());
  assert.throws(
    () => x.shrink([[0, 5]]),
    /shrink: range \[0, 5\] is out of bounds for axis 0 of size 3/,
  );
  assert.throws(() => x.flip(2), /flip: axis 2 is out of range for 2 dims/);
});

Deno.test("flatten, unflatten, squeeze, unsqueeze", () => {
  const x = seq([2, 1, 3, 1]);
  assert.deepEqual(x.flatten().shape, [6]);
  assert.deepEqual(x.flatten(1).shape, [2, 3]);
  assert.deepEqual(x.flatten(1, 2).shape, [2, 3, 1]);
  assert.deepEqual(Tensor.from(5).flatten().shape, [1]);
  assert.deepEqual(seq([6]).unflatten(0, [2, -1]).shape, [2, 3]);
  assert.deepEqual(x.squeeze().shape, [2, 3]);
  assert.deepEqual(x.squeeze(1).shape, [2, 3, 1]);
  assert.deepEqual(x.squeeze(0).shape, [2, 1, 3, 1]); // size 2 is kept, as in torch
  assert.deepEqual(x.squeeze([1, -1]).shape, [2, 3]);
  assert.deepEqual(seq([2, 3]).unsqueeze(-1).shape, [2, 3, 1]);
  assert.deepEqual(seq([2, 3]).unsqueeze(0).shape, [1, 2, 3]);
  assert.deepEqual(refOf(x.squeeze()), range(6));
  assert.throws(
    () => seq([6]).unflatten(0, [4, -1]),
    /unflatten: sizes \[4,-1\] do not multiply to 6/,
  );
  assert.throws(() => seq([2]).unsqueeze(3), /unsqueeze: axis 3 is out of range/);
});

Deno.test("repeat tiles along axes", () => {
  const x = seq([2]);
  assert.deepEqual(refOf(x.repeat([3])), [0, 1, 0, 1, 0, 1]);
  const r = seq([1, 2]).repeat([2, 2, 1]);
  assert.deepEqual(r.shape, [2, 2, 2]);
  assert.deepEqual(refOf(r), [0, 1, 0, 1, 0, 1, 0, 1]);
  assert.deepEqual(refOf(seq([2, 2]).repeat([1, 2])), [0, 1, 0, 1, 2, 3, 2, 3]);
  assert.throws(
    () => seq([2, 2]).repeat([2]),
    /repeat: need one non-negative integer per axis of \[2, 2\]/,
  );
});

Deno.test("cat, stack, split and chunk", () => {
  const a = seq([2, 2]), b = Tensor.from([[10, 11, 12], [13, 14, 15]]);
  const c = Tensor.cat([a, b], 1);
  assert.deepEqual(c.shape, [2, 5]);
  assert.equal(c.dtype, dtypes.float32);
  assert.deepEqual(refOf(c), [0, 1, 10, 11, 12, 2, 3, 13, 14, 15]);
  assert.deepEqual(refOf(a.cat(a, 0)), [0, 1, 2, 3, 0, 1, 2, 3]);
  assert.deepEqual(refOf(Tensor.cat([Tensor.from([true]), Tensor.from([false, true])])), [1, 0, 1]);
  const s = Tensor.stack([seq([2]), seq([2]).add(5)], 1);
  assert.deepEqual(s.shape, [2, 2]);
  assert.deepEqual(refOf(s), [0, 5, 1, 6]);
  const parts = seq([7]).split(3);
  assert.deepEqual(parts.map((p) => refOf(p)), [[0, 1, 2], [3, 4, 5], [6]]);
  assert.deepEqual(seq([2, 6]).split([1, 5], 1).map((p) => p.shape), [[2, 1], [2, 5]]);
  assert.deepEqual(seq([7]).chunk(3).map((p) => p.shape[0]), [3, 3, 1]);
  assert.throws(
    () => Tensor.cat([a, seq([3, 3])], 1),
    /cat: shapes \[2, 2\], \[3, 3\] differ outside axis 1/,
  );
  assert.throws(() => Tensor.cat([]), /cat: needs at least one tensor/);
  assert.throws(
    () => Tensor.stack([seq([2]), seq([3])]),
    /stack: every tensor needs the same shape, got \[2\], \[3\]/,
  );
  assert.throws(
    () => seq([7]).split([3, 3]),
    /split: sizes \[3,3\] must be non-negative integers summing to 7/,
  );
});

Deno.test("slice: numbers drop axes, ranges take Python semantics including negative steps", () => {
  const x = seq([4, 5]);
  const pick = (rows: number[], cols: number[]) => rows.flatMap((r) => cols.map((c) => 5 * r + c));
  assert.deepEqual(refOf(x.slice(1)), pick([1], range(5)));
  assert.deepEqual(x.slice(1).shape, [5]);
  assert.deepEqual(x.slice(-1, -2).shape, []);
  assert.deepEqual(refOf(x.slice(-1, -2)), [18]);
  assert.deepEqual(refOf(x.slice([1, 3])), pick([1, 2], range(5)));
  assert.deepEqual(refOf(x.slice(null, [0, 5, 2])), pick(range(4), [0, 2, 4]));
  assert.deepEqual(
    refOf(x.slice(null, [undefined, undefined, -1])),
    pick(range(4), [4, 3, 2, 1, 0]),
  );
  assert.deepEqual(refOf(x.slice([undefined, undefined, -2], [-2])), pick([3, 1], [3, 4]));
  assert.deepEqual(refOf(x.slice([3, 0, -2], [4, 0, -3])), pick([3, 1], [4, 1]));
  assert.deepEqual(refOf(x.slice([-100, 100])), range(20));
  assert.deepEqual(x.slice([3, 1]).shape, [0, 5]);
  assert.ok(movementOnly(x.slice([3, 0, -2], [1, 5, 3])));
  assert.throws(
    () => x.slice(4),
    /slice: index 4 is out of range for axis 0 of size 4 \(use -4..3\)/,
  );
  assert.throws(() => x.slice([0, 2, 0]), /slice: step must be a nonzero integer, got 0/);
  assert.throws(() => x.slice(0, 0, 0), /slice: 3 indices for a tensor of 2 dims/);
});

Deno.test("movement ops never copy: graphs of views end at the input buffer", () => {
  const x = seq([2, 3, 4]);
  const v = x.permute([1, 0, 2]).reshape([6, 4]).flip(0).shrink([[1, 5], null]).pad([[0, 0], [
    1,
    1,
  ]])
    .expand([2, 4, 6]);
  assert.ok(movementOnly(v));
  assert.equal(v.uop.toposort().filter((u) => u.op === Ops.BUFFER).length, 1);
});
