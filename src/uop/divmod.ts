// Div/mod and comparison folding for integer index math, with C semantics: IDIV truncates toward
// zero and MOD takes the dividend's sign. Floor-based identities hold only for non-negative
// numerators, so each rule says which sign it needs; a numerator that is never positive is
// mirrored (x//c = -((-x)//c), x%c = -((-x)%c)).
import type { DType } from "../dtype.ts";
import { castValue, dtypes } from "../dtype.ts";
import { Ops, UOp } from "./ops.ts";
import {
  addTo,
  buildSum,
  gcd,
  type LinSum,
  linSum,
  simplify,
  treeSize,
  wrapCoef,
} from "./symbolic.ts";

const mk = (op: Ops, d: DType, a: UOp, b: UOp): UOp => UOp.make(op, d, [a, b]);
const fdiv = (a: number, b: number): number => Math.floor(a / b);
const fmod = (a: number, b: number): number => ((a % b) + b) % b;

/** the exact integer interval of Σ coefs*terms + k (no wrapping) */
function sumBounds(s: LinSum): [number, number] {
  let lo = s.k, hi = s.k;
  for (let i = 0; i < s.terms.length; i++) {
    const c = s.coefs[i], t = s.terms[i];
    if (c >= 0) lo += c * t.vmin, hi += c * t.vmax;
    else lo += c * t.vmax, hi += c * t.vmin;
  }
  return [lo, hi];
}
/** whether an interval fits the dtype, so the wrapped value equals the exact sum */
const fits = (d: DType, lo: number, hi: number): boolean =>
  lo >= d.min && hi <= d.max && Math.abs(lo) < 2 ** 53 && Math.abs(hi) < 2 ** 53;

const lin = (d: DType, terms: UOp[], coefs: number[], k: number): LinSum => ({
  d,
  terms,
  coefs,
  k,
});
const negated = (s: LinSum): LinSum => lin(s.d, s.terms, s.coefs.map((c) => -c), -s.k);

/** the smallest simplified candidate, if it is smaller than `u` */
function smallest(u: UOp, cands: UOp[]): UOp | undefined {
  let best: UOp | undefined, size = treeSize(u);
  for (const c of cands) {
    const s = simplify(c);
    const n = treeSize(s);
    if (n < size) best = s, size = n;
  }
  return best;
}

// ---- div and mod ----

const divmodCache = new WeakMap<UOp, UOp | null>();
/** IDIV/MOD rules (the rule list is in symbolic.ts); cached per node, as they are pure */
export function foldDivMod(u: UOp): UOp | undefined {
  let r = divmodCache.get(u);
  if (r === undefined) divmodCache.set(u, r = divMod(u) ?? null);
  return r ?? undefined;
}

function divMod(u: UOp): UOp | undefined {
  const [x, y] = u.src, d = u.dtype, isMod = u.op === Ops.MOD;
  if (y.op !== Ops.CONST) return foldVarDivisor(u);
  const c = Number(y.arg);
  if (c === 0 || !Number.isSafeInteger(c)) return undefined;
  if (c < 0) {
    if (-c > d.max) return undefined;
    // C: x % -c == x % c and x // -c == -(x // c)
    if (isMod) return mk(Ops.MOD, d, x, UOp.const(d, -c));
    return smallest(u, [UOp.make(Ops.NEG, d, [mk(Ops.IDIV, d, x, UOp.const(d, -c))])]);
  }
  const s = linSum(x);
  if (!s) return undefined;
  const [lo, hi] = sumBounds(s);
  if (!fits(d, lo, hi)) return undefined;
  // a constant quotient: x % c is x - q*c
  const qlo = Math.trunc(lo / c), qhi = Math.trunc(hi / c);
  if (qlo === qhi) {
    return isMod ? buildSum(lin(d, s.terms, s.coefs, s.k - qlo * c)) : UOp.const(d, qlo);
  }
  // exact multiples divide out whatever the sign
  if (s.k % c === 0 && s.coefs.every((f) => f % c === 0)) {
    if (isMod) return UOp.const(d, 0);
    return buildSum(lin(d, s.terms, s.coefs.map((f) => f / c), s.k / c));
  }
  if (lo >= 0) {
    // the congruence form has no div or mod left: when it exists it is the answer
    const ex = expandDivTerms(s);
    const direct = congruence(s, c, isMod) ?? (ex ? congruence(ex, c, isMod) : undefined);
    if (direct) return treeSize(direct) < treeSize(u) ? direct : undefined;
  }
  const cands: UOp[] = [];
  nestedCandidates(x, c, isMod, d, cands);
  gcdExactCandidate(s, c, isMod, cands);
  if (lo >= 0) {
    floorCandidates(s, c, isMod, cands);
    const ex = expandDivTerms(s);
    if (ex) floorCandidates(ex, c, isMod, cands);
  } else if (hi <= 0 && -lo <= d.max) {
    const m: UOp[] = [];
    floorCandidates(negated(s), c, isMod, m);
    for (const r of m) cands.push(UOp.make(Ops.NEG, d, [r]));
  }
  return cands.length ? smallest(u, cands) : undefined;
}

