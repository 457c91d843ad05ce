// GPU launch dimensions: the kernel's output ranges become block and thread indices (SPECIAL),
// so each thread computes one output element; reduce ranges stay loops inside the thread.
//
// Conventions (the CUDA runtime launches with exactly these):
// - ProgramSpec.globalSize is the grid in BLOCKS per dimension [x, y, z]; localSize is the
//   block in THREADS per dimension. Threads launched = globalSize[i] * localSize[i].
// - SPECIAL(n) arg "gidxK" is blockIdx on dimension K (x, y, z), "lidxK" is threadIdx; both
//   lie in [0, n). SPECIAL(n) arg "idxK" is the global thread index blockIdx*blockDim+threadIdx
//   of a dimension whose block size does not divide n: the renderer makes threads past n return
//   at once, so inside the kernel it too lies in [0, n) and the bounds check stays exact.
import { AxisType, Ops, UOp } from "../uop/ops.ts";
import { graphRewrite, PatternMatcher, UPat } from "../uop/upat.ts";
import { symbolic } from "../uop/symbolic.ts";
import { dtypes } from "../dtype.ts";
import { openRanges } from "./ranges.ts";

/** what one launch may use: CUDA's limits for compute capability 3.0 and newer */
export interface GpuLimits {
  /** blocks per grid dimension */
  grid: readonly [number, number, number];
  /** threads per block dimension */
  block: readonly [number, number, number];
  /** threads per block */
  threads: number;
  /** the default block size to aim for (threads) */
  localMax: number;
}

export const CUDA_LIMITS: GpuLimits = {
  grid: [2 ** 31 - 1, 65535, 65535],
  block: [1024, 1024, 64],
  threads: 1024,
  localMax: 128,
};

export interface LaunchDims {
  /** blocks per dimension */
  globalSize: [number, number, number];
  /** threads per block dimension */
  localSize: [number, number, number];
  /** the ranges mapped onto the grid, outermost first (for kernel names) */
  mapped: UOp[];
}

interface Dim {
  /** outermost first; their product is `size` */
  ranges: UOp[];
  size: number;
  local: number;
  guarded: boolean;
}

/** the largest divisor of n that is at most cap */
function largestDivisor(n: number, cap: number): number {
  for (let d = Math.min(n, cap); d > 1; d--) if (n % d === 0) return d;
  return 1;
}

const sizeOf = (r: UOp): number => r.src[0].arg as number;

/**
 * Ranges every global store is indexed by and no REDUCE loops over: their iterations write
 * disjoint outputs, so each can be a thread. Ranges with a symbolic end stay loops.
 */
export function outputRanges(sink: UOp, reduceRanges: ReadonlySet<UOp>): UOp[] {
  const scope = openRanges(sink);
  const stores = sink.toposort().filter((u) =>
    u.op === Ops.STORE && u.src[0].op === Ops.INDEX && u.src[0].src[0].op === Ops.DEFINE_GLOBAL
  );
  if (!stores.length) return [];
  const candidates = [...scope.get(stores[0].src[0].src[1])!].filter((r) =>
    !reduceRanges.has(r) && r.src[0].op === Ops.CONST
  );
  const out = candidates.filter((r) => stores.every((s) => scope.get(s.src[0].src[1])!.has(r)));
  const key = (r: UOp) => r.arg as [number, AxisType];
  return out.sort((a, b) => key(a)[1] - key(b)[1] || key(a)[0] - key(b)[0] || a.id - b.id);
}

/** group `ranges` (outer to inner) into at most 3 dimensions and choose block sizes */
export function chooseDims(sizes: readonly number[], lim: GpuLimits = CUDA_LIMITS): {
  groups: number[][];
  local: number[];
  guarded: boolean[];
} {
  const attempt = (groups: number[][]) => {
    // dimension 0 (x) is the innermost group: consecutive threads touch consecutive elements
    const dims = [...groups].reverse();
    const local: number[] = [], guarded: boolean[] = [];
    let budget = lim.localMax;
    dims.forEach((g, k) => {
      const size = g.reduce((a, i) => a * sizes[i], 1);
      const cap = Math.min(budget, lim.block[k]);
      let l = largestDivisor(size, cap), guard = false;
      if (k === 0 && size > cap && l < 32) {
        // a poor divisor (a prime, say): full blocks and a guard for the tail
        l = cap;
        guard = true;
      }
      local.push(l);
      guarded.push(guard);
      budget = Math.max(1, Math.floor(budget / l));
    });
    const fits = dims.every((g, k) => {
      const size = g.reduce((a, i) => a * sizes[i], 1);
      return Math.ceil(size / local[k]) <= lim.grid[k];
    });
    return fits ? { groups: dims, local, guarded } : null;
  };
  const groups = sizes.map((_, i) => [i]);
  while (groups.length > 3) groups.splice(0, 2, [...groups[0], ...groups[1]]);
  const r = groups.length ? attempt(groups) : { groups: [], local: [], guarded: [] };
  if (r) return r;
  // y or z would need more blocks than allowed: one flat x dimension has 2^31-1
  const flat = attempt([sizes.map((_, i) => i)]);
  if (flat) return flat;
  throw new Error(
    `gpudims: ${sizes.join("x")} = ${
      sizes.reduce((a, b) => a * b, 1)
    } threads exceed the grid limits (${lim.grid.join(", ")} blocks of ${lim.localMax})`,
  );
}

