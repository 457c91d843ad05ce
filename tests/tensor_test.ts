// Tensor construction, dtype promotion, execution and printing, checked on the reference backend.
import assert from "node:assert/strict";
import { dtypes } from "../src/dtype.ts";
import { Ops, UOp } from "../src/uop/ops.ts";
import { Tensor } from "../src/tensor.ts";
import { setBackend } from "../src/tensor/backend.ts";
import {
  assertClose,
  evaluate,
  refBackend,
  refBuffer,
  refOf,
  refStats,
} from "./support/reference.ts";

setBackend(refBackend);

Deno.test("Tensor.from infers shape and dtype from nested arrays", () => {
  const a = Tensor.from([[1, 2, 3], [4, 5, 6]]);
  assert.deepEqual(a.shape, [2, 3]);
  assert.equal(a.dtype, dtypes.int32);
  assert.deepEqual(refOf(a), [1, 2, 3, 4, 5, 6]);
  assert.equal(Tensor.from([1.5, 2]).dtype, dtypes.float32);
  assert.equal(Tensor.from([true, false]).dtype, dtypes.bool);
  assert.equal(Tensor.from([true, 2]).dtype, dtypes.int32);
  assert.equal(Tensor.from(3).ndim, 0);
  assert.equal(Tensor.from(3).dtype, dtypes.int32);
  assert.equal(Tensor.from(2.5).dtype, dtypes.float32);
  const h = Tensor.from([1.1, 2.2], { dtype: dtypes.float16 });
  assert.deepEqual(refOf(h), [Math.f16round(1.1), Math.f16round(2.2)]);
  assert.deepEqual(Tensor.from([[]]).shape, [1, 0]);
});

Deno.test("Tensor.from takes TypedArrays with an optional shape", () => {
  const t = Tensor.from(new Float32Array([1, 2, 3, 4, 5, 6]), { shape: [3, 2] });
  assert.deepEqual(t.shape, [3, 2]);
  assert.equal(t.dtype, dtypes.float32);
  assert.deepEqual(refOf(t), [1, 2, 3, 4, 5, 6]);
  const u = Tensor.from(new Uint8Array([250, 7]));
  assert.equal(u.dtype, dtypes.uint8);
  const big = Tensor.from(new BigInt64Array([-5n, 9n]));
  assert.equal(big.dtype, dtypes.int64);
  assert.deepEqual(refOf(big), [-5, 9]);
  const conv = Tensor.from(new Float64Array([1.7, -1.7]), { dtype: dtypes.int32 });
  assert.deepEqual(refOf(conv), [1, -1]);
});

Deno.test("Tensor.from rejects ragged arrays, bad shapes and bad element types", () => {
  assert.throws(
    () => Tensor.from([[1, 2], [3]]),
    /ragged nested array: at \[1\] expected an array of length 2, got length 1/,
  );
  assert.throws(
    () => Tensor.from(new Float32Array(5), { shape: [2, 2] }),
    /shape \[2, 2\] needs 4 elements, the Float32Array has 5/,
  );
  assert.throws(() => Tensor.from([1, "a" as unknown as number]), /element at \[1\] is string/);
  assert.throws(
    () => Tensor.from(null as unknown as number),
    /expected a number, boolean, nested array or TypedArray, got null/,
  );
});

Deno.test("constant creation builds CONST graphs with no buffers", () => {
  const z = Tensor.zeros([2, 3]);
  assert.equal(z.dtype, dtypes.float32);
  assert.ok(z.uop.toposort().every((u) => u.op !== Ops.BUFFER));
  assert.deepEqual(refOf(z), [0, 0, 0, 0, 0, 0]);
  assert.deepEqual(refOf(Tensor.ones([2], { dtype: dtypes.int8 })), [1, 1]);
  const f = Tensor.full([2, 2], 7);
  assert.equal(f.dtype, dtypes.int32);
  assert.deepEqual(refOf(f), [7, 7, 7, 7]);
  assert.equal(Tensor.full([1], true).dtype, dtypes.bool);
  assert.equal(Tensor.full([1], 0.5).dtype, dtypes.float32);
  const e = Tensor.empty([3, 4], { dtype: "int16" });
  assert.deepEqual([e.shape, e.dtype], [[3, 4], dtypes.int16]);
  const x = Tensor.from([[1.5, 2]]);
  assert.deepEqual(refOf(x.zerosLike()), [0, 0]);
  assert.deepEqual(refOf(x.onesLike()), [1, 1]);
  assert.deepEqual(refOf(x.fullLike(3)), [3, 3]);
  assert.equal(x.fullLike(3, { dtype: dtypes.int32 }).dtype, dtypes.int32);
  assert.throws(() => Tensor.zeros([2, -1]), /zeros|full: shape \[2, -1\] has size -1/);
});

