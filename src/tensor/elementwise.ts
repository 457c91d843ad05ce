// Elementwise math as compositions of the IR's ALU ops (tinygrad's elementwise mixin, in spirit):
// the IR has EXP2/LOG2/SIN/SQRT/RECIPROCAL/TRUNC, everything else is built from them.
import { type DType, dtypes, leastUpperDType, toFloat } from "../dtype.ts";
import { Ops, UOp } from "../uop/ops.ts";
import { Tensor, type TensorLike } from "../tensor.ts";
import {
  alu,
  broadcastAll,
  checkValue,
  fullOf,
  jsDType,
  lift,
  matchAll,
  operands,
} from "./broadcast.ts";

/** the tensor in its float dtype (ints and bools become default_float) */
export const float = (x: Tensor): Tensor => x.cast(toFloat(x.dtype));

function noBool(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    if (t.dtype === dtypes.bool) {
      throw new Error(`${op}: not supported on bool tensors; cast to an int or float dtype first`);
    }
  }
}

// ---- arithmetic ----

export function add(x: Tensor, y: TensorLike, reverse = false): Tensor {
  return alu(Ops.ADD, ...operands("add", x, y, reverse));
}
export function mul(x: Tensor, y: TensorLike, reverse = false): Tensor {
  return alu(Ops.MUL, ...operands("mul", x, y, reverse));
}
export function sub(x: Tensor, y: TensorLike, reverse = false): Tensor {
  const [a, b] = operands("sub", x, y, reverse);
  noBool("sub", a);
  return alu(Ops.ADD, a, alu(Ops.NEG, b));
}
export function neg(x: Tensor): Tensor {
  return x.dtype === dtypes.bool ? logicalNot(x) : alu(Ops.NEG, x);
}
/** true division: ints and bools divide as default_float */
export function div(x: Tensor, y: TensorLike, reverse = false): Tensor {
  const [a, b] = operands("div", x, y, reverse);
  const ft = toFloat(a.dtype);
  return alu(Ops.MUL, a.cast(ft), alu(Ops.RECIPROCAL, b.cast(ft)));
}
export function reciprocal(x: Tensor): Tensor {
  return alu(Ops.RECIPROCAL, float(x));
}
export function square(x: Tensor): Tensor {
  return mul(x, x);
}

/** floor division on ints (built from C-style IDIV/MOD); floor(x/y) on floats */
export function idiv(x: Tensor, y: TensorLike, reverse = false): Tensor {
  const [a, b] = operands("idiv", x, y, reverse);
  noBool("idiv", a);
  if (a.dtype.isFloat) return floor(div(a, b));
  const q = alu(Ops.IDIV, a, b);
  if (a.dtype.isUnsigned) return q;
  return where(floorFix(a, b), sub(q, 1), q);
}
/** remainder with the divisor's sign (Python's %) */
export function mod(x: Tensor, y: TensorLike, reverse = false): Tensor {
  const [a, b] = operands("mod", x, y, reverse);
  noBool("mod", a);
  if (a.dtype.isFloat) return sub(a, mul(b, floor(div(a, b))));
  const r = alu(Ops.MOD, a, b);
  if (a.dtype.isUnsigned) return r;
  return where(floorFix(a, b), add(r, b), r);
}
/** where truncating division differs from flooring: a nonzero remainder whose sign differs from b's */
function floorFix(a: Tensor, b: Tensor): Tensor {
  const r = alu(Ops.MOD, a, b);
  return bitwiseAnd(ne(r, 0), ne(lt(r, 0), lt(b, 0)));
}

export function maximum(x: Tensor, y: TensorLike): Tensor {
  return alu(Ops.MAX, ...operands("maximum", x, y));
}
export function minimum(x: Tensor, y: TensorLike): Tensor {
  const [a, b] = operands("minimum", x, y);
  return inverse(alu(Ops.MAX, inverse(a), inverse(b)));
}
/** an order-reversing bijection of the dtype, so that min(x) = inverse(max(inverse(x))) */
export function inverse(x: Tensor): Tensor {
  if (x.dtype.isFloat) return alu(Ops.NEG, x);
  if (x.dtype === dtypes.bool) return logicalNot(x);
  return alu(Ops.XOR, x, fullOf(x, -1)); // ~x: -x-1 for signed, max-x for unsigned
}

