// rangeify: from a tensor graph to kernel ASTs.
//
// Pass 1 walks the graph consumers-first and records, for every node, the index tuples it is read
// at (and which loops are open there). A compute node is realized into a buffer where fusing it
// would repeat work: its consumers read it at different indexes, or they loop over ranges it does
// not depend on (a reduce feeding a broadcast). Pass 2 builds one kernel per realized node by
// lowering the graph at the node's output ranges: movement ops become index arithmetic, buffers
// become loads, REDUCE_AXIS becomes REDUCE over new ranges.
import { type DType, dtypes } from "../dtype.ts";
import { AxisType, GroupOp, Ops, prod, UOp } from "../uop/ops.ts";
import "../uop/symbolic.ts";
import {
  cint,
  flatIndex,
  type IndexTuple,
  padTuple,
  pushThroughMovement,
  sameTuple,
} from "./indexing.ts";

interface Request {
  t: IndexTuple;
  /** the ranges open where the consumer reads: a node that ignores some of them is recomputed per iteration */
  open: ReadonlySet<UOp>;
  /** the realized node whose kernel reads */
  owner: UOp;
}

export interface KernelPlan {
  /** the realized tensor-graph node this kernel computes */
  node: UOp;
  ast: UOp;
  /** the nodes (BUFFERs or realized nodes) bound to the kernel's slots; slot 0 is `node` */
  inputs: UOp[];
}

export interface RangeifyResult {
  /** nodes that become buffers, producers first (each computed by one kernel unless it is a COPY) */
  realized: UOp[];
  kernels: KernelPlan[];
}

const isLeaf = (u: UOp): boolean =>
  u.op === Ops.BUFFER || u.op === Ops.CONST || u.op === Ops.DEFINE_VAR;
const isView = (u: UOp): boolean => GroupOp.Movement.has(u.op) || u.op === Ops.DETACH;

/** a realized-buffer view: BUFFER, or RESHAPE(BUFFER) that keeps the element count */
export function bufferBase(u: UOp): UOp | null {
  if (u.op === Ops.BUFFER) return u;
  if (u.op === Ops.RESHAPE && u.src[0].op === Ops.BUFFER) return u.src[0];
  return null;
}

function rangesIn(t: IndexTuple): Set<UOp> {
  const out = new Set<UOp>();
  for (const e of t.valid ? [...t.idx, t.valid] : t.idx) {
    for (const u of e.toposort()) if (u.op === Ops.RANGE) out.add(u);
  }
  return out;
}

class Rangeifier {
  private nextAxis = 0;
  readonly requests = new Map<UOp, Request[]>();
  readonly realized = new Set<UOp>();
  /** output ranges of realized nodes, reduce ranges of REDUCE_AXIS nodes */
  readonly outRanges = new Map<UOp, UOp[]>();
  readonly reduceRanges = new Map<UOp, UOp[]>();

  private newRange(size: number, type: AxisType): UOp {
    return size === 1 ? cint(0) : UOp.range(size, this.nextAxis++, type);
  }
  private request(x: UOp, r: Request): void {
    const l = this.requests.get(x);
    if (l) l.push(r);
    else this.requests.set(x, [r]);
  }

  /** pass 1: decide what is realized */
  plan(roots: UOp[]): void {
    const must = new Set<UOp>();
    for (const r of roots) if (!bufferBase(r)) must.add(r);
    const topo = UOp.sink(...roots).toposort();
    for (const u of topo) {
      if (u.op === Ops.CONTIGUOUS) must.add(u);
      if (u.op === Ops.COPY && !bufferBase(u.src[0])) must.add(u.src[0]);
    }
    for (let i = topo.length - 2; i >= 0; i--) {
      const x = topo[i];
      if ((isLeaf(x) && !must.has(x)) || bufferBase(x)) continue;
      const reqs = this.requests.get(x) ?? [];
      if (must.has(x) || x.op === Ops.COPY || this.wouldRepeatWork(x, reqs)) {
        this.realized.add(x);
        if (x.op === Ops.COPY) continue; // the engine copies; its source is realized separately
        const out = x.shape!.map((s) => this.newRange(s, AxisType.LOOP));
        this.outRanges.set(x, out);
        this.pushToSources(x, {
          t: { idx: out, valid: null },
          open: new Set(out.filter((r) => r.op === Ops.RANGE)),
          owner: x,
        });
        continue;
      }
      const distinct: Request[] = [];
      for (const r of reqs) {
        if (!distinct.some((d) => sameTuple(d.t, r.t) && d.owner === r.owner)) distinct.push(r);
      }
      for (const r of distinct) this.pushToSources(x, r);
    }
  }

