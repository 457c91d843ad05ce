// Wide loads: scalar loads of one global buffer at consecutive indexes (what UPCAST copies and
// the tensor-core fragments leave after expansion) read as one aligned 4-, 8- or 16-byte word.
// A GPU issues one load instruction for the word instead of one per element: the tensor-core
// matmul loaded its operands two bytes at a time.
//
// Loads group when their indexes are the same sum of terms (src/uop/symbolic.ts linSum) up to
// the constant, in the same loop. A window of W elements is one word when every term's
// coefficient and the window's first constant are multiples of W, so the element index is a
// multiple of W wherever the kernel runs, and the buffer's base is aligned (whole allocations:
// 256 bytes on CUDA).
import { Ops, type UOp } from "../uop/ops.ts";
import { linSum } from "../uop/symbolic.ts";
import type { LinearProgram } from "../codegen/linearize.ts";

export interface WideWord {
  /** the loads of the word, by element (the first in program order loads the word) */
  loads: UOp[];
  /** bytes of the word: 4, 8 or 16 */
  bytes: number;
  /** the element of the word the first load in program order reads */
  first: number;
}

/** element counts tried per item size, widest first (words of at most 16 bytes) */
const WIDTHS: Record<number, number[]> = { 2: [8, 4, 2], 4: [4, 2] };

const gcd = (a: number, b: number): number => (b === 0 ? Math.abs(a) : gcd(b, a % b));

/** the word each load is part of (loads of no word are absent) */
export function planWideLoads(lin: LinearProgram): Map<UOp, WideWord> {
  const groups = new Map<string, { step: number; at: Map<number, UOp> }>();
  for (const u of lin.uops) {
    if (u.op !== Ops.LOAD) continue;
    const idx = u.src[0];
    if (idx?.op !== Ops.INDEX || idx.src.length !== 2) continue; // gated loads stay scalar
    const buf = idx.src[0];
    if (buf.op !== Ops.DEFINE_GLOBAL || buf.dtype !== u.dtype || !WIDTHS[u.dtype.itemsize]) {
      continue;
    }
    const sum = linSum(idx.src[1]);
    if (!sum) continue;
    const terms = sum.terms.map((t, i) => [t.id, sum.coefs[i]] as const)
      .filter(([, c]) => c !== 0).sort((a, b) => a[0] - b[0]);
    const key = `${buf.id}|${lin.block.get(u)?.id ?? "-"}|${terms.join(";")}`;
    let g = groups.get(key);
    if (!g) {
      g = { step: terms.reduce((p, [, c]) => gcd(p, c), 0), at: new Map() };
      groups.set(key, g);
    }
    if (!g.at.has(sum.k)) g.at.set(sum.k, u);
  }
  const order = new Map(lin.uops.map((u, i) => [u, i]));
  const out = new Map<UOp, WideWord>();
  for (const { step, at } of groups.values()) {
    if (at.size < 2) continue;
    const itemsize = at.values().next().value!.dtype.itemsize;
    for (const width of WIDTHS[itemsize]) {
      if (step % width !== 0) continue;
      for (const k of [...at.keys()].sort((a, b) => a - b)) {
        if (((k % width) + width) % width !== 0) continue;
        const loads = Array.from({ length: width }, (_, i) => at.get(k + i));
        if (loads.some((l) => l === undefined || out.has(l))) continue;
        const ls = loads as UOp[];
        const firstAt = Math.min(...ls.map((l) => order.get(l)!));
        const word: WideWord = {
          loads: ls,
          bytes: width * itemsize,
          first: ls.findIndex((l) => order.get(l) === firstAt),
        };
        for (const l of ls) out.set(l, word);
      }
    }
  }
  return out;
}
