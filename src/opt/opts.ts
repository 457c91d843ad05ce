// Kernel optimizations as transformations of a kernel's ranges. Most opts split a RANGE of size
// n into outer*k + inner (GROUPTOP: top*(n/k) + rest); the new range's axis type says what
// codegen does with it (UPCAST and UNROLL ranges are expanded into k copies by
// src/opt/expand.ts, LOCAL and GROUP_REDUCE ranges become GPU threads of one workgroup, with
// GROUP_REDUCE partials combined through shared memory by src/codegen/lower.ts). PADTO grows a
// range to a multiple and gates what the extra iterations touch. An opt that does not fit the
// kernel is rejected with a reason (OptError), never applied halfway.
import { AxisType, Ops, UOp } from "../uop/ops.ts";
import { reduceIdentity } from "../codegen/lower.ts";
import { graphRewrite, PatternMatcher, UPat } from "../uop/upat.ts";
import { applyTile } from "./tile.ts";
import { applyTC } from "./tc.ts";

export enum OptOps {
  /** an output axis into k unrolled copies (register tile, vectorizable stores) */
  UPCAST,
  /** a reduce axis into k unrolled copies added into one accumulator update */
  UNROLL,
  /** an output axis into k threads of one GPU workgroup */
  LOCAL,
  /** a reduce axis into k threads that each reduce every k-th element, then combine */
  GROUP,
  /** a reduce axis into k threads that each reduce one contiguous chunk, then combine */
  GROUPTOP,
  /** an axis grown to the next multiple of k; the extra iterations are gated off */
  PADTO,
  /** an axis into blocks of k that stay loops, the block loop outermost (src/opt/tile.ts) */
  TILE,
  /** a float16/bfloat16 matmul onto tensor cores, one warp per mma tile (src/opt/tc.ts) */
  TC,
  /**
   * a reduce axis into k accumulators updated side by side, combined after the loop: k short
   * dependency chains instead of one, which a CPU's compiler vectorizes (a row's max or sum)
   */
  LANES,
}

export interface Opt {
  op: OptOps;
  /** the axis id of the RANGE (its arg[0]); a split keeps the id on the outer range */
  axis: number;
  amount: number;
}

export class OptError extends Error {
  constructor(readonly opt: Opt, why: string) {
    super(`opt ${OptOps[opt.op]}(axis ${opt.axis}, ${opt.amount}) does not apply: ${why}`);
    this.name = "OptError";
  }
}

/** the most copies one kernel body may get from UPCAST and UNROLL together */
export const MAX_COPIES = 256;
/** the most threads LOCAL and GROUP opts may put in one workgroup (a device may allow fewer) */
export const MAX_LOCAL = 1024;

export interface KernelAxis {
  range: UOp;
  id: number;
  type: AxisType;
  /** the loop size (null when symbolic) */
  size: number | null;
  /** loops some store runs in (an END lists it) */
  output: boolean;
  /** loops some REDUCE runs over */
  reduce: boolean;
}

/** the kernel's RANGEs, by axis id */
export function kernelAxes(sink: UOp): KernelAxis[] {
  const out = new Map<UOp, KernelAxis>();
  const topo = sink.toposort();
  for (const u of topo) {
    if (u.op !== Ops.RANGE) continue;
    const [id, type] = u.arg as [number, AxisType];
    const e = u.src[0];
    out.set(u, {
      range: u,
      id,
      type,
      size: e.op === Ops.CONST ? e.arg as number : null,
      output: false,
      reduce: false,
    });
  }
  for (const u of topo) {
    if (u.op !== Ops.END && u.op !== Ops.REDUCE) continue;
    for (const r of u.src.slice(1)) {
      const a = out.get(r);
      if (a && u.op === Ops.END) a.output = true;
      if (a && u.op === Ops.REDUCE) a.reduce = true;
    }
  }
  return [...out.values()].sort((a, b) => a.id - b.id || a.range.id - b.range.id);
}

const sizeProduct = (sink: UOp, types: readonly AxisType[]): number =>
  kernelAxes(sink).filter((a) => types.includes(a.type)).reduce((p, a) => p * (a.size ?? 1), 1);

/** the product of the sizes of the kernel's UPCAST and UNROLL ranges */
export const copies = (sink: UOp): number => sizeProduct(sink, [AxisType.UPCAST, AxisType.UNROLL]);

/**
 * the copies the REDUCEs over `r` are made in already: the UPCAST and UNROLL ranges their values
 * and stores depend on (a short inner reduce that ignores an UPCAST axis is copied once, not
 * once per value of that axis)
 */
