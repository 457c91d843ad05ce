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
import { AxisType, INDEX_LDMATRIX, Ops, STORE_ASYNC, UOp } from "../uop/ops.ts";
import { type DType, dtypes } from "../dtype.ts";
import { sizeOf, storeTiles, tileLoops, unCast } from "./tc_common.ts";
import { applyFirst, kernelAxes, type Opt, OptError, OptOps } from "./opts.ts";
import { AMD_TC_AMOUNT, amdTcKind, rebuildAmd } from "./tc_amd.ts";

/** the mma shape: rows of a and c, columns of b and c, and the reduce slice */
export const TC_DIMS = { m: 16, n: 8, k: 16 } as const;
/** lanes of a warp: the LOCAL range TC adds is exactly one warp (threadIdx.x) */
export const WARP = 32;
/** the oldest GPU generation whose mma.sync takes both float16 and bfloat16 (Ampere) */
export const TC_MIN_SM = 80;

const HALF: readonly DType[] = [dtypes.float16, dtypes.bfloat16];
const rangesIn = (u: UOp): Set<UOp> => new Set(u.toposort().filter((x) => x.op === Ops.RANGE));

/** a factor as the 16-bit float value the mma takes (looking through a widening CAST), or null */
function halfValue(x: UOp): UOp | null {
  if (HALF.includes(x.dtype)) return x;
  if (x.op === Ops.CAST && HALF.includes(x.src[0].dtype)) return x.src[0];
  return null;
}

/** `sink` with TC applied (opt.axis: the matmul's reduce axis; opt.amount: the mma's K, 16) */
export function applyTC(sink: UOp, opt: Opt): UOp {
  const bad = (why: string): never => {
    throw new OptError(opt, why);
  };
  const amd = amdTcKind(opt.amount);
  if (
    opt.amount !== TC_DIMS.k && opt.amount !== STAGED.bk && opt.amount !== PIPE.bk && !amd
  ) {
    bad(
      `the amount is the mma's K, ${TC_DIMS.k} (m16n8k16), or the k of one shared-memory ` +
        `stage: ${STAGED.bk} (block tiles staged through shared memory) or ${PIPE.bk} ` +
        `(staged by cp.async, ${PIPE.stages} stages in flight); on AMD ` +
        Object.entries(AMD_TC_AMOUNT).map(([k, v]) => `${v} (${k})`).join(" or "),
    );
  }
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
  if (amd) {
    return rebuildAmd(amd, sink, st, outs, k, tries, Math.max(...axes.map((a) => a.id)) + 1, bad);
  }
  if (opt.amount === STAGED.bk || opt.amount === PIPE.bk) {
    const cfg = opt.amount === PIPE.bk ? PIPE : STAGED;
    const tile = [cfg.bm, cfg.bn, cfg.bk];
    // the pipeline's prologue fills stages-1 stages: K must hold that many slices
    const fits = tries.find(([m, n]) =>
      [sizeOf(m), sizeOf(n), K].every((s, i) => s !== null && s % tile[i] === 0) &&
      K! >= cfg.bk * (cfg.stages - 1)
    );
    if (!fits) {
      const [m, n] = tries[0];
      bad(
        `sizes M=${sizeOf(m)}, N=${sizeOf(n)}, K=${K} do not fit the staged block tile: M and N ` +
          `must be multiples of ${cfg.bm} and K of ${cfg.bk}` +
          (cfg.stages > 2 ? `, at least ${cfg.bk * (cfg.stages - 1)}` : ""),
      );
    }
    return rebuildStaged(sink, st, outs, k, fits!, Math.max(...axes.map((a) => a.id)) + 1, cfg);
  }
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
  const [mo, no, ko] = tileLoops(m, n, k, [TC_DIMS.m, TC_DIMS.n, TC_DIMS.k]);
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
  return storeTiles(sink, st, outs, idx, sum, [m, n, mo, no], [lane, elem]);
}

/**
 * The staged variant (TC with amount STAGED.bk): a block of 2x2 warps computes a 128x128 output
 * tile, each warp 4x8 mma tiles (64x64 outputs). For each 32-wide k slice the block's threads
 * copy the A tile [128 x 32] and the B tile [32 x 128] into shared memory, 16 bytes per thread
 * and copy (8 consecutive elements: one wide load and one wide store, src/renderer/wide_loads.ts),
 * wait at a barrier, and the warps read their fragments from there: each A and B element comes
 * from global memory once per block instead of once per warp tile. Two stages (ko % 2) make one
 * barrier per slice enough: slice ko+2 rewrites stage ko%2 only after every thread passed slice
 * ko+1's barrier, so after every read of slice ko. Rows are padded by 8 elements (16 bytes) so
 * that the 8 16-byte rows one ldmatrix phase reads (rows 80 and 272 bytes apart) fall in 8
 * different 16-byte bank groups.
 */
