// Random tensors: Threefry-2x32 (20 rounds) computed on the host from (seed, call counter,
// element index), uploaded as a buffer. Counter-based, so a seed gives the same tensors in order.
import { type DType, dtypes } from "../dtype.ts";
import { prod } from "../uop/ops.ts";
import type { Tensor, TensorOpts } from "../tensor.ts";
import { checkShape, toDType } from "./broadcast.ts";
import { toStorage, upload } from "./creation.ts";

let seed = 0;
let counter = 0;

export function manualSeed(s: number): void {
  if (!Number.isInteger(s)) throw new Error(`manualSeed: the seed must be an integer, got ${s}`);
  seed = s >>> 0;
  counter = 0;
}

const ROT = [13, 15, 26, 6, 17, 29, 16, 24];
const rotl = (x: number, r: number): number => ((x << r) | (x >>> (32 - r))) >>> 0;

/** Threefry-2x32-20 of the counter (c0, c1) under key (k0, k1); writes two words to out */
export function threefry2x32(
  k0: number,
  k1: number,
  c0: number,
  c1: number,
  out: Uint32Array,
): void {
  const ks = [k0 >>> 0, k1 >>> 0, (k0 ^ k1 ^ 0x1bd11bda) >>> 0];
  let x0 = (c0 + ks[0]) >>> 0, x1 = (c1 + ks[1]) >>> 0;
  for (let i = 0; i < 20; i++) {
    x0 = (x0 + x1) >>> 0;
    x1 = (rotl(x1, ROT[i % 8]) ^ x0) >>> 0;
    if (i % 4 === 3) {
      const s = (i + 1) / 4;
      x0 = (x0 + ks[s % 3]) >>> 0;
      x1 = (x1 + ks[(s + 1) % 3] + s) >>> 0;
    }
  }
  out[0] = x0;
  out[1] = x1;
}

/** n uniform 32-bit words for the next random call */
function words(n: number): Uint32Array {
  const call = counter++;
  const out = new Uint32Array(n + (n & 1));
  const pair = new Uint32Array(2);
  for (let i = 0; i < out.length; i += 2) {
    threefry2x32(seed, call, i >>> 1, 0, pair);
    out[i] = pair[0];
    out[i + 1] = pair[1];
  }
  return out.subarray(0, n);
}

/** uniforms in [0, 1) with 24 random bits each (exact in float32) */
function uniforms(n: number): Float64Array {
  const w = words(n);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (w[i] >>> 8) / 16777216;
  return out;
}

function floatDType(op: string, opts?: TensorOpts): DType {
  const dt = opts?.dtype !== undefined ? toDType(opts.dtype) : dtypes.default_float;
  if (!dt.isFloat) throw new Error(`${op}: needs a float dtype, got ${dt.name}`);
  return dt;
}

/** uniform in [0, 1) */
export function rand(shape: readonly number[], opts?: TensorOpts): Tensor {
  const s = checkShape("rand", shape);
  const dt = floatDType("rand", opts);
  const u = uniforms(prod(s));
  // rounding to a narrow float can reach 1.0: keep the interval half open
  const below1 = dt === dtypes.float16 ? 0.99951171875 : dt === dtypes.bfloat16 ? 0.99609375 : 1;
  if (below1 < 1) { for (let i = 0; i < u.length; i++) u[i] = Math.min(u[i], below1); }
  return upload(dt, toStorage(dt, u), s, opts);
}

/** standard normal (Box-Muller) */
export function randn(shape: readonly number[], opts?: TensorOpts): Tensor {
  const s = checkShape("randn", shape);
  const dt = floatDType("randn", opts);
  const n = prod(s);
  const u = uniforms(2 * n);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = Math.sqrt(-2 * Math.log(1 - u[2 * i])) * Math.cos(2 * Math.PI * u[2 * i + 1]);
  }
  return upload(dt, toStorage(dt, out), s, opts);
}

/** integers uniform in [low, high) */
export function randint(
  shape: readonly number[],
  low: number,
  high: number,
  opts?: TensorOpts,
): Tensor {
  const s = checkShape("randint", shape);
  if (!Number.isInteger(low) || !Number.isInteger(high) || high <= low) {
    throw new Error(`randint: need integers low < high, got low=${low}, high=${high}`);
  }
  const dt = opts?.dtype !== undefined ? toDType(opts.dtype) : dtypes.default_int;
  if (!dt.isInt) throw new Error(`randint: needs an int dtype, got ${dt.name}`);
  const u = uniforms(prod(s));
  const vals = Array.from(u, (x) => low + Math.floor(x * (high - low)));
  return upload(dt, toStorage(dt, vals), s, opts);
}
