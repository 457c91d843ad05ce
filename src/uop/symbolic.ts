// The symbolic simplifier: constant folding, identities, term collection, bounds folding and
// (in divmod.ts) div/mod folding, all as PatternMatcher rule lists.
import { allDTypes, canLosslessCast, castValue, type DType, dtypes } from "../dtype.ts";
import { type ConstValue, GroupOp, Ops, registerSimplifier, UOp } from "./ops.ts";
import { graphRewrite, PatternMatcher, type RuleFn, UPat } from "./upat.ts";
import { foldDivMod, foldLt, foldNe } from "./divmod.ts";

type Rule = [UPat, RuleFn<unknown>];

// ---- exact scalar semantics ----

/**
 * The value of `op` applied to constants, as generated kernels compute it: ints wrap to the
 * dtype, IDIV truncates toward zero and MOD takes the dividend's sign, floats round to the dtype.
 * `dtype` is the result's dtype. Undefined where the result is not a defined value (integer
 * division by zero, shifts past the width) or not exactly representable here (64-bit results
 * beyond 2^53), so callers never fold those.
 */
export function execAlu(
  op: Ops,
  dtype: DType,
  vals: readonly ConstValue[],
): ConstValue | undefined {
  const d = dtype.scalar();
  const a = Number(vals[0]), b = Number(vals[1]);
  switch (op) {
    case Ops.CMPLT:
      return a < b;
    case Ops.CMPNE:
      return a !== b;
    case Ops.CMPEQ:
      return a === b;
    case Ops.WHERE:
      return castOut(d, Number(vals[0]) !== 0 ? Number(vals[1]) : Number(vals[2]));
    case Ops.CAST:
      return castOut(d, a);
  }
  if (d === dtypes.bool) return boolAlu(op, a !== 0, b !== 0);
  if (d.isFloat) return floatAlu(op, d, a, b, Number(vals[2]));
  if (d.itemsize === 8) return int64Alu(op, d, vals.map(Number));
  return intAlu(op, d, a, b, Number(vals[2]));
}

const castOut = (d: DType, v: number): ConstValue => d === dtypes.bool ? v !== 0 : castValue(v, d);

function boolAlu(op: Ops, a: boolean, b: boolean): ConstValue | undefined {
  switch (op) {
    case Ops.AND:
    case Ops.MUL:
      return a && b;
    case Ops.OR:
    case Ops.ADD:
    case Ops.MAX:
      return a || b;
    case Ops.XOR:
      return a !== b;
  }
  return undefined;
}

function floatAlu(op: Ops, d: DType, a: number, b: number, c: number): number | undefined {
  let r: number;
  switch (op) {
    case Ops.ADD:
      r = a + b;
      break;
    case Ops.SUB:
      r = a - b;
      break;
    case Ops.MUL:
      r = a * b;
      break;
    case Ops.FDIV:
      r = a / b;
      break;
    case Ops.MAX:
      // C's max of a NaN depends on how the backend spells max: leave it unfolded
      if (Number.isNaN(a) || Number.isNaN(b)) return undefined;
      r = Math.max(a, b);
      break;
    case Ops.NEG:
      r = -a;
      break;
    case Ops.EXP2:
      r = 2 ** a;
      break;
    case Ops.LOG2:
      r = Math.log2(a);
      break;
    case Ops.SIN:
      r = Math.sin(a);
      break;
    case Ops.SQRT:
      r = Math.sqrt(a);
      break;
    case Ops.RECIPROCAL:
      r = 1 / a;
      break;
    case Ops.TRUNC:
      r = Math.trunc(a);
      break;
    case Ops.POW:
      r = a ** b;
      break;
    case Ops.MULACC:
      r = a * b + c;
      break;
    default:
      return undefined;
  }
  return castValue(r, d);
}