export const STAGED = {
  /** warps along m and n */
  wm: 2,
  wn: 2,
  /** mma tiles per warp along m and n */
  mi: 4,
  nj: 8,
  /** the block tile: m and n outputs, k per stage */
  bm: 128,
  bn: 128,
  bk: 32,
  /** padding of each shared row (elements: 16 bytes) */
  pad: 8,
  stages: 2,
  /** copies by cp.async, issued stages-1 slices ahead of the compute */
  async: false,
  /** 16-byte chunks of shared rows XOR-swizzled (instead of padded rows) */
  swizzle: false,
};

/** the block layout of a staged kernel (STAGED, PIPE) */
export type StageCfg = typeof STAGED;

/**
 * The pipelined variant (TC with amount PIPE.bk): STAGED's block with 64-wide k slices in 3
 * stages of shared memory (96 KB: dynamic shared memory) filled by cp.async, which copies global
 * memory to shared memory without the registers and without waiting. Before the k loop the
 * copies of slices 0..stages-2 are issued; iteration ko waits until its own slice's copies
 * landed (each thread: cp.async.wait_group lets the copies of the stages-2 later slices stay in
 * flight), meets the barrier (every thread's copies of slice ko landed, and every warp is done
 * with slice ko-1), then issues the copy of slice ko+stages-1 into the stage slice ko-1 used
 * and computes slice ko while the copies run. Rows are XOR-swizzled instead of padded: a hand
 * kernel of this design (.scratch/ldm.ts, .scratch/pipe.ts) ran at 414 TFLOP/s swizzled and 311
 * padded (float16 4096^3, an H100).
 */
export const PIPE: StageCfg = {
  ...STAGED,
  bk: 64,
  stages: 3,
  async: true,
  pad: 0,
  swizzle: true,
};