/**
 * The sum with each term f*(a//e), a >= 0, split into f*(q + r//e) where a = e*q + r, r >= 0: the
 * multiples of e inside a divided term then take part in the outer folding ((idx//4)%2).
 */
function expandDivTerms(s: LinSum): LinSum | null {
  const { d } = s;
  const out = lin(d, [], [], s.k);
  let changed = false;
  for (let i = 0; i < s.terms.length; i++) {
    const t = s.terms[i], f = s.coefs[i], [a, b] = t.src;
    const e = t.op === Ops.IDIV && b.op === Ops.CONST ? Number(b.arg) : 0;
    const la = e > 1 && a.vmin >= 0 ? linSum(a) : null;
    if (la && la.terms.length > 1) {
      const r = lin(d, [], [], fmod(la.k, e)), q = lin(d, [], [], fdiv(la.k, e));
      la.terms.forEach((x, j) => {
        const rj = fmod(la.coefs[j], e);
        if (rj) r.terms.push(x), r.coefs.push(rj);
        if (la.coefs[j] - rj) q.terms.push(x), q.coefs.push((la.coefs[j] - rj) / e);
      });
      const [rlo, rhi] = sumBounds(r);
      if (q.terms.length && rlo >= 0 && fits(d, rlo, rhi)) {
        changed = true;
        for (let j = 0; j < q.terms.length; j++) addTo(out, q.terms[j], q.coefs[j] * f);
        out.k += q.k * f;
        if (rhi >= e) addTo(out, mk(Ops.IDIV, d, buildSum(r), b), f);
        continue;
      }
    }
    addTo(out, t, f);
  }
  if (!changed) return null;
  const [lo, hi] = sumBounds(out);
  return fits(d, lo, hi) ? out : null;
}

/** rules that hold for every sign: (y%(m*c))//c, (y%(m*c))%c, (y//e)//c */
function nestedCandidates(x: UOp, c: number, isMod: boolean, d: DType, out: UOp[]): void {
  const [a, b] = x.src;
  if (x.op === Ops.MOD && b.op === Ops.CONST) {
    const m = Number(b.arg);
    if (m > 0 && m % c === 0) {
      out.push(
        isMod
          ? mk(Ops.MOD, d, a, UOp.const(d, c))
          : mk(Ops.MOD, d, mk(Ops.IDIV, d, a, UOp.const(d, c)), UOp.const(d, m / c)),
      );
    }
  }
  if (!isMod && x.op === Ops.IDIV && b.op === Ops.CONST) {
    const e = Number(b.arg);
    if (e > 0 && e * c <= d.max) out.push(mk(Ops.IDIV, d, a, UOp.const(d, e * c)));
  }
}

/** g = gcd(coefs, k, c): (g*m)//(g*n) = m//n and (g*m)%(g*n) = (m%n)*g, for every sign */
function gcdExactCandidate(s: LinSum, c: number, isMod: boolean, out: UOp[]): void {
  let g = gcd(c, s.k);
  for (const f of s.coefs) g = gcd(g, f);
  if (g <= 1) return;
  const { d } = s;
  const inner = buildSum(lin(d, s.terms, s.coefs.map((f) => f / g), s.k / g));
  const cg = UOp.const(d, c / g);
  out.push(
    isMod ? mk(Ops.MUL, d, mk(Ops.MOD, d, inner, cg), UOp.const(d, g)) : mk(Ops.IDIV, d, inner, cg),
  );
}

