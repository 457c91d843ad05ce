// Kernel ASTs built by hand, rendered to JS (run here with new Function) and to C (checked by
// clang, and run through the CPU runtime where it works), against plain JS loops.
import assert from "node:assert/strict";
import { AxisType, Ops, UOp } from "../src/uop/ops.ts";
import { type DType, dtypes, fromBF16Bits, toBF16Bits, type TypedArray } from "../src/dtype.ts";
import { toProgram } from "../src/codegen/index.ts";
import type { ProgramSpec } from "../src/codegen/program.ts";

const f32 = dtypes.float32, i32 = dtypes.int32;
const g = (slot: number, size: number, d: DType = f32) =>
  UOp.make(Ops.DEFINE_GLOBAL, d, [], [slot, size]);
const idx = (b: UOp, i: UOp, v?: UOp) => UOp.make(Ops.INDEX, b.dtype, v ? [b, i, v] : [b, i]);
const ld = (b: UOp, i: UOp, v?: UOp) => UOp.make(Ops.LOAD, b.dtype, [idx(b, i, v)]);
const st = (b: UOp, i: UOp, v: UOp) => UOp.make(Ops.STORE, dtypes.void, [idx(b, i), v]);
const end = (s: UOp, ...r: UOp[]) => UOp.make(Ops.END, dtypes.void, [s, ...r]);
const red = (v: UOp, op: Ops, ...r: UOp[]) => UOp.make(Ops.REDUCE, v.dtype, [v, ...r], op);
const fr = Math.fround;

let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const floats = (n: number) => Float32Array.from({ length: n }, () => fr(rand() * 8 - 4));
const ints = (n: number, lo: number, hi: number) =>
  Int32Array.from({ length: n }, () => Math.floor(lo + rand() * (hi - lo)));

interface Case {
  title: string;
  sink: UOp;
  /** every slot's array; outputs start as zeros */
  bufs: TypedArray[];
  vars?: number[];
  /** expected contents by output slot */
  expect: Record<number, ArrayLike<number | bigint>>;
  /** relative tolerance between devices (transcendentals differ in the last bits) */
  tol?: number;
}

const cases: Case[] = [];

