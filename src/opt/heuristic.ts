// The hand-coded CPU heuristic: a matmul-like kernel (a store of REDUCE ADD over a MUL of two
// loads) gets a register tile: its innermost output axis upcast by 16 along the contiguous output
// (two 8-float AVX registers per tile row, which clang's SLP vectorizer turns into vector loads
// of the right operand and vector mul/add), the next output axis upcast by 4 (each broadcast
// value of the left operand is reused across 16 columns, each loaded vector across the rows),
// and the reduce loop kept a plain loop (an UNROLL would sum the products of several k before
// the accumulator, a pattern clang vectorizes only partly). A long reduce (>= 1024) is blocked
// by 16 (TILE): the right operand's rows then stream through the cache a short slab at a time
// instead of a 4-16 KiB-strided column panel that conflicts in cache sets; the tile grows to 8
// rows there, since each block re-reads and re-writes the output tile. Other kernels are left as
// they are. NOOPT=1 turns it off.
import { AxisType, Ops, type UOp } from "../uop/ops.ts";
import { PatternMatcher, UPat } from "../uop/upat.ts";
import {
  applyFirst,
  applyOpt,
  kernelAxes,
  type KernelAxis,
  nestedReduces,
  type Opt,
  OptOps,
  outputAxes,
} from "./opts.ts";
import { pmExpand } from "./expand.ts";
import { BEAM_DEVICES, beamSearch, beamWidth } from "./beam.ts";
import type { CodegenLang } from "../codegen/index.ts";
import { GPU_LIMITS, gpuOpts } from "./heuristic_gpu.ts";

export function noOpt(): boolean {
  try {
    const v = Deno.env.get("NOOPT");
    return v !== undefined && v !== "" && v !== "0";
  } catch {
    return false; // no env permission: optimize
  }
}

const unCast = (u: UOp): UOp => (u.op === Ops.CAST ? unCast(u.src[0]) : u);

/** a load, or a padded one (a convolution's input): WHERE(valid, LOAD, 0) */
const isLoad = (u: UOp): boolean =>
  u.op === Ops.LOAD ||
  (u.op === Ops.WHERE && unCast(u.src[1]).op === Ops.LOAD && u.src[2].op === Ops.CONST &&
    u.src[2].arg === 0);

/** the REDUCE of a matmul-like kernel (one store of a sum of products of two loads), or null */
export function matmulReduce(sink: UOp): UOp | null {
  if (sink.src.length !== 1) return null;
  const st = sink.src[0].op === Ops.END ? sink.src[0].src[0] : sink.src[0];
  if (st.op !== Ops.STORE) return null;
  const red = unCast(st.src[1]);
  if (red.op !== Ops.REDUCE || red.arg !== Ops.ADD) return null;
  const mul = unCast(red.src[0]);
  if (mul.op !== Ops.MUL || !mul.src.every((s) => isLoad(unCast(s)))) return null;
  return red;
}

/** tile sizes tried for each axis, largest first (16 floats: two AVX2 registers per tile row) */
export const HEURISTIC = {
  inner: [16, 8, 4, 2],
  outer: [4, 2],
  /** the outer tile under a reduce block */
  outerBlocked: [8, 4, 2],
  /** the reduce block (TILE) of a long reduce */
  block: [16],
  /** reduce sizes from which the reduce is blocked */
  blockFrom: 1024,
  /** the outer tile where the inner axis's operand is padded (a convolution's input) */
  gatedOuter: [8, 4],
  /** the column panels of a packed right operand swept together (TILE of the panel axis) */
  packedPanels: [2],
};

/**
 * multiply-adds below which a kernel is left alone: its time is the call, and the copies would
 * only lengthen its compile
 */
export const MIN_WORK = 4096;