/** x ** y: exact repeated multiplication for small integer exponents, else exp2(y*log2|x|) */
export function pow(x: Tensor, y: TensorLike): Tensor {
  checkValue("pow", y);
  if (typeof y === "boolean") y = y ? 1 : 0;
  if (typeof y === "number" && Number.isInteger(y) && Math.abs(y) <= 64) {
    if (y < 0) return reciprocal(pow(x, -y));
    let result: Tensor | null = null, base = x;
    for (let e = y; e > 0; e = Math.floor(e / 2)) {
      if (e & 1) result = result ? mul(result, base) : base;
      if (e > 1) base = mul(base, base);
    }
    return result ?? fullOf(x, 1);
  }
  if (typeof y === "number" && y === 0.5) return sqrt(x);
  const [a, b] = operands("pow", x, y);
  const ft = toFloat(a.dtype), fa = a.cast(ft), fb = b.cast(ft);
  const mag = exp2(mul(fb, log2(abs(fa))));
  // a negative base has a real power only for integer exponents: odd ones keep the sign
  const isInt = eq(trunc(fb), fb);
  const odd = ne(mod(fb, 2), 0);
  const sign = where(lt(fa, 0), where(isInt, where(odd, -1, 1), NaN), 1).cast(ft);
  const r = where(eq(fb, 0), 1, mul(mag, sign));
  return a.dtype.isFloat ? r : round(r).cast(a.dtype);
}

// ---- transcendental ----

export function exp2(x: Tensor): Tensor {
  return alu(Ops.EXP2, float(x));
}
export function log2(x: Tensor): Tensor {
  return alu(Ops.LOG2, float(x));
}
export function exp(x: Tensor): Tensor {
  return exp2(mul(float(x), Math.LOG2E));
}
export function log(x: Tensor): Tensor {
  return mul(log2(x), Math.LN2);
}
export function sqrt(x: Tensor): Tensor {
  return alu(Ops.SQRT, float(x));
}
export function rsqrt(x: Tensor): Tensor {
  return alu(Ops.RECIPROCAL, sqrt(x));
}
export function sin(x: Tensor): Tensor {
  return alu(Ops.SIN, float(x));
}
export function cos(x: Tensor): Tensor {
  return sin(sub(float(x), Math.PI / 2, true));
}
export function tan(x: Tensor): Tensor {
  return div(sin(x), cos(x));
}
export function sigmoid(x: Tensor): Tensor {
  // exp of -|x| only: neither the value nor its gradient overflows for large |x|
  const f = float(x);
  const e = exp2(mul(abs(f), -Math.LOG2E));
  const r = reciprocal(add(e, 1));
  return where(ge(f, 0), r, mul(e, r));
}
export function tanh(x: Tensor): Tensor {
  return sub(mul(sigmoid(mul(float(x), 2)), 2), 1);
}
/** Abramowitz and Stegun 7.1.26 (max error 1.5e-7), as tinygrad */
export function erf(x: Tensor): Tensor {
  const f = float(x);
  const t = reciprocal(add(mul(abs(f), 0.3275911), 1));
  let poly = fullOf(t, 1.061405429);
  for (const c of [-1.453152027, 1.421413741, -0.284496736, 0.254829592]) {
    poly = add(mul(poly, t), c);
  }
  return mul(sign(f), sub(mul(mul(t, poly), exp(neg(square(f)))), 1, true));
}

// ---- activations ----

