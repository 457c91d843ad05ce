// Randomized equivalence check of the simplifier: random int32 expression trees over small
// variables (negative ranges included) must evaluate exactly like their simplified form, with C
// semantics, at every assignment, and the simplified tree must not be larger.
import assert from "node:assert/strict";
import { dtypes } from "../src/dtype.ts";
import { Ops, UOp, Variable } from "../src/uop/ops.ts";
import { simplify } from "../src/uop/symbolic.ts";

const SEED = 0x7461_6721;
const CASES = 6000;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// variable pools: each case draws 2 or 3 of these
const VAR_RANGES: [number, number][] = [
  [0, 5],
  [-4, 3],
  [-6, -1],
  [1, 7],
  [0, 12],
  [-3, 3],
  [2, 6],
];

type Gen = { rnd: () => number; vars: UOp[] };
const pick = <T>(g: Gen, xs: readonly T[]): T => xs[Math.floor(g.rnd() * xs.length)];
const int = (g: Gen, lo: number, hi: number): number => lo + Math.floor(g.rnd() * (hi - lo + 1));
const nonzero = (g: Gen, lo: number, hi: number): number => {
  const v = int(g, lo, hi);
  return v === 0 ? 1 : v;
};

function genInt(g: Gen, depth: number): UOp {
  if (depth === 0 || g.rnd() < 0.2) {
    return g.rnd() < 0.7 ? pick(g, g.vars) : UOp.const(dtypes.int32, int(g, -8, 8));
  }
  const a = () => genInt(g, depth - 1);
  switch (int(g, 0, 14)) {
    case 13:
    case 14: {
      // index-like: a linear combination of variables, then // or % by a constant
      let e = pick(g, g.vars).mul(int(g, 1, 12));
      for (let i = int(g, 0, 2); i > 0; i--) e = e.add(pick(g, g.vars).mul(int(g, -4, 8)));
      e = e.add(int(g, -9, 9));
      const c = nonzero(g, -16, 16);
      return g.rnd() < 0.5 ? e.idiv(c) : e.mod(c);
    }
    case 0:
    case 1:
      return a().add(a());
    case 2:
      return a().sub(a());
    case 3:
      return a().mul(int(g, -5, 9));
    case 4:
      return a().mul(a());
    case 5:
    case 6:
      return a().idiv(nonzero(g, -9, 9));
    case 7:
    case 8:
      return a().mod(nonzero(g, -9, 9));
    case 9:
      return a().maximum(a());
    case 10:
      return a().minimum(a());
    case 11:
      return genBool(g, depth - 1).where(a(), a());
    default:
      return g.rnd() < 0.5 ? a().neg() : genBool(g, depth - 1).cast(dtypes.int32);
  }
}

function genBool(g: Gen, depth: number): UOp {
  const a = () => genInt(g, Math.max(depth - 1, 0));
  switch (int(g, 0, 5)) {
    case 0:
      return a().lt(a());
    case 1:
      return a().lt(int(g, -10, 10));
    case 2:
      return a().ne(a());
    case 3:
      return a().eq(int(g, -6, 6));
    case 4:
      return a().ge(a());
    default:
      return genBool(g, depth - 1).and(a().lt(a()));
  }
}

// ---- an evaluator independent of the simplifier: C semantics on int32 ----

type Env = Map<UOp, number>;
type Fn = (env: Env) => number;

function compile(root: UOp): Fn {
  const memo = new Map<UOp, Fn>();
  const go = (u: UOp): Fn => {
    let f = memo.get(u);
    if (f) return f;
    const s = u.src.map(go);
    const [p, q, r] = s;
    switch (u.op) {
      case Ops.CONST: {
        const v = Number(u.arg);
        f = () => v;
        break;
      }
      case Ops.DEFINE_VAR:
        f = (e) => e.get(u)!;
        break;
      case Ops.ADD:
        f = (e) => (p(e) + q(e)) | 0;
        break;
      case Ops.SUB:
        f = (e) => (p(e) - q(e)) | 0;
        break;
      case Ops.MUL:
        f = u.dtype === dtypes.bool ? (e) => p(e) & q(e) : (e) => Math.imul(p(e), q(e));
        break;
      case Ops.NEG:
        f = (e) => -p(e) | 0;
        break;
      case Ops.IDIV:
        f = (e) => {
          const b = q(e);
          if (b === 0) throw new Error("division by zero");
          return Math.trunc(p(e) / b) | 0;
        };
        break;
      case Ops.MOD:
        f = (e) => {
          const b = q(e);
          if (b === 0) throw new Error("modulo by zero");
          return (p(e) % b) | 0;
        };
        break;
      case Ops.MAX:
        f = (e) => Math.max(p(e), q(e));
        break;
      case Ops.CMPLT:
        f = (e) => (p(e) < q(e) ? 1 : 0);
        break;
      case Ops.CMPNE:
        f = (e) => (p(e) !== q(e) ? 1 : 0);
        break;
      case Ops.CMPEQ:
        f = (e) => (p(e) === q(e) ? 1 : 0);
        break;
      case Ops.AND:
        f = (e) => p(e) & q(e);
        break;
      case Ops.OR:
        f = (e) => p(e) | q(e);
        break;
      case Ops.XOR:
        f = (e) => p(e) ^ q(e);
        break;
      case Ops.WHERE:
        f = (e) => (p(e) ? q(e) : r(e));
        break;
      case Ops.CAST:
        f = p;
        break;
      default:
        throw new Error(`evaluator: no ${Ops[u.op]}`);
    }
    memo.set(u, f);
    return f;
  };
  return go(root);
}

