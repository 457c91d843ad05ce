import assert from "node:assert/strict";
import { dtypes } from "../src/dtype.ts";
import { Ops, UOp, Variable } from "../src/uop/ops.ts";
import { type Bindings, graphRewrite, PatternMatcher, UPat } from "../src/uop/upat.ts";

const x = Variable("x", 0, 10), y = Variable("y", 0, 10), z = Variable("z", -3, 3);
const i32 = (v: number) => UOp.const(dtypes.int32, v);

/** the bindings of `p` against `u`, or null */
function match(p: UPat, u: UOp): Bindings | null {
  const b: Bindings = {};
  return p.match(u, b, []) ? b : null;
}

Deno.test("UPat: op, op sets, dtype and arg", () => {
  assert.ok(match(UPat.op(Ops.ADD), x.add(y)));
  assert.equal(match(UPat.op(Ops.ADD), x.mul(y)), null);
  assert.ok(match(UPat.op([Ops.ADD, Ops.MUL]), x.mul(y)));
  assert.ok(match(UPat.op(new Set([Ops.MUL])), x.mul(y)));
  assert.ok(match(UPat.var("a", dtypes.int32), x));
  assert.equal(match(UPat.var("a", dtypes.float32), x), null);
  assert.ok(match(UPat.var("a", [dtypes.float32, dtypes.int32]), x));
  assert.ok(match(UPat.const(3), i32(3)));
  assert.equal(match(UPat.const(3), i32(4)), null);
  assert.equal(match(UPat.const(3, dtypes.int64), i32(3)), null);
  assert.ok(
    match(new UPat({ op: Ops.DEFINE_VAR, arg: ["x", 0, 10] }), x),
    "array args compare by value",
  );
  assert.ok(match(UPat.const(NaN), UOp.const(dtypes.float32, NaN)), "NaN args match NaN");
  assert.ok(match(UPat.cvar("c"), i32(-7)));
  assert.equal(match(UPat.cvar("c"), x), null);
});

Deno.test("UPat: named captures, and a repeated name binds the same node", () => {
  const p = UPat.var("a").add(UPat.var("a"));
  const b = match(p, x.add(x));
  assert.ok(b);
  assert.equal(b.a, x);
  assert.equal(match(p, x.add(y)), null);
  const whole = match(UPat.var("a").mul(UPat.cvar("c")).named("m"), x.mul(3));
  assert.equal(whole?.m, x.mul(3));
  assert.equal(whole?.c, i32(3));
});

Deno.test("UPat: ordered src versus commutative perm with backtracking", () => {
  const ordered = new UPat({ op: Ops.SUB, src: [UPat.cvar("c"), UPat.var("v")] });
  assert.ok(match(ordered, i32(1).sub(x)));
  assert.equal(match(ordered, x.sub(1)), null);
  // perm: the constant may sit on either side
  const p = UPat.var("v").add(UPat.cvar("c"));
  assert.equal(match(p, i32(2).add(x))?.v, x);
  assert.equal(match(p, x.add(2))?.v, x);
  // backtracking: the first order binds a = x and then fails on b; the second must succeed
  const bt = new UPat({
    op: Ops.ADD,
    perm: [UPat.var("a"), new UPat({ op: Ops.MUL, src: [UPat.var("a"), UPat.cvar("k")] })],
  });
  const m = match(bt, x.mul(3).add(x));
  assert.equal(m?.a, x);
  assert.equal(m?.k, i32(3));
  assert.equal(match(bt, x.mul(3).add(y)), null);
  // a failed branch leaves no stale captures behind
  const b: Bindings = {};
  assert.equal(bt.match(x.mul(3).add(y), b, []), false);
  assert.deepEqual(Object.entries(b).filter(([, v]) => v !== undefined), []);
});

Deno.test("UPat: each, anyLen and predicates", () => {
  const s = UOp.sink(x, y, z);
  assert.ok(match(new UPat({ op: Ops.SINK, each: UPat.op(Ops.DEFINE_VAR) }), s));
  assert.equal(match(new UPat({ op: Ops.SINK, each: UPat.op(Ops.CONST) }), s), null);
  assert.equal(match(new UPat({ op: Ops.SINK, src: [UPat.var("a")] }), s), null);
  const any = new UPat({ op: Ops.SINK, src: [UPat.var("a")], anyLen: true });
  assert.equal(match(any, s)?.a, x);
  const small = new UPat({ name: "v", pred: (u) => u.vmax < 5 });
  assert.ok(match(small, z));
  assert.equal(match(small, x), null);
});

Deno.test("UPat.any tries alternatives in order and undoes failed captures", () => {
  const p = UPat.any(
    new UPat({ op: Ops.MUL, src: [UPat.var("a"), UPat.const(2)] }),
    new UPat({ op: Ops.ADD, src: [UPat.var("b"), UPat.var("b")] }),
  );
  assert.equal(match(p, x.mul(2))?.a, x);
  const b = match(p, x.add(x));
  assert.equal(b?.b, x);
  assert.equal(b?.a, undefined);
  assert.equal(match(p, x.add(y)), null);
  assert.equal(match(p.named("n"), x.mul(2))?.n, x.mul(2));
});