export function relu(x: Tensor): Tensor {
  return where(gt(x, 0), x, 0);
}
export function leakyRelu(x: Tensor, negSlope = 0.01): Tensor {
  return where(lt(x, 0), mul(x, negSlope), x);
}
/** the tanh approximation (tinygrad's gelu) */
export function gelu(x: Tensor): Tensor {
  const f = float(x);
  const inner = mul(mul(f, 0.7978845608), add(mul(square(f), 0.044715), 1));
  return mul(mul(f, 0.5), add(tanh(inner), 1));
}
export function quickGelu(x: Tensor): Tensor {
  return mul(x, sigmoid(mul(x, 1.702)));
}
export function silu(x: Tensor): Tensor {
  return mul(x, sigmoid(x));
}
/** log(1 + exp(beta*x)) / beta, linear past beta*x > 20 where exp would overflow */
export function softplus(x: Tensor, beta = 1): Tensor {
  const bx = mul(float(x), beta);
  return where(gt(bx, 20), float(x), div(log(add(exp(bx), 1)), beta));
}
export function logsigmoid(x: Tensor): Tensor {
  return neg(softplus(neg(float(x))));
}
export function elu(x: Tensor, alpha = 1): Tensor {
  return sub(relu(x), mul(relu(sub(exp(x), 1, true)), alpha));
}

// ---- rounding and sign ----

export function trunc(x: Tensor): Tensor {
  return x.dtype.isFloat ? alu(Ops.TRUNC, x) : x;
}
export function floor(x: Tensor): Tensor {
  if (!x.dtype.isFloat) return x;
  const t = trunc(x);
  return where(gt(t, x), sub(t, 1), t);
}
export function ceil(x: Tensor): Tensor {
  if (!x.dtype.isFloat) return x;
  const t = trunc(x);
  return where(lt(t, x), add(t, 1), t);
}
/** round half to even, as numpy and tinygrad */
export function round(x: Tensor): Tensor {
  if (!x.dtype.isFloat) return x;
  const f = floor(x), d = sub(x, f);
  const even = eq(mul(floor(mul(f, 0.5)), 2), f);
  return where(gt(d, 0.5), add(f, 1), where(lt(d, 0.5), f, where(even, f, add(f, 1))));
}
export function abs(x: Tensor): Tensor {
  if (x.dtype === dtypes.bool || x.dtype.isUnsigned) return x;
  return where(lt(x, 0), neg(x), x);
}
/** -1, 0 or 1 (NaN stays NaN) */
export function sign(x: Tensor): Tensor {
  if (x.dtype === dtypes.bool) return x;
  const s = where(ne(x, 0), where(lt(x, 0), fullOf(x, -1), fullOf(x, 1)), fullOf(x, 0));
  return x.dtype.isFloat ? add(s, mul(x, 0)) : s;
}
export function clamp(x: Tensor, min?: TensorLike, max?: TensorLike): Tensor {
  if (min === undefined && max === undefined) {
    throw new Error("clamp: give at least one of min and max (skip one with undefined)");
  }
  let r = x;
  if (min !== undefined) r = maximum(r, min);
  if (max !== undefined) r = minimum(r, max);
  return r;
}
export function lerp(x: Tensor, end: TensorLike, weight: TensorLike): Tensor {
  return add(x, mul(sub(lift("lerp", x, end), x), weight));
}

// ---- selection ----

/** cond ? a : b; cond is cast to bool, a and b promote like a binary op */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  checkValue("where", a);
  checkValue("where", b);
  let at: Tensor, bt: Tensor;
  if (a instanceof Tensor) {
    at = a;
    bt = lift("where", a, b);
  } else if (b instanceof Tensor) {
    bt = b;
    at = lift("where", b, a);
  } else {
    const dt: DType = leastUpperDType(jsDType(a), jsDType(b));
    at = new Tensor(UOp.const(dt, a), cond.device);
    bt = new Tensor(UOp.const(dt, b), cond.device);
  }
  const dt = leastUpperDType(at.dtype, bt.dtype);
  const [c, x, y] = broadcastAll("where", [cond.cast(dtypes.bool), at.cast(dt), bt.cast(dt)]);
  return alu(Ops.WHERE, c, x, y);
}

// ---- comparisons (bool results) ----

