// Buffer lifetimes within a schedule: an intermediate is freed right after the last kernel that
// reads it, so its memory returns to the device's pool before later kernels allocate theirs and
// memPeak is the working set rather than the sum of every intermediate.
import type { UOp } from "../uop/ops.ts";
import { Ops } from "../uop/ops.ts";
import type { KernelPlan } from "../rangeify/rangeify.ts";

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
    const reads = x.op === Ops.COPY ? [x.src[0]] : kernelOf.get(x)?.inputs ?? [];
    for (const r of reads) if (step.has(r) && r !== x) last.set(r, Math.max(last.get(r) ?? i, i));
  });
  const keep = new Set(roots);
  const out: UOp[][] = order.map(() => []);
  for (const [x, i] of last) if (!keep.has(x)) out[i].push(x);
  return out;
}