function intAlu(op: Ops, d: DType, a: number, b: number, c: number): number | undefined {
  const bits = d.bitsize;
  let r: number;
  switch (op) {
    case Ops.ADD:
      r = a + b;
      break;
    case Ops.SUB:
      r = a - b;
      break;
    // Math.imul keeps the low 32 bits exactly; a plain product of two 32-bit values may not
    case Ops.MUL:
      r = bits === 32 ? Math.imul(a, b) : a * b;
      break;
    case Ops.MULACC:
      r = (bits === 32 ? Math.imul(a, b) : a * b) + c;
      break;
    case Ops.NEG:
      r = -a;
      break;
    case Ops.IDIV:
      if (b === 0) return undefined;
      r = Math.trunc(a / b);
      break;
    case Ops.MOD:
      if (b === 0) return undefined;
      r = a % b;
      break;
    case Ops.MAX:
      r = Math.max(a, b);
      break;
    case Ops.AND:
      r = a & b;
      break;
    case Ops.OR:
      r = a | b;
      break;
    case Ops.XOR:
      r = a ^ b;
      break;
    case Ops.SHL:
      if (b < 0 || b >= bits) return undefined;
      r = a << b;
      break;
    case Ops.SHR:
      if (b < 0 || b >= bits) return undefined;
      r = d.isUnsigned ? a >>> b : a >> b;
      break;
    case Ops.TRUNC:
      r = a;
      break;
    case Ops.POW:
      if (b < 0) return undefined;
      r = a ** b;
      if (!Number.isSafeInteger(r)) return undefined;
      break;
    default:
      return undefined;
  }
  return castValue(r, d);
}

function int64Alu(op: Ops, d: DType, v: number[]): number | undefined {
  if (!v.every(Number.isSafeInteger)) return undefined;
  const a = BigInt(v[0]), b = v.length > 1 ? BigInt(v[1]) : 0n;
  let r: bigint;
  switch (op) {
    case Ops.ADD:
      r = a + b;
      break;
    case Ops.SUB:
      r = a - b;
      break;
    case Ops.MUL:
      r = a * b;
      break;
    case Ops.MULACC:
      r = a * b + BigInt(v[2]);
      break;
    case Ops.NEG:
      r = -a;
      break;
    case Ops.IDIV:
      if (b === 0n) return undefined;
      r = a / b;
      break;
    case Ops.MOD:
      if (b === 0n) return undefined;
      r = a % b;
      break;
    case Ops.MAX:
      r = a > b ? a : b;
      break;
    case Ops.AND:
      r = a & b;
      break;
    case Ops.OR:
      r = a | b;
      break;
    case Ops.XOR:
      r = a ^ b;
      break;
    case Ops.SHL:
      if (b < 0n || b >= 64n) return undefined;
      r = a << b;
      break;
    case Ops.SHR:
      if (b < 0n || b >= 64n) return undefined;
      r = a >> b;
      break;
    case Ops.TRUNC:
      r = a;
      break;
    default:
      return undefined;
  }
  r = d.isUnsigned ? BigInt.asUintN(64, r) : BigInt.asIntN(64, r);
  const n = Number(r);
  return Number.isSafeInteger(n) ? n : undefined;
}

// ---- structural helpers shared with divmod.ts ----

/** a deterministic total order on UOps (leaves first, constants last) for canonical forms */
export function cmpUOp(a: UOp, b: UOp): number {
  if (a === b) return 0;
  if (a.op !== b.op) return opRank(a.op) - opRank(b.op);
  if (a.dtype !== b.dtype) {
    return a.dtype.priority - b.dtype.priority || a.dtype.count - b.dtype.count;
  }
  const c = cmpArg(a.arg, b.arg);
  if (c !== 0) return c;
  if (a.src.length !== b.src.length) return a.src.length - b.src.length;
  for (let i = 0; i < a.src.length; i++) {
    const s = cmpUOp(a.src[i], b.src[i]);
    if (s !== 0) return s;
  }
  return 0;
}
const opRank = (op: Ops): number => (op === Ops.CONST ? 1000 : op);

function cmpArg(a: unknown, b: unknown): number {
  if (a === b) return 0;
  const ta = typeof a, tb = typeof b;
  if (ta !== tb) return ta < tb ? -1 : 1;
  if (ta === "number" || ta === "boolean") {
    const x = Number(a), y = Number(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (ta === "string") return (a as string) < (b as string) ? -1 : 1;
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      const c = cmpArg(a[i], b[i]);
      if (c !== 0) return c;
    }
    return a.length - b.length;
  }
  return 0;
}

