// rangeify: from a tensor graph to kernel ASTs.
//
// Pass 1 walks the graph consumers-first and records, for every node, the index tuples it is read
// at and the loops open there (outermost first). A node is fused into its consumers' kernel
// (recomputed where it is read) unless that would repeat work:
// - a cheap elementwise node (few inputs) is always recomputed;
// - other nodes are realized when read at different tuples, except tuples that differ only in
//   which reduce loop reads them (separate passes over one axis, as softmax's max, sum and
//   weighted sum): those are recomputed once per pass, up to MAX_PASSES;
// - a bigger elementwise node is otherwise recomputed: redoing it per iteration of a loop it
//   ignores costs about what reading it back would;
// - a node containing a reduce is realized when kernels of several consumers read it, or when
//   some loop around a read does not index it and would recompute the reduce per iteration. A
//   reduce loop that encloses none of the node's own loops costs nothing (the linearizer
//   hoists the node out of it), and a small output axis the node ignores is made an UPCAST
//   axis of the kernel (registers, not a loop), so the node is computed once for all values.
// This is how attention becomes one kernel with no N*N buffer. Pass 2 builds one kernel per
// realized node by lowering the graph at the node's output ranges: movement ops become index
// arithmetic, buffers become loads, REDUCE_AXIS becomes REDUCE over new ranges (fresh ones for
// each further pass over the same node).
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

/** the most passes (reads at distinct reduce loops) an expensive fused node is recomputed for */
export const MAX_PASSES = 3;
/** the most times a recompute()-marked value may be recomputed per element it has */
export const MAX_RECOMPUTE_REREADS = 4;
/** the largest per-iteration array a staged value may fill (a CPU thread's stack, its L1) */
export const MAX_STAGE_BYTES = 32 * 1024;
/** the most values a kernel's output axes made UPCAST by fusion may have together */
export const MAX_FUSED_UPCAST = 128;

interface Request {
  t: IndexTuple;
  /**
   * the ranges open where the consumer reads, outermost first (output ranges in axis order,
   * then reduce ranges as the reads pass into reduces): a node that ignores an enclosing one is
   * recomputed per iteration
   */
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
  u.op === Ops.BUFFER || u.op === Ops.CONST || u.op === Ops.DEFINE_VAR || u.op === Ops.IOTA;
const isView = (u: UOp): boolean =>
  GroupOp.Movement.has(u.op) || u.op === Ops.DETACH || (u.op === Ops.NOOP && u.src.length === 1);

/**
 * Elementwise values are recomputed where each element is read a few times instead of kept in
 * a buffer (less memory, and on training steps measured faster); RECOMPUTE=0 stores them
 */
export function recomputeAll(): boolean {
  try {
    return Deno.env.get("RECOMPUTE") !== "0";
  } catch {
    return true;
  }
}

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

const isReduceRange = (u: UOp): boolean =>
  u.op === Ops.RANGE && (u.arg as [number, AxisType])[1] === AxisType.REDUCE;

/** the tuples are the same except for bare reduce ranges (of equal size) in the same places */
function samePassTuple(a: IndexTuple, b: IndexTuple): boolean {
  if (a.valid !== b.valid || a.idx.length !== b.idx.length) return false;
  return a.idx.every((x, i) => {
    const y = b.idx[i];
    return x === y || (isReduceRange(x) && isReduceRange(y) && x.src[0] === y.src[0]);
  });
}

class Rangeifier {
  nextAxis = 0;
  readonly requests = new Map<UOp, Request[]>();
  readonly realized = new Set<UOp>();
  /** output ranges of realized nodes, reduce ranges of REDUCE_AXIS nodes */
  readonly outRanges = new Map<UOp, UOp[]>();
  readonly reduceRanges = new Map<UOp, UOp[]>();
  private readonly used = new WeakMap<IndexTuple, ReadonlySet<UOp>>();
  /** output ranges that fusion made UPCAST (registers): see `fusible` */
  readonly upcast = new Set<UOp>();
  /** elementwise nodes under a recompute() marker: always recomputed */
  private readonly forced = new Set<UOp>();
  private readonly recomputeAll = recomputeAll();
  /**
   * elementwise nodes computed once into a per-iteration array of their kernel (a CPU's row of
   * softmax's exps), with the tuple positions that vary between the passes reading them
   */
  readonly staged = new Map<UOp, number[]>();
  /** the device of each node whose inputs say (BUFFERs, COPY targets) */
  private readonly devices = new Map<UOp, string>();

