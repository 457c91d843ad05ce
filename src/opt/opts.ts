// Kernel optimizations as transformations of a kernel's ranges. Every opt splits a RANGE of size
// n into outer*k + inner; the inner range's axis type says what codegen does with it (UPCAST and
// UNROLL ranges are expanded into k copies by src/opt/expand.ts). An opt that does not fit the
// kernel is rejected with a reason (OptError), never applied halfway.
import { AxisType, Ops, UOp } from "../uop/ops.ts";
import { graphRewrite, PatternMatcher, UPat } from "../uop/upat.ts";

export enum OptOps {
  /** an output axis into k unrolled copies (register tile, vectorizable stores) */
  UPCAST,
  /** a reduce axis into k unrolled copies added into one accumulator update */
  UNROLL,
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

/** the product of the sizes of the kernel's UPCAST and UNROLL ranges */
export function copies(sink: UOp): number {
  return kernelAxes(sink)
    .filter((a) => a.type === AxisType.UPCAST || a.type === AxisType.UNROLL)
    .reduce((p, a) => p * (a.size ?? 1), 1);
}

interface SplitCtx {
  from: UOp;
  /** what replaces `from` in index math */
  expr: UOp;
  /** what replaces `from` in END and REDUCE range lists (outer first) */
  ranges: UOp[];
}

const isSplit = (u: UOp, ctx: SplitCtx): boolean => u === ctx.expr || u === ctx.from;

/** the range in index math, then in the range lists of ENDs and REDUCEs */
const pmSplit = new PatternMatcher<SplitCtx>([
  [new UPat({ op: Ops.RANGE, name: "r" }), (b, ctx) => (b.r === ctx.from ? ctx.expr : undefined)],
  [new UPat({ op: [Ops.END, Ops.REDUCE], name: "x" }), (b, ctx) => {
    const x = b.x, rs = x.src.slice(1);
    if (!rs.some((r) => isSplit(r, ctx))) return undefined;
    const next = rs.flatMap((r) => (isSplit(r, ctx) ? ctx.ranges : [r]));
    // a store whose every loop is gone runs once: the bare STORE, as for a scalar output
    if (x.op === Ops.END && next.length === 0) return x.src[0];
    return x.replace({ src: [x.src[0], ...next] });
  }],
]);

/**
 * `range` (size n, a multiple of k) as outer*k + inner, inner a new range of `innerType`; the
 * outer range keeps the axis id (and disappears when n == k: a size-1 axis makes no loop)
 */
export function splitRange(sink: UOp, range: UOp, k: number, innerType: AxisType): UOp {
  const n = range.src[0].arg as number, [id, type] = range.arg as [number, AxisType];
  const newId = Math.max(...kernelAxes(sink).map((a) => a.id)) + 1;
  const inner = UOp.range(k, newId, innerType);
  const outer = n === k ? null : UOp.range(n / k, id, type);
  const expr = outer ? outer.mul(k).add(inner) : inner;
  return graphRewrite(sink, pmSplit, {
    from: range,
    expr,
    ranges: outer ? [outer, inner] : [inner],
  });
}

/** `sink` with `opt` applied; throws OptError (naming why) where it does not apply */
export function applyOpt(sink: UOp, opt: Opt): UOp {
  const bad = (why: string): never => {
    throw new OptError(opt, why);
  };
  if (!Number.isInteger(opt.amount) || opt.amount < 2) bad("the amount must be an integer >= 2");
  const axes = kernelAxes(sink);
  const ax = axes.find((a) =>
    a.id === opt.axis && a.type !== AxisType.UPCAST &&
    a.type !== AxisType.UNROLL
  );
  if (!ax) {
    const ids = axes.filter((a) => a.type !== AxisType.UPCAST && a.type !== AxisType.UNROLL)
      .map((a) => a.id);
    return bad(`the kernel has no splittable axis ${opt.axis} (axes: ${ids.join(", ") || "none"})`);
  }
  if (ax.size === null) bad("the axis has a symbolic size");
  if (ax.size! % opt.amount !== 0) bad(`the axis size ${ax.size} is not a multiple of it`);
  if (opt.op === OptOps.UPCAST) {
    if (!ax.output || ax.reduce) bad("UPCAST needs an output (store) axis");
    if (ax.type !== AxisType.LOOP && ax.type !== AxisType.GLOBAL) {
      bad(`UPCAST needs a LOOP or GLOBAL axis, not ${AxisType[ax.type]}`);
    }
  } else if (opt.op === OptOps.UNROLL) {
    if (!ax.reduce || ax.output) bad("UNROLL needs a reduce axis");
    if (ax.type !== AxisType.REDUCE) bad(`UNROLL needs a REDUCE axis, not ${AxisType[ax.type]}`);
  } else bad("unknown opt");
  if (copies(sink) * opt.amount > MAX_COPIES) {
    bad(`the kernel body would be copied more than ${MAX_COPIES} times`);
  }
  const innerType = opt.op === OptOps.UPCAST ? AxisType.UPCAST : AxisType.UNROLL;
  return splitRange(sink, ax.range, opt.amount, innerType);
}

/** every opt in order (the first that does not apply throws) */
export function applyOpts(sink: UOp, opts: readonly Opt[]): UOp {
  return opts.reduce(applyOpt, sink);
}
