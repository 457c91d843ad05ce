// TC: a float16/bfloat16 matmul on NVIDIA tensor cores (mma.sync m16n8k16, sm_80 and newer).
// The kernel out[m,n] = sum_k a(m,k)*b(k,n) is rebuilt around one warp per 16x8 output tile:
// m and n become tile loops (the grid), a LOCAL range of 32 lanes the warp, an UPCAST range of
// 4 the accumulator elements each lane holds, and k a loop over 16-wide slices. Each lane feeds
// the mma the a and b elements the PTX ISA's fragment layouts give it (g = lane/4 the group,
// t = lane%4 the thread in the group):
//   a (16x16, row-major) element e < 8: row g + 8*((e>>1)&1), k 2t + (e&1) + 8*(e>=4)
//   b (16x8, column-major) element e < 4: k 2t + (e&1) + 8*(e>=2), column g
//   c/d (16x8) element u < 4: row g + 8*(u>=2), column 2t + (u&1)
// WMMA(a0..a7, b0..b3, u) is element u of the mma's float32 result on a zero accumulator; the
// REDUCE over the k slices adds it up, so the kernel keeps its REDUCE form (src/opt/expand.ts
// makes the 4 elements 4 REDUCEs whose WMMAs share their sources: one mma in the CUDA source).
import { AxisType, Ops, UOp } from "../uop/ops.ts";
import { type DType, dtypes } from "../dtype.ts";
import { applyFirst, kernelAxes, type Opt, OptError, OptOps } from "./opts.ts";

/** the mma shape: rows of a and c, columns of b and c, and the reduce slice */
export const TC_DIMS = { m: 16, n: 8, k: 16 } as const;
/** lanes of a warp: the LOCAL range TC adds is exactly one warp (threadIdx.x) */
export const WARP = 32;
/** the oldest GPU generation whose mma.sync takes both float16 and bfloat16 (Ampere) */
export const TC_MIN_SM = 80;

const HALF: readonly DType[] = [dtypes.float16, dtypes.bfloat16];
const unCast = (u: UOp): UOp => (u.op === Ops.CAST ? unCast(u.src[0]) : u);
const rangesIn = (u: UOp): Set<UOp> => new Set(u.toposort().filter((x) => x.op === Ops.RANGE));
const sizeOf = (
  r: UOp,
): number | null => (r.src[0].op === Ops.CONST ? r.src[0].arg as number : null);

/** a factor as the 16-bit float value the mma takes (looking through a widening CAST), or null */
function halfValue(x: UOp): UOp | null {
  if (HALF.includes(x.dtype)) return x;
  if (x.op === Ops.CAST && HALF.includes(x.src[0].dtype)) return x.src[0];
  return null;
}

/** a range of `n` iterations, or the constant 0 where there would be one iteration */
const loop = (n: number, id: number, type: AxisType): UOp =>
  n === 1 ? UOp.const(dtypes.int32, 0) : UOp.range(n, id, type);