/** the opts the heuristic picks for `sink` (none for kernels it does not know) */
export function handCodedOpts(sink: UOp): Opt[] {
  const red = matmulReduce(sink);
  if (!red) return reduceOpts(sink);
  const axes = kernelAxes(sink);
  if (axes.some((a) => a.size === null)) return [];
  if (axes.reduce((p, a) => p * a.size!, 1) < MIN_WORK) return [];
  const outs = outputAxes(sink, axes);
  const reduces = axes.filter((a) => red.src.slice(1).includes(a.range));
  const k = reduces.at(-1);
  // the outer tile axis is one the other operand indexes and the inner one's operand does not,
  // so both loads are reused: a matmul's rows; a convolution's output channels, not its rows
  const inner = outs.at(-1);
  const factors = unCast(red.src[0]).src;
  const [x, y] = factors.map((s) => new Set(s.toposort()));
  const uses = (o: Set<UOp>, a: KernelAxis) => o.has(a.range);
  const other = inner && (uses(x, inner) ? y : x), own = inner && (uses(x, inner) ? x : y);
  // a packed operand (src/tensor/nnfunc.ts: rows of the tile's columns contiguous) streams
  // through the cache whole: no block
  const ownLoad = inner && factors[uses(x, inner) ? 0 : 1];
  const step = k !== undefined && ownLoad !== undefined ? strideAlong(ownLoad, k.range) : null;
  const packed = step !== null && step <= HEURISTIC.inner[0];
  const blocked = k !== undefined && k.size! >= HEURISTIC.blockFrom && !packed;
  const outer = outs.slice(0, -1).reverse().find((a) => uses(other!, a) && !uses(own!, a)) ??
    outs.at(-2);
  // a padded operand along the inner axis (a convolution's input: WHERE(valid, LOAD, 0)) does
  // not vectorize along it: the tile runs along the outer axis alone (the output channels, each
  // input value reused by 8 of them): BEAM's pick for a 3x3 conv, 12.2 GFLOP/s against 7.3
  const gated = ownLoad !== undefined && unCast(ownLoad).op === Ops.WHERE && !blocked;
  const wanted: [OptOps, number | undefined, number[]][] = gated
    ? [[OptOps.UPCAST, outer?.id, HEURISTIC.gatedOuter]]
    : [
      [OptOps.UPCAST, inner?.id, HEURISTIC.inner],
      [OptOps.UPCAST, outer?.id, blocked ? HEURISTIC.outerBlocked : HEURISTIC.outer],
      [OptOps.TILE, blocked ? k.id : undefined, HEURISTIC.block],
      // packed: two 16-column panels (2 x K x 64 bytes, in L2) swept over every row tile before
      // the next two, so the right operand is read from memory once, not once per row tile
      [OptOps.TILE, packed ? inner?.id : undefined, HEURISTIC.packedPanels],
    ];
  const chosen: Opt[] = [];
  let cur = sink;
  for (const [op, axis, amounts] of wanted) cur = applyFirst(cur, op, axis, amounts, chosen);
  // the block's own reduce loop unrolled by 2: BEAM's pick at 1024 (63 ms against 79 ms)
  if (blocked) {
    const ids = new Set(axes.map((a) => a.id));
    const inner = kernelAxes(cur).find((a) => a.type === AxisType.REDUCE && !ids.has(a.id));
    applyFirst(cur, OptOps.UNROLL, inner?.id, [2], chosen);
  }
  return chosen;
}

/** how far apart in its buffer `load` reads consecutive steps of `r` (null: not a constant) */
function strideAlong(load: UOp, r: UOp): number | null {
  const ld = unCast(load);
  const idx = ld.op === Ops.LOAD ? ld.src[0] : null;
  if (idx?.op !== Ops.INDEX || idx.src.length < 2) return null;
  const zero = new Map(
    idx.src[1].toposort().filter((u) => u.op === Ops.RANGE).map((u) => [u, u.constLike(0)]),
  );
  const at = (v: number) => idx.src[1].substitute(new Map([...zero, [r, r.constLike(v)]]));
  const d = at(1).sub(at(0)).simplify();
  return d.op === Ops.CONST ? Number(d.arg) : null;
}

/** the longest reduce nested in another that is unrolled whole */
export const INNER_UNROLL_MAX = 64;

/**
 * Short reduces nested inside another reduce's loop (attention's q.k dot products inside the
 * loop over keys) unrolled whole: what they load from outside the outer loop (the query row)
 * is then loaded once, before it, instead of once per outer iteration. On an H100 this made
 * [8,16,4096,64] float16 attention 9.4x faster (1.74 s to 0.18 s); on the CPU 1.2x.
 */
