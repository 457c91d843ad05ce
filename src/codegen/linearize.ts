// Kernel graph (reduces lowered) -> an ordered UOp list. Each RANGE is one loop; the loops form
// a tree, every node goes into the innermost loop it needs (so loop-invariant work is hoisted),
// and the items of each loop body are ordered by their dependencies.
import { axisLetter, AxisType, Ops, UOp } from "../uop/ops.ts";
import { dtypes } from "../dtype.ts";
import { openRanges, type Scope } from "./ranges.ts";

export interface LinearProgram {
  /** in order; a RANGE opens its loop and END(range) (one source) closes it */
  uops: UOp[];
  /** the innermost loop around each listed node (null: the kernel body) */
  block: Map<UOp, UOp | null>;
  /** the loop each RANGE sits in */
  parent: Map<UOp, UOp | null>;
  /** top-level loops whose iterations write disjoint outputs and are worth threads */
  parallel: Set<UOp>;
}

export interface LinearizeOpts {
  /** RANGEs that some REDUCE loops over */
  reduceRanges?: ReadonlySet<UOp>;
  /** a top-level loop is parallel only when its body runs at least this many iterations */
  parallelMin?: number;
}

const rangeName = (r: UOp): string => {
  const [id, t] = r.arg as [number, AxisType];
  return `${axisLetter[t]}idx${id}`;
};

/** the most iterations a loop can run */
export const tripCount = (r: UOp): number => Math.max(0, r.src[0].vmax);

function fail(why: string): never {
  throw new Error(`linearize: ${why}`);
}

/** order ranges outermost first: END lists them outer to inner and inside the ranges left open */
function rangeOrder(topo: readonly UOp[], scope: Map<UOp, Scope>, used: Set<UOp>): UOp[] {
  const inner = new Map<UOp, Set<UOp>>([...used].map((r) => [r, new Set<UOp>()]));
  const edge = (o: UOp, i: UOp) => {
    if (o !== i && used.has(o) && used.has(i)) inner.get(o)!.add(i);
  };
  for (const u of topo) {
    if (u.op === Ops.END && u.src.length > 1) {
      const rs = u.src.slice(1);
      for (let i = 0; i + 1 < rs.length; i++) edge(rs[i], rs[i + 1]);
      for (const o of scope.get(u)!) for (const r of rs) edge(o, r);
    } else if (u.op === Ops.RANGE) {
      for (const o of scope.get(u.src[0])!) edge(o, u);
    }
  }
  const indeg = new Map<UOp, number>([...used].map((r) => [r, 0]));
  for (const s of inner.values()) for (const i of s) indeg.set(i, indeg.get(i)! + 1);
  const key = (r: UOp) => {
    const [id, t] = r.arg as [number, AxisType];
    return [t, id, r.id];
  };
  const cmp = (a: UOp, b: UOp) => {
    const ka = key(a), kb = key(b);
    for (let i = 0; i < 3; i++) if (ka[i] !== kb[i]) return ka[i] - kb[i];
    return 0;
  };
  const ready = [...used].filter((r) => indeg.get(r) === 0);
  const out: UOp[] = [];
  while (ready.length) {
    ready.sort(cmp);
    const r = ready.shift()!;
    out.push(r);
    for (const i of inner.get(r)!) {
      indeg.set(i, indeg.get(i)! - 1);
      if (indeg.get(i) === 0) ready.push(i);
    }
  }
  if (out.length !== used.size) {
    const stuck = [...used].filter((r) => !out.includes(r)).map(rangeName);
    fail(`loops ${stuck.join(", ")} must each be inside the other (conflicting END orders)`);
  }
  return out;
}