/** `sink` with TC applied (opt.axis: the matmul's reduce axis; opt.amount: the mma's K, 16) */
export function applyTC(sink: UOp, opt: Opt): UOp {
  const bad = (why: string): never => {
    throw new OptError(opt, why);
  };
  if (opt.amount !== TC_DIMS.k) bad(`the amount is the mma's K: only ${TC_DIMS.k} (m16n8k16)`);
  const axes = kernelAxes(sink);
  const done = axes.filter((a) => a.type !== AxisType.LOOP && a.type !== AxisType.REDUCE);
  if (done.length) {
    bad(`TC must be the first opt (the kernel has ${AxisType[done[0].type]} axis ${done[0].id})`);
  }
  if (sink.src.length !== 1 || sink.src[0].op !== Ops.END) {
    bad("TC needs a kernel of one store inside output loops");
  }
  const end = sink.src[0], st = end.src[0], outs = end.src.slice(1);
  if (st.op !== Ops.STORE) return bad("TC needs a kernel of one store inside output loops");
  const red = unCast(st.src[1]);
  if (red.op !== Ops.REDUCE || red.arg !== Ops.ADD) {
    bad("the stored value is not a sum (REDUCE ADD)");
  }
  if (red.src.length !== 2) bad(`the sum runs over ${red.src.length - 1} axes, TC takes one`);
  const k = red.src[1], kId = (k.arg as [number])[0];
  if (kId !== opt.axis) bad(`the sum runs over axis ${kId}, not ${opt.axis}`);
  const mul = unCast(red.src[0]);
  if (mul.op !== Ops.MUL) bad("the sum is not of a product of two factors (a matmul)");
  const [x, y] = mul.src.map(halfValue);
  if (!x || !y || x.dtype !== y.dtype) {
    bad(
      `tensor cores take float16 or bfloat16 factors, got ${
        mul.src.map((s) => s.dtype.name).join(" * ")
      }`,
    );
  }
  if (mul.src.some((s) => s.toposort().some((u) => u.op === Ops.REDUCE))) {
    bad("a factor holds a reduce of its own");
  }
  const rx = rangesIn(x!), ry = rangesIn(y!);
  if (!rx.has(k) || !ry.has(k)) bad("both factors must be read along the reduce axis");
  for (const r of [...rx, ...ry]) {
    if (r !== k && !outs.includes(r)) bad("a factor is read along a loop the store is not in");
  }
  const onlyX = outs.filter((r) => rx.has(r) && !ry.has(r));
  const onlyY = outs.filter((r) => ry.has(r) && !rx.has(r));
  if (onlyX.length !== 1 || onlyY.length !== 1) {
    bad("TC needs one output axis read only by each factor (out[m,n] = sum_k a[m,k]*b[k,n])");
  }
  // n (8 wide) on the store's innermost axis keeps each lane's pair of outputs adjacent
  const inner = outs.indexOf(onlyY[0]) > outs.indexOf(onlyX[0]);
  const tries: [UOp, UOp, UOp, UOp][] = [[onlyX[0], onlyY[0], x!, y!], [
    onlyY[0],
    onlyX[0],
    y!,
    x!,
  ]];
  if (!inner) tries.reverse();
  const K = sizeOf(k);
  const fit = tries.find(([m, n]) => {
    const M = sizeOf(m), N = sizeOf(n);
    return M !== null && N !== null && K !== null && M % TC_DIMS.m === 0 &&
      N % TC_DIMS.n === 0 && K % TC_DIMS.k === 0;
  });
  if (!fit) {
    const [m, n] = tries[0];
    bad(
      `sizes M=${sizeOf(m)}, N=${sizeOf(n)}, K=${K} do not fit m16n8k16: M and K must be ` +
        `multiples of 16 and N of 8 (the other way round: N and K of 16, M of 8)`,
    );
  }
  return rebuild(sink, st, outs, k, fit!, Math.max(...axes.map((a) => a.id)) + 1);
}