const special = (n: number, name: string): UOp =>
  UOp.make(Ops.SPECIAL, dtypes.int32, [UOp.const(dtypes.int32, n)], name);

/** the index value of dimension k, from block and thread indices */
function dimValue(d: Dim, k: number): UOp {
  if (d.guarded) return special(d.size, `idx${k}`);
  if (d.local === d.size) return special(d.size, `lidx${k}`);
  if (d.local === 1) return special(d.size, `gidx${k}`);
  return special(d.size / d.local, `gidx${k}`).mul(d.local).add(special(d.local, `lidx${k}`));
}

export interface GpuDimsCtx {
  /** each mapped RANGE and the expression that replaces it */
  sub: Map<UOp, UOp>;
}

const extraFrom = (u: UOp): number => (u.op === Ops.LOAD ? 1 : u.op === Ops.STORE ? 2 : 1);

/**
 * Pre-order rules (they see the RANGEs before those are replaced): a mapped range is no loop,
 * so ENDs stop closing it and accesses stop being ordered inside it.
 */
export const pmGpuDims = new PatternMatcher<GpuDimsCtx>([
  [new UPat({ op: Ops.RANGE, name: "r" }), (b, ctx) => ctx.sub.get(b.r)],
  [
    new UPat({ op: [Ops.END, Ops.LOAD, Ops.STORE], name: "x" }),
    (b, ctx) => {
      const x = b.x, n = extraFrom(x);
      if (!x.src.slice(n).some((s) => ctx.sub.has(s))) return undefined;
      const src = [...x.src.slice(0, n), ...x.src.slice(n).filter((s) => !ctx.sub.has(s))];
      return x.op === Ops.END && src.length === 1 ? src[0] : x.replace({ src });
    },
  ],
]);

const axisType = (r: UOp): AxisType => (r.arg as [number, AxisType])[1];

/** ranges (outer to inner) merged, outermost first, into at most 3 dimensions */
function mergeDims(rs: readonly UOp[]): UOp[][] {
  const groups = rs.map((r) => [r]);
  while (groups.length > 3) groups.splice(0, 2, [...groups[0], ...groups[1]]);
  return groups.reverse(); // dimension 0 (x) is the innermost
}

/**
 * The workgroup the opts asked for: LOCAL and GROUP_REDUCE ranges are its threads (exactly,
 * since their sizes came from splits), every other output range a workgroup index.
 */
function explicitDims(ranges: UOp[], group: UOp[], lim: GpuLimits): Dim[][] {
  const local = [...ranges.filter((r) => axisType(r) === AxisType.LOCAL), ...group];
  const grid = ranges.filter((r) => axisType(r) !== AxisType.LOCAL);
  const threads = local.reduce((a, r) => a * sizeOf(r), 1);
  if (threads > lim.threads) {
    throw new Error(
      `gpudims: a workgroup of ${threads} threads exceeds the device's limit of ${lim.threads}`,
    );
  }
  const dim = (rs: UOp[], isLocal: boolean): Dim => {
    const size = rs.reduce((a, r) => a * sizeOf(r), 1);
    return { ranges: rs, size, local: isLocal ? size : 1, guarded: false };
  };
  const blocks = mergeDims(local).map((rs) => dim(rs, true));
  blocks.forEach((d, k) => {
    if (d.size > lim.block[k]) {
      throw new Error(`gpudims: ${d.size} threads in dimension ${k} exceed ${lim.block[k]}`);
    }
  });
  let grids = mergeDims(grid).map((rs) => dim(rs, false));
  if (grids.some((d, k) => d.size > lim.grid[k])) grids = [dim(grid, false)];
  if (grids.length && grids[0].size > lim.grid[0]) {
    throw new Error(`gpudims: ${grids[0].size} workgroups exceed the grid limit ${lim.grid[0]}`);
  }
  return [grids, blocks];
}