  constructor(private readonly opts: RangeifyOpts = {}) {}

  newRange(size: number, type: AxisType): UOp {
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
    if (this.opts.loops) {
      for (const u of topo) {
        const d = deviceOf(u, this.devices);
        if (d !== undefined) this.devices.set(u, d);
      }
    }
    for (const u of topo) {
      if (u.op === Ops.CONTIGUOUS) must.add(u);
      if (u.op === Ops.COPY && !bufferBase(u.src[0])) must.add(u.src[0]);
      if (u.op === Ops.NOOP && u.src.length === 1) this.markRecompute(u.src[0]);
    }
    for (let i = topo.length - 2; i >= 0; i--) {
      const x = topo[i];
      if ((isLeaf(x) && !must.has(x)) || bufferBase(x)) continue;
      const reqs = this.requests.get(x) ?? [];
      const fused = !must.has(x) && x.op !== Ops.COPY && this.fusible(x, reqs);
      if (!fused) {
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
        const d = distinct.find((d) => sameTuple(d.t, r.t) && d.owner === r.owner);
        if (!d) distinct.push({ ...r, open: this.liveOpen(x, r) });
        // the node lives in the loops any of its reads needs
        else {distinct[distinct.indexOf(d)] = {
            ...d,
            open: new Set([...d.open, ...this.liveOpen(x, r)]),
          };}
      }
      for (const r of distinct) this.pushToSources(x, r);
    }
  }

  /** the ranges a read indexes (memoized: a tuple's expressions are walked once) */
  private usedBy(t: IndexTuple): ReadonlySet<UOp> {
    let u = this.used.get(t);
    if (!u) this.used.set(t, u = rangesIn(t));
    return u;
  }

  /**
   * the open ranges around a read by `r` that it ignores and that would repeat it: loops that
   * enclose one of the read's own, and output ranges (threads on a GPU, where nothing hoists);
   * a reduce loop inside all of them costs nothing (the linearizer hoists the read out of it),
   * nor does an axis made UPCAST
   */
  private repeating(r: Request): UOp[] {
    const used = this.usedBy(r.t), open = [...r.open];
    const deepest = open.findLastIndex((o) => used.has(o));
    // on a device that loops over the output (a CPU), an output range inside all of the
    // read's own is a loop too, which the read is hoisted out of
    const outs = this.loopsOver(r.owner) ? [] : this.outRanges.get(r.owner) ?? [];
    return open.filter((o, i) =>
      !used.has(o) && !this.upcast.has(o) && (i < deepest || outs.includes(o))
    );
  }

  /**
   * Stage `x`: on a device that loops over its output, an elementwise value with a transcendental
   * in it (an exp) that one kernel reads in several passes over the same axes (softmax's sum
   * and output loops) is computed once per iteration of the outer loops into a small array, and
   * each pass loads it: one exp per element instead of one per pass.
   */
  private stage(x: UOp, reqs: Request[]): boolean {
    if (reqs.length < 2 || !(GroupOp.ALU.has(x.op) || x.op === Ops.CAST)) return false;
    const owner = reqs[0].owner;
    if (!this.loopsOver(owner) || reqs.some((r) => r.owner !== owner)) return false;
    const tuples = distinctTuples(reqs);
    if (tuples.length < 2) return false;
    if (tuples.some((t) => t.valid !== null || t.idx.length !== tuples[0].idx.length)) return false;
    const vary: number[] = [];
    const outer = new Set<UOp>();
    for (let i = 0; i < tuples[0].idx.length; i++) {
      const col = tuples.map((t) => t.idx[i]);
      if (col.every((e) => e === col[0])) {
        for (const r of rangesIn({ idx: [col[0]], valid: null })) outer.add(r);
        continue;
      }
      // each pass loops over the axis on a range of its own, of one size
      if (!col.every((e) => e.op === Ops.RANGE && e.src[0] === col[0].src[0])) return false;
      if (col[0].src[0].op !== Ops.CONST) return false;
      vary.push(i);
    }
    const size = vary.reduce((p, i) => p * (tuples[0].idx[i].src[0].arg as number), 1);
    if (vary.length === 0 || size * x.dtype.itemsize > MAX_STAGE_BYTES) return false;
    if (tuples.some((t) => vary.some((i) => outer.has(t.idx[i])))) return false;
    if (!this.transcendental(x)) return false;
    this.staged.set(x, vary);
    return true;
  }