function rebuild(
  sink: UOp,
  st: UOp,
  outs: readonly UOp[],
  k: UOp,
  [m, n, a, b]: [UOp, UOp, UOp, UOp],
  nextId: number,
): UOp {
  const id = (r: UOp) => (r.arg as [number])[0];
  const mo = loop(sizeOf(m)! / TC_DIMS.m, id(m), AxisType.LOOP);
  const no = loop(sizeOf(n)! / TC_DIMS.n, id(n), AxisType.LOOP);
  const ko = loop(sizeOf(k)! / TC_DIMS.k, id(k), AxisType.REDUCE);
  const lane = UOp.range(WARP, nextId, AxisType.LOCAL);
  const elem = UOp.range(4, nextId + 1, AxisType.UPCAST);
  const g = lane.idiv(4), t = lane.mod(4);
  const kAt = (off: number) => ko.mul(TC_DIMS.k).add(t.mul(2)).add(off);
  const aVals = Array.from({ length: 8 }, (_, e) =>
    a.substitute(
      new Map([
        [m, mo.mul(TC_DIMS.m).add(g).add(8 * ((e >> 1) & 1))],
        [k, kAt((e & 1) + (e >= 4 ? 8 : 0))],
      ]),
    ));
  // column c (0..7) of n tile j is output column col(j, c). Plain: 8j + c. Where N allows,
  // tiles go in groups of 8 whose columns interleave: col = 64*(j/8) + 8c + j%8, so the b
  // elements a lane needs for 8 tiles (column c of each) are 8 adjacent values of a row of b,
  // one 16-byte load (src/renderer/wide_loads.ts) instead of 8 two-byte ones
  const col = sizeOf(n)! % (8 * TC_DIMS.n) === 0
    ? (c: UOp) => no.idiv(8).mul(8 * TC_DIMS.n).add(c.mul(8)).add(no.mod(8))
    : (c: UOp) => no.mul(TC_DIMS.n).add(c);
  const bVals = Array.from(
    { length: 4 },
    (_, e) => b.substitute(new Map([[n, col(g)], [k, kAt((e & 1) + (e >= 2 ? 8 : 0))]])),
  );
  const wmma = UOp.make(Ops.WMMA, dtypes.float32, [...aVals, ...bVals, elem], [
    TC_DIMS.m,
    TC_DIMS.n,
    TC_DIMS.k,
  ]);
  const sum = ko.op === Ops.RANGE
    ? UOp.make(Ops.REDUCE, dtypes.float32, [wmma, ko], Ops.ADD)
    : wmma;
  const idx = st.src[0].substitute(
    new Map([
      [m, mo.mul(TC_DIMS.m).add(g).add(elem.idiv(2).mul(8))],
      [n, col(t.mul(2).add(elem.mod(2)))],
    ]),
  );
  // the casts between the sum and the store stay (a float16 rounding before a float32 store)
  const red = unCast(st.src[1]);
  const store = UOp.make(Ops.STORE, dtypes.void, [
    idx,
    st.src[1].substitute(new Map([[red, sum.cast(red.dtype)]])),
  ]);
  const ranges = outs.map((r) => (r === m ? mo : r === n ? no : r))
    .filter((r) => r.op === Ops.RANGE);
  return sink.replace({ src: [UOp.make(Ops.END, dtypes.void, [store, ...ranges, lane, elem])] });
}

function tcEnabled(): boolean {
  try {
    return Deno.env.get("TC") !== "0";
  } catch {
    return true; // no env permission: use them
  }
}

/**
 * The heuristic's tensor-core opts for a CUDA kernel (assumed sm_80+: TC_MIN_SM), or null where
 * TC does not apply or TC=0: TC, then each warp computes a 2x16 block of mma tiles (every a and
 * b fragment it loads feeds several mmas).
 */
export function tcOpts(sink: UOp): Opt[] | null {
  if (!tcEnabled()) return null;
  const red = kernelAxes(sink).filter((a) => a.reduce && a.type === AxisType.REDUCE);
  if (red.length !== 1) return null;
  const chosen: Opt[] = [];
  let s = applyFirst(sink, OptOps.TC, red[0].id, [TC_DIMS.k], chosen);
  if (!chosen.length) return null;
  const tiles = kernelAxes(s).filter((a) => a.output && a.type === AxisType.LOOP);
  // a 2x16 block of mma tiles per warp (2x2, then 8 more along the last axis): BEAM's pick on an
  // H100 for float16 4096^3, 1.8 ms against 5.7 ms for 2x2
  s = applyFirst(s, OptOps.UPCAST, tiles.at(-2)?.id, [2], chosen);
  s = applyFirst(s, OptOps.UPCAST, tiles.at(-1)?.id, [2], chosen);
  applyFirst(s, OptOps.UPCAST, tiles.at(-1)?.id, [8, 4, 2], chosen);
  return chosen;
}
