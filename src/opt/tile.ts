// TILE: cache blocking. An axis of size n splits into blocks (outer n/k) of k (inner), both
// staying loops, and the block loop moves outward, so that what the inner loops reuse (a panel
// of a matmul's right operand) stays in cache while they sweep the rest of the kernel.
//
// An output axis just reorders its loops. A reduce axis cannot leave its REDUCE's loops without
// its accumulator leaving registers, so its block loop becomes a loop of the store instead (right
// inside the outermost loop, which keeps the threads; an output block loop goes outermost): each
// block adds its partial sum into the output, which the first block initializes. That is only
// sound where the reduce is an ADD stored as is (the output then holds exactly the sum).
import { AxisType, Ops, UOp } from "../uop/ops.ts";
import { graphRewrite, PatternMatcher, UPat } from "../uop/upat.ts";
import { kernelAxes, type Opt, OptError, splitRange } from "./opts.ts";
import { dtypes } from "../dtype.ts";

/** the block loop first in every END that lists it */
const pmBlockFirst = new PatternMatcher<UOp>([
  [new UPat({ op: Ops.END, name: "e" }), (b, outer) => {
    const rs = b.e.src.slice(1);
    if (rs[0] === outer || !rs.includes(outer)) return undefined;
    return b.e.replace({ src: [b.e.src[0], outer, ...rs.filter((r) => r !== outer)] });
  }],
]);

/** the store of a kernel output (END'd or bare) */
const storeOf = (x: UOp): UOp => (x.op === Ops.END ? x.src[0] : x);

/** `sink` with TILE(axis, amount) applied; throws OptError where it does not apply */
export function applyTile(sink: UOp, opt: Opt): UOp {
  const bad = (why: string): never => {
    throw new OptError(opt, why);
  };
  if (!Number.isInteger(opt.amount) || opt.amount < 2) bad("the amount must be an integer >= 2");
  const ax = kernelAxes(sink).find((a) =>
    a.id === opt.axis && (a.type === AxisType.LOOP || a.type === AxisType.REDUCE)
  );
  if (!ax) return bad(`the kernel has no LOOP or REDUCE axis ${opt.axis}`);
  if (ax.size === null) bad("the axis has a symbolic size");
  const n = ax.size!;
  if (n % opt.amount !== 0) bad(`the axis size ${n} is not a multiple of it`);
  if (opt.amount >= n) bad(`a block of ${opt.amount} is not smaller than the axis (${n})`);
  if (ax.output && !ax.reduce && ax.type === AxisType.LOOP) {
    const split = splitRange(sink, ax.range, opt.amount, AxisType.LOOP);
    return graphRewrite(split, pmBlockFirst, outerOf(split, opt.axis));
  }
  if (!ax.reduce || ax.output) bad("TILE needs an output loop or a reduce axis");
  checkStoredSums(sink, ax.range, bad);
  const split = splitRange(sink, ax.range, opt.amount, AxisType.REDUCE);
  const kb = outerOf(split, opt.axis);
  return split.replace({ src: split.src.map((x) => blockStore(x, kb)) });
}

const outerOf = (sink: UOp, id: number): UOp =>
  kernelAxes(sink).find((a) => a.id === id && a.size !== null)!.range;

/** every REDUCE over `k` is an ADD stored as is (same dtype, ungated) by a kernel output */
function checkStoredSums(sink: UOp, k: UOp, bad: (why: string) => never): void {
  const stored = new Set(
    sink.src.map(storeOf).filter((st) =>
      st.op === Ops.STORE && st.src[0].src.length === 2 &&
      st.src[0].src[0].op === Ops.DEFINE_GLOBAL && st.src[1].op === Ops.REDUCE &&
      st.src[1].arg === Ops.ADD && st.src[1].dtype === st.src[0].src[0].dtype
    ).map((st) => st.src[1]),
  );
  for (const u of sink.toposort()) {
    if (u.op === Ops.REDUCE && u.src.includes(k) && !stored.has(u)) {
      bad("a reduce block needs every reduce over the axis to be a sum stored as is");
    }
  }
}

/** a store of a sum over [kb, ki]: one store per block kb, adding the block's sum */
function blockStore(x: UOp, kb: UOp): UOp {
  const st = storeOf(x), red = st.src[1];
  if (st.op !== Ops.STORE || red?.op !== Ops.REDUCE || !red.src.includes(kb)) return x;
  const idx = st.src[0];
  // the first block adds nothing (the output starts as garbage). The load itself is ungated (the
  // store writes the same element, so it is in bounds) and the garbage is selected away: a gated
  // load is a branch per element, which keeps the C compiler from vectorizing the tile. Its extra
  // source (the block's sum) orders it after the block's reduce loop, inside the block loop: the
  // previous value is read where it is added, not held in registers across the reduce.
  const part = red.replace({ src: red.src.filter((r) => r !== kb) });
  const prev = kb.ne(0).where(
    UOp.make(Ops.LOAD, red.dtype, [
      UOp.make(Ops.INDEX, idx.dtype, [idx.src[0], idx.src[1]]),
      part,
    ]),
    red.constLike(0),
  );
  const next = st.replace({ src: [idx, prev.add(part), ...st.src.slice(2)] });
  // right inside the outermost loop, which stays outermost to get the threads
  const [first, ...rest] = x.op === Ops.END ? x.src.slice(1) : [];
  return UOp.make(Ops.END, dtypes.void, [next, ...(first ? [first, kb] : [kb]), ...rest]);
}
