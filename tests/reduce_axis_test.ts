// A reduce over axes of size 1 is no reduce: the kernel has the loops of a plain copy (no reduce
// loop, no accumulator), on both renderers, and computes the same values.
import assert from "node:assert/strict";
import { Ops, Tensor, UOp } from "../mod.ts";
import { dtypes } from "../src/dtype.ts";
import { lowerKernel } from "../src/codegen/index.ts";
import { rangeify } from "../src/rangeify/rangeify.ts";
import { formatLoops, parseLoops } from "../tools/replay/loops.ts";

const DEVICES = ["JS", "CPU"];

interface Shape {
  /** loops read from each kernel's rendered source */
  loops: string[];
  /** RANGE/END nesting of each linearized kernel, e.g. "L4(L8())" */
  ranges: string[];
  reduces: number;
  accumulators: number;
}

/** the loop structure `f`'s kernels render to on `dev` (nothing runs) */
function shapeOf(t: Tensor): Shape {
  const asts = t.schedule().map((s) => s.ast);
  const lins = asts.map((a) => lowerKernel(a).lin.uops);
  return {
    loops: t.kernels().map((k) => formatLoops(parseLoops(k.src))),
    ranges: lins.map((us) =>
      us.map((u) =>
        u.op === Ops.RANGE
          ? `${u.src[0].render()}(`
          : u.op === Ops.END && u.src.length === 1 && u.src[0].op === Ops.RANGE
          ? ")"
          : ""
      ).join("")
    ),
    reduces: asts.reduce((n, a) => n + a.toposort().filter((u) => u.op === Ops.REDUCE).length, 0),
    accumulators: lins.reduce((n, us) => n + us.filter((u) => u.op === Ops.DEFINE_REG).length, 0),
  };
}

/** `reduced` has exactly the kernels of `plain`, and neither reduces */
function assertSameAsCopy(reduced: Tensor, plain: Tensor, what: string): void {
  const r = shapeOf(reduced), p = shapeOf(plain);
  assert.equal(r.loops.length, 1, `${what}: one kernel, got ${r.loops.length}`);
  assert.deepEqual(r.loops, p.loops, `${what}: rendered loops`);
  assert.deepEqual(r.ranges, p.ranges, `${what}: linearized ranges`);
  assert.equal(r.reduces, 0, `${what}: REDUCE in the kernel`);
  assert.equal(r.accumulators, 0, `${what}: accumulator in the kernel`);
}

const e = (shape: number[], dev: string) => Tensor.empty(shape, { device: dev });

