// UPat, PatternMatcher, graphRewrite: the one mechanism every compiler pass is written in.
import type { DType } from "../dtype.ts";
import { type ConstValue, GroupOp, Ops, UOp } from "./ops.ts";

/** names bound by a match; a rule's callback reads its captures from here */
export type Bindings = Record<string, UOp>;
/** a rule's action: the replacement, or undefined/null for "no change" */
export type RuleFn<Ctx> = (b: Bindings, ctx: Ctx, u: UOp) => UOp | undefined | null;

type OpSpec = Ops | readonly Ops[] | ReadonlySet<Ops>;
type PatLike = UPat | ConstValue;

export interface UPatOpts {
  op?: OpSpec;
  dtype?: DType | readonly DType[];
  /** ordered sources */
  src?: readonly PatLike[];
  /** sources matched in any order (commutative ops) */
  perm?: readonly PatLike[];
  /** every source matches this pattern, any count */
  each?: UPat;
  /** allow more sources after those listed in `src` */
  anyLen?: boolean;
  arg?: unknown;
  name?: string;
  /** an extra condition on the candidate node */
  pred?: (u: UOp) => boolean;
}

type Matcher = (u: UOp, b: Bindings, trail: string[]) => boolean;

function undo(b: Bindings, trail: string[], mark: number): void {
  // assigning undefined keeps the object's shape (delete would turn it into a slow dictionary)
  while (trail.length > mark) b[trail.pop()!] = undefined as unknown as UOp;
}

function argEq(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => argEq(x, b[i]));
  }
  return typeof a === "number" && typeof b === "number" && Number.isNaN(a) && Number.isNaN(b);
}

const toPat = (p: PatLike): UPat => (p instanceof UPat ? p : UPat.const(p));

export class UPat {
  readonly ops: ReadonlySet<Ops> | null;
  readonly opts: UPatOpts;
  readonly match: Matcher;
  /** @internal alternatives, for UPat.any */
  readonly alts: readonly UPat[] | null;

  constructor(opts: UPatOpts = {}, alts: readonly UPat[] | null = null) {
    this.opts = opts;
    this.alts = alts;
    const o = opts.op;
    this.ops = o === undefined
      ? null
      : typeof o === "number"
      ? new Set([o])
      : new Set(o as Iterable<Ops>);
    this.match = alts ? compileAny(alts) : compile(this);
  }

  // ---- constructors ----
  static var(name?: string, dtype?: DType | readonly DType[]): UPat {
    return new UPat({ name, dtype });
  }
  /** any CONST */
  static cvar(name?: string, dtype?: DType | readonly DType[]): UPat {
    return new UPat({ op: Ops.CONST, name, dtype });
  }
  /** a CONST with this value (any dtype unless given) */
  static const(value: ConstValue, dtype?: DType | readonly DType[]): UPat {
    return new UPat({ op: Ops.CONST, arg: value, dtype });
  }
  static op(op: OpSpec, src?: readonly PatLike[], name?: string): UPat {
    return new UPat({ op, src, name });
  }
  /** matches if any of the patterns matches (tried in order) */
  static any(...pats: UPat[]): UPat {
    return new UPat({}, pats);
  }

  /** the same pattern, binding the match to `name` */
  named(name: string): UPat {
    if (this.alts) return UPat.any(...this.alts.map((a) => a.named(name)));
    return new UPat({ ...this.opts, name });
  }

  // ---- builders: patterns read like the expressions they match ----
  private bin(op: Ops, x: PatLike): UPat {
    return GroupOp.Commutative.has(op)
      ? new UPat({ op, perm: [this, toPat(x)] })
      : new UPat({ op, src: [this, toPat(x)] });
  }
  add(x: PatLike): UPat {
    return this.bin(Ops.ADD, x);
  }
  sub(x: PatLike): UPat {
    return this.bin(Ops.SUB, x);
  }
  mul(x: PatLike): UPat {
    return this.bin(Ops.MUL, x);
  }
  idiv(x: PatLike): UPat {
    return this.bin(Ops.IDIV, x);
  }
  mod(x: PatLike): UPat {
    return this.bin(Ops.MOD, x);
  }
  fdiv(x: PatLike): UPat {
    return this.bin(Ops.FDIV, x);
  }
  maximum(x: PatLike): UPat {
    return this.bin(Ops.MAX, x);
  }
  lt(x: PatLike): UPat {
    return this.bin(Ops.CMPLT, x);
  }
  ne(x: PatLike): UPat {
    return this.bin(Ops.CMPNE, x);
  }
  eq(x: PatLike): UPat {
    return this.bin(Ops.CMPEQ, x);
  }
  and(x: PatLike): UPat {
    return this.bin(Ops.AND, x);
  }
  or(x: PatLike): UPat {
    return this.bin(Ops.OR, x);
  }
  xor(x: PatLike): UPat {
    return this.bin(Ops.XOR, x);
  }
  shl(x: PatLike): UPat {
    return this.bin(Ops.SHL, x);
  }
  shr(x: PatLike): UPat {
    return this.bin(Ops.SHR, x);
  }
  neg(): UPat {
    return new UPat({ op: Ops.NEG, src: [this] });
  }
  where(a: PatLike, b: PatLike): UPat {
    return new UPat({ op: Ops.WHERE, src: [this, toPat(a), toPat(b)] });
  }
  cast(dtype?: DType | readonly DType[]): UPat {
    return new UPat({ op: Ops.CAST, src: [this], dtype });
  }
}