/**
 * Congruence for a numerator >= 0: x = c*q + r where each coefficient's residue is taken as
 * f%c or f%c - c; if r stays in one period [m*c, (m+1)*c) then x//c = q+m and x%c = r-m*c.
 * Of the residue choices that work, the one leaving the fewest terms is built.
 */
function congruence(s: LinSum, c: number, isMod: boolean): UOp | undefined {
  const { d, terms, coefs, k } = s;
  const n = terms.length;
  if (n > 10) return undefined;
  const r0 = coefs.map((f) => fmod(f, c)), rk = fmod(k, c);
  let best: number[] | null = null, bestM = 0, bestCost = Infinity;
  const r = r0.slice();
  for (let mask = 0; mask < 1 << n; mask++) {
    let skip = false, cost = 0, rlo = rk, rhi = rk;
    for (let i = 0; i < n; i++) {
      const alt = (mask >> i) & 1;
      if (alt && r0[i] === 0) {
        skip = true;
        break;
      }
      const v = alt ? r0[i] - c : r0[i], t = terms[i];
      r[i] = v;
      if (v >= 0) rlo += v * t.vmin, rhi += v * t.vmax;
      else rlo += v * t.vmax, rhi += v * t.vmin;
      if (isMod ? v !== 0 : v !== coefs[i]) cost += Math.abs(v) === 1 ? 1 : 2;
    }
    if (skip) continue;
    const m = fdiv(rlo, c);
    if (m !== fdiv(rhi, c) || cost >= bestCost) continue;
    best = r.slice(), bestM = m, bestCost = cost;
  }
  if (!best) return undefined;
  const rb = best;
  return isMod
    ? buildSum(lin(d, terms, rb, rk - bestM * c))
    : buildSum(lin(d, terms, coefs.map((f, i) => (f - rb[i]) / c), (k - rk) / c + bestM));
}

