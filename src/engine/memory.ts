// Buffer lifetimes within a schedule: an intermediate is freed right after the last kernel that
// reads it, so its memory returns to the device's pool before later kernels allocate theirs and
// memPeak is the working set rather than the sum of every intermediate. The order the kernels run
// in decides how many are alive together: `planOrder` picks one that keeps the peak low.
import type { UOp } from "../uop/ops.ts";
import { Ops, prod } from "../uop/ops.ts";
import type { KernelPlan } from "../rangeify/rangeify.ts";

/** the nodes (realized or BUFFER) step `x` reads */
function readsOf(x: UOp, kernelOf: ReadonlyMap<UOp, KernelPlan>): readonly UOp[] {
  return x.op === Ops.COPY ? [x.src[0]] : kernelOf.get(x)?.inputs.slice(1) ?? [];
}

/** for each step of `order`, the intermediates (not roots) whose last reader is that step */
export function freeAfter(
  order: readonly UOp[],
  kernels: readonly KernelPlan[],
  roots: readonly UOp[],
): UOp[][] {
  const kernelOf = new Map(kernels.map((k) => [k.node, k]));
  const step = new Map(order.map((x, i) => [x, i]));
  const last = new Map<UOp, number>();
  order.forEach((x, i) => {
    // a node never read still dies after its own step
    if (!last.has(x)) last.set(x, i);
    for (const r of readsOf(x, kernelOf)) {
      if (step.has(r) && r !== x) last.set(r, Math.max(last.get(r) ?? i, i));
    }
  });
  const keep = new Set(roots);
  const out: UOp[][] = order.map(() => []);
  for (const [x, i] of last) if (!keep.has(x)) out[i].push(x);
  return out;
}

export interface OrderedPlan {
  /** the steps, producers first, in the order that keeps the fewest bytes alive (greedily) */
  order: UOp[];
  /** the in-place writes kept: root -> the input BUFFER it overwrites */
  inPlace: Map<UOp, UOp>;
}

/**
 * A dependency-respecting order of `order`'s steps that keeps the peak low, and the in-place writes
 * of `inPlace` (root -> input BUFFER it may overwrite) that can be kept: such a root must run after
 * every other step that reads the buffer, so one whose readers depend on it is written to a new
 * buffer instead. The order:
 * - a depth-first walk from the roots that visits the deepest input first (the long chain before
 *   a short one that only feeds the last step: a recomputed forward runs next to the backward
 *   that needs it, not at the start), then
 * - a list scheduler over that walk: a step that allocates no more than it frees (the last read of
 *   an activation, an optimizer's in-place update) runs as soon as its inputs exist, the one that
 *   frees most first; otherwise the walk's next step runs.
 * Only the order of independent steps changes: every result is computed from the same inputs.
 */