  private wouldRepeatWork(x: UOp, reqs: Request[]): boolean {
    if (isView(x)) return false;
    if (reqs.length === 0) return false;
    if (reqs.some((r) => !sameTuple(r.t, reqs[0].t))) {
      return x.op === Ops.REDUCE_AXIS || !this.cheapToRecompute(x);
    }
    if (x.op === Ops.REDUCE_AXIS && reqs.some((r) => r.owner !== reqs[0].owner)) return true;
    const used = rangesIn(reqs[0].t);
    return reqs.some((r) => [...r.open].some((o) => !used.has(o)));
  }

  /**
   * An elementwise node read at several indexes is recomputed per index rather than stored when
   * it is small and reaches no reduce except through a broadcast (such a reduce is realized on its
   * own, so recomputing reads its buffer): how softmax stays at three kernels.
   */
  private cheapToRecompute(x: UOp): boolean {
    const inputs = new Set<UOp>();
    const seen = new Set<UOp>();
    const stack = [x];
    while (stack.length) {
      const u = stack.pop()!;
      if (seen.has(u)) continue;
      seen.add(u);
      if (seen.size > 64) return false;
      if (u !== x && this.realized.has(u)) inputs.add(u);
      else if (u.op === Ops.BUFFER) inputs.add(u);
      else if (u.op === Ops.REDUCE_AXIS) return false;
      else if (u.op === Ops.EXPAND && u.src[0].shape!.some((d, i) => d !== u.shape![i])) {
        inputs.add(u);
      } else if (!isLeaf(u)) stack.push(...u.src);
    }
    return inputs.size <= 3;
  }

  private pushToSources(x: UOp, r: Request): void {
    if (GroupOp.Movement.has(x.op)) {
      return this.request(x.src[0], { ...r, t: pushThroughMovement(x, r.t) });
    }
    if (x.op === Ops.REDUCE_AXIS) {
      const rr = this.reduceRangesOf(x);
      const [, axes] = x.arg as [Ops, number[]];
      const idx = r.t.idx.map((e, i) => (axes.includes(i) ? rr[axes.indexOf(i)] : e));
      const open = new Set(r.open);
      for (const e of rr) if (e.op === Ops.RANGE) open.add(e);
      return this.request(x.src[0], { t: { idx, valid: r.t.valid }, open, owner: r.owner });
    }
    for (const s of x.src) this.request(s, r);
  }

  reduceRangesOf(x: UOp): UOp[] {
    let rr = this.reduceRanges.get(x);
    if (!rr) {
      const [, axes] = x.arg as [Ops, number[]];
      rr = axes.map((a) => this.newRange(x.src[0].shape![a], AxisType.REDUCE));
      this.reduceRanges.set(x, rr);
    }
    return rr;
  }
}

/** pass 2: the kernel AST computing realized node `node` */
class KernelBuilder {
  readonly inputs: UOp[];
  private readonly slots = new Map<UOp, UOp>();
  private readonly memo = new Map<string, UOp>();
  constructor(private readonly rf: Rangeifier, readonly node: UOp) {
    this.inputs = [node];
  }

  private global(src: UOp, dtype: DType, size: number): UOp {
    let g = this.slots.get(src);
    if (!g) {
      g = UOp.make(Ops.DEFINE_GLOBAL, dtype, [], [
        src === this.node ? 0 : this.inputs.length,
        size,
      ]);
      if (src !== this.node) this.inputs.push(src);
      this.slots.set(src, g);
    }
    return g;
  }

  private load(src: UOp, flat: UOp, valid: UOp | null): UOp {
    const g = this.global(src, src.dtype, prod(src.shape!));
    const index = valid
      ? UOp.make(Ops.INDEX, src.dtype, [g, flat, valid])
      : UOp.make(Ops.INDEX, src.dtype, [g, flat]);
    return UOp.make(Ops.LOAD, src.dtype, [index]);
  }