/** candidates for a numerator known to be >= 0 (so C division is floor division) */
function floorCandidates(s: LinSum, c: number, isMod: boolean, out: UOp[]): void {
  const { d, terms, coefs, k } = s;
  const n = terms.length;
  const r0 = coefs.map((f) => fmod(f, c)), rk = fmod(k, c);
  // multiples of c leave the numerator: x%c = r%c, x//c = q + r//c (r >= 0 keeps C = floor)
  const rest = lin(d, [], [], rk);
  const q = lin(d, [], [], (k - rk) / c);
  let ok = true;
  for (let i = 0; i < n && ok; i++) {
    if (r0[i] !== 0) {
      const t = terms[i], [a, b] = t.src;
      // a%(j*c) contributes a's own residue when a >= 0
      const inner = isMod && t.op === Ops.MOD && b.op === Ops.CONST && Number(b.arg) % c === 0 &&
          a.vmin >= 0
        ? a
        : t;
      ok = addTo(rest, inner, r0[i]);
    }
    if (coefs[i] !== r0[i]) q.terms.push(terms[i]), q.coefs.push((coefs[i] - r0[i]) / c);
  }
  if (ok && sumBounds(rest)[0] >= 0 && fits(d, ...sumBounds(rest))) {
    const r = buildSum(rest), cu = UOp.const(d, c);
    if (isMod) out.push(mk(Ops.MOD, d, r, cu));
    else {
      addTo(q, mk(Ops.IDIV, d, r, cu), 1);
      out.push(buildSum(q));
    }
  }
  // a common factor of the terms and c: (g*m + kr)//c = m//(c/g), %c = (m%(c/g))*g + kr
  let g = c;
  for (const f of coefs) g = gcd(g, f);
  if (g > 1) {
    const kq = fdiv(k, g), kr = k - kq * g;
    const m = buildSum(lin(d, terms, coefs.map((f) => f / g), kq));
    const cg = UOp.const(d, c / g);
    if (isMod) {
      out.push(
        mk(Ops.ADD, d, mk(Ops.MUL, d, mk(Ops.MOD, d, m, cg), UOp.const(d, g)), UOp.const(d, kr)),
      );
    } else out.push(mk(Ops.IDIV, d, m, cg));
  }
  // nest by a factor f of c that some coefficient has: x//c = (x//f)//(c/f),
  // x%c = ((x//f)%(c/f))*f + x%f; the inner x//f and x%f can then fold
  const tried = new Set<number>();
  for (const f0 of coefs) {
    const f = Math.abs(f0);
    if (f <= 1 || f >= c || c % f !== 0 || tried.has(f)) continue;
    tried.add(f);
    const num = buildSum(s), fu = UOp.const(d, f), cf = UOp.const(d, c / f);
    const q = mk(Ops.IDIV, d, num, fu);
    out.push(
      isMod
        ? mk(Ops.ADD, d, mk(Ops.MUL, d, mk(Ops.MOD, d, q, cf), fu), mk(Ops.MOD, d, num, fu))
        : mk(Ops.IDIV, d, q, cf),
    );
  }
  // (y//e + a)//c = (y + a*e)//(e*c) for y, a >= 0
  if (!isMod) {
    for (let i = 0; i < n; i++) {
      const t = terms[i], [a, b] = t.src;
      if (coefs[i] !== 1 || t.op !== Ops.IDIV || b.op !== Ops.CONST) continue;
      const e = Number(b.arg);
      if (e <= 0 || e * c > d.max || a.vmin < 0) continue;
      const others = lin(
        d,
        terms.filter((_, j) => j !== i),
        coefs.filter((_, j) => j !== i),
        k,
      );
      const [olo, ohi] = sumBounds(others);
      if (olo < 0) continue;
      const num = lin(d, others.terms, others.coefs.map((f) => f * e), k * e);
      if (!addTo(num, a, 1)) continue;
      const [nlo, nhi] = sumBounds(num);
      if (!fits(d, nlo, nhi) || !fits(d, olo * e, ohi * e)) continue;
      out.push(mk(Ops.IDIV, d, buildSum(num), UOp.const(d, e * c)));
    }
  }
}

/** x//y and x%y with a non-constant divisor that is never 0 */
function foldVarDivisor(u: UOp): UOp | undefined {
  const [x, y] = u.src, d = u.dtype, isMod = u.op === Ops.MOD;
  if (y.vmin <= 0 && y.vmax >= 0) return undefined;
  if (x === y) return UOp.const(d, isMod ? 0 : 1);
  if (x.op === Ops.MUL && (x.src[0] === y || x.src[1] === y)) {
    const other = x.src[0] === y ? x.src[1] : x.src[0];
    const p = [other.vmin * y.vmin, other.vmin * y.vmax, other.vmax * y.vmin, other.vmax * y.vmax];
    // (a*y)/y is a only if the product did not wrap
    if (fits(d, Math.min(...p), Math.max(...p))) return isMod ? UOp.const(d, 0) : other;
  }
  const m = Math.min(Math.abs(y.vmin), Math.abs(y.vmax));
  if (isMod && Math.abs(x.vmin) < m && Math.abs(x.vmax) < m) return x;
  return undefined;
}

// ---- comparisons ----

/** `sum < bound` (side "lt") or `bound < sum` (side "gt") over the terms of a LinSum */
function buildCmp(d: DType, s: LinSum, bound: number, sumOnLeft: boolean): UOp {
  const e = buildSum(s), b = UOp.const(d, bound);
  return sumOnLeft ? mk(Ops.CMPLT, dtypes.bool, e, b) : mk(Ops.CMPLT, dtypes.bool, b, e);
}