  /** whether computing `x` (down to realized nodes, buffers and reduces) takes an exp or a log */
  private transcendental(x: UOp): boolean {
    const seen = new Set<UOp>();
    const stack = [x];
    while (stack.length) {
      const u = stack.pop()!;
      if (seen.has(u) || (u !== x && this.realized.has(u))) continue;
      seen.add(u);
      if (TRANSCENDENTAL.has(u.op)) return true;
      if (u.op !== Ops.REDUCE_AXIS && !isLeaf(u)) stack.push(...u.src);
    }
    return false;
  }

  /** whether the kernel of `owner` runs its output ranges as loops (else as GPU threads) */
  private loopsOver(owner: UOp): boolean {
    const d = this.devices.get(owner);
    return d !== undefined && this.opts.loops !== undefined && this.opts.loops(d);
  }

  /** how often a node read by `r` is computed per element */
  private rereads(r: Request): number {
    return this.repeating(r).reduce((n, o) => n * (o.src[0].arg as number), 1);
  }

  /** the elementwise graph under a recompute() marker, down to reduces and buffers */
  private markRecompute(u: UOp): void {
    if (this.forced.has(u) || u.op === Ops.REDUCE_AXIS || isLeaf(u) || bufferBase(u)) return;
    if (u.op === Ops.CONTIGUOUS || u.op === Ops.COPY) return;
    this.forced.add(u);
    for (const s of u.src) this.markRecompute(s);
  }

  /** whether `x` can be recomputed where it is read (else it is realized) */
  private fusible(x: UOp, reqs: Request[]): boolean {
    if (isView(x) || reqs.length === 0) return true;
    if (this.stage(x, reqs)) return true;
    // marked values are recomputed where each element is read a few times, not inside a loop
    // that re-reads it (a matmul's): there recomputing would multiply the work, not save memory.
    // The reduces below decide for themselves: recomputing x re-reads their buffers.
    const marked = this.forced.has(x) ||
      (this.recomputeAll && (GroupOp.ALU.has(x.op) || x.op === Ops.CAST));
    if (marked && reqs.every((r) => this.rereads(r) <= MAX_RECOMPUTE_REREADS)) return true;
    const cost = this.recomputeCost(x);
    if (cost === "cheap") return true;
    const tuples = distinctTuples(reqs);
    if (tuples.length > MAX_PASSES || !tuples.every((t) => samePassTuple(t, tuples[0]))) {
      return false;
    }
    // elementwise work recomputed per enclosing iteration costs what reading it back would
    if (cost === "elementwise") return true;
    if (reqs.some((r) => r.owner !== reqs[0].owner)) return false;
    // a loop that would repeat the reduce is fatal, unless it is an output axis small enough
    // to become UPCAST
    const upcast = new Set<UOp>();
    const outs = this.outRanges.get(reqs[0].owner) ?? [];
    for (const r of reqs) {
      for (const o of this.repeating(r)) {
        if (!outs.includes(o)) return false;
        upcast.add(o);
      }
    }
    const copies = [...this.upcast, ...upcast].filter((o) => outs.includes(o))
      .reduce((p, o) => p * (o.src[0].arg as number), 1);
    if (copies > MAX_FUSED_UPCAST) return false;
    for (const o of upcast) this.upcast.add(o);
    return true;
  }