function reduceCopies(sink: UOp, r: UOp): number {
  const seen = new Set<UOp>(), visited = new Set<UOp>();
  // what a BARRIER waits for (a staged array's fill) ran before the reduce, in its own copies
  const walk = (x: UOp): void => {
    if (visited.has(x)) return;
    visited.add(x);
    const t = x.op === Ops.RANGE ? (x.arg as [number, AxisType])[1] : null;
    if (t === AxisType.UPCAST || t === AxisType.UNROLL) seen.add(x);
    if (x.op !== Ops.BARRIER) { for (const s of x.src) walk(s); }
  };
  for (const u of sink.toposort()) if (u.op === Ops.REDUCE && u.src.includes(r)) walk(u);
  return [...seen].reduce((p, x) => p * (x.src[0].arg as number), 1);
}

/** the threads of one workgroup the kernel's LOCAL and GROUP_REDUCE ranges ask for */
export const localThreads = (sink: UOp): number =>
  sizeProduct(sink, [AxisType.LOCAL, AxisType.GROUP_REDUCE]);

/** types no opt splits again: they are already what an opt made */
const FINAL = [AxisType.UPCAST, AxisType.UNROLL, AxisType.LOCAL, AxisType.GROUP_REDUCE];

interface SplitCtx {
  from: UOp;
  /** what replaces `from` in index math */
  expr: UOp;
  /** what replaces `from` in END and REDUCE range lists (outer first) */
  ranges: UOp[];
}

const isSplit = (u: UOp, ctx: SplitCtx): boolean => u === ctx.expr || u === ctx.from;

/** the range in index math */
const splitInIndex = new PatternMatcher<SplitCtx>([
  [new UPat({ op: Ops.RANGE, name: "r" }), (b, ctx) => (b.r === ctx.from ? ctx.expr : undefined)],
]);

/** the range in index math, then in the range lists of ENDs and REDUCEs */
const pmSplit = splitInIndex.concat(
  new PatternMatcher<SplitCtx>([
    [new UPat({ op: [Ops.END, Ops.REDUCE], name: "x" }), (b, ctx) => {
      const x = b.x, rs = x.src.slice(1);
      if (!rs.some((r) => isSplit(r, ctx))) return undefined;
      const next = rs.flatMap((r) => (isSplit(r, ctx) ? ctx.ranges : [r]));
      // a store whose every loop is gone runs once: the bare STORE, as for a scalar output
      if (x.op === Ops.END && next.length === 0) return x.src[0];
      return x.replace({ src: [x.src[0], ...next] });
    }],
  ]),
);

/**
 * `range` (size n, a multiple of k) as outer*k + inner, inner a new range of `innerType`; the
 * outer range keeps the axis id (and disappears when n == k: a size-1 axis makes no loop)
 */
export function splitRange(
  sink: UOp,
  range: UOp,
  k: number,
  innerType: AxisType,
  pm: PatternMatcher<SplitCtx> = pmSplit,
): UOp {
  const n = range.src[0].arg as number, [id, type] = range.arg as [number, AxisType];
  const inner = UOp.range(k, nextAxisId(sink), innerType);
  const outer = n === k ? null : UOp.range(n / k, id, type);
  const expr = outer ? outer.mul(k).add(inner) : inner;
  return graphRewrite(sink, pm, { from: range, expr, ranges: outer ? [outer, inner] : [inner] });
}

/**
 * LANES: the split range in index math, and each REDUCE over it a REDUCE over the (UNROLL)
 * lane range of a REDUCE per lane over the outer range
 */
const pmLanes = splitInIndex.concat(
  new PatternMatcher<SplitCtx>([
    [new UPat({ op: Ops.REDUCE, name: "x" }), (b, ctx) => {
      const x = b.x, rs = x.src.slice(1);
      if (!rs.some((r) => isSplit(r, ctx))) return undefined;
      const [outer, lane] = ctx.ranges.length === 2 ? ctx.ranges : [null, ctx.ranges[0]];
      const keep = rs.flatMap((r) => (isSplit(r, ctx) ? (outer ? [outer] : []) : [r]));
      const perLane = keep.length ? x.replace({ src: [x.src[0], ...keep] }) : x.src[0];
      return UOp.make(Ops.REDUCE, x.dtype, [perLane, lane], x.arg);
    }],
  ]),
);

/**
 * `range` (size n, a multiple of k) as top*(n/k) + rest, top a new range of `topType` and size
 * k; rest keeps the axis id (and disappears when n == k)
 */
