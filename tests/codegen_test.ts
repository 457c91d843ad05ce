// Lowering, linearizing and bounds checking of hand-built kernel ASTs.
import assert from "node:assert/strict";
import { AxisType, Ops, UOp } from "../src/uop/ops.ts";
import { type DType, dtypes } from "../src/dtype.ts";
import { lowerKernel, toProgram } from "../src/codegen/index.ts";
import { withOpts } from "../src/opt/heuristic.ts";
import { gatedBounds } from "../src/codegen/bounds.ts";

const f32 = dtypes.float32;
const g = (slot: number, size: number, d: DType = f32) =>
  UOp.make(Ops.DEFINE_GLOBAL, d, [], [slot, size]);
const idx = (b: UOp, i: UOp, v?: UOp) => UOp.make(Ops.INDEX, b.dtype, v ? [b, i, v] : [b, i]);
const ld = (b: UOp, i: UOp, v?: UOp) => UOp.make(Ops.LOAD, b.dtype, [idx(b, i, v)]);
const st = (b: UOp, i: UOp, v: UOp) => UOp.make(Ops.STORE, dtypes.void, [idx(b, i), v]);
const end = (s: UOp, ...r: UOp[]) => UOp.make(Ops.END, dtypes.void, [s, ...r]);
const red = (v: UOp, op: Ops, ...r: UOp[]) => UOp.make(Ops.REDUCE, v.dtype, [v, ...r], op);
const R = AxisType.REDUCE;

function softmax(shared = false) {
  const r0 = UOp.range(4, 0), r1 = UOp.range(8, 1, R), r2 = shared ? r1 : UOp.range(8, 2, R);
  const r3 = UOp.range(8, 3), xb = g(1, 32);
  const mx = red(ld(xb, r0.mul(8).add(r1)), Ops.MAX, r1);
  const ex = (r: UOp) => ld(xb, r0.mul(8).add(r)).sub(mx).alu(Ops.EXP2);
  const sm = red(ex(r2), Ops.ADD, r2);
  return {
    // marked optimized: these tests are about lowering and loop order, not the heuristic's opts
    sink: withOpts(UOp.sink(end(st(g(0, 32), r0.mul(8).add(r3), ex(r3).fdiv(sm)), r0, r3)), []),
    r0,
    r1,
    r2,
    r3,
  };
}
const pos = (list: UOp[], u: UOp) => {
  const i = list.indexOf(u);
  assert.ok(i >= 0, `${u.render()} is not in the linear program`);
  return i;
};
const closeOf = (list: UOp[], r: UOp) => list.findIndex((u) => u.op === Ops.END && u.src[0] === r);

Deno.test("lowering leaves no REDUCE and gives each reduce an accumulator set to its identity", () => {
  const { sink } = lowerKernel(softmax().sink);
  const topo = sink.toposort();
  assert.equal(topo.filter((u) => u.op === Ops.REDUCE).length, 0);
  const regs = topo.filter((u) => u.op === Ops.DEFINE_REG);
  assert.equal(regs.length, 2);
  const inits = topo.filter((u) =>
    u.op === Ops.STORE && u.src[0].src[0].op === Ops.DEFINE_REG && u.src[1].op === Ops.CONST
  );
  assert.deepEqual(inits.map((u) => u.src[1].arg).sort(), [-Infinity, 0]);
  // an int MAX starts at the dtype's minimum
  const r = UOp.range(8, 0, R), i8 = dtypes.int8;
  const low = lowerKernel(
    UOp.sink(st(g(0, 1, i8), UOp.const(dtypes.int32, 0), red(ld(g(1, 8, i8), r), Ops.MAX, r))),
  );
  const init = low.sink.toposort().find((u) => u.op === Ops.STORE && u.src[1].op === Ops.CONST)!;
  assert.equal(init.src[1].arg, -128);
});

Deno.test("sibling loops are sequenced inside their outer loop and nothing is listed twice", () => {
  const { r0, r1, r2, r3, sink } = softmax();
  const { lin } = lowerKernel(sink);
  const u = lin.uops;
  assert.equal(new Set(u).size, u.length);
  const order = [
    pos(u, r0),
    pos(u, r1),
    closeOf(u, r1),
    pos(u, r2),
    closeOf(u, r2),
    pos(u, r3),
    closeOf(u, r3),
    closeOf(u, r0),
  ];
  assert.deepEqual(order, [...order].sort((a, b) => a - b), "loops open and close in sequence");
  assert.equal(lin.parent.get(r1), r0);
  assert.equal(lin.parent.get(r3), r0);
  assert.equal(
    u.filter((x) => x.op === Ops.RANGE).length,
    u.filter((x) => x.op === Ops.END).length,
  );
});