const sizeCache = new WeakMap<UOp, number>();
/** nodes of the expression counted as a tree (a shared subexpression counts at every use) */
export function treeSize(u: UOp): number {
  let n = sizeCache.get(u);
  if (n === undefined) {
    n = 1;
    for (const s of u.src) n += treeSize(s);
    sizeCache.set(u, n);
  }
  return n;
}

export const isIntDType = (d: DType): boolean => d.isInt && d.count === 1;

/**
 * An integer expression as Σ coefs[i]*terms[i] + k. Coefficients are kept as signed values of
 * the dtype's width: for wrapping ints the sum is exact ring arithmetic, so collecting terms is
 * valid even where the expression overflows.
 */
export interface LinSum {
  d: DType;
  terms: UOp[];
  coefs: number[];
  k: number;
}

/** coefficient arithmetic: wraps at the dtype's width (as a signed value); NaN if inexact */
export function wrapCoef(d: DType, v: number): number {
  if (d.itemsize === 8) return Number.isSafeInteger(v) ? v : NaN;
  const bits = d.bitsize;
  if (bits === 32) return Math.abs(v) < 2 ** 53 ? (v % 2 ** 32) | 0 : NaN;
  const m = 2 ** bits;
  const r = ((v % m) + m) % m;
  return r >= m / 2 ? r - m : r;
}
function mulCoef(d: DType, a: number, b: number): number {
  if (d.bitsize === 32) return Math.imul(a, b);
  return wrapCoef(d, a * b);
}

/** Σ of `u`'s terms, flattening ADD, SUB, NEG and multiplication by constants; null if inexact */
export function linSum(u: UOp): LinSum | null {
  const s: LinSum = { d: u.dtype, terms: [], coefs: [], k: 0 };
  if (!addTo(s, u, 1)) return null;
  return recombineDivMod(s) ? linSum(buildSum(s)) : s;
}

/** (x%c)*m + (x//c)*(c*m) is x*m for every sign (C: x == (x/c)*c + x%c); true if one merged */
function recombineDivMod(s: LinSum): boolean {
  const { terms, coefs } = s;
  for (let i = 0; i < terms.length; i++) {
    const t = terms[i];
    if (t.op !== Ops.MOD || t.src[1].op !== Ops.CONST || coefs[i] === 0) continue;
    const [a, c] = t.src;
    for (let j = 0; j < terms.length; j++) {
      const q = terms[j];
      if (q.op !== Ops.IDIV || q.src[0] !== a || q.src[1] !== c) continue;
      if (coefs[j] !== mulCoef(s.d, coefs[i], signedConst(s.d, c))) continue;
      const m = coefs[i];
      coefs[i] = 0, coefs[j] = 0;
      return addTo(s, a, m);
    }
  }
  return false;
}