function rebuildStaged(
  sink: UOp,
  st: UOp,
  outs: readonly UOp[],
  k: UOp,
  [m, n, a, b]: [UOp, UOp, UOp, UOp],
  nextId: number,
  S: StageCfg,
): UOp {
  const [mb, nb, ko] = tileLoops(m, n, k, [S.bm, S.bn, S.bk]);
  // lane gets the largest id of the LOCAL ranges: gpudims makes it threadIdx.x, so that the 32
  // lanes of a warp are one hardware warp
  let next = nextId;
  const range = (size: number, type: AxisType) => UOp.range(size, next++, type);
  const wy = range(S.wm, AxisType.LOCAL), wx = range(S.wn, AxisType.LOCAL);
  const lane = range(WARP, AxisType.LOCAL);
  const kk = range(S.bk / TC_DIMS.k, AxisType.REDUCE);
  const mi = range(S.mi, AxisType.UPCAST), nj = range(S.nj, AxisType.UPCAST);
  const elem = range(4, AxisType.UPCAST);
  const g = lane.idiv(4), t = lane.mod(4);
  const threads = S.wm * S.wn * WARP;
  const rowA = S.bk + S.pad, rowB = S.bn + S.pad;
  const sizeA = S.bm * rowA, sizeB = S.bk * rowB;
  const smemA = UOp.make(Ops.DEFINE_LOCAL, a.dtype, [], [0, S.stages * sizeA]);
  const smemB = UOp.make(Ops.DEFINE_LOCAL, b.dtype, [], [1, S.stages * sizeB]);
  const stage = ko.op === Ops.RANGE ? ko.mod(S.stages) : ko;
  const at = (buf: UOp, i: UOp) => UOp.make(Ops.INDEX, buf.dtype, [buf, i]);
  // element `within` of 16-byte chunk `chunk` of row `row` of a stage; swizzled, the chunk is
  // XORed with row%8, so that the 8 rows an ldmatrix phase reads (all the same chunk) and the
  // rows a warp's copies write spread over the 8 bank groups without padding
  const swz = (chunk: UOp, row: UOp) => (S.swizzle ? chunk.xor(row.mod(8)) : chunk);
  const slotA = (st: UOp, row: UOp, chunk: UOp, within: UOp) =>
    st.mul(sizeA).add(row.mul(rowA)).add(swz(chunk, row).mul(8)).add(within);
  const slotB = (st: UOp, row: UOp, chunk: UOp, within: UOp) =>
    st.mul(sizeB).add(row.mul(rowB)).add(swz(chunk, row).mul(8)).add(within);

  // the copy of k slice `slice` into stage `into`: chunk q = c*threads + tid of 8 elements
  // (tid = 64 wy + 32 wx + lane; a row of `perRow` chunks), its row q/perRow and column
  // 8*(q%perRow) written in terms of the thread's ranges so that the indexes stay sums of terms
  const chunks = (S.bm * S.bk) / 8 / threads; // per thread, for A and for B alike
  const copy = (
    buf: UOp,
    perRow: number,
    into: UOp,
    from: (r: UOp, c: UOp) => UOp,
    extra: UOp[],
  ) => {
    const c = range(chunks, AxisType.UPCAST), i = range(8, AxisType.UPCAST);
    const r = c.mul(threads / perRow).add(wy.mul(S.wn * WARP / perRow))
      .add(wx.mul(WARP / perRow)).add(lane.idiv(perRow));
    const col = lane.mod(perRow).mul(8).add(i);
    const slot = buf === smemA ? slotA : slotB;
    const store = UOp.make(Ops.STORE, dtypes.void, [
      at(buf, slot(into, r, lane.mod(perRow), i)),
      from(r, col),
      ...extra,
    ], S.async ? STORE_ASYNC : undefined);
    return (more: UOp[]) => UOp.make(Ops.END, dtypes.void, [store, c, i, ...more]);
  };
  const copies = (slice: UOp, into: UOp, extra: UOp[] = []) => [
    copy(
      smemA,
      S.bk / 8,
      into,
      (r, c) => a.substitute(new Map([[m, mb.mul(S.bm).add(r)], [k, slice.mul(S.bk).add(c)]])),
      extra,
    ),
    copy(
      smemB,
      S.bn / 8,
      into,
      (r, c) => b.substitute(new Map([[k, slice.mul(S.bk).add(r)], [n, nb.mul(S.bn).add(c)]])),
      extra,
    ),
  ];
  let bar: UOp, after: UOp[] = [];
  if (!S.async) bar = UOp.make(Ops.BARRIER, dtypes.void, copies(ko, stage).map((f) => f([])));
  else {
    // the prologue: slices 0..stages-2 into stages 0..stages-2, each slice's copies issued
    // after the last one's (the wait counts copies in issue order)
    let pro: UOp[] = [];
    for (let p = 0; p < S.stages - 1; p++) {
      const sl = UOp.const(dtypes.int32, p);
      pro = copies(sl, sl, pro).map((f) => f([]));
    }
    // in flight past the barrier: each thread's copies of the stages-2 slices after ko
    const inFlight = (S.stages - 2) * 2 * chunks;
    bar = UOp.make(Ops.BARRIER, dtypes.void, [...pro, ko], inFlight);
    // slices past the end copy the last slice again (into the stage of a slice already done:
    // nothing reads it) so that every iteration issues the same copies
    const last = sizeOf(k)! / S.bk - 1;
    const ahead = ko.add(S.stages - 1);
    after = copies(ahead.minimum(last), ahead.mod(S.stages), [bar]).map((f) => f([]));
  }
  const read = (buf: UOp, i: UOp, ldm: UOp[]) =>
    UOp.make(Ops.LOAD, buf.dtype, [at(buf, i), bar, ...after, ...ldm]);
  // swizzled, ldmatrix's row addresses are no longer the element indexes' linear form: each
  // operand's first element load names the row its lane hands ldmatrix (INDEX_LDMATRIX). a: lane
  // L the tile row L%16 at k chunk L/16 (x4); b: lane L the k row L%16 (x2 .trans, lanes past
  // 15 repeat the first 16)
  const ldm = (buf: UOp, i: UOp) => [UOp.make(Ops.INDEX, buf.dtype, [buf, i], INDEX_LDMATRIX)];
  const ldmA = S.swizzle
    ? ldm(
      smemA,
      slotA(
        stage,
        wy.mul(S.mi * TC_DIMS.m).add(mi.mul(TC_DIMS.m)).add(lane.mod(16)),
        kk.mul(2).add(lane.idiv(16)),
        UOp.const(dtypes.int32, 0),
      ),
    )
    : [];
  const ldmB = S.swizzle
    ? ldm(
      smemB,
      slotB(
        stage,
        kk.mul(TC_DIMS.k).add(lane.mod(16)),
        wx.mul(S.nj).add(nj),
        UOp.const(dtypes.int32, 0),
      ),
    )
    : [];

  // a fragment element's k: kk*16 + 8*hi + 2t + lo (the chunk of 8 kk*2 + hi, 2t + lo in it)
  const aVals = Array.from({ length: 8 }, (_, e) => {
    const row = wy.mul(S.mi * TC_DIMS.m).add(mi.mul(TC_DIMS.m)).add(g).add(8 * ((e >> 1) & 1));
    const at0 = slotA(stage, row, kk.mul(2).add(e >= 4 ? 1 : 0), t.mul(2).add(e & 1));
    return read(smemA, at0, e === 0 ? ldmA : []);
  });
  // column c (0..7) of a warp's tile j is block column 64 wx + 8j + c: the tile's b fragment is
  // two 8x8 matrices of the shared tile (k rows 0-7 and 8-15), which the CUDA renderer reads
  // with one ldmatrix .trans (src/renderer/wide_loads.ts matrixFragment), as it reads the a
  // fragment's four with one ldmatrix
  const col = (c: UOp) => wx.mul(S.nj * TC_DIMS.n).add(nj.mul(TC_DIMS.n)).add(c);
  const bVals = Array.from({ length: 4 }, (_, e) => {
    const kx = kk.mul(TC_DIMS.k).add(t.mul(2)).add((e & 1) + (e >= 2 ? 8 : 0));
    return read(smemB, slotB(stage, kx, wx.mul(S.nj).add(nj), g), e === 0 ? ldmB : []);
  });
  const wmma = UOp.make(Ops.WMMA, dtypes.float32, [...aVals, ...bVals, elem], [
    TC_DIMS.m,
    TC_DIMS.n,
    TC_DIMS.k,
  ]);
  const sum = UOp.make(
    Ops.REDUCE,
    dtypes.float32,
    [wmma, ...(ko.op === Ops.RANGE ? [ko] : []), kk],
    Ops.ADD,
  );
  const idx = st.src[0].substitute(
    new Map([
      [
        m,
        mb.mul(S.bm).add(wy.mul(S.mi * TC_DIMS.m)).add(mi.mul(TC_DIMS.m)).add(g).add(
          elem.idiv(2).mul(8),
        ),
      ],
      [n, nb.mul(S.bn).add(col(t.mul(2).add(elem.mod(2))))],
    ]),
  );
  return storeTiles(sink, st, outs, idx, sum, [m, n, mb, nb], [wy, wx, lane, mi, nj, elem]);
}

