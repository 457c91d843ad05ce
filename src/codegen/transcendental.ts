// EXP2 and LOG2 as plain arithmetic for the C (CPU) target: libm's exp2f/log2f are calls that
// clang never vectorizes, so a softmax spent its time in scalar calls. Written with adds,
// multiplies, compares, selects, shifts and bitcasts, the loops vectorize.
//
// float32 only, to within 2 ulp (exp2) and 3 ulp (log2) of the exact result (tested in
// tests/transcendental_test.ts); float16/bfloat16 compute in float32 and round once, as the
// renderer did with exp2f; float64 keeps libm (a double polynomial would need twice the terms
// for a type the CPU benches do not use). Denormal results and inputs are exact (no flush).
import { dtypes } from "../dtype.ts";
import { Ops, UOp } from "../uop/ops.ts";
import { PatternMatcher, UPat } from "../uop/upat.ts";

const f32 = dtypes.float32, i32 = dtypes.int32;

/**
 * 2^f on [-0.5, 0.5], c0 = 1 so that 2^n is exact: the relative-error minimax fit (Lawson) of
 * degree 6, 2e-9 in exact arithmetic, 1.2 ulp with float32 Horner steps
 */
const EXP2_POLY = [
  1.0,
  0.6931471824645996,
  0.24022647738456726,
  0.055503323674201965,
  0.009618437848985195,
  0.0013398876180872321,
  0.00015353357593994588,
];

/**
 * log2(m) = s * P(s^2) with s = (m-1)/(m+1), m in [sqrt(1/2), sqrt(2)): 2/ln2 * atanh(s)/s
 * fitted on s^2 in [0, 0.0295] with degree 3 (relative error 7e-10)
 */
const LOG2_POLY = [2.885390043258667, 0.9617988467216492, 0.5767143964767456, 0.4317358434200287];

/** adding then subtracting 1.5*2^23 rounds |x| < 2^22 to the nearest integer (ties to even) */
const ROUND_MAGIC = 12582912;
/** the bits of ROUND_MAGIC: the bits of x + ROUND_MAGIC minus these are round(x) as an int */
const ROUND_MAGIC_BITS = 0x4b400000;
/** the bits of sqrt(1/2): a mantissa taken relative to it lands in [sqrt(1/2), sqrt(2)) */
const SQRT_HALF_BITS = 0x3f3504f3;
const MIN_NORMAL = 2 ** -126;

const c = (v: number, d = f32): UOp => UOp.const(d, v);

/** p(x) by Horner's rule, coefficients lowest power first */
function horner(x: UOp, coefs: readonly number[]): UOp {
  let p = c(coefs[coefs.length - 1]);
  for (let i = coefs.length - 2; i >= 0; i--) p = p.mul(x).add(c(coefs[i]));
  return p;
}

/** 2^n for an int32 n in [-126, 127], from its exponent bits */
const pow2i = (n: UOp): UOp => n.add(c(127, i32)).shl(c(23, i32)).bitcast(f32);

/** 2^x in float32 */
export function exp2f32(x: UOp): UOp {
  // clamped where the result is inf (2^130 > max) or 0 (2^-160 is below half the least
  // denormal); a NaN passes both selects unchanged and makes the fraction, so the result, NaN
  const hi = c(130), lo = c(-160);
  const a = x.lt(lo).where(lo, hi.lt(x).where(hi, x));
  const t = a.add(c(ROUND_MAGIC));
  const f = a.sub(t.sub(c(ROUND_MAGIC)));
  // the integer from the bits of the rounded sum: no float->int conversion (UB for NaN in C)
  const n = t.bitcast(i32).sub(c(ROUND_MAGIC_BITS, i32));
  // 2^n as two factors so that n in [-160, 130] needs no special case: p * 2^n1 is exact and
  // the second multiply rounds once, into the denormals or to inf where the result lies there
  const n1 = n.shr(c(1, i32)), n2 = n.sub(n1);
  return horner(f, EXP2_POLY).mul(pow2i(n1)).mul(pow2i(n2));
}

/** log2(x) in float32 */
export function log2f32(x: UOp): UOp {
  // denormals scaled into the normals first, their exponent corrected after
  const small = x.lt(c(MIN_NORMAL));
  const xs = small.where(x.mul(c(2 ** 23)), x);
  const b = xs.bitcast(i32).sub(c(SQRT_HALF_BITS, i32));
  const e = b.shr(c(23, i32)).cast(f32).add(small.where(c(-23), c(0)));
  const m = b.and(c(0x7fffff, i32)).add(c(SQRT_HALF_BITS, i32)).bitcast(f32);
  const s = m.sub(c(1)).fdiv(m.add(c(1)));
  const y = e.add(s.mul(horner(s.mul(s), LOG2_POLY)));
  // 0 < x is false for 0, negatives and NaN: log2(+-0) = -inf, the others NaN
  const finite = c(0).lt(x).where(y, x.eq(c(0)).where(c(-Infinity), c(NaN)));
  return x.eq(c(Infinity)).where(c(Infinity), finite);
}

const HALF_FLOATS = [dtypes.float16, dtypes.bfloat16];
const isC = (ctx: { lang?: string } | undefined): boolean => (ctx?.lang ?? "c") === "c";

/** EXP2 and LOG2 of float32 (and the 16-bit floats, through float32) into plain ops, C only */
export const pmTranscendental: PatternMatcher<{ lang?: string }> = new PatternMatcher<
  { lang?: string }
>([
  [
    new UPat({ op: Ops.EXP2, dtype: f32, src: [UPat.var("x")] }),
    (b, ctx) => isC(ctx) ? exp2f32(b.x) : undefined,
  ],
  [
    new UPat({ op: Ops.LOG2, dtype: f32, src: [UPat.var("x")] }),
    (b, ctx) => isC(ctx) ? log2f32(b.x) : undefined,
  ],
  [
    new UPat({ op: [Ops.EXP2, Ops.LOG2], dtype: HALF_FLOATS, name: "u" }),
    (b, ctx) =>
      isC(ctx) ? UOp.make(b.u.op, f32, [b.u.src[0].cast(f32)]).cast(b.u.dtype) : undefined,
  ],
]);
