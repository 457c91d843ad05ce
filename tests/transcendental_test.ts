// The C target's EXP2/LOG2 decomposition (src/codegen/transcendental.ts) run on the CPU device
// against float64 Math over dense sweeps and the special values, in ulps of the float32 result.
import assert from "node:assert/strict";
import { dtypes } from "../src/dtype.ts";
import { Tensor } from "../src/tensor.ts";
import { toProgram } from "../src/codegen/index.ts";
import { seededRandom } from "./support/fixtures.ts";

/** the distance of `got` from the exact `want` in units of the float32 spacing at want */
function ulps(got: number, want: number): number {
  const w = Math.fround(want), a = Math.abs(w);
  if (Object.is(got, w) || (Number.isNaN(got) && Number.isNaN(w))) return 0;
  // past the largest float32 the result must be inf, exactly
  if (!Number.isFinite(got) || !Number.isFinite(w)) return Infinity;
  // the float32 spacing at |w|: 2^(exponent-23), never below the least denormal 2^-149
  const spacing = a < 2 ** -126 ? 2 ** -149 : 2 ** (Math.floor(Math.log2(a)) - 23);
  return Math.abs(got - want) / spacing;
}

function run(xs: Float32Array, f: (t: Tensor) => Tensor): Float32Array {
  return f(Tensor.from(xs, { device: "CPU" })).dataSync() as Float32Array;
}

/** the worst ulp error over `xs`, and where */
function worst(xs: Float32Array, got: Float32Array, ref: (x: number) => number) {
  let max = 0, at = NaN;
  for (let i = 0; i < xs.length; i++) {
    const e = ulps(got[i], ref(xs[i]));
    if (e > max) max = e, at = xs[i];
  }
  return { max, at };
}

Deno.test("exp2 on the CPU is within 2 ulp of 2^x over [-151, 129] and exact on integers", () => {
  const n = 300_000, xs = new Float32Array(n + 281);
  for (let i = 0; i < n; i++) xs[i] = -151 + (280 * i) / n;
  for (let k = 0; k <= 280; k++) xs[n + k] = -151 + k;
  const got = run(xs, (t) => t.exp2());
  const { max, at } = worst(xs, got, (x) => 2 ** x);
  assert.ok(max <= 2, `exp2: ${max.toFixed(2)} ulp at x=${at}`);
  for (let k = 0; k <= 280; k++) {
    const x = -151 + k;
    assert.equal(got[n + k], Math.fround(2 ** x), `exp2(${x})`);
  }
});

Deno.test("exp2 on the CPU: inf, -inf, NaN, overflow to inf, underflow through denormals to 0", () => {
  const xs = Float32Array.from([
    Infinity,
    -Infinity,
    NaN,
    128,
    200,
    3e38,
    -149,
    -149.5,
    -150,
    -200,
  ]);
  const got = [...run(xs, (t) => t.exp2())];
  assert.deepEqual(got.slice(0, 2), [Infinity, 0]);
  assert.ok(Number.isNaN(got[2]), `exp2(NaN) = ${got[2]}`);
  assert.deepEqual(got.slice(3), [Infinity, Infinity, Infinity, 2 ** -149, 2 ** -149, 0, 0]);
});

Deno.test("log2 on the CPU is within 3 ulp over random positive floats, denormals included", () => {
  const rand = seededRandom(7), n = 200_000, bits = new Uint32Array(n);
  // uniform over bit patterns: every binade from the denormals to the largest float
  for (let i = 0; i < n; i++) bits[i] = Math.floor(rand() * 0x7f800000);
  const xs = new Float32Array(bits.buffer);
  const got = run(xs, (t) => t.log2());
  const { max, at } = worst(xs, got, Math.log2);
  assert.ok(max <= 3, `log2: ${max.toFixed(2)} ulp at x=${at}`);
  // near 1, where log2 is small and a relative error shows most
  const near = new Float32Array(20_000).map((_, i) => 0.75 + i * 2.5e-5);
  const g2 = run(near, (t) => t.log2());
  const w2 = worst(near, g2, Math.log2);
  assert.ok(w2.max <= 3, `log2 near 1: ${w2.max.toFixed(2)} ulp at x=${w2.at}`);
});

Deno.test("log2 on the CPU: exact powers of two, 0 and -0 to -inf, negatives and NaN to NaN", () => {
  const xs = Float32Array.from([
    1,
    2,
    0.5,
    2 ** 100,
    2 ** -149,
    0,
    -0,
    Infinity,
    -1,
    -Infinity,
    NaN,
  ]);
  const got = [...run(xs, (t) => t.log2())];
  assert.deepEqual(got.slice(0, 8), [0, 1, -1, 100, -149, -Infinity, -Infinity, Infinity]);
  for (const [i, v] of got.slice(8).entries()) assert.ok(Number.isNaN(v), `log2(${xs[8 + i]})`);
});

Deno.test("exp, log and softmax on the CPU match the JS device", () => {
  const rand = seededRandom(3);
  const data = Float32Array.from({ length: 64 * 300 }, () => (rand() - 0.5) * 40);
  const on = (dev: string) => Tensor.from(data, { device: dev }).reshape([64, 300]);
  for (
    const [name, f] of [
      ["exp", (t: Tensor) => t.exp()],
      ["log", (t: Tensor) => t.abs().log()],
      ["softmax", (t: Tensor) => t.softmax(-1)],
      ["logSoftmax", (t: Tensor) => t.logSoftmax(-1)],
    ] as const
  ) {
    const c = f(on("CPU")).dataSync() as Float32Array, j = f(on("JS")).dataSync() as Float32Array;
    for (let i = 0; i < c.length; i++) {
      const tol = 1e-6 + 2e-6 * Math.abs(j[i]);
      assert.ok(Math.abs(c[i] - j[i]) <= tol, `${name}[${i}]: CPU ${c[i]} vs JS ${j[i]}`);
    }
  }
});

Deno.test("the C kernel of exp has no libm call; float64 keeps it; JS keeps its native exp2", () => {
  const ast = (dt: typeof dtypes.float32) =>
    Tensor.from([1, 2, 3], { dtype: dt, device: "CPU" }).exp().schedule().at(-1)!.ast;
  const c32 = toProgram(ast(dtypes.float32), "c").src;
  assert.ok(!/exp2/.test(c32), c32);
  assert.match(toProgram(ast(dtypes.float64), "c").src, /__builtin_exp2\(/);
  assert.doesNotMatch(toProgram(ast(dtypes.float32), "js").src, /bitcast|12582912/i);
  const c16 = toProgram(ast(dtypes.float16), "c").src;
  assert.ok(!/exp2/.test(c16), c16);
});