export function innerReduceUnrolls(sink: UOp): Opt[] {
  const nested = [...nestedReduces(sink)];
  const chosen: Opt[] = [];
  let cur = sink;
  for (const a of kernelAxes(sink)) {
    if (a.type !== AxisType.REDUCE || a.size === null || a.size > INNER_UNROLL_MAX) continue;
    if (a.size < 2 || !nested.some((r) => r.src.includes(a.range))) continue;
    cur = applyFirst(cur, OptOps.UNROLL, a.id, [a.size], chosen);
  }
  return chosen;
}

/** reduce lengths from which a plain (not matmul) reduce gets the reduce heuristic */
export const REDUCE_FROM = 1024;

/**
 * A long reduce (a row sum, a split full sum): the reduce unrolled by 8 and blocked by 256
 * (partial sums added to the output: short dependency chains), and 8 outputs computed together
 * (8 independent accumulators streaming 8 rows). BEAM's pick for the partial sums of a
 * [8192,8192] sum on this 2-core machine: 12.4 ms against 41 ms with none.
 */
function reduceOpts(sink: UOp): Opt[] {
  const axes = kernelAxes(sink);
  if (axes.some((a) => a.size === null)) return [];
  const inner = innerReduceUnrolls(sink);
  if (inner.length) return inner;
  const reds = axes.filter((a) => a.reduce && a.type === AxisType.REDUCE);
  if (sink.toposort().some((u) => u.op === Ops.DEFINE_LOCAL)) return stagedOpts(sink, reds);
  const outs = axes.filter((a) => a.output && !a.reduce && a.type === AxisType.LOOP);
  const k = reds.at(-1), o = outs.at(-1);
  if (!k || k.size! < REDUCE_FROM) return [];
  const wanted: [OptOps, number | undefined, number[]][] = [
    [OptOps.UNROLL, k.id, [8, 4]],
    [OptOps.TILE, k.id, [256]],
    [OptOps.UPCAST, o && o.size! >= 64 ? o.id : undefined, [8, 4]],
  ];
  const chosen: Opt[] = [];
  let cur = sink;
  for (const [op, axis, amounts] of wanted) cur = applyFirst(cur, op, axis, amounts, chosen);
  return chosen;
}

/**
 * A kernel rangeify staged a value in (softmax on a CPU: a row's max, its exps into an array,
 * their sum, the output): each long reduce into 8 lanes (8 accumulators, one vector register);
 * the loops that fill the array and the output are left for the C compiler to vectorize, which
 * it does for a plain loop of exps and not for 8 exps copied out. On [4096,4096]: 23.2 ms,
 * against 26.4 with the reduces UNROLLed by 8 and 34.5 with the loops UPCAST by 8 too.
 */
function stagedOpts(sink: UOp, reds: KernelAxis[]): Opt[] {
  const chosen: Opt[] = [];
  let cur = sink;
  for (const k of reds) {
    if (k.size! >= REDUCE_FROM) cur = applyFirst(cur, OptOps.LANES, k.id, [8, 4], chosen);
  }
  return chosen;
}

const optimized = (s: UOp): boolean =>
  (s.arg as { optimized?: boolean } | undefined)?.optimized === true;

/** the heuristic's opts applied (once: the SINK is marked) */
function optimize(s: UOp, lang: string): UOp | undefined {
  if (optimized(s)) return undefined;
  const marked = s.replace({ arg: { ...(s.arg as object | undefined), optimized: true } });
  if (noOpt()) return marked;
  const gpu = GPU_LIMITS[lang];
  const opts = gpu ? gpuOpts(s, gpu) : handCodedOpts(s);
  // BEAM: search from the heuristic's pick on the device of the language, where one can time
  const searched = beamWidth() && lang in BEAM_DEVICES
    ? beamSearch(s, lang as CodegenLang, { seed: opts })
    : opts;
  return searched.reduce(applyOpt, marked);
}

/** the heuristic on the kernel, then the expansion of UPCAST and UNROLL ranges */
export const pmOptimize: PatternMatcher<{ lang?: string }> = new PatternMatcher<
  { lang?: string }
>([
  [new UPat({ op: Ops.SINK, name: "s" }), (b, ctx) => optimize(b.s, ctx?.lang ?? "c")],
]).concat(pmExpand);

/** `sink` with exactly `opts` applied, marked so that the heuristic leaves it as it is */
export function withOpts(sink: UOp, opts: readonly Opt[]): UOp {
  const s = opts.reduce(applyOpt, sink);
  return s.replace({ arg: { ...(s.arg as object | undefined), optimized: true } });
}
