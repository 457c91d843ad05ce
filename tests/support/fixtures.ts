// Loading the numpy reference fixtures (tests/fixtures/*.json, written by generate.py) and
// comparing results with dtype-aware tolerances. Used by ops_test.ts and crossdevice_fuzz_test.ts.
import { AssertionError } from "node:assert/strict";

/** a number, boolean, or one of the strings JSON needs for IEEE specials */
export type FixtureScalar = number | boolean | "nan" | "inf" | "-inf";
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
/** a movement op applied to an input before the op under test: [name, ...args] */
export type ViewOp = [string, ...Json[]];

export interface FixtureArray {
  dtype: string;
  shape: number[];
  data: FixtureScalar[];
  view?: ViewOp[];
}

export type TolClass = "exact" | "default" | "transcendental" | "accum";

export interface FixtureCase {
  op: string;
  name: string;
  inputs: FixtureArray[];
  args: Json[];
  expected: FixtureArray[];
  tol?: TolClass;
}

export interface FixtureFile {
  group: string;
  seed: number;
  numpy: string;
  cases: FixtureCase[];
}

const FIXTURE_DIR = new URL("../fixtures/", import.meta.url);

/** every fixture file, sorted by group name; throws with the fix if none were generated */
export async function loadFixtures(): Promise<FixtureFile[]> {
  const files: FixtureFile[] = [];
  for await (const e of Deno.readDir(FIXTURE_DIR)) {
    if (!e.isFile || !e.name.endsWith(".json")) continue;
    const doc = JSON.parse(await Deno.readTextFile(new URL(e.name, FIXTURE_DIR))) as FixtureFile;
    if (!Array.isArray(doc.cases)) throw new Error(`fixture ${e.name}: no "cases" array`);
    files.push(doc);
  }
  if (files.length === 0) {
    throw new Error(`no fixtures in ${FIXTURE_DIR.pathname}: run \`deno task fixtures\``);
  }
  return files.sort((a, b) => a.group.localeCompare(b.group));
}

export function decodeScalar(v: FixtureScalar): number | boolean {
  if (v === "nan") return NaN;
  if (v === "inf") return Infinity;
  if (v === "-inf") return -Infinity;
  return v;
}

/** the plain JS values of a fixture array (booleans stay booleans, specials become numbers) */
export function decodeData(a: FixtureArray): (number | boolean)[] {
  return a.data.map(decodeScalar);
}

/** a result to compare: what a tensor gives back, or a fixture's expectation */
export interface Result {
  shape: readonly number[];
  dtype: string;
  data: ArrayLike<number | bigint | boolean>;
}

export function fixtureResult(a: FixtureArray): Result {
  return { shape: a.shape, dtype: a.dtype, data: decodeData(a) };
}

export interface Tolerance {
  rtol: number;
  atol: number;
}

const FLOAT_TOL: Record<string, Record<Exclude<TolClass, "exact">, Tolerance>> = {
  float32: {
    default: { rtol: 1e-5, atol: 1e-6 },
    transcendental: { rtol: 1e-4, atol: 1e-5 },
    // sums of a few dozen terms: the order of additions differs between devices
    accum: { rtol: 1e-4, atol: 1e-5 },
  },
  float16: {
    default: { rtol: 1e-2, atol: 1e-3 },
    transcendental: { rtol: 2e-2, atol: 2e-3 },
    accum: { rtol: 2e-2, atol: 1e-2 },
  },
  float64: {
    default: { rtol: 1e-12, atol: 1e-14 },
    transcendental: { rtol: 1e-7, atol: 1e-9 },
    accum: { rtol: 1e-10, atol: 1e-12 },
  },
};
FLOAT_TOL.bfloat16 = {
  default: { rtol: 1e-2, atol: 1e-2 },
  transcendental: { rtol: 2e-2, atol: 2e-2 },
  accum: { rtol: 2e-2, atol: 2e-2 },
};

/** null: the values must be equal (ints, bools, and floats in "exact" cases) */
export function toleranceFor(dtype: string, tol: TolClass = "default"): Tolerance | null {
  const t = FLOAT_TOL[dtype];
  if (!t || tol === "exact") return null;
  return t[tol];
}

/** `x` rounded to a float dtype, so a fixture's shortest decimal becomes the dtype's value */
function roundTo(dtype: string, x: number): number {
  if (dtype === "float32") return Math.fround(x);
  if (dtype === "float16") return Math.f16round(x);
  return x;
}