Deno.test("arange, linspace and eye", () => {
  const a = Tensor.arange(5);
  assert.equal(a.dtype, dtypes.int32);
  assert.deepEqual(refOf(a), [0, 1, 2, 3, 4]);
  assert.deepEqual(refOf(Tensor.arange(2, 11, 3)), [2, 5, 8]);
  assert.deepEqual(refOf(Tensor.arange(5, 0, -2)), [5, 3, 1]);
  const f = Tensor.arange(0, 1, 0.25);
  assert.equal(f.dtype, dtypes.float32);
  assert.deepEqual(refOf(f), [0, 0.25, 0.5, 0.75]);
  assert.deepEqual(Tensor.arange(3, 3).shape, [0]);
  // past the two-stage threshold of the scan
  const long = refOf(Tensor.arange(1100));
  assert.deepEqual(long, Array.from({ length: 1100 }, (_, i) => i));
  assertClose(refOf(Tensor.linspace(0, 1, 5)), [0, 0.25, 0.5, 0.75, 1]);
  assert.deepEqual(refOf(Tensor.eye(3)), [1, 0, 0, 0, 1, 0, 0, 0, 1]);
  assert.deepEqual(refOf(Tensor.eye(2, 3)), [1, 0, 0, 0, 1, 0]);
  assert.throws(() => Tensor.arange(0, 5, 0), /arange: step must not be 0/);
});

Deno.test("random tensors are deterministic for a seed and in range", () => {
  Tensor.manualSeed(42);
  const a = refOf(Tensor.rand([1000]));
  const a2 = refOf(Tensor.rand([4]));
  Tensor.manualSeed(42);
  assert.deepEqual(refOf(Tensor.rand([1000])), a);
  assert.notDeepEqual(refOf(Tensor.rand([4])), a.slice(0, 4));
  assert.ok(a.every((v) => v >= 0 && v < 1));
  const mean = a.reduce((s, v) => s + v, 0) / a.length;
  assert.ok(Math.abs(mean - 0.5) < 0.05, `mean ${mean}`);
  assert.notDeepEqual(a2, a.slice(0, 4));
  const n = refOf(Tensor.randn([2000]));
  const m = n.reduce((s, v) => s + v, 0) / n.length;
  const sd = Math.sqrt(n.reduce((s, v) => s + (v - m) ** 2, 0) / n.length);
  assert.ok(Math.abs(m) < 0.1 && Math.abs(sd - 1) < 0.1, `mean ${m} std ${sd}`);
  const r = Tensor.randint([500], -3, 4);
  assert.equal(r.dtype, dtypes.int32);
  const rv = refOf(r);
  assert.ok(rv.every((v) => Number.isInteger(v) && v >= -3 && v < 4));
  assert.equal(new Set(rv).size, 7);
  const h = Tensor.rand([64], { dtype: dtypes.float16 });
  assert.ok(refOf(h).every((v) => v >= 0 && v < 1));
  assert.equal(Tensor.from([1, 2]).randLike().dtype, dtypes.float32);
  assert.throws(() => Tensor.randint([2], 5, 5), /randint: need integers low < high/);
});

Deno.test("JS numbers are weak in promotion; tensors promote by the lattice", () => {
  const u8 = Tensor.from([250, 3], { dtype: dtypes.uint8 });
  const s = u8.add(10);
  assert.equal(s.dtype, dtypes.uint8);
  assert.deepEqual(refOf(s), [4, 13]); // wraps like uint8
  assert.equal(u8.add(1.5).dtype, dtypes.float32);
  const i = Tensor.from([1, 2]);
  assert.equal(i.add(Tensor.from([1.5, 1])).dtype, dtypes.float32);
  assert.equal(i.add(true).dtype, dtypes.int32);
  const b = Tensor.from([true, false]);
  assert.equal(b.add(1).dtype, dtypes.int32);
  assert.equal(b.bitwiseAnd(true).dtype, dtypes.bool);
  assert.equal(b.add(Tensor.from([1], { dtype: dtypes.int8 })).dtype, dtypes.int8);
  const h = Tensor.from([1], { dtype: dtypes.float16 });
  assert.equal(h.add(Tensor.from([1], { dtype: dtypes.float32 })).dtype, dtypes.float32);
  assert.equal(h.mul(3.25).dtype, dtypes.float16);
  assert.equal(i.div(2).dtype, dtypes.float32);
  assert.equal(i.exp().dtype, dtypes.float32);
  assert.equal(i.sqrt().dtype, dtypes.float32);
  assert.equal(i.mean().dtype, dtypes.float32);
  assert.equal(Tensor.from([1], { dtype: dtypes.int8 }).sum().dtype, dtypes.int32);
  assert.equal(Tensor.from([1], { dtype: dtypes.uint8 }).sum().dtype, dtypes.uint32);
  assert.equal(b.sum().dtype, dtypes.int32);
  assert.equal(h.sum().dtype, dtypes.float16);
  assert.equal(i.lt(2).dtype, dtypes.bool);
});