function envOn(name: string): boolean {
  try {
    return Deno.env.get(name) !== "0";
  } catch {
    return true; // no env permission: use them
  }
}
const tcEnabled = () => envOn("TC");
const stagedEnabled = () => envOn("TC_SMEM");
const pipeEnabled = () => envOn("TC_PIPE");

/**
 * The heuristic's tensor-core opts for a CUDA kernel (assumed sm_80+: TC_MIN_SM), or null where
 * TC does not apply or TC=0: the pipelined variant (PIPE) or else the staged one (STAGED) where
 * the shapes divide its block tile, else TC, then each warp computes a 2x16 block of mma tiles (every a and
 * b fragment it loads feeds several mmas).
 */
export function tcOpts(sink: UOp): Opt[] | null {
  if (!tcEnabled()) return null;
  const red = kernelAxes(sink).filter((a) => a.reduce && a.type === AxisType.REDUCE);
  if (red.length !== 1) return null;
  const chosen: Opt[] = [];
  // staged through shared memory where the shapes allow (TC_SMEM=0 turns that off): 201 against
  // 119 TFLOP/s for float16 4096^3 on an H100 with a hand-written kernel of the same design
  // pipelined by cp.async first (TC_PIPE=0 turns it off): 360 against 199 TFLOP/s for STAGED
  // (float16 4096^3, an H100, bench/gpu.ts)
  if (stagedEnabled()) {
    applyFirst(
      sink,
      OptOps.TC,
      red[0].id,
      pipeEnabled() ? [PIPE.bk, STAGED.bk] : [STAGED.bk],
      chosen,
    );
    if (chosen.length) return chosen;
  }
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