/** adds coef*u to `s`; false if a coefficient is not exact (64-bit beyond 2^53) */
export function addTo(s: LinSum, u: UOp, coef: number): boolean {
  const d = s.d;
  switch (u.op) {
    case Ops.CONST:
      s.k = wrapCoef(d, s.k + mulCoef(d, coef, signedConst(d, u)));
      return !Number.isNaN(s.k);
    case Ops.ADD:
      return addTo(s, u.src[0], coef) && addTo(s, u.src[1], coef);
    case Ops.SUB:
      return addTo(s, u.src[0], coef) && addTo(s, u.src[1], wrapCoef(d, -coef));
    case Ops.NEG:
      return addTo(s, u.src[0], wrapCoef(d, -coef));
    case Ops.IDIV: {
      // C: x // -c == -(x // c), so the sign joins the coefficient
      const c = u.src[1].op === Ops.CONST ? Number(u.src[1].arg) : 0;
      if (c < 0 && -c <= d.max && !d.isUnsigned) {
        return addTerm(
          s,
          UOp.make(Ops.IDIV, d, [u.src[0], UOp.const(d, -c)]),
          wrapCoef(d, -coef),
        );
      }
      return addTerm(s, u, coef);
    }
    case Ops.MUL: {
      const [a, b] = u.src;
      if (b.op === Ops.CONST) return addTo(s, a, mulCoef(d, coef, signedConst(d, b)));
      if (a.op === Ops.CONST) return addTo(s, b, mulCoef(d, coef, signedConst(d, a)));
      // a product of non-constants is one term; its constant factors join the coefficient
      let c = coef, x = a, y = b;
      for (;;) {
        if (x.op === Ops.MUL && x.src[1].op === Ops.CONST) {
          c = mulCoef(d, c, signedConst(d, x.src[1])), x = x.src[0];
        } else if (x.op === Ops.NEG) c = wrapCoef(d, -c), x = x.src[0];
        else if (y.op === Ops.MUL && y.src[1].op === Ops.CONST) {
          c = mulCoef(d, c, signedConst(d, y.src[1])), y = y.src[0];
        } else if (y.op === Ops.NEG) c = wrapCoef(d, -c), y = y.src[0];
        else break;
      }
      if (cmpUOp(x, y) > 0) [x, y] = [y, x];
      return addTerm(s, x === a && y === b ? u : UOp.make(Ops.MUL, d, [x, y]), c);
    }
  }
  return addTerm(s, u, coef);
}

function addTerm(s: LinSum, t: UOp, c: number): boolean {
  if (Number.isNaN(c)) return false;
  const i = s.terms.indexOf(t);
  if (i >= 0) s.coefs[i] = wrapCoef(s.d, s.coefs[i] + c);
  else s.terms.push(t), s.coefs.push(c);
  return true;
}

/** a constant's value as a signed coefficient of its width (uint32 4294967295 is -1) */
function signedConst(d: DType, u: UOp): number {
  return wrapCoef(d, Number(u.arg));
}

const gcd = (a: number, b: number): number => {
  a = Math.abs(a), b = Math.abs(b);
  while (b) [a, b] = [b, a % b];
  return a;
};
export { gcd };

const mk = (op: Ops, d: DType, a: UOp, b: UOp): UOp => UOp.make(op, d, [a, b]);

/**
 * The canonical expression of Σ coefs*terms + k (terms already in cmpUOp order): terms that share
 * a coefficient are grouped ((a+b)*4), positive items come first, negative ones are subtracted,
 * the constant comes last.
 */
function buildPlain(d: DType, terms: UOp[], coefs: number[], k: number): UOp {
  // only negative terms and a constant: k - (...) saves the negation
  if (k !== 0 && terms.length && coefs.every((c) => c < 0)) {
    const pos = buildPlain(d, terms, coefs.map((c) => wrapCoef(d, -c)), 0);
    return mk(Ops.SUB, d, UOp.const(d, k), pos);
  }
  // each item is base*scale, added (sign 1) or subtracted (sign -1)
  const bases: UOp[] = [], scales: number[] = [], signs: number[] = [];
  const done = new Array<boolean>(terms.length).fill(false);
  for (let i = 0; i < terms.length; i++) {
    if (done[i]) continue;
    const a = Math.abs(coefs[i]);
    const group: number[] = [i];
    if (a !== 1) {
      for (let j = i + 1; j < terms.length; j++) if (Math.abs(coefs[j]) === a) group.push(j);
    }
    for (const j of group) done[j] = true;
    if (group.length === 1) {
      bases.push(terms[i]), scales.push(a), signs.push(Math.sign(coefs[i]));
      continue;
    }
    // (t1 - t2)*a, signed so the inner sum starts positive where it can
    const allNeg = group.every((j) => coefs[j] < 0);
    const inner = buildPlain(
      d,
      group.map((j) => terms[j]),
      group.map((j) => (allNeg ? 1 : Math.sign(coefs[j]))),
      0,
    );
    bases.push(inner), scales.push(a), signs.push(allNeg ? -1 : 1);
  }
  const item = (i: number, sc: number): UOp =>
    sc === 1 ? bases[i] : mk(Ops.MUL, d, bases[i], UOp.const(d, sc));
  let acc: UOp | null = null;
  for (let i = 0; i < bases.length; i++) {
    if (signs[i] > 0) acc = acc ? mk(Ops.ADD, d, acc, item(i, scales[i])) : item(i, scales[i]);
  }
  // all negative: a scaled item leads (x*-3 needs no extra negation)
  let lead = -1;
  if (!acc) {
    const divides = (b: UOp) => b.op === Ops.IDIV && b.src[1].op === Ops.CONST && !d.isUnsigned;
    lead = scales.findIndex((sc) => sc !== 1);
    if (lead < 0) lead = bases.findIndex(divides);
    if (lead < 0) lead = 0;
    if (bases.length) {
      const b = bases[lead];
      // -(a//c) is a//-c in C
      acc = scales[lead] !== 1
        ? item(lead, -scales[lead])
        : divides(b)
        ? mk(Ops.IDIV, d, b.src[0], UOp.const(d, -Number(b.src[1].arg)))
        : UOp.make(Ops.NEG, d, [b]);
    }
  }
  for (let i = 0; i < bases.length; i++) {
    if (signs[i] < 0 && i !== lead) acc = mk(Ops.SUB, d, acc!, item(i, scales[i]));
  }
  if (!acc) return UOp.const(d, k);
  return k === 0 ? acc : mk(Ops.ADD, d, acc, UOp.const(d, k));
}