Deno.test("every graph uses only tensor-graph ops, with equal-shaped ALU sources", () => {
  const allowed = new Set([
    Ops.BUFFER,
    Ops.CONST,
    Ops.IOTA,
    Ops.DEFINE_VAR,
    Ops.CAST,
    Ops.BITCAST,
    Ops.REDUCE_AXIS,
    Ops.RESHAPE,
    Ops.PERMUTE,
    Ops.EXPAND,
    Ops.PAD,
    Ops.SHRINK,
    Ops.FLIP,
    Ops.CONTIGUOUS,
    Ops.DETACH,
    Ops.COPY,
    Ops.EXP2,
    Ops.LOG2,
    Ops.SIN,
    Ops.SQRT,
    Ops.RECIPROCAL,
    Ops.NEG,
    Ops.TRUNC,
    Ops.ADD,
    Ops.MUL,
    Ops.IDIV,
    Ops.MOD,
    Ops.MAX,
    Ops.CMPLT,
    Ops.CMPNE,
    Ops.CMPEQ,
    Ops.XOR,
    Ops.OR,
    Ops.AND,
    Ops.SHL,
    Ops.SHR,
    Ops.WHERE,
  ]);
  Tensor.manualSeed(1);
  const x = Tensor.randn([2, 3, 6, 6]), w = Tensor.randn([4, 3, 3, 3]);
  const i = Tensor.randint([5], -9, 9);
  const graphs = [
    x.conv2d(w, undefined, { padding: 1 }).relu().maxPool2d(2).softmax().logsumexp(1),
    x.layernorm().cumsum(3).argmax(2),
    x.reshape([6, 36]).matmul(x.reshape([36, 6])).pow(1.7).erf().gelu(),
    i.idiv(4).add(i.mod(-3)).lshift(2).rshift(1).bitwiseXor(5).cast(dtypes.float32).round(),
    x.slice(null, [2, 0, -1], 1).pad([[1, 1]], -2).std(0),
  ];
  for (const g of graphs) {
    for (const u of g.uop.toposort()) {
      assert.ok(allowed.has(u.op), `unexpected op ${Ops[u.op]}`);
      if (u.op === Ops.IDIV || u.op === Ops.MOD) assert.ok(u.dtype.isInt);
    }
  }
});

Deno.test("realize replaces the graph by a buffer; data, tolist and item read it", async () => {
  const a = Tensor.from([[1, 2], [3, 4]]).add(1);
  const before = refStats.realizeCalls;
  a.realize();
  assert.equal(refStats.realizeCalls, before + 1);
  assert.equal(a.uop.op, Ops.RESHAPE);
  assert.equal(a.uop.src[0].op, Ops.BUFFER);
  a.realize(); // already realized: nothing runs
  assert.equal(refStats.realizeCalls, before + 1);
  const d = a.dataSync();
  assert.ok(d instanceof Int32Array);
  assert.deepEqual([...d], [2, 3, 4, 5]);
  assert.deepEqual([...(await a.data())], [2, 3, 4, 5]);
  assert.deepEqual(await a.tolist(), [[2, 3], [4, 5]]);
  assert.deepEqual(a.tolistSync(), [[2, 3], [4, 5]]);
  assert.deepEqual(Tensor.from([true, false]).tolistSync(), [true, false]);
  assert.equal(Tensor.from([[2.5]]).item(), 2.5);
  assert.equal(Tensor.from(true).item(), true);
  assert.throws(() => a.item(), /item: needs a tensor of exactly 1 element, got shape \[2, 2\]/);
  const b = Tensor.from([1.5]), c = Tensor.from([2]).mul(3);
  const n = refStats.realizeCalls;
  Tensor.realize(b.add(1), c);
  assert.equal(refStats.realizeCalls, n + 1);
  assert.deepEqual(c.tolistSync(), [6]);
});

Deno.test("data() returns the dtype's TypedArray (bfloat16 as Float32Array)", () => {
  assert.ok(Tensor.from([1.5]).dataSync() instanceof Float32Array);
  assert.ok(Tensor.from([1.5], { dtype: dtypes.float16 }).dataSync() instanceof Float16Array);
  assert.ok(Tensor.from([1], { dtype: dtypes.int64 }).dataSync() instanceof BigInt64Array);
  assert.ok(Tensor.from([true]).dataSync() instanceof Uint8Array);
  const bf = Tensor.from([1.00390625, 3.140625], { dtype: dtypes.bfloat16 }).dataSync();
  assert.ok(bf instanceof Float32Array);
  assert.deepEqual([...bf], [1, 3.140625]); // 1.00390625 rounds to even in bfloat16
  assert.deepEqual(Tensor.from([3], { dtype: dtypes.int64 }).tolistSync(), [3]);
});