  /**
   * the open ranges `x` is computed inside when read by `r`: reduce loops it is hoisted out of
   * and upcast axes drop (output ranges stay: on a GPU they are threads, nothing hoists)
   */
  private liveOpen(x: UOp, r: Request): ReadonlySet<UOp> {
    if (isView(x)) return r.open;
    const used = this.usedBy(r.t), repeating = new Set(this.repeating(r));
    return new Set([...r.open].filter((o) => used.has(o) || repeating.has(o)));
  }

  /**
   * An elementwise node read at several indexes is recomputed per index rather than stored when
   * it is small and reaches no reduce except through a broadcast (such a reduce is realized on its
   * own, so recomputing reads its buffer): how softmax stays at three kernels.
   */
  private recomputeCost(x: UOp): "cheap" | "elementwise" | "reduce" {
    const inputs = new Set<UOp>();
    const seen = new Set<UOp>();
    const stack = [x];
    while (stack.length) {
      const u = stack.pop()!;
      if (seen.has(u)) continue;
      seen.add(u);
      if (seen.size > 64) return "reduce"; // too big to look through: assume the worst
      if (u !== x && this.realized.has(u)) inputs.add(u);
      else if (u.op === Ops.BUFFER) inputs.add(u);
      else if (u.op === Ops.REDUCE_AXIS) return "reduce";
      else if (u.op === Ops.EXPAND && u.src[0].shape!.some((d, i) => d !== u.shape![i])) {
        inputs.add(u);
      } else if (!isLeaf(u)) stack.push(...u.src);
    }
    return inputs.size <= 3 ? "cheap" : "elementwise";
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

  newRangeLike(r: UOp): UOp {
    return this.newRange(r.src[0].arg as number, AxisType.REDUCE);
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
  /** staged nodes that turned out not worth their array in this kernel: computed per read */
  private readonly unstaged = new Set<UOp>();
  /** staged nodes filled so far in this kernel: their arrays and the barrier after the fill */
  private readonly stages = new Map<UOp, { local: UOp; filled: UOp; shape: number[] }>();
  /** the REDUCE_AXIS nodes lowered so far in this kernel (a further pass gets fresh ranges) */
  private readonly reduced = new Set<UOp>();
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
    let sink = UOp.make(Ops.SINK, dtypes.void, [body]);
    const up = new Map<UOp, UOp>();
    for (const r of loops) {
      if (this.rf.upcast.has(r)) up.set(r, UOp.range(r.src[0], ...upcastArg(r)));
    }
    if (up.size) sink = sink.substitute(up);
    return renumberRanges(sink);
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
    const vary = this.rf.staged.get(x);
    if (vary && !this.unstaged.has(x)) return this.stagedLoad(x, t, vary);
    if (x !== this.node && this.rf.realized.has(x)) {
      return this.load(x, flatIndex(t.idx, x.shape!), t.valid);
    }
    const base = bufferBase(x);
    if (base) return this.load(base, flatIndex(t.idx, x.shape!), t.valid);
    return this.compute(x, t);
  }

  /**
   * `x` read at `t` from its stage: the first read fills the array in a loop of its own over the
   * varying positions (inside the loops of the others), every read loads after that loop
   */
  private stagedLoad(x: UOp, t: IndexTuple, vary: number[]): UOp {
    let st = this.stages.get(x);
    if (!st) {
      const loops = vary.map((i) => this.rf.newRange(t.idx[i].src[0].arg as number, AxisType.LOOP));
      const at = {
        idx: t.idx.map((e, i) => vary.includes(i) ? loops[vary.indexOf(i)] : e),
        valid: null,
      };
      const value = this.compute(x, at);
      // worth an array only where an exp or log runs per element of it (not a row's log
      // broadcast along it)
      const perElement = value.toposort().some((u) =>
        TRANSCENDENTAL.has(u.op) && loops.some((r) => u.toposort().includes(r))
      );
      if (!perElement) {
        this.unstaged.add(x);
        return this.compute(x, t);
      }
      const shape = loops.map((r) => r.src[0].arg as number);
      // its sources are the loops around it: the array is declared inside them (one per thread)
      const outer = [...rangesIn({ idx: t.idx.filter((_, i) => !vary.includes(i)), valid: null })];
      const local = UOp.make(Ops.DEFINE_LOCAL, x.dtype, outer, [
        STAGE_LOCAL_ID + this.stages.size,
        prod(shape),
      ]);
      const store = UOp.make(Ops.STORE, dtypes.void, [
        UOp.make(Ops.INDEX, x.dtype, [local, flatIndex(loops, shape)]),
        value,
      ]);
      const filled = UOp.make(Ops.BARRIER, dtypes.void, [
        UOp.make(Ops.END, dtypes.void, [store, ...loops]),
      ]);
      st = { local, filled, shape };
      this.stages.set(x, st);
    }
    const idx = UOp.make(Ops.INDEX, x.dtype, [
      st.local,
      flatIndex(vary.map((i) => t.idx[i]), st.shape),
    ]);
    return UOp.make(Ops.LOAD, x.dtype, [idx, st.filled]);
  }

  private compute(x: UOp, t: IndexTuple): UOp {
    switch (x.op) {
      case Ops.CONST:
      case Ops.DEFINE_VAR:
        return x;
      case Ops.IOTA:
        return t.idx[0];
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
        let rr = this.rf.reduceRangesOf(x);
        // another pass over the same reduce needs loops of its own
        if (this.reduced.has(x)) {
          rr = rr.map((r) => (r.op === Ops.RANGE ? this.rf.newRangeLike(r) : r));
        }
        this.reduced.add(x);
        const idx = t.idx.map((e, i) => (axes.includes(i) ? rr[axes.indexOf(i)] : e));
        const v = this.lower(x.src[0], { idx, valid: t.valid });
        const loops = rr.filter((r) => r.op === Ops.RANGE);
        return loops.length ? UOp.make(Ops.REDUCE, v.dtype, [v, ...loops], op) : v;
      }
      case Ops.DETACH:
      case Ops.CONTIGUOUS:
      case Ops.NOOP:
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

/** the index tuples of `reqs`, each once */
function distinctTuples(reqs: Request[]): IndexTuple[] {
  const tuples: IndexTuple[] = [];
  for (const r of reqs) if (!tuples.some((t) => sameTuple(t, r.t))) tuples.push(r.t);
  return tuples;
}

const TRANSCENDENTAL = new Set([Ops.EXP2, Ops.LOG2, Ops.SIN, Ops.POW]);

/** stage arrays are numbered apart from the shared memory codegen adds (group reduces) */
const STAGE_LOCAL_ID = 64;

const upcastArg = (r: UOp): [number, AxisType] => [(r.arg as [number])[0], AxisType.UPCAST];

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

export interface RangeifyOpts {
  /**
   * whether a device runs a kernel's output ranges as loops (CPU, JS) rather than as threads
   * (GPUs): there a reduce read inside an output loop it ignores is computed once before that
   * loop, so it fuses into its consumer (softmax is one kernel); on a GPU every thread would
   * recompute it. Unset: every device is taken for a GPU.
   */
  loops?: (device: string) => boolean;
}

/** the device a node computes on, from its inputs (undefined: none says) */
function deviceOf(u: UOp, known: ReadonlyMap<UOp, string>): string | undefined {
  if (u.op === Ops.BUFFER) return (u.arg as { device: string }).device;
  if (u.op === Ops.COPY) return u.arg as string;
  for (const s of u.src) {
    const d = known.get(s);
    if (d !== undefined) return d;
  }
  return undefined;
}

/** split the graph of `roots` into kernels */
export function rangeify(roots: UOp[], opts: RangeifyOpts = {}): RangeifyResult {
  const rf = new Rangeifier(opts);
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
