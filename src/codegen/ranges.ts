// Which loops a node lives in: the RANGEs it depends on that no END between has closed.
import { Ops, type UOp } from "../uop/ops.ts";

export type Scope = ReadonlySet<UOp>;
const EMPTY: Scope = new Set();
const cache = new WeakMap<UOp, Map<UOp, Scope>>();

/** the open ranges of every node under `root` (an END closes the ranges it lists) */
export function openRanges(root: UOp): Map<UOp, Scope> {
  const hit = cache.get(root);
  if (hit) return hit;
  const out = new Map<UOp, Scope>();
  for (const u of root.toposort()) {
    let s: Set<UOp> | null = null;
    const merge = (x: Scope) => {
      if (x.size === 0) return;
      s ??= new Set();
      for (const r of x) s.add(r);
    };
    for (const x of u.src) merge(out.get(x)!);
    if (u.op === Ops.RANGE) merge(new Set([u]));
    // an END closes its ranges; a one-source END(range) is the linear list's loop close
    if (u.op === Ops.END && s !== null) {
      for (const r of u.src.slice(1)) (s as Set<UOp>).delete(r);
    }
    out.set(u, s ?? EMPTY);
  }
  cache.set(root, out);
  return out;
}