  build(): UOp {
    const x = this.node;
    const out = this.rf.outRanges.get(x)!;
    const value = this.compute(x, { idx: out, valid: null });
    const g = this.global(x, x.dtype, prod(x.shape!));
    const store = UOp.make(Ops.STORE, dtypes.void, [
      UOp.make(Ops.INDEX, x.dtype, [g, flatIndex(out, x.shape!)]),
      value,
    ]);
    const loops = out.filter((r) => r.op === Ops.RANGE);
    const body = loops.length ? UOp.make(Ops.END, dtypes.void, [store, ...loops]) : store;
    return renumberRanges(UOp.make(Ops.SINK, dtypes.void, [body]));
  }

  /** the value of `x` read at `t` */
  private lower(x: UOp, t: IndexTuple): UOp {
    const key = `${x.id}:${t.idx.map((e) => e.id).join(",")}:${t.valid?.id ?? ""}`;
    let v = this.memo.get(key);
    if (v === undefined) {
      v = this.lowerUncached(x, t);
      this.memo.set(key, v);
    }
    return v;
  }

  private lowerUncached(x: UOp, t: IndexTuple): UOp {
    if (x.op === Ops.BUFFER) return this.load(x, t.idx[0], t.valid);
    if (x !== this.node && this.rf.realized.has(x)) {
      return this.load(x, flatIndex(t.idx, x.shape!), t.valid);
    }
    const base = bufferBase(x);
    if (base) return this.load(base, flatIndex(t.idx, x.shape!), t.valid);
    return this.compute(x, t);
  }

  private compute(x: UOp, t: IndexTuple): UOp {
    switch (x.op) {
      case Ops.CONST:
      case Ops.DEFINE_VAR:
        return x;
      case Ops.PAD: {
        const inner = this.lower(x.src[0], pushThroughMovement(x, t));
        const { valid } = padTuple(x, t);
        return valid ? valid.where(inner, inner.constLike(0)) : inner;
      }
      case Ops.REDUCE_AXIS: {
        const [op, axes] = x.arg as [Ops, number[]];
        if (axes.some((a) => x.src[0].shape![a] === 0)) {
          return UOp.const(
            x.dtype,
            op === Ops.ADD ? 0 : op === Ops.MUL ? 1 : x.dtype.isFloat ? -Infinity : x.dtype.min,
          );
        }
        const rr = this.rf.reduceRangesOf(x);
        const idx = t.idx.map((e, i) => (axes.includes(i) ? rr[axes.indexOf(i)] : e));
        const v = this.lower(x.src[0], { idx, valid: t.valid });
        const loops = rr.filter((r) => r.op === Ops.RANGE);
        return loops.length ? UOp.make(Ops.REDUCE, v.dtype, [v, ...loops], op) : v;
      }
      case Ops.DETACH:
      case Ops.CONTIGUOUS:
        return this.lower(x.src[0], t);
    }
    if (GroupOp.Movement.has(x.op)) return this.lower(x.src[0], pushThroughMovement(x, t));
    if (GroupOp.ALU.has(x.op) || x.op === Ops.CAST || x.op === Ops.BITCAST) {
      if (x.op === Ops.BITCAST && x.src[0].dtype.itemsize !== x.dtype.itemsize) {
        throw new Error(
          `bitcast ${
            x.src[0].dtype.name
          } -> ${x.dtype.name}: a size-changing bitcast needs a realized input (call .contiguous() first)`,
        );
      }
      return UOp.make(x.op, x.dtype, x.src.map((s) => this.lower(s, t)), x.arg);
    }
    throw new Error(`rangeify: cannot lower ${Ops[x.op]}`);
  }
}

/** kernels that differ only in range numbering are the same kernel: number ranges by first use */
function renumberRanges(sink: UOp): UOp {
  const map = new Map<UOp, UOp>();
  let n = 0;
  for (const u of sink.toposort()) {
    if (u.op === Ops.RANGE) {
      const [, type] = u.arg as [number, AxisType];
      map.set(u, UOp.make(Ops.RANGE, u.dtype, u.src, [n++, type]));
    }
  }
  return sink.substitute(map);
}

/** split the graph of `roots` into kernels */
export function rangeify(roots: UOp[]): RangeifyResult {
  const rf = new Rangeifier();
  rf.plan(roots);
  const order = UOp.sink(...roots).toposort().filter((u) => rf.realized.has(u));
  const kernels: KernelPlan[] = [];
  for (const x of order) {
    if (x.op === Ops.COPY || prod(x.shape!) === 0) continue;
    const kb = new KernelBuilder(rf, x);
    const ast = kb.build();
    kernels.push({ node: x, ast, inputs: kb.inputs });
  }
  return { realized: order, kernels };
}