export function splitRangeTop(sink: UOp, range: UOp, k: number, topType: AxisType): UOp {
  const n = range.src[0].arg as number, [id, type] = range.arg as [number, AxisType];
  const top = UOp.range(k, nextAxisId(sink), topType);
  const rest = n === k ? null : UOp.range(n / k, id, type);
  const expr = rest ? top.mul(n / k).add(rest) : top;
  return graphRewrite(sink, pmSplit, { from: range, expr, ranges: rest ? [top, rest] : [top] });
}

const nextAxisId = (sink: UOp): number => Math.max(...kernelAxes(sink).map((a) => a.id)) + 1;

interface PadCtx {
  from: UOp;
  to: UOp;
  /** to < the old size: the iterations that existed before */
  inside: UOp;
}

const gatedBy = (g: UOp | undefined, c: UOp): boolean =>
  g !== undefined && (g === c || (g.op === Ops.AND && g.src.includes(c)));

/** the grown range everywhere; accesses that depend on it gated, reduces over it masked */
const pmPad = new PatternMatcher<PadCtx>([
  [new UPat({ op: Ops.RANGE, name: "r" }), (b, ctx) => (b.r === ctx.from ? ctx.to : undefined)],
  [new UPat({ op: Ops.INDEX, name: "x" }), (b, ctx) => {
    const [buf, idx, gate] = b.x.src;
    if (gatedBy(gate, ctx.inside) || !b.x.toposort().includes(ctx.to)) return undefined;
    return b.x.replace({ src: [buf, idx, gate ? gate.and(ctx.inside) : ctx.inside] });
  }],
  [new UPat({ op: Ops.REDUCE, name: "red" }), (b, ctx) => {
    const [value, ...rs] = b.red.src;
    if (!rs.includes(ctx.to) || (value.op === Ops.WHERE && value.src[0] === ctx.inside)) {
      return undefined;
    }
    const id = value.constLike(reduceIdentity(b.red.arg as Ops, value.dtype));
    return b.red.replace({ src: [ctx.inside.where(value, id), ...rs] });
  }],
]);

/** `range` (size n) grown to size m > n; iterations past n touch no memory and reduce nothing */
export function padRange(sink: UOp, range: UOp, m: number): UOp {
  const n = range.src[0].arg as number, [id, type] = range.arg as [number, AxisType];
  const to = UOp.range(m, id, type);
  return graphRewrite(sink, pmPad, { from: range, to, inside: to.lt(n) });
}