function toNumber(v: number | bigint | boolean): number {
  return typeof v === "number" ? v : Number(v);
}

export function fmtShape(s: readonly number[]): string {
  return `[${s.join(", ")}]`;
}

/** the multi-dimensional index of flat position `i` in row-major `shape` */
export function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length).fill(0);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = shape[d] === 0 ? 0 : i % shape[d];
    i = shape[d] === 0 ? 0 : Math.floor(i / shape[d]);
  }
  return idx;
}

function preview(data: ArrayLike<number | bigint | boolean>, n = 8): string {
  const items = Array.from({ length: Math.min(n, data.length) }, (_, i) => String(data[i]));
  return `[${items.join(", ")}${data.length > n ? `, ... (${data.length})` : ""}]`;
}

/**
 * Throws an AssertionError unless `actual` matches `expected`: same shape, same dtype name, and
 * values within the dtype's tolerance (NaN only where expected has NaN, infinities equal).
 * `context` leads the message: say the op, the device, and the inputs' shapes/dtypes.
 * `tol` is a class looked up per dtype, or explicit bounds (used for float dtypes only).
 */
export function assertClose(
  actual: Result,
  expected: Result,
  context: string,
  tol: TolClass | Tolerance = "default",
): void {
  const fail = (what: string): never => {
    throw new AssertionError({
      message: `${context}\n  ${what}\n  actual   ${actual.dtype}${fmtShape(actual.shape)} ${
        preview(actual.data)
      }\n  expected ${expected.dtype}${fmtShape(expected.shape)} ${preview(expected.data)}`,
    });
  };
  if (
    actual.shape.length !== expected.shape.length ||
    actual.shape.some((d, i) => d !== expected.shape[i])
  ) {
    fail(`shape ${fmtShape(actual.shape)} != expected ${fmtShape(expected.shape)}`);
  }
  if (actual.dtype !== expected.dtype) fail(`dtype ${actual.dtype} != expected ${expected.dtype}`);
  const n = expected.shape.reduce((a, b) => a * b, 1);
  if (actual.data.length !== n || expected.data.length !== n) {
    fail(
      `element count: actual ${actual.data.length}, expected ${expected.data.length}, shape ${n}`,
    );
  }
  const t = typeof tol === "object"
    ? (FLOAT_TOL[expected.dtype] ? tol : null)
    : toleranceFor(expected.dtype, tol);
  let maxAbs = 0;
  let firstBad = -1;
  let badWhy = "";
  let bad = 0;
  for (let i = 0; i < n; i++) {
    const a = toNumber(actual.data[i]);
    const e = roundTo(expected.dtype, toNumber(expected.data[i]));
    let ok: boolean;
    if (Number.isNaN(e) || Number.isNaN(a)) {
      ok = Number.isNaN(e) && Number.isNaN(a);
    } else if (!Number.isFinite(e) || !Number.isFinite(a) || t === null) {
      ok = a === e;
    } else {
      const err = Math.abs(a - e);
      maxAbs = Math.max(maxAbs, err);
      ok = err <= t.atol + t.rtol * Math.abs(e);
    }
    if (!ok) {
      bad++;
      if (firstBad < 0) {
        firstBad = i;
        badWhy = `actual ${a} vs expected ${e}`;
      }
    }
  }
  if (firstBad >= 0) {
    const tolText = t ? `rtol ${t.rtol}, atol ${t.atol}` : "exact";
    fail(
      `${bad}/${n} elements differ (${tolText}); max abs error ${maxAbs}; first at flat ${firstBad} ` +
        `index ${fmtShape(unravel(firstBad, expected.shape))}: ${badWhy}`,
    );
  }
}

/** a short description of inputs for failure messages: "float32[2, 3] view=permute, int32[3]" */
export function describeInputs(inputs: FixtureArray[]): string {
  if (inputs.length === 0) return "no tensor inputs";
  return inputs.map((a) =>
    `${a.dtype}${fmtShape(a.shape)}${
      a.view ? ` view=${a.view.map((v) => `${v[0]}(${JSON.stringify(v.slice(1))})`).join(".")}` : ""
    }`
  ).join(", ");
}

/** mulberry32: a small seeded PRNG, so fuzz cases are the same on every run */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