Deno.test("to() copies across devices, contiguous and detach wrap the graph", () => {
  const a = Tensor.from([1, 2]);
  assert.equal(a.device, "REF");
  const b = a.to("ref:1");
  assert.equal(b.device, "REF:1");
  assert.equal(b.uop.op, Ops.COPY);
  assert.equal(b.uop.arg, "REF:1");
  assert.equal(a.to("REF"), a);
  assert.deepEqual(refOf(b), [1, 2]);
  assert.throws(() => a.to("NOPE"), /device NOPE is not available/);
  assert.throws(() => a.add(b), /add: tensors are on different devices \(REF, REF:1\)/);
  assert.equal(a.contiguous().uop.op, Ops.CONTIGUOUS);
  assert.equal(a.detach().uop.op, Ops.DETACH);
  assert.deepEqual(refOf(a.contiguous().detach()), [1, 2]);
});

Deno.test("tensors over hand-made UOps (fromUOp) evaluate through the reference", () => {
  const buf = refBuffer(dtypes.float32, [1, 2, 3, 4]);
  const t = Tensor.fromUOp(buf, "REF").reshape([2, 2]);
  assert.deepEqual(refOf(t.T), [1, 3, 2, 4]);
  const v = Tensor.fromUOp(UOp.variable("n", 0, 10), "REF");
  assert.deepEqual(evaluate(v.add(1).uop, new Map([["n", 4]])).values, [5]);
  assert.throws(() => Tensor.fromUOp(UOp.range(4, 0)), /expected a tensor-graph UOp/);
});

Deno.test("casts round and wrap like C; bitcast reinterprets bits", () => {
  const f = Tensor.from([1.7, -1.7, 300.5]);
  assert.deepEqual(refOf(f.cast(dtypes.int32)), [1, -1, 300]);
  assert.deepEqual(refOf(f.cast(dtypes.uint8)), [1, 255, 44]);
  assert.deepEqual(refOf(f.cast(dtypes.bool)), [1, 1, 1]);
  assert.deepEqual(refOf(Tensor.from([1 + 2 ** -11]).cast("float16")), [1]);
  const bits = Tensor.from([1, -2], { dtype: dtypes.float32 }).bitcast(dtypes.int32);
  assert.deepEqual(refOf(bits), [0x3f800000, -0x40000000]);
  const halves = Tensor.from([[1]], { dtype: dtypes.int32 }).bitcast(dtypes.int16);
  assert.deepEqual(halves.shape, [1, 2]);
  assert.deepEqual(refOf(halves), [1, 0]);
  assert.throws(
    () => Tensor.from([1, 2, 3], { dtype: dtypes.int16 }).bitcast(dtypes.int32),
    /bitcast: int16 \[3\] to int32 needs a last axis whose byte size 6 is a multiple of 4/,
  );
  assert.throws(() => f.bitcast(dtypes.bool), /bitcast: cannot bitcast float32 to bool/);
});

Deno.test("toString prints numpy-style values with shape, dtype and device", () => {
  assert.equal(
    Tensor.from([[1, 2], [3, 40]]).toString(),
    "Tensor([[ 1,  2],\n        [ 3, 40]], shape=[2, 2], dtype=int32, device=REF)",
  );
  assert.equal(
    Tensor.from([1.5, 2.25, -3]).toString(),
    "Tensor([ 1.5 ,  2.25, -3.  ], shape=[3], dtype=float32, device=REF)",
  );
  assert.equal(Tensor.from(true).toString(), "Tensor(true, shape=[], dtype=bool, device=REF)");
  assert.equal(
    Tensor.from([1e-5, 1]).toString(),
    "Tensor([1.e-05, 1.e+00], shape=[2], dtype=float32, device=REF)",
  );
  assert.match(Tensor.from([NaN, Infinity]).toString(), /\[nan, inf\]/);
  const big = Tensor.arange(2000).reshape([40, 50]).toString();
  const lines = big.split("\n");
  assert.equal(lines[0], "Tensor([[   0,    1,    2, ...,   47,   48,   49],");
  assert.equal(lines[3], "        ...,");
  assert.equal(lines.length, 7);
  assert.match(big, /shape=\[40, 50\], dtype=int32, device=REF\)$/);
  assert.equal(Deno.inspect(Tensor.from([7])), "Tensor([7], shape=[1], dtype=int32, device=REF)");
});