for (const dev of DEVICES) {
  Deno.test(`${dev}: x.sum(1) on [N, 1] renders as the copy x.reshape([N]).contiguous()`, () => {
    // 40000 rows: large enough for the CPU's parallel loop, which must match too
    for (const n of [1, 4, 7, 40000]) {
      const x = e([n, 1], dev);
      assertSameAsCopy(x.sum(1), x.reshape([n]).contiguous(), `[${n},1].sum(1)`);
      assertSameAsCopy(x.sum(1, true), x.contiguous(), `[${n},1].sum(1, keepdim)`);
    }
  });

  Deno.test(`${dev}: a size-1 reduce axis anywhere in the shape leaves the loops of a copy`, () => {
    const cases: [Tensor, Tensor, string][] = [
      [e([4, 1, 8], dev).sum(1), e([4, 8], dev).contiguous(), "[4,1,8].sum(1)"],
      [e([4, 8, 1], dev).sum(2), e([4, 8], dev).contiguous(), "[4,8,1].sum(2)"],
      [e([1, 8], dev).sum(0), e([8], dev).contiguous(), "[1,8].sum(0)"],
      [e([1, 1], dev).sum(), e([1], dev).contiguous(), "[1,1].sum()"],
      [e([3, 1, 5, 1], dev).max([1, 3]), e([3, 5], dev).contiguous(), "[3,1,5,1].max([1,3])"],
      [e([1, 6], dev).min(0), e([6], dev).contiguous(), "[1,6].min(0)"],
      [e([2, 1, 3], dev).prod(1), e([2, 3], dev).contiguous(), "[2,1,3].prod(1)"],
      [e([4, 1, 8], dev).mul(2).sum(1), e([4, 8], dev).mul(2), "[4,1,8].mul(2).sum(1)"],
      [
        Tensor.empty([5, 1], { device: dev, dtype: dtypes.int32 }).sum(1),
        Tensor.empty([5], { device: dev, dtype: dtypes.int32 }).contiguous(),
        "int32 [5,1].sum(1)",
      ],
    ];
    for (const [r, p, what] of cases) assertSameAsCopy(r, p, what);
  });

  Deno.test(`${dev}: a size-1 axis beside a real reduce axis adds no loop`, () => {
    const pairs: [Tensor, Tensor, string][] = [
      [e([4, 1, 8], dev).sum([1, 2]), e([4, 8], dev).sum(1), "[4,1,8].sum([1,2])"],
      [e([1, 4, 8], dev).sum([0, 1]), e([4, 8], dev).sum(0), "[1,4,8].sum([0,1])"],
      [e([6, 1], dev).max(), e([6], dev).max(), "[6,1].max()"],
      [e([3, 1, 7, 1], dev).sum([1, 2, 3]), e([3, 7], dev).sum(1), "[3,1,7,1].sum([1,2,3])"],
    ];
    for (const [r, p, what] of pairs) {
      const a = shapeOf(r), b = shapeOf(p);
      assert.deepEqual(a.loops, b.loops, `${what}: rendered loops`);
      assert.deepEqual(a.ranges, b.ranges, `${what}: linearized ranges`);
      assert.equal(a.reduces, b.reduces, `${what}: REDUCEs`);
      assert.equal(a.accumulators, b.accumulators, `${what}: accumulators`);
    }
  });

  Deno.test(`${dev}: reduces over size-1 axes compute the input values`, async () => {
    const vals = [1.5, -2, 3.25, 0, 7, -0.5, 4, 8];
    const x = Tensor.from(vals, { device: dev });
    assert.deepEqual([...await x.reshape([8, 1]).sum(1).data()], vals);
    assert.deepEqual([...await x.reshape([1, 8]).max(0).data()], vals);
    assert.deepEqual([...await x.reshape([2, 1, 4]).prod(1).data()], vals);
    assert.deepEqual([...await x.reshape([2, 4, 1]).min(2, true).data()], vals);
    assert.deepEqual([...await x.reshape([2, 1, 4]).mean(1).data()], vals);
    // the real axis still reduces
    assert.deepEqual([...await x.reshape([2, 1, 4]).sum([1, 2]).data()], [2.75, 18.5]);
    const ints = Tensor.from([3, -4, 5], { device: dev });
    assert.deepEqual([...await ints.reshape([3, 1]).sum(1).data()], [3, -4, 5]);
  });
}

Deno.test("rangeify: REDUCE_AXIS over size-1 axes builds no REDUCE and no RANGE for them", () => {
  const b = UOp.make(Ops.BUFFER, dtypes.float32, [], { id: 3_000_000, size: 32, device: "JS" });
  const x = UOp.make(Ops.RESHAPE, dtypes.float32, [b], [4, 1, 8, 1]);
  const count = (ast: UOp, op: Ops) => ast.toposort().filter((u) => u.op === op).length;
  const only1 = rangeify([UOp.make(Ops.REDUCE_AXIS, x.dtype, [x], [Ops.ADD, [1, 3]])]).kernels;
  assert.equal(only1.length, 1);
  assert.equal(count(only1[0].ast, Ops.REDUCE), 0);
  assert.equal(count(only1[0].ast, Ops.RANGE), 2);
  const mixed = rangeify([UOp.make(Ops.REDUCE_AXIS, x.dtype, [x], [Ops.MAX, [1, 2, 3]])]).kernels;
  assert.equal(count(mixed[0].ast, Ops.REDUCE), 1);
  const red = mixed[0].ast.toposort().find((u) => u.op === Ops.REDUCE)!;
  assert.equal(red.src.length, 2, "the REDUCE loops over the size-8 range only");
  assert.equal(count(mixed[0].ast, Ops.RANGE), 2);
});