export function linearize(sink: UOp, opts: LinearizeOpts = {}): LinearProgram {
  const topo = sink.toposort();
  const order = new Map(topo.map((u, i) => [u, i]));
  const scope = openRanges(sink);
  const open = scope.get(sink)!;
  if (open.size) {
    fail(
      `the kernel's stores are not inside ENDs for ranges ${[...open].map(rangeName).join(", ")}`,
    );
  }

  // the loop tree: ranges that share a scope are nested, in rank order
  const used = new Set<UOp>();
  for (const s of scope.values()) for (const r of s) used.add(r);
  const ranked = rangeOrder(topo, scope, used);
  const rank = new Map(ranked.map((r, i) => [r, i]));
  const byRank = (a: UOp, b: UOp) => rank.get(a)! - rank.get(b)!;
  const outerOf = new Map<UOp, Set<UOp>>(ranked.map((r) => [r, new Set<UOp>()]));
  const seenScopes = new Set<Scope>();
  for (const s of scope.values()) {
    if (s.size < 2 || seenScopes.has(s)) continue;
    seenScopes.add(s);
    const rs = [...s].sort(byRank);
    for (let i = 1; i < rs.length; i++) for (let j = 0; j < i; j++) outerOf.get(rs[i])!.add(rs[j]);
  }
  const parent = new Map<UOp, UOp | null>();
  for (let i = ranked.length - 1; i >= 0; i--) {
    const r = ranked[i];
    const outs = [...outerOf.get(r)!].sort(byRank);
    const p = outs.length ? outs[outs.length - 1] : null;
    parent.set(r, p);
    if (p) { for (const o of outs) if (o !== p) outerOf.get(p)!.add(o); }
  }

  // where each node goes; RANGE nodes stand for their loop inside the parent block
  const place = new Map<UOp, UOp | null>();
  for (const u of topo) {
    if (u.op === Ops.RANGE) {
      place.set(u, parent.get(u) ?? null);
      continue;
    }
    let deepest: UOp | null = null;
    for (const r of scope.get(u)!) if (deepest === null || byRank(r, deepest) > 0) deepest = r;
    place.set(u, deepest);
  }
  const ancestors = (b: UOp | null): Set<UOp | null> => {
    const s = new Set<UOp | null>([null]);
    for (let x = b; x; x = parent.get(x)!) s.add(x);
    return s;
  };
  // the item standing for `u` among the items of block `b` (u itself, or the loop holding it)
  const itemIn = (u: UOp, b: UOp | null): UOp => {
    let item = u, blk = place.get(u)!;
    while (blk !== b) {
      if (blk === null) fail(`internal: ${rangeName(b!)} does not enclose its user`);
      item = blk;
      blk = parent.get(blk)!;
    }
    return item;
  };

  const items = new Map<UOp | null, UOp[]>([[null, []]]);
  for (const r of ranked) items.set(r, []);
  const prio = new Map<UOp, number>();
  const lower = (x: UOp, p: number) => {
    if (!prio.has(x) || prio.get(x)! > p) prio.set(x, p);
  };
  for (const u of topo) {
    items.get(place.get(u)!)!.push(u);
    const defn = u.op === Ops.DEFINE_GLOBAL || u.op === Ops.DEFINE_VAR ||
      u.op === Ops.DEFINE_LOCAL;
    const p = defn ? order.get(u)! - topo.length : order.get(u)!;
    lower(u, p);
    // a loop sorts by the earliest node inside it
    for (let b = place.get(u)!; b; b = parent.get(b)!) lower(b, p);
  }
  // an edge between the items that hold source and user in their innermost common block
  // (an END's sources sit inside the loops it closes; other sources sit in enclosing blocks)
  const deps = new Map<UOp, Set<UOp>>();
  for (const u of topo) {
    const srcs = u.op === Ops.RANGE ? [u.src[0]] : u.src;
    const anc = ancestors(place.get(u)!);
    for (const s of srcs) {
      if (s.op === Ops.RANGE && anc.has(s)) continue; // the loop variable of an enclosing loop
      let common = place.get(s)!;
      while (!anc.has(common)) common = parent.get(common!)!;
      const from = itemIn(s, common), to = itemIn(u, common);
      if (from === to) continue;
      let d = deps.get(to);
      if (!d) deps.set(to, d = new Set());
      d.add(from);
    }
  }

  const uops: UOp[] = [];
  const block = new Map<UOp, UOp | null>();
  const emit = (b: UOp | null) => {
    const its = items.get(b)!;
    const indeg = new Map<UOp, number>(), users = new Map<UOp, UOp[]>();
    for (const x of its) {
      const d = deps.get(x);
      indeg.set(x, d?.size ?? 0);
      for (const s of d ?? []) {
        if (!users.has(s)) users.set(s, []);
        users.get(s)!.push(x);
      }
    }
    const ready = new Heap((x: UOp) => prio.get(x)!);
    for (const x of its) if (indeg.get(x) === 0) ready.push(x);
    let done = 0;
    for (let x = ready.pop(); x; x = ready.pop()) {
      done++;
      if (x.op === Ops.RANGE) {
        uops.push(x);
        block.set(x, b);
        emit(x);
        const close = UOp.make(Ops.END, dtypes.void, [x]);
        uops.push(close);
        block.set(close, b);
      } else if (x.op !== Ops.SINK && x.op !== Ops.END) {
        uops.push(x);
        block.set(x, b);
      }
      for (const y of users.get(x) ?? []) {
        indeg.set(y, indeg.get(y)! - 1);
        if (indeg.get(y) === 0) ready.push(y);
      }
    }
    if (done !== its.length) {
      fail(`a range is used again after its END (give each REDUCE its own RANGE nodes)`);
    }
  };
  emit(null);

  // threads only where iterations are independent: not a reduce loop, every global store indexed by it
  const parallel = new Set<UOp>();
  const minWork = opts.parallelMin ?? 16384;
  // shared memory declared at the top is one array per kernel run on a CPU: threads would race
  // on it (one declared inside a loop, a staged row, is each iteration's own)
  const shared = topo.some((u) => u.op === Ops.DEFINE_LOCAL && place.get(u) === null);
  for (const r of shared ? [] : items.get(null)!) {
    if (r.op !== Ops.RANGE || opts.reduceRanges?.has(r)) continue;
    const t = (r.arg as [number, AxisType])[1];
    if (t === AxisType.REDUCE || t === AxisType.GROUP_REDUCE || t === AxisType.UNROLL) continue;
    if (tripCount(r) < 2 || work(r, items) < minWork) continue;
    const inside = (u: UOp): boolean => {
      for (let b = place.get(u)!; b; b = parent.get(b)!) if (b === r) return true;
      return false;
    };
    const ok = topo.every((u) =>
      !(u.op === Ops.STORE && u.src[0].src[0].op === Ops.DEFINE_GLOBAL && inside(u)) ||
      scope.get(u.src[0].src[1])!.has(r)
    );
    if (ok) parallel.add(r);
  }
  return { uops, block, parent, parallel };
}

/** iterations of the innermost bodies under loop r (an upper bound with variables at max) */
function work(r: UOp, items: Map<UOp | null, UOp[]>): number {
  const kids = items.get(r)!.filter((x) => x.op === Ops.RANGE);
  const inner = kids.reduce((a, k) => a + work(k, items), 0);
  return tripCount(r) * Math.max(1, inner);
}

/** a binary min-heap keyed by `key` */
class Heap<T> {
  private a: T[] = [];
  constructor(private key: (x: T) => number) {}
  push(x: T): void {
    const a = this.a, k = this.key(x);
    let i = a.length;
    a.push(x);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.key(a[p]) <= k) break;
      a[i] = a[p];
      i = p;
    }
    a[i] = x;
  }
  pop(): T | undefined {
    const a = this.a;
    if (!a.length) return undefined;
    const top = a[0], last = a.pop()!;
    if (a.length) {
      let i = 0;
      const k = this.key(last);
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i, mk = k;
        if (l < a.length && this.key(a[l]) < mk) m = l, mk = this.key(a[l]);
        if (r < a.length && this.key(a[r]) < mk) m = r;
        if (m === i) break;
        a[i] = a[m];
        i = m;
      }
      a[i] = last;
    }
    return top;
  }
}