{
  const r = UOp.range(16, 0), a = floats(16), b = floats(16);
  cases.push({
    title: "elementwise add",
    sink: UOp.sink(end(st(g(0, 16), r, ld(g(1, 16), r).add(ld(g(2, 16), r))), r)),
    bufs: [new Float32Array(16), a, b],
    expect: { 0: a.map((x, i) => fr(x + b[i])) },
  });
}
{
  const r0 = UOp.range(4, 0), r1 = UOp.range(8, 1, AxisType.REDUCE), x = floats(32);
  const e = new Float32Array(4);
  for (let i = 0; i < 4; i++) for (let k = 0; k < 8; k++) e[i] = fr(e[i] + x[i * 8 + k]);
  cases.push({
    title: "sum over the last axis of [4,8]",
    sink: UOp.sink(end(st(g(0, 4), r0, red(ld(g(1, 32), r0.mul(8).add(r1)), Ops.ADD, r1)), r0)),
    bufs: [new Float32Array(4), x],
    expect: { 0: e },
  });
}
{
  // softmax over the rows of [4,8]: a max reduce, a sum of exp(x - max), one store
  const r0 = UOp.range(4, 0), r1 = UOp.range(8, 1, AxisType.REDUCE);
  const r2 = UOp.range(8, 2, AxisType.REDUCE), r3 = UOp.range(8, 3);
  const x = floats(32), xb = g(1, 32), L = Math.LOG2E;
  const mx = red(ld(xb, r0.mul(8).add(r1)), Ops.MAX, r1);
  const ex = (r: UOp) => ld(xb, r0.mul(8).add(r)).sub(mx).mul(L).alu(Ops.EXP2);
  const sm = red(ex(r2), Ops.ADD, r2);
  const e = new Float32Array(32);
  for (let i = 0; i < 4; i++) {
    let m = -Infinity, s = 0;
    for (let k = 0; k < 8; k++) m = Math.max(m, x[i * 8 + k]);
    const exf = (k: number) => fr(2 ** fr(fr(x[i * 8 + k] - m) * fr(L)));
    for (let k = 0; k < 8; k++) s = fr(s + exf(k));
    for (let k = 0; k < 8; k++) e[i * 8 + k] = fr(exf(k) / s);
  }
  cases.push({
    title: "softmax: max reduce, sum-of-exp reduce, one store",
    sink: UOp.sink(end(st(g(0, 32), r0.mul(8).add(r3), ex(r3).fdiv(sm)), r0, r3)),
    bufs: [new Float32Array(32), x],
    expect: { 0: e },
    tol: 1e-6,
  });
}
{
  const r = UOp.range(16, 0), a = floats(16), ab = g(2, 16);
  cases.push({
    title: "two stores sharing their loop",
    sink: UOp.sink(
      end(st(g(0, 16), r, ld(ab, r).add(1)), r),
      end(st(g(1, 16), r, ld(ab, r).mul(2)), r),
    ),
    bufs: [new Float32Array(16), new Float32Array(16), a],
    expect: { 0: a.map((x) => fr(x + 1)), 1: a.map((x) => fr(x * 2)) },
  });
}
{
  // PAD [1, 1] of 16 elements: reads only where 1 <= r < 17
  const r = UOp.range(18, 0), a = floats(16);
  const valid = r.lt(1).logicalNot().and(r.lt(17));
  cases.push({
    title: "gated load (PAD)",
    sink: UOp.sink(end(st(g(0, 18), r, ld(g(1, 16), r.add(-1), valid).mul(2).add(1)), r)),
    bufs: [new Float32Array(18), a],
    expect: {
      0: Float32Array.from(
        { length: 18 },
        (_, i) => fr(fr((i >= 1 && i < 17 ? a[i - 1] : 0) * 2) + 1),
      ),
    },
  });
}
{
  const r = UOp.range(16, 0),
    a = ints(16, -(2 ** 31), 2 ** 31 - 1),
    b = ints(16, -(2 ** 31), 2 ** 31 - 1);
  a[0] = 2 ** 31 - 1, b[0] = 1;
  const A = ld(g(1, 16, i32), r), B = ld(g(2, 16, i32), r);
  cases.push({
    title: "int32 arithmetic wraps around",
    sink: UOp.sink(end(st(g(0, 16, i32), r, A.mul(B).add(A).sub(B.neg())), r)),
    bufs: [new Int32Array(16), a, b],
    expect: {
      0: a.map((x, i) =>
        Number(BigInt.asIntN(32, BigInt(x) * BigInt(b[i]) + BigInt(x) + BigInt(b[i])))
      ),
    },
  });
}
{
  const a = Int32Array.from([
    7,
    -7,
    7,
    -7,
    0,
    -(2 ** 31),
    -(2 ** 31),
    5,
    -9,
    2 ** 31 - 1,
    100,
    -100,
  ]);
  const b = Int32Array.from([2, 2, -2, -2, 3, -1, 1, 0, 0, -1, -7, 7]);
  const n = a.length, r = UOp.range(n, 0);
  const A = ld(g(2, n, i32), r), B = ld(g(3, n, i32), r);
  const cdiv = (x: number, y: number) =>
    y === 0 ? 0 : Number(BigInt.asIntN(32, BigInt(x) / BigInt(y)));
  const cmod = (x: number, y: number) => y === 0 ? 0 : Number(BigInt(x) % BigInt(y));
  cases.push({
    title: "int division and modulo truncate toward zero (also by negatives and zero)",
    // the + 1 makes a NaN from x % 0 visible (a typed-array store alone would hide it as 0)
    sink: UOp.sink(
      end(st(g(0, n, i32), r, A.idiv(B)), r),
      end(st(g(1, n, i32), r, A.mod(B).add(1)), r),
    ),
    bufs: [new Int32Array(n), new Int32Array(n), a, b],
    expect: { 0: a.map((x, i) => cdiv(x, b[i])), 1: a.map((x, i) => cmod(x, b[i]) + 1) },
  });
}
{
  const a = Int8Array.from([100, -128, -128, 127, -7, 50]),
    b = Int8Array.from([100, -1, 1, 1, 2, -3]);
  const n = a.length, r = UOp.range(n, 0), i8 = dtypes.int8;
  const A = ld(g(2, n, i8), r), B = ld(g(3, n, i8), r);
  const wrap8 = (v: number) => (v << 24) >> 24;
  cases.push({
    title: "int8 results wrap after each op",
    sink: UOp.sink(
      end(st(g(0, n, i8), r, A.add(B).idiv(UOp.const(i8, 2))), r),
      end(st(g(1, n, i8), r, A.idiv(B)), r),
    ),
    bufs: [new Int8Array(n), new Int8Array(n), a, b],
    expect: {
      0: a.map((x, i) => Math.trunc(wrap8(x + b[i]) / 2)),
      1: a.map((x, i) => wrap8(Math.trunc(x / b[i]))),
    },
  });
}
{
  const nv = UOp.variable("n", 1, 16), r = UOp.range(nv, 0), a = floats(16);
  cases.push({
    title: "a loop bound by a variable",
    sink: UOp.sink(end(st(g(0, 16), r, ld(g(1, 16), r).mul(3)), r)),
    bufs: [new Float32Array(16), a],
    vars: [10],
    expect: { 0: a.map((x, i) => (i < 10 ? fr(x * 3) : 0)) },
  });
}
{
  const h = dtypes.float16, r = UOp.range(16, 0);
  const a = Float16Array.from(floats(16)), b = Float16Array.from(floats(16));
  const A = ld(g(1, 16, h), r), B = ld(g(2, 16, h), r);
  const f16 = Math.f16round;
  cases.push({
    title: "float16 rounds every result",
    sink: UOp.sink(end(st(g(0, 16, h), r, A.mul(B).add(A).fdiv(B)), r)),
    bufs: [new Float16Array(16), a, b],
    expect: { 0: Array.from(a, (x, i) => f16(f16(f16(x * b[i]) + x) / b[i])) },
  });
}
{
  const bf = dtypes.bfloat16, r = UOp.range(16, 0);
  const a = Uint16Array.from(floats(16), toBF16Bits), b = Uint16Array.from(floats(16), toBF16Bits);
  const A = ld(g(1, 16, bf), r), B = ld(g(2, 16, bf), r);
  const bfr = (x: number) => fromBF16Bits(toBF16Bits(x));
  cases.push({
    title: "bfloat16 stored as rounded bits",
    sink: UOp.sink(end(st(g(0, 16, bf), r, A.mul(B).add(A)), r)),
    bufs: [new Uint16Array(16), a, b],
    expect: {
      0: Array.from(
        a,
        (x, i) => toBF16Bits(bfr(bfr(fromBF16Bits(x) * fromBF16Bits(b[i])) + fromBF16Bits(x))),
      ),
    },
  });
}
{
  const r = UOp.range(16, 0), a = floats(16), b = floats(16), bl = dtypes.bool;
  const lt = ld(g(2, 16), r).lt(ld(g(3, 16), r));
  cases.push({
    title: "bool outputs",
    sink: UOp.sink(end(st(g(0, 16, bl), r, lt), r), end(st(g(1, 16, bl), r, lt.logicalNot()), r)),
    bufs: [new Uint8Array(16), new Uint8Array(16), a, b],
    expect: { 0: a.map((x, i) => (x < b[i] ? 1 : 0)), 1: a.map((x, i) => (x < b[i] ? 0 : 1)) },
  });
}
{
  const i64 = dtypes.int64, r = UOp.range(8, 0);
  const a = BigInt64Array.from([1n, -5n, 2n ** 62n, -(2n ** 63n), 7n, 9n, -9n, 123456789012n]);
  const b = BigInt64Array.from([3n, 2n, 4n, -1n, 0n, -2n, 2n, 1000n]);
  const A = ld(g(2, 8, i64), r), B = ld(g(3, 8, i64), r);
  const w = (x: bigint) => BigInt.asIntN(64, x);
  cases.push({
    title: "int64 through BigInt: wrapping multiply, truncating division",
    sink: UOp.sink(
      end(st(g(0, 8, i64), r, A.mul(B).add(A)), r),
      end(st(g(1, 8, i64), r, A.idiv(B)), r),
    ),
    bufs: [new BigInt64Array(8), new BigInt64Array(8), a, b],
    expect: {
      0: a.map((x, i) => w(x * b[i] + x)),
      1: a.map((x, i) => (b[i] === 0n ? 0n : w(x / b[i]))),
    },
  });
}
{
  const u32 = dtypes.uint32, r = UOp.range(8, 0);
  const a = Uint32Array.from([1, 2 ** 32 - 1, 2 ** 31, 7, 100, 0, 65536, 3]);
  const b = Uint32Array.from([2, 2, 3, 0, 7, 5, 65536, 2 ** 32 - 1]);
  const A = ld(g(1, 8, u32), r), B = ld(g(2, 8, u32), r);
  cases.push({
    title: "uint32 wraps and divides unsigned",
    sink: UOp.sink(end(st(g(0, 8, u32), r, A.mul(B).add(A.idiv(B))), r)),
    bufs: [new Uint32Array(8), a, b],
    expect: {
      0: a.map((x, i) =>
        Number(
          BigInt.asUintN(32, BigInt(x) * BigInt(b[i]) + (b[i] ? BigInt(x) / BigInt(b[i]) : 0n)),
        )
      ),
    },
  });
}
{
  const r = UOp.range(8, 0), a = Float32Array.from([1.5, -1.5, 2.7, -2.7, 1e9, -0.2, 3, 100.9]);
  cases.push({
    title: "casts between float and int",
    sink: UOp.sink(
      end(st(g(0, 8, i32), r, ld(g(2, 8), r).cast(i32)), r),
      end(st(g(1, 8), r, ld(g(2, 8), r).cast(i32).cast(f32).mul(0.5)), r),
    ),
    bufs: [new Int32Array(8), new Float32Array(8), a],
    expect: { 0: a.map((x) => Math.trunc(x)), 1: a.map((x) => fr(Math.trunc(x) * 0.5)) },
  });
}