function compileAny(alts: readonly UPat[]): Matcher {
  return (u, b, trail) => {
    const mark = trail.length;
    for (const a of alts) {
      if (a.match(u, b, trail)) return true;
      undo(b, trail, mark);
    }
    return false;
  };
}

function compile(p: UPat): Matcher {
  const { dtype, arg, name, pred, anyLen } = p.opts;
  const ops = p.ops;
  const singleOp = ops && ops.size === 1 ? [...ops][0] : undefined;
  const dts = dtype === undefined
    ? null
    : Array.isArray(dtype)
    ? new Set(dtype as DType[])
    : new Set([dtype as DType]);
  const src = p.opts.src?.map(toPat);
  const perm = p.opts.perm?.map(toPat);
  const each = p.opts.each;
  const checkArg = arg !== undefined;

  const head = (u: UOp): boolean => {
    if (singleOp !== undefined) {
      if (u.op !== singleOp) return false;
    } else if (ops && !ops.has(u.op)) return false;
    if (dts && !dts.has(u.dtype)) return false;
    if (checkArg && !argEq(u.arg, arg)) return false;
    if (pred && !pred(u)) return false;
    return true;
  };
  const bind = (u: UOp, b: Bindings, trail: string[]): boolean => {
    if (name === undefined) return true;
    const prev = b[name];
    if (prev !== undefined) return prev === u;
    b[name] = u;
    trail.push(name);
    return true;
  };

  if (src) {
    const n = src.length;
    return (u, b, trail) => {
      if (!head(u)) return false;
      if (anyLen ? u.src.length < n : u.src.length !== n) return false;
      for (let i = 0; i < n; i++) if (!src[i].match(u.src[i], b, trail)) return false;
      return bind(u, b, trail);
    };
  }
  if (perm) {
    const n = perm.length;
    const orders = permutations(n);
    return (u, b, trail) => {
      if (!head(u) || u.src.length !== n) return false;
      const mark = trail.length;
      for (const order of orders) {
        let ok = true;
        for (let i = 0; i < n && ok; i++) ok = perm[i].match(u.src[order[i]], b, trail);
        if (ok && bind(u, b, trail)) return true;
        undo(b, trail, mark);
      }
      return false;
    };
  }
  if (each) {
    return (u, b, trail) => {
      if (!head(u)) return false;
      for (const s of u.src) if (!each.match(s, b, trail)) return false;
      return bind(u, b, trail);
    };
  }
  return (u, b, trail) => head(u) && bind(u, b, trail);
}

function permutations(n: number): number[][] {
  if (n <= 1) return [[0].slice(0, n)];
  const out: number[][] = [];
  const rec = (cur: number[], left: number[]) => {
    if (!left.length) out.push(cur);
    for (let i = 0; i < left.length; i++) {
      rec([...cur, left[i]], [...left.slice(0, i), ...left.slice(i + 1)]);
    }
  };
  rec([], [...Array(n).keys()]);
  return out;
}

interface Rule<Ctx> {
  pat: UPat;
  fn: RuleFn<Ctx>;
  /** ops that must appear among the node's sources for the rule to have a chance */
  need: readonly Ops[];
}

const NUM_OPS = Object.keys(Ops).length / 2;

/** the source ops a pattern needs, for rejecting rules before matching */
function neededSrcOps(p: UPat): Ops[] {
  if (p.alts) return [];
  const srcs = p.opts.src ?? p.opts.perm ?? [];
  const out: Ops[] = [];
  for (const s of srcs) {
    if (s instanceof UPat && s.ops && s.ops.size === 1 && !s.alts) out.push([...s.ops][0]);
  }
  return out;
}

/** Rules dispatched by the root op: a node is only tried against rules that can match it. */
export class PatternMatcher<Ctx = unknown> {
  readonly rules: readonly [UPat, RuleFn<Ctx>][];
  private readonly byOp: Rule<Ctx>[][];
  private readonly concatCache = new WeakMap<PatternMatcher<Ctx>, PatternMatcher<Ctx>>();