export function lt(x: Tensor, y: TensorLike): Tensor {
  return alu(Ops.CMPLT, ...operands("lt", x, y));
}
export function gt(x: Tensor, y: TensorLike): Tensor {
  return alu(Ops.CMPLT, ...operands("gt", x, y, true));
}
export function eq(x: Tensor, y: TensorLike): Tensor {
  return alu(Ops.CMPEQ, ...operands("eq", x, y));
}
export function ne(x: Tensor, y: TensorLike): Tensor {
  return alu(Ops.CMPNE, ...operands("ne", x, y));
}
/** a <= b as (a < b) | (a == b), so that NaN compares false as in numpy */
export function le(x: Tensor, y: TensorLike): Tensor {
  const [a, b] = operands("le", x, y);
  return bitwiseOr(alu(Ops.CMPLT, a, b), alu(Ops.CMPEQ, a, b));
}
export function ge(x: Tensor, y: TensorLike): Tensor {
  const [a, b] = operands("ge", x, y);
  return bitwiseOr(alu(Ops.CMPLT, b, a), alu(Ops.CMPEQ, a, b));
}
export function logicalNot(x: Tensor): Tensor {
  const b = x.cast(dtypes.bool);
  return alu(Ops.CMPNE, b, fullOf(b, true));
}
export function isnan(x: Tensor): Tensor {
  return x.dtype.isFloat ? alu(Ops.CMPNE, x, x) : fullOf(x, false, dtypes.bool);
}
export function isinf(x: Tensor, detectPositive = true, detectNegative = true): Tensor {
  if (!x.dtype.isFloat) return fullOf(x, false, dtypes.bool);
  const pos = detectPositive ? eq(x, Infinity) : fullOf(x, false, dtypes.bool);
  return detectNegative ? bitwiseOr(pos, eq(x, -Infinity)) : pos;
}

// ---- bitwise (int and bool only) ----

function bitwise(op: string, u: Ops, x: Tensor, y: TensorLike): Tensor {
  const bad = x.dtype.isFloat || (y instanceof Tensor && y.dtype.isFloat) ||
    (typeof y === "number" && !Number.isInteger(y));
  if (bad) {
    throw new Error(
      `${op}: needs int or bool operands, got ${x.dtype.name} and ${
        y instanceof Tensor ? y.dtype.name : String(y)
      }; cast floats to an int dtype first`,
    );
  }
  return alu(u, ...operands(op, x, y));
}
export function bitwiseAnd(x: Tensor, y: TensorLike): Tensor {
  return bitwise("bitwiseAnd", Ops.AND, x, y);
}
export function bitwiseOr(x: Tensor, y: TensorLike): Tensor {
  return bitwise("bitwiseOr", Ops.OR, x, y);
}
export function bitwiseXor(x: Tensor, y: TensorLike): Tensor {
  return bitwise("bitwiseXor", Ops.XOR, x, y);
}
export function bitwiseNot(x: Tensor): Tensor {
  if (x.dtype.isFloat) {
    throw new Error(`bitwiseNot: needs an int or bool tensor, got ${x.dtype.name}`);
  }
  return x.dtype === dtypes.bool ? logicalNot(x) : inverse(x);
}
function shift(op: string, u: Ops, x: Tensor, y: TensorLike): Tensor {
  checkValue(op, y);
  if (!x.dtype.isInt) {
    throw new Error(`${op}: needs an int tensor, got ${x.dtype.name}`);
  }
  if (typeof y === "boolean" || (typeof y === "number" && (!Number.isInteger(y) || y < 0))) {
    throw new Error(`${op}: the shift must be a non-negative integer, got ${y}`);
  }
  if (y instanceof Tensor && !y.dtype.isInt) {
    throw new Error(`${op}: the shift must be an int tensor, got ${y.dtype.name}`);
  }
  const [a, b] = matchAll(op, [x, lift(op, x, y)], x.dtype);
  return alu(u, a, b);
}
export function lshift(x: Tensor, y: TensorLike): Tensor {
  return shift("lshift", Ops.SHL, x, y);
}
/** arithmetic shift for signed ints (floor division by 2**y) */
export function rshift(x: Tensor, y: TensorLike): Tensor {
  return shift("rshift", Ops.SHR, x, y);
}