Deno.test("a loop-invariant load is placed before the reduce loop it is used in", () => {
  const r0 = UOp.range(4, 0), r1 = UOp.range(8, 1, R);
  const bl = ld(g(2, 4), r0);
  const sink = UOp.sink(
    end(st(g(0, 4), r0, red(ld(g(1, 32), r0.mul(8).add(r1)).mul(bl), Ops.ADD, r1)), r0),
  );
  const { lin } = lowerKernel(sink);
  assert.ok(pos(lin.uops, r0) < pos(lin.uops, bl) && pos(lin.uops, bl) < pos(lin.uops, r1));
  assert.equal(lin.block.get(bl), r0);
});

Deno.test("a reduce that does not depend on an outer loop runs once, before that loop", () => {
  const r0 = UOp.range(16, 0), r1 = UOp.range(8, 1, R);
  const s = red(ld(g(2, 8), r1), Ops.ADD, r1);
  const sink = UOp.sink(end(st(g(0, 16), r0, ld(g(1, 16), r0).add(s)), r0));
  const { lin } = lowerKernel(sink);
  assert.equal(lin.parent.get(r1), null);
  assert.ok(closeOf(lin.uops, r1) < pos(lin.uops, r0));
  // and it still computes the right thing
  const p = toProgram(sink, "js");
  const a = Float32Array.from({ length: 16 }, (_, i) => i),
    b = Float32Array.from({ length: 8 }, (_, i) => i * 0.5);
  const out = new Float32Array(16);
  new Function(`${p.src}\nreturn ${p.name};`)()(out, a, b);
  assert.deepEqual([...out], [...a].map((x) => x + 14));
});

Deno.test("two stores over the same range share one loop", () => {
  const r = UOp.range(16, 0), a = ld(g(2, 16), r);
  const sink = UOp.sink(end(st(g(0, 16), r, a.add(1)), r), end(st(g(1, 16), r, a.mul(2)), r));
  const { lin } = lowerKernel(sink);
  assert.equal(lin.uops.filter((u) => u.op === Ops.RANGE).length, 1);
  assert.equal(lin.uops.filter((u) => u.op === Ops.LOAD).length, 1);
});

Deno.test("a matmul nests its reduce loop inside both output loops", () => {
  const r0 = UOp.range(4, 0), r1 = UOp.range(5, 1), r2 = UOp.range(6, 2, R);
  const v = ld(g(1, 24), r0.mul(6).add(r2)).mul(ld(g(2, 30), r2.mul(5).add(r1)));
  const sink = UOp.sink(end(st(g(0, 20), r0.mul(5).add(r1), red(v, Ops.ADD, r2)), r0, r1));
  const { lin } = lowerKernel(sink);
  assert.equal(lin.parent.get(r0), null);
  assert.equal(lin.parent.get(r1), r0);
  assert.equal(lin.parent.get(r2), r1);
  assert.equal(toProgram(sink, "js").name, "r_4_5_6");
});

Deno.test("a range used again after its END is rejected with a reason", () => {
  assert.throws(() => lowerKernel(softmax(true).sink), /used again after its END/);
});

Deno.test("stores left inside an unended range are rejected", () => {
  const r = UOp.range(4, 0);
  assert.throws(() => lowerKernel(UOp.sink(st(g(0, 4), r, ld(g(1, 4), r)))), /not inside ENDs/);
});

Deno.test("an index that can pass the end of its buffer throws naming kernel, buffer, index, bounds", () => {
  const r = UOp.range(16, 0);
  const sink = UOp.sink(end(st(g(0, 16), r, ld(g(1, 16), r.add(1))), r));
  assert.throws(() => toProgram(sink, "js", { checkBounds: true }), (e: Error) => {
    assert.match(e.message, /kernel E_16/);
    assert.match(e.message, /data1 \(16 elements\)/);
    assert.match(e.message, /\(r0\+1\)/);
    assert.match(e.message, /\[1, 16\]/);
    return true;
  });
  // a negative index is caught as well
  const neg = UOp.sink(end(st(g(0, 16), r, ld(g(1, 16), r.add(-1))), r));
  assert.throws(() => toProgram(neg, "c", { checkBounds: true }), /\[-1, 14\]/);
  // the check can be turned off (CHECK_BOUNDS=0 does the same)
  assert.doesNotThrow(() => toProgram(sink, "js", { checkBounds: false }));
});

Deno.test("a gated index is checked only where its gate can hold", () => {
  const r = UOp.range(18, 0), valid = r.lt(1).logicalNot().and(r.lt(17));
  const gated = UOp.sink(end(st(g(0, 18), r, ld(g(1, 16), r.add(-1), valid)), r));
  assert.doesNotThrow(() => toProgram(gated, "js", { checkBounds: true }));
  const half = r.lt(17); // forgets the lower edge: r - 1 reaches -1
  const bad = UOp.sink(end(st(g(0, 18), r, ld(g(1, 16), r.add(-1), half)), r));
  assert.throws(() => toProgram(bad, "js", { checkBounds: true }), /can reach \[-1, 15\]/);
  // gates through r*k + c, and from the other side (c < x)
  const s = UOp.range(9, 1);
  assert.deepEqual(gatedBounds(s.mul(2).add(1), s.mul(2).add(1).lt(9)), [1, 7]);
  assert.deepEqual(gatedBounds(s.add(-3), UOp.const(dtypes.int32, 2).lt(s)), [0, 5]);
  // a gate that never holds means no access at all
  assert.equal(gatedBounds(s.add(100), s.lt(0)), null);
});