/** nodes counted as a tree: the size of the expression as written */
function size(u: UOp): number {
  let n = 1;
  for (const s of u.src) n += size(s);
  return n;
}

function* assignments(vars: UOp[]): Generator<Env> {
  const env: Env = new Map();
  const rec = function* (i: number): Generator<Env> {
    if (i === vars.length) {
      yield env;
      return;
    }
    for (let v = vars[i].vmin; v <= vars[i].vmax; v++) {
      env.set(vars[i], v);
      yield* rec(i + 1);
    }
  };
  yield* rec(0);
}

/** why `u` fails (a wrong value or a larger result), or null if it passes */
function failure(u: UOp, vars: UOp[]): string | null {
  let s: UOp;
  try {
    s = simplify(u);
  } catch (e) {
    return `simplify threw: ${(e as Error).message}`;
  }
  if (size(s) > size(u)) return `grew from ${size(u)} to ${size(s)} nodes: ${s.render()}`;
  const f = compile(u), g = compile(s);
  for (const env of assignments(vars)) {
    let want: number | string, got: number | string;
    try {
      want = f(env);
    } catch (e) {
      want = (e as Error).message;
    }
    try {
      got = g(env);
    } catch (e) {
      got = (e as Error).message;
    }
    if (want !== got) {
      const at = [...env].map(([k, v]) => `${k.render()}=${v}`).join(", ");
      return `at ${at}: original ${want}, simplified ${got} (${s.render()})`;
    }
  }
  return null;
}

/** the smallest failing expression reachable by replacing subtrees with a child or a constant */
function shrink(u: UOp, vars: UOp[]): UOp {
  let cur = u;
  for (let progress = true; progress;) {
    progress = false;
    for (const n of cur.toposort()) {
      if (n.op === Ops.CONST || n.op === Ops.DEFINE_VAR) continue;
      const repl: UOp[] = n.src.filter((s) => s.dtype === n.dtype);
      repl.push(n.constLike(n.dtype === dtypes.bool ? true : 0), n.constLike(1));
      for (const r of repl) {
        const next = cur.substitute(new Map([[n, r]]));
        if (size(next) < size(cur) && failure(next, vars) !== null) {
          cur = next;
          progress = true;
          break;
        }
      }
      if (progress) break;
    }
  }
  return cur;
}

Deno.test(`simplify keeps the value and never grows (${CASES} random int32 expressions)`, () => {
  const rnd = mulberry32(SEED);
  const pool = VAR_RANGES.map(([lo, hi], i) => Variable(`v${i}`, lo, hi));
  let checked = 0, points = 0, shrunk = 0;
  for (let i = 0; i < CASES; i++) {
    const vars = [...pool].sort(() => rnd() - 0.5).slice(0, rnd() < 0.5 ? 2 : 3);
    const g: Gen = { rnd, vars };
    const u = genInt(g, int(g, 1, 4));
    const why = failure(u, vars);
    if (why !== null) {
      const small = shrink(u, vars);
      assert.fail(
        `case ${i}: ${u.render()}\n  ${why}\nsmallest failing expression: ${small.render()}\n  ${
          failure(small, vars)
        }`,
      );
    }
    for (const _ of assignments(vars)) points++;
    if (size(simplify(u)) < size(u)) shrunk++;
    checked++;
  }
  console.log(
    `symbolic fuzz: ${checked} expressions, ${points} assignments evaluated, ${shrunk} got smaller`,
  );
  assert.equal(checked, CASES);
});