export function planOrder(
  order: readonly UOp[],
  kernels: readonly KernelPlan[],
  roots: readonly UOp[],
  inPlace: ReadonlyMap<UOp, UOp> = new Map(),
): OrderedPlan {
  const kernelOf = new Map(kernels.map((k) => [k.node, k]));
  const isStep = new Set(order);
  const rank = new Map(order.map((x, i) => [x, i]));
  /** the steps each step reads, and those it must follow (its reads and, when it writes in place, the buffer's other readers) */
  const reads = new Map<UOp, Set<UOp>>();
  const deps = new Map<UOp, Set<UOp>>();
  const users = new Map<UOp, Set<UOp>>(order.map((x) => [x, new Set()]));
  const readersOfBuffer = new Map<UOp, UOp[]>();
  for (const x of order) {
    const d = new Set<UOp>();
    for (const r of readsOf(x, kernelOf)) {
      if (r === x) continue;
      if (isStep.has(r)) {
        d.add(r);
        users.get(r)!.add(x);
      } else {
        const l = readersOfBuffer.get(r);
        if (!l) readersOfBuffer.set(r, [x]);
        else if (!l.includes(x)) l.push(x);
      }
    }
    reads.set(x, new Set(d));
    deps.set(x, d);
  }
  // in-place writes: every other reader of the buffer first, unless one of them needs the writer
  const kept = new Map<UOp, UOp>();
  const taken = new Set<UOp>();
  for (const [x, buf] of inPlace) {
    if (!isStep.has(x) || x.op === Ops.COPY || taken.has(buf)) continue;
    const readers = (readersOfBuffer.get(buf) ?? []).filter((r) => r !== x);
    const after = descendants(x, users);
    if (readers.some((r) => after.has(r))) continue;
    for (const r of readers) {
      deps.get(x)!.add(r);
      users.get(r)!.add(x);
    }
    kept.set(x, buf);
    taken.add(buf);
  }
  // depth: the longest chain of steps below each
  const depth = new Map<UOp, number>();
  const depthOf = (x: UOp): number => {
    const stack: [UOp, boolean][] = [[x, false]];
    while (stack.length) {
      const [u, done] = stack.pop()!;
      if (depth.has(u)) continue;
      if (done) {
        let m = 0;
        for (const d of deps.get(u)!) m = Math.max(m, depth.get(d)!);
        depth.set(u, 1 + m);
        continue;
      }
      stack.push([u, true]);
      for (const d of deps.get(u)!) if (!depth.has(d)) stack.push([d, false]);
    }
    return depth.get(x)!;
  };
  // the walk: post-order, deepest input first (ties: the rangeifier's order)
  const walk: UOp[] = [];
  const seen = new Set<UOp>();
  const visit = (x0: UOp) => {
    const stack: [UOp, boolean][] = [[x0, false]];
    while (stack.length) {
      const [u, done] = stack.pop()!;
      if (done) {
        walk.push(u);
        continue;
      }
      if (seen.has(u)) continue;
      seen.add(u);
      stack.push([u, true]);
      const ds = [...deps.get(u)!].filter((d) => !seen.has(d));
      ds.sort((a, b) => depthOf(a) - depthOf(b) || rank.get(b)! - rank.get(a)!);
      // pushed shallowest first: the deepest is popped (visited) first
      for (const d of ds) stack.push([d, false]);
    }
  };
  for (const r of roots) if (isStep.has(r)) visit(r);
  for (const x of order) if (!seen.has(x)) visit(x);
  // the list scheduler
  const keep = new Set(roots);
  const bytes = (x: UOp): number => prod(x.shape ?? [0]) * x.dtype.itemsize;
  const pos = new Map(walk.map((x, i) => [x, i]));
  const waiting = new Map(order.map((x) => [x, deps.get(x)!.size]));
  const unread = new Map<UOp, number>(order.map((x) => [x, 0]));
  for (const x of order) for (const r of reads.get(x)!) unread.set(r, unread.get(r)! + 1);
  const net = (x: UOp): number => {
    let freed = 0;
    for (const d of reads.get(x)!) if (!keep.has(d) && unread.get(d) === 1) freed += bytes(d);
    return (kept.has(x) ? 0 : bytes(x)) - freed;
  };
  const ready = new Set(order.filter((x) => waiting.get(x) === 0));
  const out: UOp[] = [];
  let next = 0;
  while (out.length < order.length) {
    // the step freeing the most, of those that free at least what they allocate
    let pick: UOp | undefined, best = 1;
    for (const x of ready) {
      const n = net(x);
      if (n < best || (n === best && pick && pos.get(x)! < pos.get(pick)!)) [pick, best] = [x, n];
    }
    if (pick === undefined) {
      while (!ready.has(walk[next])) next++;
      pick = walk[next];
    }
    ready.delete(pick);
    out.push(pick);
    for (const d of reads.get(pick)!) unread.set(d, unread.get(d)! - 1);
    for (const u of users.get(pick)!) {
      const w = waiting.get(u)! - 1;
      waiting.set(u, w);
      if (w === 0) ready.add(u);
    }
  }
  return { order: out, inPlace: kept };
}

/** the steps that depend on `x`, transitively */
function descendants(x: UOp, users: ReadonlyMap<UOp, ReadonlySet<UOp>>): Set<UOp> {
  const out = new Set<UOp>();
  const stack = [...users.get(x)!];
  while (stack.length) {
    const u = stack.pop()!;
    if (out.has(u)) continue;
    out.add(u);
    stack.push(...users.get(u)!);
  }
  return out;
}