/**
 * The canonical (and smallest of the forms tried) expression of a LinSum. Equal sums give the
 * same node, whatever form they came in.
 */
export function buildSum(s: LinSum): UOp {
  const { d } = s;
  const terms: UOp[] = [], coefs: number[] = [];
  const order: number[] = [];
  for (let i = 0; i < s.terms.length; i++) if (s.coefs[i] !== 0) order.push(i);
  order.sort((i, j) => cmpUOp(s.terms[i], s.terms[j]));
  let g = 0, neg = true;
  for (const i of order) {
    terms.push(s.terms[i]), coefs.push(s.coefs[i]);
    g = gcd(g, s.coefs[i]);
    if (s.coefs[i] > 0) neg = false;
  }
  let best = buildPlain(d, terms, coefs, s.k);
  if (terms.length === 0 || (g <= 1 && !neg)) return best;
  // a common factor pulled out can be smaller: (a*4+b*4) -> (a+b)*4
  for (const f of neg ? [-g, g] : [g]) {
    if (Math.abs(f) === 1 && f === 1) continue;
    const inner = buildPlain(
      d,
      terms,
      coefs.map((c) => c / f),
      s.k % f === 0 ? s.k / f : 0,
    );
    let cand = mk(Ops.MUL, d, inner, UOp.const(d, f));
    if (s.k % f !== 0) cand = mk(Ops.ADD, d, cand, UOp.const(d, s.k));
    if (treeSize(cand) < treeSize(best)) best = cand;
  }
  return best;
}

// ---- rules ----

const INTS = allDTypes.filter((d) => d.isInt);
const INTS_BOOL = [...INTS, dtypes.bool];

const x = UPat.var("x"), y = UPat.var("y");
const ix = UPat.var("x", INTS), ibx = UPat.var("x", INTS_BOOL);
const bx = UPat.var("x", dtypes.bool);
const c1 = UPat.cvar("c1"), c2 = UPat.cvar("c2");
const zeroLike = (u: UOp): UOp => u.constLike(u.dtype === dtypes.bool ? false : 0);
const not = (u: UOp): UOp => mk(Ops.CMPNE, dtypes.bool, u, UOp.const(dtypes.bool, true));

function foldConsts(u: UOp): UOp | undefined {
  if (u.dtype.count !== 1) return undefined;
  const v = execAlu(u.op, u.dtype, u.src.map((s) => s.arg as ConstValue));
  return v === undefined ? undefined : UOp.const(u.dtype, v);
}

const BOUNDED = new Set<Ops>([...GroupOp.ALU, Ops.CAST, Ops.DEFINE_VAR, Ops.RANGE, Ops.SPECIAL]);