Deno.test("big elementwise kernels thread their outer loop; reduce loops and small kernels do not", () => {
  const n = 1 << 16, r = UOp.range(n, 0);
  const big = toProgram(UOp.sink(end(st(g(0, n), r, ld(g(1, n), r).mul(2)), r)), "c");
  assert.match(big.src, /#pragma omp parallel for\n\s*for \(int Lidx0/);
  const q = UOp.range(n, 0, R);
  const full = toProgram(
    UOp.sink(st(g(0, 1), UOp.const(dtypes.int32, 0), red(ld(g(1, n), q), Ops.ADD, q))),
    "c",
  );
  assert.doesNotMatch(full.src, /omp/);
  const s = UOp.range(16, 0);
  assert.doesNotMatch(
    toProgram(UOp.sink(end(st(g(0, 16), s, ld(g(1, 16), s)), s)), "c").src,
    /omp/,
  );
  // the accumulator of a threaded row reduce lives inside the threaded loop
  const r0 = UOp.range(1024, 0), r1 = UOp.range(64, 1, R);
  const rows = toProgram(
    UOp.sink(end(st(g(0, 1024), r0, red(ld(g(1, 65536), r0.mul(64).add(r1)), Ops.ADD, r1)), r0)),
    "c",
  );
  assert.match(
    rows.src,
    /#pragma omp parallel for\n\s*for \(int Lidx0[^\n]*\n\s*float acc0 = 0\.0f;/,
  );
});

Deno.test("a store not indexed by the outer loop keeps that loop serial", () => {
  const n = 1 << 16, r = UOp.range(n, 0);
  // every iteration writes element 0: threads would race
  const p = toProgram(
    UOp.sink(end(st(g(0, 1), UOp.const(dtypes.int32, 0), ld(g(1, n), r)), r)),
    "c",
  );
  assert.doesNotMatch(p.src, /omp/);
});

Deno.test("ProgramSpec: names, buffers in slot order with mutability, variables sorted by name", () => {
  const nb = UOp.variable("nb", 1, 8), na = UOp.variable("na", 1, 8);
  const r = UOp.range(na, 0);
  const sink = UOp.sink(end(st(g(0, 8), r, ld(g(1, 8), r).add(nb.cast(f32))), r));
  for (const lang of ["c", "js"] as const) {
    const p = toProgram(sink, lang);
    assert.equal(p.lang, lang);
    assert.equal(p.name, "E_na");
    assert.deepEqual(p.vars, ["na", "nb"]);
    assert.deepEqual(p.bufs.map((b) => [b.slot, b.size, b.mutable, b.dtype]), [[0, 8, true, f32], [
      1,
      8,
      false,
      f32,
    ]]);
  }
  assert.match(
    toProgram(sink, "c").src,
    /void E_na\(float\* restrict data0, const float\* restrict data1, const int na, const int nb\)/,
  );
  assert.match(toProgram(sink, "js").src, /^function E_na\(data0, data1, na, nb\)/);
  assert.equal(toProgram(sink, "js", { name: "custom" }).name, "custom");
  const named = UOp.make(Ops.SINK, dtypes.void, sink.src, { name: "from_sink" });
  assert.equal(toProgram(named, "js").name, "from_sink");
});

Deno.test("ops and mem count ALU work and global bytes, not index math", () => {
  const r = UOp.range(16, 0);
  const add = toProgram(
    UOp.sink(end(st(g(0, 16), r, ld(g(1, 16), r).add(ld(g(2, 16), r))), r)),
    "js",
  );
  assert.equal(add.ops, 16);
  assert.equal(add.mem, 16 * 4 * 3);
  const r0 = UOp.range(4, 0), r1 = UOp.range(8, 1, R);
  const sum = toProgram(
    UOp.sink(end(st(g(0, 4), r0, red(ld(g(1, 32), r0.mul(8).add(r1)), Ops.ADD, r1)), r0)),
    "js",
  );
  assert.equal(sum.name, "r_4_8");
  assert.equal(sum.ops, 32);
  assert.equal(sum.mem, (32 + 4) * 4);
});

Deno.test("bounds: a gate on a compound expression narrows that expression where the index uses it", () => {
  // the two-stage scan of arange(300000): idx = (r1 + (r0+32)//256)*256 - 299777, gated on r1 + ... >= 1172
  const r0 = UOp.range(300000, 0), r1 = UOp.range(1172, 1, AxisType.REDUCE);
  const e = r1.add(r0.add(32).idiv(256));
  const idx = e.mul(256).add(-299777);
  const gate = e.lt(1172).logicalNot();
  assert.deepEqual(gatedBounds(idx, gate), [255, 299775]);
  assert.equal(gatedBounds(idx, undefined)![0] < 0, true);
});