// ---- JS ----

function runJs(p: ProgramSpec, bufs: TypedArray[], vars: number[] = []): TypedArray[] {
  const fn = new Function(`"use strict";\n${p.src}\nreturn ${p.name};`)();
  const copies = bufs.map((b) => b.slice());
  fn(...copies, ...vars);
  return copies;
}

function assertClose(
  got: ArrayLike<number | bigint>,
  want: ArrayLike<number | bigint>,
  tol: number,
  what: string,
) {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const x = got[i], y = want[i];
    if (typeof x === "bigint" || typeof y === "bigint" || tol === 0) {
      assert.ok(Object.is(x, y) || (x === y), `${what}[${i}]: got ${x}, want ${y}`);
    } else {
      const ok = Math.abs(x - y) <= tol * Math.max(1, Math.abs(y)) ||
        (Number.isNaN(x) && Number.isNaN(y));
      assert.ok(ok, `${what}[${i}]: got ${x}, want ${y} (tol ${tol})`);
    }
  }
}

for (const c of cases) {
  Deno.test(`JS kernel: ${c.title}`, () => {
    const p = toProgram(c.sink, "js");
    const out = runJs(p, c.bufs, c.vars);
    for (const [slot, want] of Object.entries(c.expect)) {
      // the JS kernel follows the reference's rounding step by step: exact, even for exp2
      assertClose(out[Number(slot)], want, c.tol ? 1e-7 : 0, `${p.name} data${slot}`);
    }
  });
}