/** substitute SPECIALs for the output ranges; returns the new sink and the launch dims */
export function gpuDims(
  sink: UOp,
  reduceRanges: ReadonlySet<UOp>,
  lim: GpuLimits = CUDA_LIMITS,
  groupRanges: ReadonlySet<UOp> = new Set(),
): { sink: UOp; dims: LaunchDims } {
  const ranges = outputRanges(sink, reduceRanges);
  const topo = new Set(sink.toposort());
  const group = [...groupRanges].filter((g) => topo.has(g)).sort((a, b) => a.id - b.id);
  if (group.length || ranges.some((r) => axisType(r) === AxisType.LOCAL)) {
    return explicitGpuDims(sink, ranges, group, lim);
  }
  const { groups, local, guarded } = chooseDims(ranges.map(sizeOf), lim);
  const globalSize: [number, number, number] = [1, 1, 1];
  const localSize: [number, number, number] = [1, 1, 1];
  const sub = new Map<UOp, UOp>();
  groups.forEach((g, k) => {
    const rs = g.map((i) => ranges[i]);
    const d: Dim = {
      ranges: rs,
      size: rs.reduce((a, r) => a * sizeOf(r), 1),
      local: local[k],
      guarded: guarded[k],
    };
    globalSize[k] = Math.ceil(d.size / d.local);
    localSize[k] = d.local;
    const v = dimValue(d, k);
    // merged ranges come back out of the flat index by div/mod, innermost fastest
    let stride = 1;
    for (let i = rs.length - 1; i >= 0; i--) {
      const n = sizeOf(rs[i]);
      let e = stride === 1 ? v : v.idiv(stride);
      if (i > 0) e = e.mod(n);
      sub.set(rs[i], e);
      stride *= n;
    }
  });
  if (!sub.size) return { sink, dims: { globalSize, localSize, mapped: ranges } };
  const out = graphRewrite(
    graphRewrite(sink, null, { sub }, { bpm: pmGpuDims }),
    symbolic,
  );
  return { sink: out, dims: { globalSize, localSize, mapped: ranges } };
}

/** each merged dimension's ranges back out of its index, innermost fastest */
function substituteDims(dims: Dim[], value: (d: Dim, k: number) => UOp, sub: Map<UOp, UOp>) {
  dims.forEach((d, k) => {
    const v = value(d, k);
    let stride = 1;
    for (let i = d.ranges.length - 1; i >= 0; i--) {
      const n = sizeOf(d.ranges[i]);
      let e = stride === 1 ? v : v.idiv(stride);
      if (i > 0) e = e.mod(n);
      sub.set(d.ranges[i], e);
      stride *= n;
    }
  });
}

interface GateCtx {
  /** the group ranges' thread indices are all 0 */
  first: UOp;
}

/** a global store after a group reduce: every thread of the group holds the value, one writes */
const pmGateGroupStores = new PatternMatcher<GateCtx>([
  [new UPat({ op: Ops.STORE, name: "st" }), (b, ctx) => {
    const idx = b.st.src[0];
    if (idx.op !== Ops.INDEX || idx.src[0].op !== Ops.DEFINE_GLOBAL) return undefined;
    const [buf, i, gate] = idx.src;
    if (gate === ctx.first || (gate?.op === Ops.AND && gate.src.includes(ctx.first))) {
      return undefined;
    }
    const g = gate ? gate.and(ctx.first) : ctx.first;
    return b.st.replace({ src: [idx.replace({ src: [buf, i, g] }), ...b.st.src.slice(1)] });
  }],
]);

function explicitGpuDims(
  sink: UOp,
  ranges: UOp[],
  group: UOp[],
  lim: GpuLimits,
): { sink: UOp; dims: LaunchDims } {
  const [grids, blocks] = explicitDims(ranges, group, lim);
  const globalSize: [number, number, number] = [1, 1, 1];
  const localSize: [number, number, number] = [1, 1, 1];
  grids.forEach((d, k) => globalSize[k] = d.size);
  blocks.forEach((d, k) => localSize[k] = d.size);
  const sub = new Map<UOp, UOp>();
  substituteDims(grids, (d, k) => special(d.size, `gidx${k}`), sub);
  substituteDims(blocks, (d, k) => special(d.size, `lidx${k}`), sub);
  let out = graphRewrite(graphRewrite(sink, null, { sub }, { bpm: pmGpuDims }), symbolic);
  if (group.length) {
    const first = group.map((g) => sub.get(g)!.lt(1)).reduce((a, b) => a.and(b));
    out = graphRewrite(out, pmGateGroupStores, { first: graphRewrite(first, symbolic) });
  }
  const mapped = [...grids, ...blocks].flatMap((d) => d.ranges);
  return { sink: out, dims: { globalSize, localSize, mapped } };
}