/** an int or bool expression whose bounds pin one value is that value */
function foldBounds(u: UOp): UOp | undefined {
  const d = u.dtype;
  if (d.count !== 1 || !(d.isInt || d.isBool)) return undefined;
  const [lo, hi] = u.bounds;
  if (lo !== hi) return undefined;
  return UOp.const(d, d.isBool ? lo !== 0 : lo);
}

/** constant folding and the bounds rule: first in every list */
const foldRules: Rule[] = [
  [
    new UPat({ op: [...GroupOp.ALU, Ops.CAST], each: UPat.cvar(), name: "u" }),
    (b) => foldConsts(b.u),
  ],
  [new UPat({ op: BOUNDED, name: "u" }), (b) => foldBounds(b.u)],
];

/** x op identity, x op x and other single-step identities */
const identityRules: Rule[] = [
  [x.add(0), (b) => b.x],
  [x.sub(0), (b) => b.x],
  [x.mul(1), (b) => b.x],
  [ibx.mul(0), (b) => zeroLike(b.x)],
  [bx.mul(false), (b) => zeroLike(b.x)],
  [ix.sub(ix), (b) => zeroLike(b.x)],
  [x.idiv(1), (b) => b.x],
  [x.idiv(-1), (b) => b.x.neg()],
  [x.mod(1), (b) => zeroLike(b.x)],
  [x.mod(-1), (b) => zeroLike(b.x)],
  [x.mod(UPat.cvar("c")).named("m").mod(UPat.cvar("c")), (b) => b.m],
  [x.neg().neg(), (b) => b.x],
  [x.lt(x), () => UOp.const(dtypes.bool, false)],
  [ibx.ne(ibx), () => UOp.const(dtypes.bool, false)],
  [ibx.eq(ibx), () => UOp.const(dtypes.bool, true)],
  [x.maximum(x), (b) => b.x],
  [ix.xor(0), (b) => b.x],
  [ix.or(0), (b) => b.x],
  [ix.and(0), (b) => zeroLike(b.x)],
  [ix.and(-1), (b) => b.x],
  [ix.xor(ix), (b) => zeroLike(b.x)],
  [ibx.and(ibx), (b) => b.x],
  [ibx.or(ibx), (b) => b.x],
];

/** logic on bools */
const boolRules: Rule[] = [
  [bx.and(true), (b) => b.x],
  [bx.and(false), (b) => zeroLike(b.x)],
  [bx.or(false), (b) => b.x],
  [bx.or(true), (b) => b.x.constLike(true)],
  [bx.ne(false), (b) => b.x],
  [bx.eq(true), (b) => b.x],
  [bx.eq(false), (b) => not(b.x)],
  [bx.xor(true), (b) => not(b.x)],
  [bx.xor(false), (b) => b.x],
  [bx.ne(true).ne(true), (b) => b.x],
];

/** where and max */
const selectRules: Rule[] = [
  [UPat.cvar("c").where(x, y), (b) => (b.c.arg ? b.x : b.y)],
  [UPat.var("c").where(x, x), (b) => b.x],
  [UPat.var("c").ne(true).where(x, y), (b) => b.c.where(b.y, b.x)],
  [UPat.var("c").where(true, false), (b) => b.c],
  [UPat.var("c").where(false, true), (b) => not(b.c)],
  [UPat.var("c").where(UPat.var("c").where(x, y), UPat.var("z")), (b) => b.c.where(b.x, b.z)],
  [UPat.var("c").where(UPat.var("z"), UPat.var("c").where(x, y)), (b) => b.c.where(b.z, b.y)],
  [new UPat({ op: Ops.MAX, dtype: INTS, name: "u" }), (b) => {
    const [p, q] = b.u.src;
    if (p.vmin >= q.vmax) return p;
    if (q.vmin >= p.vmax) return q;
    return undefined;
  }],
];

/** casts that change nothing or compose */
const castRules: Rule[] = [
  [x.cast().named("u"), (b) => (b.u.dtype === b.x.dtype ? b.x : undefined)],
  [
    x.cast().named("a").cast().named("u"),
    (b) => canLosslessCast(b.x.dtype, b.a.dtype) ? b.x.cast(b.u.dtype) : undefined,
  ],
];