/** CMPLT of ints: constants to the right bound, common factors divided out */
export function foldLt(u: UOp): UOp | undefined {
  const [a, b] = u.src, d = a.dtype;
  let sumOnLeft: boolean, e: UOp, bound: number;
  if (b.op === Ops.CONST) sumOnLeft = true, e = a, bound = Number(b.arg);
  else if (a.op === Ops.CONST) sumOnLeft = false, e = b, bound = Number(a.arg);
  else return undefined;
  // x//q < c and c < x//q become bounds on x (truncation: c > 0 means x < c*q)
  if (e.op === Ops.IDIV && e.src[1].op === Ops.CONST && Number(e.src[1].arg) > 0) {
    const q = Number(e.src[1].arg);
    const f = (c: number): number => (c > 0 ? c * q : (c - 1) * q + 1);
    const t = sumOnLeft ? f(bound) : f(bound + 1) - 1;
    if (fits(d, t, t)) {
      return sumOnLeft
        ? mk(Ops.CMPLT, dtypes.bool, e.src[0], UOp.const(d, t))
        : mk(Ops.CMPLT, dtypes.bool, UOp.const(d, t), e.src[0]);
    }
  }
  const s = linSum(e);
  if (!s || s.terms.length === 0) return undefined;
  // e is exactly the sum (no wrap), and so are the sum without k and its negation
  const [lo, hi] = sumBounds(s);
  if (!fits(d, lo, hi) || !fits(d, lo - s.k, hi - s.k)) return undefined;
  let D = bound - s.k, terms = lin(d, s.terms, s.coefs, 0);
  if (!fits(d, D, D)) return undefined;
  // all coefficients negative: multiply by -1 and swap sides
  if (s.coefs.every((c) => c < 0)) {
    if (!fits(d, s.k - hi, s.k - lo) || !fits(d, -D, -D)) return undefined;
    terms = negated(terms), D = -D, sumOnLeft = !sumOnLeft;
    terms.k = 0;
  }
  let g = 0;
  for (const c of terms.coefs) g = gcd(g, c);
  if (g > 1) {
    const div = lin(d, terms.terms, terms.coefs.map((c) => c / g), 0);
    return buildCmp(d, div, sumOnLeft ? Math.ceil(D / g) : Math.floor(D / g), sumOnLeft);
  }
  // (q*g + r) < D with 0 <= r < g and g | D is q < D/g
  if (sumOnLeft) {
    let gb = 0;
    for (const c of terms.coefs) if (Math.abs(c) > 1) gb = gcd(gb, c);
    gb = gcd(gb, D);
    if (gb > 1) {
      const big = lin(d, [], [], 0), small = lin(d, [], [], 0);
      terms.terms.forEach((t, i) => {
        const c = terms.coefs[i], into = c % gb === 0 ? big : small;
        into.terms.push(t), into.coefs.push(c);
      });
      const [slo, shi] = sumBounds(small);
      if (big.terms.length && slo >= 0 && shi < gb) {
        return buildCmp(d, lin(d, big.terms, big.coefs.map((c) => c / gb), 0), D / gb, true);
      }
    }
  }
  const out = buildCmp(d, terms, D, sumOnLeft);
  return out === u ? undefined : out;
}

/** CMPNE/CMPEQ of ints with a constant side: constants and common factors move out */
export function foldNe(u: UOp): UOp | undefined {
  const [a, b] = u.src, d = a.dtype;
  const isNe = u.op === Ops.CMPNE;
  let e: UOp, bound: number;
  if (b.op === Ops.CONST) e = a, bound = Number(b.arg);
  else if (a.op === Ops.CONST) e = b, bound = Number(a.arg);
  else return undefined;
  const s = linSum(e);
  if (!s || s.terms.length === 0) return undefined;
  // adding a constant is a bijection of wrapping ints: x+k != c is x != c-k
  let D = wrapCoef(d, bound - s.k);
  let terms = lin(d, s.terms, s.coefs, 0);
  if (s.coefs.every((c) => c < 0)) terms = negated(terms), terms.k = 0, D = wrapCoef(d, -D);
  let g = 0;
  for (const c of terms.coefs) g = gcd(g, c);
  const [lo, hi] = sumBounds(terms);
  if (g > 1 && fits(d, lo, hi)) {
    // the constant as the dtype holds it (an unsigned -1 is 2^n-1)
    const v = castValue(D, d);
    if (v % g !== 0) return UOp.const(dtypes.bool, isNe);
    terms = lin(d, terms.terms, terms.coefs.map((c) => c / g), 0), D = v / g;
  }
  const out = mk(u.op, dtypes.bool, buildSum(terms), UOp.const(d, D));
  return out === u ? undefined : out;
}
