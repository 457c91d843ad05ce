import assert from "node:assert/strict";
import { dtypes } from "../src/dtype.ts";
import { AxisType, Ops, UOp } from "../src/uop/ops.ts";
import { rangeify } from "../src/rangeify/rangeify.ts";

let bufId = 1_000_000;
const buf = (...shape: number[]): UOp => {
  const size = shape.reduce((a, b) => a * b, 1);
  const b = UOp.make(Ops.BUFFER, dtypes.float32, [], { id: bufId++, size, device: "JS" });
  return shape.length === 1 ? b : UOp.make(Ops.RESHAPE, dtypes.float32, [b], shape);
};
const mv = (op: Ops, x: UOp, arg: unknown): UOp => UOp.make(op, x.dtype, [x], arg);
const reduce = (x: UOp, op: Ops, axes: number[]): UOp =>
  UOp.make(Ops.REDUCE_AXIS, x.dtype, [x], [op, axes]);
const expand = (x: UOp, shape: number[]): UOp => mv(Ops.EXPAND, x, shape);
const count = (ast: UOp, op: Ops): number => ast.toposort().filter((u) => u.op === op).length;

Deno.test("an elementwise chain is one kernel with one loop", () => {
  const a = buf(16), b = buf(16);
  let x = a.add(b);
  for (let i = 0; i < 9; i++) x = x.mul(a).add(b);
  const { kernels } = rangeify([x]);
  assert.equal(kernels.length, 1);
  assert.equal(count(kernels[0].ast, Ops.RANGE), 1);
  assert.equal(kernels[0].inputs.length, 3);
});

Deno.test("(a+b).sum() is one kernel with one REDUCE", () => {
  const a = buf(4, 8), b = buf(4, 8);
  const { kernels } = rangeify([reduce(a.add(b), Ops.ADD, [0, 1])]);
  assert.equal(kernels.length, 1);
  assert.equal(count(kernels[0].ast, Ops.REDUCE), 1);
});

Deno.test("a permute before an elementwise op adds no copy kernel", () => {
  const a = buf(4, 8), b = buf(8, 4);
  const { kernels } = rangeify([mv(Ops.PERMUTE, a, [1, 0]).add(b)]);
  assert.equal(kernels.length, 1);
});

Deno.test("matmul written as expand-mul-reduce is one kernel", () => {
  const a = buf(4, 3), b = buf(3, 5);
  const ae = expand(mv(Ops.RESHAPE, a, [4, 1, 3]), [4, 5, 3]);
  const be = expand(mv(Ops.RESHAPE, mv(Ops.PERMUTE, b, [1, 0]), [1, 5, 3]), [4, 5, 3]);
  const mm = mv(Ops.RESHAPE, reduce(ae.mul(be), Ops.ADD, [2]), [4, 5]);
  const { kernels } = rangeify([mm]);
  assert.equal(kernels.length, 1);
  assert.equal(count(kernels[0].ast, Ops.REDUCE), 1);
});

Deno.test("a reduce feeding a broadcast over a long axis is realized: x - max(x) is two kernels", () => {
  const x = buf(4, 512);
  const m = expand(reduce(x, Ops.MAX, [1]), [4, 512]);
  const { kernels } = rangeify([x.sub(m)]);
  assert.equal(kernels.length, 2);
  assert.equal(count(kernels[0].ast, Ops.REDUCE), 1);
  assert.equal(count(kernels[1].ast, Ops.REDUCE), 0);
});

Deno.test("a reduce broadcast over a short axis fuses: that axis becomes UPCAST, the reduce runs once", () => {
  const x = buf(4, 8);
  const m = expand(reduce(x, Ops.MAX, [1]), [4, 8]);
  const { kernels } = rangeify([x.sub(m)]);
  assert.equal(kernels.length, 1);
  const ast = kernels[0].ast;
  assert.equal(count(ast, Ops.REDUCE), 1);
  const types = ast.toposort().filter((u) => u.op === Ops.RANGE).map((u) =>
    (u.arg as [number, AxisType])[1]
  );
  assert.ok(types.includes(AxisType.UPCAST), "the broadcast axis is UPCAST");
});

Deno.test("a reduce read by a later reduce over the same axis fuses (two passes, fresh loops)", () => {
  const x = buf(4, 512);
  const m = expand(reduce(x, Ops.MAX, [1]), [4, 512]);
  // sum(exp(x - max)) per row: the max pass and the sum pass in one kernel
  const l = reduce(x.sub(m).alu(Ops.EXP2), Ops.ADD, [1]);
  const { kernels } = rangeify([l]);
  assert.equal(kernels.length, 1);
  const reds = kernels[0].ast.toposort().filter((u) => u.op === Ops.REDUCE);
  assert.equal(reds.length, 2);
  assert.notEqual(reds[0].src[1], reds[1].src[1], "each pass has its own loop");
});

Deno.test("a cheap elementwise node read at two different indexes is recomputed, not stored", () => {
  const a = buf(4, 4);
  const e = a.mul(a);
  const { kernels } = rangeify([e.add(mv(Ops.PERMUTE, e, [1, 0]))]);
  assert.equal(kernels.length, 1);
});

Deno.test("a reduce read at two different indexes is realized once", () => {
  const s = mv(Ops.RESHAPE, reduce(buf(4, 4), Ops.ADD, [1]), [4]);
  const { kernels } = rangeify([s.add(mv(Ops.FLIP, s, [true]))]);
  assert.equal(kernels.length, 2);
  assert.equal(count(kernels[0].ast, Ops.REDUCE), 1);
  assert.equal(count(kernels[1].ast, Ops.REDUCE), 0);
});

Deno.test("reshape index math simplifies back to the plain range", () => {
  const a = buf(4, 8);
  const r = mv(Ops.RESHAPE, mv(Ops.RESHAPE, a, [32]), [4, 8]).add(buf(4, 8));
  const { kernels } = rangeify([r]);
  const loads = kernels[0].ast.toposort().filter((u) => u.op === Ops.INDEX);
  // every index is the same flat expression: no div or mod survives
  for (const l of loads) {
    assert.equal(
      l.src[1].toposort().filter((u) => u.op === Ops.IDIV || u.op === Ops.MOD).length,
      0,
      l.src[1].render(),
    );
  }
});

Deno.test("pad gates its loads with a validity condition", () => {
  const a = buf(4);
  const { kernels } = rangeify([mv(Ops.PAD, a, [[2, 1]]).add(buf(7))]);
  const gated = kernels[0].ast.toposort().filter((u) => u.op === Ops.INDEX && u.src.length === 3);
  assert.equal(gated.length, 1);
});

Deno.test("a size-1 axis makes no loop", () => {
  const a = buf(1, 8, 1);
  const { kernels } = rangeify([a.add(buf(1, 8, 1))]);
  assert.equal(count(kernels[0].ast, Ops.RANGE), 1);
});

Deno.test("an already realized buffer needs no kernel", () => {
  assert.equal(rangeify([buf(4, 4)]).kernels.length, 0);
});