Deno.test("PatternMatcher dispatches by op and the first applicable rule wins", () => {
  const calls: string[] = [];
  const pm = new PatternMatcher<null>([
    [UPat.op(Ops.MUL).named("m"), () => {
      calls.push("mul");
      return undefined;
    }],
    [UPat.var("a").add(0), (b) => {
      calls.push("add0");
      return b.a;
    }],
    [UPat.op(Ops.ADD).named("u"), () => {
      calls.push("add-any");
      return i32(99);
    }],
  ]);
  assert.equal(pm.rewrite(x.add(0), null), x);
  assert.deepEqual(calls, ["add0"]); // the MUL rule was never tried on an ADD
  calls.length = 0;
  assert.equal(pm.rewrite(x.add(1), null), i32(99));
  assert.deepEqual(calls, ["add-any"]);
  calls.length = 0;
  assert.equal(pm.rewrite(x.mul(2), null), undefined); // returning undefined means no change
  assert.deepEqual(calls, ["mul"]);
  assert.equal(pm.rewrite(x, null), undefined);
  // concat keeps order and is cached
  const other = new PatternMatcher<null>([[UPat.op(Ops.MUL).named("m"), () => i32(5)]]);
  const both = pm.concat(other);
  assert.equal(both, pm.concat(other));
  assert.equal(both.rewrite(x.mul(2), null), i32(5));
});

Deno.test("PatternMatcher passes the context and the matched node to rules", () => {
  const pm = new PatternMatcher<{ seen: UOp[] }>([
    [UPat.op(Ops.ADD).named("u"), (_b, ctx, u) => {
      ctx.seen.push(u);
      return undefined;
    }],
  ]);
  const ctx = { seen: [] as UOp[] };
  pm.rewrite(x.add(y), ctx);
  assert.deepEqual(ctx.seen, [x.add(y)]);
});

// a tiny algebra: x*1 -> x, x+0 -> x, c+c -> folded
const tiny = new PatternMatcher<unknown>([
  [UPat.var("a").mul(1), (b) => b.a],
  [UPat.var("a").add(0), (b) => b.a],
  [
    new UPat({ op: Ops.ADD, src: [UPat.cvar("p"), UPat.cvar("q")] }),
    (b) => i32(Number(b.p.arg) + Number(b.q.arg)),
  ],
]);

Deno.test("graphRewrite: post-order rewrites to a fixed point", () => {
  // (1+(-1)) only becomes 0 after its sources are rewritten; then x+0 -> x
  const e = x.mul(1).add(i32(1).add(i32(-1)));
  assert.equal(graphRewrite(e, tiny), x);
  // a rule's result is itself rewritten: (2+3)+(-5) -> 5+(-5) -> 0
  assert.equal(graphRewrite(i32(2).add(3).add(-5), tiny), i32(0));
});

Deno.test("graphRewrite: bottomUp applies rules before the sources are visited", () => {
  const order: string[] = [];
  const pm = new PatternMatcher<null>([
    [UPat.op([Ops.ADD, Ops.MUL]).named("u"), (b) => {
      order.push(b.u.render());
      return undefined;
    }],
  ]);
  const e = x.mul(2).add(y);
  graphRewrite(e, pm, null, { bottomUp: true });
  assert.deepEqual(order, ["((x*2)+y)", "(x*2)"]);
  order.length = 0;
  graphRewrite(e, pm, null);
  assert.deepEqual(order, ["(x*2)", "((x*2)+y)"]);
  // bottom-up rewrite sees the parent first: MUL(x, 1) inside is never visited as original
  const swap = new PatternMatcher<null>([
    [new UPat({ op: Ops.ADD, src: [UPat.var("a"), UPat.var("b")] }).named("u"), (b) => b.a.mul(1)],
  ]);
  assert.equal(graphRewrite(x.add(y), swap, null, { bottomUp: true }), x.mul(1));
});

Deno.test("graphRewrite: bpm and pm together", () => {
  const pre = new PatternMatcher<null>([[UPat.var("a").mul(1), (b) => b.a]]);
  const post = new PatternMatcher<null>([[UPat.var("a").add(0), (b) => b.a]]);
  assert.equal(graphRewrite(x.mul(1).add(0), post, null, { bpm: pre }), x);
});

Deno.test("graphRewrite: a shared subgraph is rewritten once per call", () => {
  let n = 0;
  const pm = new PatternMatcher<null>([
    [UPat.var("a").mul(1), (b) => {
      n++;
      return b.a;
    }],
  ]);
  const shared = x.mul(1);
  let e = shared;
  for (let i = 0; i < 20; i++) e = e.add(shared);
  const out = graphRewrite(e, pm, null);
  assert.equal(n, 1);
  assert.equal(out.toposort().filter((u) => u.op === Ops.MUL).length, 0);
});

Deno.test("graphRewrite: a rule that never reaches a fixed point is stopped", () => {
  const flip = new PatternMatcher<null>([
    [new UPat({ op: Ops.ADD, src: [UPat.var("a"), UPat.var("b")] }), (b) => b.b.add(b.a)],
  ]);
  assert.throws(() => graphRewrite(x.add(y), flip, null, { maxSteps: 1000 }), /fixed point/);
  assert.throws(() => graphRewrite(x.add(y), flip, null, { bottomUp: true }), /cycles/);
});

Deno.test("graphRewrite: deep chains do not overflow the stack", () => {
  let e: UOp = x;
  for (let i = 0; i < 20000; i++) e = e.add(0);
  assert.equal(graphRewrite(e, tiny), x);
});
