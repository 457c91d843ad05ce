import assert from "node:assert/strict";
import { dtypes } from "../src/dtype.ts";
import { Ops, UOp, Variable } from "../src/uop/ops.ts";
import "../src/uop/symbolic.ts";

const x = Variable("x", 0, 10), y = Variable("y", -4, 6);
const i32 = (v: number) => UOp.const(dtypes.int32, v);

Deno.test("hash-consing: equal (op, dtype, src, arg) is the same object", () => {
  assert.equal(x.add(3), x.add(3));
  assert.equal(Variable("x", 0, 10), x);
  assert.notEqual(Variable("x", 0, 11), x);
  assert.equal(i32(5), UOp.const(dtypes.int32, 5));
  assert.notEqual(i32(5), UOp.const(dtypes.int64, 5));
  assert.notEqual(UOp.const(dtypes.float32, 0), UOp.const(dtypes.float32, -0));
  assert.equal(x.add(y).replace({}), x.add(y));
  assert.equal(x.add(y).replace({ op: Ops.MUL }), x.mul(y));
  assert.ok(Object.isFrozen(x.add(y).src));
});

Deno.test("the hash-cons cache does not keep dead graphs alive", async () => {
  const script = new URL("./support/uop_gc.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--v8-flags=--expose-gc", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const { base, built, after } = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.ok(built - base >= 40000, `built ${built - base} nodes`);
  assert.ok(after - base < 100, `${after - base} of ${built - base} nodes still cached after gc`);
});

Deno.test("bounds: interval arithmetic through the int ops", () => {
  assert.deepEqual(x.add(y).bounds, [-4, 16]);
  assert.deepEqual(x.sub(y).bounds, [-6, 14]);
  assert.deepEqual(x.mul(y).bounds, [-40, 60]);
  assert.deepEqual(y.mul(-2).bounds, [-12, 8]);
  assert.deepEqual(y.neg().bounds, [-6, 4]);
  assert.deepEqual(x.maximum(y).bounds, [0, 10]);
  assert.deepEqual(x.idiv(3).bounds, [0, 3]);
  assert.deepEqual(y.idiv(3).bounds, [-1, 2]); // truncation: -4//3 == -1
  assert.deepEqual(y.idiv(-2).bounds, [-3, 2]);
  assert.deepEqual(x.mod(4).bounds, [0, 3]);
  assert.deepEqual(y.mod(4).bounds, [-3, 3]);
  assert.deepEqual(x.add(20).mod(8).bounds, [0, 7]);
  assert.deepEqual(x.add(16).mod(32).bounds, [16, 26]);
  assert.deepEqual(x.idiv(Variable("d", 2, 5)).bounds, [0, 5]);
  assert.deepEqual(x.mod(Variable("d", 11, 20)).bounds, [0, 10]);
  assert.deepEqual(UOp.range(8, 0).bounds, [0, 7]);
  assert.deepEqual(x.lt(11).bounds, [1, 1]);
  assert.deepEqual(x.lt(y).bounds, [0, 1]);
  assert.deepEqual(x.lt(5).where(x, y.add(100)).bounds, [0, 106]);
  assert.deepEqual(x.cast(dtypes.int8).bounds, [0, 10]);
  assert.deepEqual(x.and(6).bounds, [0, 6]);
  assert.deepEqual(x.or(4).bounds, [4, 15]);
  assert.deepEqual(x.mul(2 ** 30).bounds, [-(2 ** 31), 2 ** 31 - 1], "an overflow may wrap");
  assert.deepEqual(x.cast(dtypes.float32).bounds, [-Infinity, Infinity]);
});

Deno.test("render, substitute and toposort", () => {
  assert.equal(x.mul(4).add(3).render(), "((x*4)+3)");
  assert.equal(x.lt(3).where(x, y).render(), "(x if (x<3) else y)");
  assert.equal(x.maximum(y).render(), "max(x, y)");
  assert.equal(UOp.range(4, 2).idiv(2).render(), "(r2//2)");
  const e = x.add(y).mul(x);
  assert.equal(e.substitute(new Map([[x, i32(2)]])).render(), "((2+y)*2)");
  assert.equal(e.substitute(new Map([[x, i32(2)]])).simplify().render(), "((y*2)+4)");
  assert.equal(e.substitute(new Map()), e);
  const topo = e.toposort();
  assert.equal(topo.length, 4);
  assert.equal(topo[topo.length - 1], e);
  for (const [i, u] of topo.entries()) {
    for (const s of u.src) assert.ok(topo.indexOf(s) < i, "sources come before users");
  }
  assert.match(e.toString(), /DEFINE_VAR/);
});

Deno.test("bad input throws where the UOp is made", () => {
  const f = UOp.const(dtypes.float32, 1);
  assert.throws(() => x.add(f), /every source must have the result's dtype/);
  assert.throws(() => f.idiv(f), /IDIV and MOD are integer ops/);
  assert.throws(() => x.where(x, y), /condition of WHERE must be bool/);
  assert.throws(() => Variable("v", 5, 1), /Variable 'v': min 5 is greater than max 1/);
  assert.throws(() => Variable("v", 0.5, 1), /bounds must be integers/);
  assert.throws(() => UOp.make(Ops.ADD, dtypes.int32, [x]), /takes 2 sources, got 1/);
  assert.throws(() => x.lt(f), /same dtype/);
  assert.throws(() => x.alu(Ops.SQRT), /needs a float dtype/);
  assert.throws(() => f.and(f), /bitwise ops need int or bool/);
});