/** `sink` with `opt` applied; throws OptError (naming why) where it does not apply */
export function applyOpt(sink: UOp, opt: Opt): UOp {
  const bad = (why: string): never => {
    throw new OptError(opt, why);
  };
  // a kernel staged through shared memory (TC 32) has its whole layout: a split range would
  // copy its stores into shared memory, each copy writing the same slots
  const locals = sink.toposort().filter((u) => u.op === Ops.DEFINE_LOCAL);
  if (locals.some((l) => l.src.length === 0)) {
    bad("the kernel is already staged through shared memory (TC with a stage's k)");
  }
  if (opt.op === OptOps.TILE) return applyTile(sink, opt);
  if (opt.op === OptOps.TC) return applyTC(sink, opt);
  if (!Number.isInteger(opt.amount) || opt.amount < 2) bad("the amount must be an integer >= 2");
  const axes = kernelAxes(sink);
  const ax = axes.find((a) => a.id === opt.axis && !FINAL.includes(a.type));
  if (!ax) {
    const ids = axes.filter((a) => !FINAL.includes(a.type)).map((a) => a.id);
    return bad(`the kernel has no splittable axis ${opt.axis} (axes: ${ids.join(", ") || "none"})`);
  }
  if (ax.size === null) bad("the axis has a symbolic size");
  // an array rangeify stages a value in is one per iteration of the loops it sits in (its
  // sources): copies of such a loop's body would all fill the one array
  if (locals.some((l) => l.toposort().includes(ax.range))) {
    bad("a staged array is filled once per iteration of this axis");
  }
  const size = ax.size!, name = OptOps[opt.op];
  const outputAxis = () => {
    if (!ax.output || ax.reduce) bad(`${name} needs an output (store) axis`);
    if (ax.type !== AxisType.LOOP && ax.type !== AxisType.GLOBAL) {
      bad(`${name} needs a LOOP or GLOBAL axis, not ${AxisType[ax.type]}`);
    }
  };
  const reduceAxis = () => {
    if (!ax.reduce || ax.output) bad(`${name} needs a reduce axis`);
    if (ax.type !== AxisType.REDUCE) bad(`${name} needs a REDUCE axis, not ${AxisType[ax.type]}`);
  };
  if (opt.op === OptOps.PADTO) {
    if (!ax.output && !ax.reduce) bad("PADTO needs an axis some store or reduce runs over");
    const m = Math.ceil(size / opt.amount) * opt.amount;
    if (m === size) bad(`the axis size ${size} is already a multiple of it`);
    if (m > 2 * size) bad(`padding ${size} to ${m} would more than double the work`);
    return padRange(sink, ax.range, m);
  }
  if (size % opt.amount !== 0) bad(`the axis size ${size} is not a multiple of it`);
  const threads = () => {
    if (localThreads(sink) * opt.amount > MAX_LOCAL) {
      bad(`a workgroup would have more than ${MAX_LOCAL} threads`);
    }
  };
  switch (opt.op) {
    case OptOps.LANES: {
      reduceAxis();
      if (reduceCopies(sink, ax.range) * opt.amount > MAX_COPIES) {
        bad(`the kernel body would be copied more than ${MAX_COPIES} times`);
      }
      return splitRange(sink, ax.range, opt.amount, AxisType.UNROLL, pmLanes);
    }
    case OptOps.UPCAST:
    case OptOps.UNROLL: {
      if (opt.op === OptOps.UPCAST) outputAxis();
      else reduceAxis();
      const n = opt.op === OptOps.UNROLL ? reduceCopies(sink, ax.range) : copies(sink);
      if (n * opt.amount > MAX_COPIES) {
        bad(`the kernel body would be copied more than ${MAX_COPIES} times`);
      }
      const t = opt.op === OptOps.UPCAST ? AxisType.UPCAST : AxisType.UNROLL;
      return splitRange(sink, ax.range, opt.amount, t);
    }
    case OptOps.LOCAL:
      outputAxis();
      threads();
      // a tensor-core kernel's warp lanes must stay threadIdx.x: more LOCAL axes would move them
      if (sink.toposort().some((u) => u.op === Ops.WMMA)) bad("the kernel uses tensor cores");
      return splitRange(sink, ax.range, opt.amount, AxisType.LOCAL);
    case OptOps.GROUP:
    case OptOps.GROUPTOP:
      reduceAxis();
      threads();
      return opt.op === OptOps.GROUP
        ? splitRange(sink, ax.range, opt.amount, AxisType.GROUP_REDUCE)
        : splitRangeTop(sink, ax.range, opt.amount, AxisType.GROUP_REDUCE);
  }
  return bad("unknown opt");
}

/**
 * the first of `amounts` that applies as `op` on `axis`, applied (and pushed to `chosen`);
 * `sink` unchanged when none does or there is no axis: how the heuristics try their picks
 */
export function applyFirst(
  sink: UOp,
  op: OptOps,
  axis: number | undefined,
  amounts: readonly number[],
  chosen: Opt[],
): UOp {
  if (axis === undefined) return sink;
  for (const amount of amounts) {
    const opt = { op, axis, amount };
    try {
      const s = applyOpt(sink, opt);
      chosen.push(opt);
      return s;
    } catch (e) {
      if (!(e instanceof OptError)) throw e;
    }
  }
  return sink;
}

/** the kernel's output LOOP axes, outermost first (the END's order): the last is contiguous */
export function outputAxes(
  sink: UOp,
  axes: readonly KernelAxis[] = kernelAxes(sink),
): KernelAxis[] {
  const end = sink.src[0];
  const order = end?.op === Ops.END ? end.src.slice(1) : [];
  return axes.filter((a) => a.output && !a.reduce && a.type === AxisType.LOOP)
    .sort((a, b) => order.indexOf(a.range) - order.indexOf(b.range));
}

/** the REDUCEs of `sink` inside another REDUCE's value (loops nested in a reduce loop) */
export function nestedReduces(sink: UOp): Set<UOp> {
  const nested = new Set<UOp>();
  for (const r of sink.toposort()) {
    if (r.op !== Ops.REDUCE) continue;
    for (const u of r.src[0].toposort()) if (u.op === Ops.REDUCE) nested.add(u);
  }
  return nested;
}

/** every opt in order (the first that does not apply throws) */
export function applyOpts(sink: UOp, opts: readonly Opt[]): UOp {
  return opts.reduce(applyOpt, sink);
}