// ---- C ----

async function clangCheck(src: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "tg-render-test-" });
  try {
    await Deno.writeTextFile(`${dir}/k.c`, src);
    const out = await new Deno.Command("clang", {
      args: [
        "-fsyntax-only",
        "-Werror=implicit-function-declaration",
        "-Wall",
        "-Wno-unknown-pragmas",
        `${dir}/k.c`,
      ],
      stderr: "piped",
    }).output();
    return out.success ? "" : new TextDecoder().decode(out.stderr) || "failed";
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const haveClang = (() => {
  try {
    return new Deno.Command("clang", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "C kernels of every case compile with clang -fsyntax-only",
  ignore: !haveClang,
  fn: async () => {
    const res = await Promise.all(cases.map(async (c) => {
      const p = toProgram(c.sink, "c");
      return [c.title, p.src, await clangCheck(p.src)] as const;
    }));
    for (const [title, src, err] of res) assert.equal(err, "", `${title}:\n${src}\n${err}`);
  },
});

// The CPU runtime is written in parallel: run the C kernels through it when it loads here.
async function cpuDevice() {
  try {
    const { CpuDevice } = await import("../src/runtime/cpu.ts");
    const cacheDir = await Deno.makeTempDir({ prefix: "tg-render-cache-" });
    return { dev: new CpuDevice({ cacheDir }), cacheDir };
  } catch (e) {
    console.log(`skipping C runs: CPU runtime unavailable (${(e as Error).message})`);
    return null;
  }
}

Deno.test({
  name: "C kernels run through the CPU runtime give the JS kernels' answers",
  ignore: !haveClang,
  fn: async () => {
    const cpu = await cpuDevice();
    if (!cpu) return;
    try {
      for (const c of cases) {
        const p = toProgram(c.sink, "c");
        const prog = cpu.dev.compile(p);
        const mems = c.bufs.map((b) => {
          const m = cpu.dev.allocator.alloc(b.byteLength);
          cpu.dev.allocator.copyin(m, new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
          return m;
        });
        prog.run(mems, c.vars ?? []);
        const js = runJs(toProgram(c.sink, "js"), c.bufs, c.vars);
        for (const slot of Object.keys(c.expect).map(Number)) {
          const bytes = cpu.dev.allocator.copyout(mems[slot]);
          const C = c.bufs[slot].constructor as new (b: ArrayBuffer) => TypedArray;
          const got = new C(bytes.buffer as ArrayBuffer);
          assertClose(got, js[slot], c.tol ?? 0, `${c.title}: C vs JS data${slot}`);
        }
      }
    } finally {
      await Deno.remove(cpu.cacheDir, { recursive: true });
    }
  },
});