  constructor(rules: readonly [UPat, RuleFn<Ctx>][]) {
    this.rules = rules;
    this.byOp = Array.from({ length: NUM_OPS }, () => []);
    for (const [pat, fn] of rules) {
      const roots = pat.alts ? pat.alts.map((a) => a.ops) : [pat.ops];
      const ops = new Set<Ops>();
      for (const r of roots) {
        for (const o of r ?? Array.from({ length: NUM_OPS }, (_, i) => i as Ops)) {
          ops.add(o);
        }
      }
      const rule = { pat, fn, need: neededSrcOps(pat) };
      for (const o of ops) this.byOp[o].push(rule);
    }
  }

  /** the first rule's replacement for `u`, or undefined if none applies */
  rewrite(u: UOp, ctx: Ctx): UOp | undefined {
    const rules = this.byOp[u.op];
    if (rules.length === 0) return undefined;
    const b: Bindings = {};
    const trail: string[] = [];
    outer: for (let i = 0; i < rules.length; i++) {
      const r = rules[i];
      for (let k = 0; k < r.need.length; k++) {
        let found = false;
        for (let j = 0; j < u.src.length; j++) {
          if (u.src[j].op === r.need[k]) {
            found = true;
            break;
          }
        }
        if (!found) continue outer;
      }
      if (r.pat.match(u, b, trail)) {
        const out = r.fn(b, ctx, u);
        if (out != null && out !== u) return out;
      }
      undo(b, trail, 0);
    }
    return undefined;
  }

  /** this matcher's rules followed by other's (cached) */
  concat(other: PatternMatcher<Ctx>): PatternMatcher<Ctx> {
    let pm = this.concatCache.get(other);
    if (!pm) {
      pm = new PatternMatcher([...this.rules, ...other.rules]);
      this.concatCache.set(other, pm);
    }
    return pm;
  }
}

export interface RewriteOpts<Ctx> {
  /** apply the rules to a node before its sources (tinygrad's bottom_up: from the sink toward the leaves) */
  bottomUp?: boolean;
  /** a second matcher applied before the sources, together with `pm` applied after them */
  bpm?: PatternMatcher<Ctx>;
  /** a guard against rules that never reach a fixed point */
  maxSteps?: number;
}

/**
 * Rewrite `root` with `pm` until no rule applies anywhere. By default a node's sources are
 * rewritten first and the rules then see the rebuilt node; a rule's result is itself rewritten
 * again (fixed point). Shared subgraphs are rewritten once per call.
 */
export function graphRewrite<Ctx>(
  root: UOp,
  pm: PatternMatcher<Ctx> | null,
  ctx: Ctx = undefined as Ctx,
  opts: RewriteOpts<Ctx> = {},
): UOp {
  const bpm = opts.bottomUp ? pm : opts.bpm ?? null;
  const post = opts.bottomUp ? null : pm;
  const maxSteps = opts.maxSteps ?? 1_000_000;
  const replace = new Map<UOp, UOp>();
  const preDone = new Map<UOp, UOp>();
  // stack entries: node, stage (0 = visit, 1 = sources done, 2 = link a rewritten result), working node
  const stackN: UOp[] = [root], stackS: number[] = [0], stackW: UOp[] = [root];
  let steps = 0;
  while (stackN.length) {
    const n = stackN.pop()!, stage = stackS.pop()!, w = stackW.pop()!;
    if (replace.has(n)) continue;
    if (++steps > maxSteps) {
      throw new Error(`graphRewrite: no fixed point after ${maxSteps} steps (a rule cycles?)`);
    }
    if (stage === 0) {
      let cur = w;
      if (bpm) {
        const cached = preDone.get(w);
        if (cached) cur = cached;
        else {
          const seen = new Set<UOp>([cur]);
          for (let nxt = bpm.rewrite(cur, ctx); nxt !== undefined; nxt = bpm.rewrite(cur, ctx)) {
            if (seen.has(nxt)) throw new Error("graphRewrite: a pre-order rule cycles");
            seen.add(nxt);
            cur = nxt;
          }
          preDone.set(w, cur);
        }
      }
      stackN.push(n), stackS.push(1), stackW.push(cur);
      for (let i = cur.src.length - 1; i >= 0; i--) {
        const s = cur.src[i];
        if (!replace.has(s)) stackN.push(s), stackS.push(0), stackW.push(s);
      }
    } else if (stage === 1) {
      let changed = false;
      const src = new Array<UOp>(w.src.length);
      for (let i = 0; i < w.src.length; i++) {
        const r = replace.get(w.src[i])!;
        if (r !== w.src[i]) changed = true;
        src[i] = r;
      }
      const next = changed ? w.replace({ src }) : post ? post.rewrite(w, ctx) : undefined;
      if (next === undefined || next === w) replace.set(n, w);
      else if (replace.has(next)) replace.set(n, replace.get(next)!);
      else {
        stackN.push(n), stackS.push(2), stackW.push(next);
        stackN.push(next), stackS.push(0), stackW.push(next);
      }
    } else {
      replace.set(n, replace.get(w)!);
    }
  }
  return replace.get(root)!;
}