/** (x op c1) op c2 -> x op (c1 op c2) for the associative ops that term collection skips */
const assocRules: Rule[] = [Ops.AND, Ops.OR, Ops.XOR, Ops.MAX].map((op): Rule => [
  new UPat({
    op,
    dtype: INTS_BOOL,
    perm: [new UPat({ op, perm: [x, c1] }), c2],
    name: "u",
  }),
  (b) => {
    const v = execAlu(op, b.u.dtype, [b.c1.arg as ConstValue, b.c2.arg as ConstValue]);
    return v === undefined ? undefined : mk(op, b.u.dtype, b.x, UOp.const(b.u.dtype, v));
  },
]);

export const symbolicSimple: PatternMatcher = new PatternMatcher([
  ...foldRules,
  ...identityRules,
  ...boolRules,
  ...selectRules,
  ...castRules,
  ...assocRules,
]);

// ---- term collection and canonical order ----

const canonCache = new WeakMap<UOp, UOp>();
/** ints: ADD/SUB/NEG/MUL chains become the canonical sum of collected terms */
function canonSum(u: UOp): UOp | undefined {
  let r = canonCache.get(u);
  if (r === undefined) {
    const s = linSum(u);
    r = s ? buildSum(s) : u;
    canonCache.set(u, r);
  }
  return r;
}

/** sources of commutative ops in cmpUOp order, a constant last */
function orderCommutative(u: UOp): UOp | undefined {
  const [p, q] = u.src;
  if (cmpUOp(p, q) <= 0) return undefined;
  return u.replace({ src: [q, p] });
}

const termRules: Rule[] = [
  [
    new UPat({ op: [Ops.ADD, Ops.SUB, Ops.NEG, Ops.MUL], dtype: INTS, name: "u" }),
    (b) => canonSum(b.u),
  ],
  [
    new UPat({
      op: [Ops.ADD, Ops.MUL, Ops.MAX, Ops.CMPNE, Ops.CMPEQ, Ops.AND, Ops.OR, Ops.XOR],
      name: "u",
    }),
    (b) =>
      (isIntDType(b.u.dtype) && (b.u.op === Ops.ADD || b.u.op === Ops.MUL))
        ? undefined
        : orderCommutative(b.u),
  ],
];

/** comparisons of sums: constants to one side, common factors divided out */
const cmpRules: Rule[] = [
  [new UPat({ op: Ops.CMPLT, src: [UPat.var("a", INTS), UPat.var("b", INTS)], name: "u" }), (
    b,
  ) => foldLt(b.u)],
  [
    new UPat({
      op: [Ops.CMPNE, Ops.CMPEQ],
      src: [UPat.var("a", INTS), UPat.var("b", INTS)],
      name: "u",
    }),
    (b) => foldNe(b.u),
  ],
];

const divmodRules: Rule[] = [
  [new UPat({ op: [Ops.IDIV, Ops.MOD], dtype: INTS, name: "u" }), (b) => foldDivMod(b.u)],
];

export const symbolic: PatternMatcher = symbolicSimple.concat(
  new PatternMatcher([...termRules, ...cmpRules, ...divmodRules]),
);

// ---- entry point ----

const simplifyCache = new WeakMap<UOp, UOp>();
const inProgress = new Set<UOp>();

/** `u` rewritten with `symbolic` to a fixed point (cached per node: UOps are immutable) */
export function simplify(u: UOp): UOp {
  let r = simplifyCache.get(u);
  if (r !== undefined) return r;
  // the div/mod rules simplify candidate forms; a candidate that leads back here stays as it is
  if (inProgress.has(u)) return u;
  inProgress.add(u);
  try {
    r = graphRewrite(u, symbolic);
  } finally {
    inProgress.delete(u);
  }
  simplifyCache.set(u, r);
  if (r !== u) simplifyCache.set(r, r);
  return r;
}

registerSimplifier(simplify);
