// Wide loads and stores: scalar accesses of one buffer (global, or shared memory) at consecutive
// indexes (what UPCAST copies and the tensor-core fragments leave after expansion) done as one
// aligned 4-, 8- or 16-byte word. A GPU issues one instruction for the word instead of one per
// element: the tensor-core matmul loaded its operands two bytes at a time.
//
// Accesses group when their indexes are the same sum of terms (src/uop/symbolic.ts linSum) up to
// the constant, in the same loop. A window of W elements is one word when every term's
// coefficient and the window's first constant are multiples of W, so the element index is a
// multiple of W wherever the kernel runs, and the buffer's base is aligned (whole allocations:
// 256 bytes on CUDA; shared arrays are declared 16-byte aligned).
//
// A wide store is only the copy of a wide load's word, element for element (a staged
// tensor-core matmul's copy into shared memory): it stores the loaded word as it is.
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

export interface WideStore {
  /** the stores of the word, by element (the first in program order stores the word) */
  stores: UOp[];
  /** the loaded word they store, element i into element i */
  word: WideWord;
  /** the element of the word the first store in program order writes */
  first: number;
}

/** element counts tried per item size, widest first (words of at most 16 bytes) */
const WIDTHS: Record<number, number[]> = { 2: [8, 4, 2], 4: [4, 2] };

const gcd = (a: number, b: number): number => (b === 0 ? Math.abs(a) : gcd(b, a % b));

const WIDE_BUFS: readonly Ops[] = [Ops.DEFINE_GLOBAL, Ops.DEFINE_LOCAL];

interface Group {
  step: number;
  at: Map<number, UOp>;
}

/** accesses (LOAD or STORE) of one buffer by the same terms in the same loop, by constant */
function groupsOf(lin: LinearProgram, op: Ops): Group[] {
  const groups = new Map<string, Group>();
  for (const u of lin.uops) {
    if (u.op !== op) continue;
    const idx = u.src[0];
    if (idx?.op !== Ops.INDEX || idx.src.length !== 2) continue; // gated accesses stay scalar
    const buf = idx.src[0], d = op === Ops.LOAD ? u.dtype : u.src[1].dtype;
    if (!WIDE_BUFS.includes(buf.op) || buf.dtype !== d || !WIDTHS[d.itemsize]) continue;
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
  return [...groups.values()];
}

/** aligned windows of `width` consecutive accesses of a group that `ok` accepts, in order */
function* windows(g: Group, width: number, taken: (u: UOp) => boolean): Generator<UOp[]> {
  if (g.step % width !== 0) return;
  for (const k of [...g.at.keys()].sort((a, b) => a - b)) {
    if (((k % width) + width) % width !== 0) continue;
    const us = Array.from({ length: width }, (_, i) => g.at.get(k + i));
    if (us.some((u) => u === undefined || taken(u))) continue;
    yield us as UOp[];
  }
}

const itemsize = (u: UOp): number => (u.op === Ops.LOAD ? u.dtype : u.src[1].dtype).itemsize;

/** the word each load is part of (loads of no word are absent) */
export function planWideLoads(lin: LinearProgram): Map<UOp, WideWord> {
  const order = new Map(lin.uops.map((u, i) => [u, i]));
  const out = new Map<UOp, WideWord>();
  for (const g of groupsOf(lin, Ops.LOAD)) {
    if (g.at.size < 2) continue;
    const size = itemsize(g.at.values().next().value!);
    for (const width of WIDTHS[size]) {
      for (const ls of windows(g, width, (u) => out.has(u))) {
        const firstAt = Math.min(...ls.map((l) => order.get(l)!));
        const word: WideWord = {
          loads: ls,
          bytes: width * size,
          first: ls.findIndex((l) => order.get(l) === firstAt),
        };
        for (const l of ls) out.set(l, word);
      }
    }
  }
  return out;
}

/** the wide store each store is part of: stores that copy a loaded word whole, in place */
export function planWideStores(
  lin: LinearProgram,
  words: ReadonlyMap<UOp, WideWord>,
): Map<UOp, WideStore> {
  const order = new Map(lin.uops.map((u, i) => [u, i]));
  const out = new Map<UOp, WideStore>();
  for (const g of groupsOf(lin, Ops.STORE)) {
    if (g.at.size < 2) continue;
    const size = itemsize(g.at.values().next().value!);
    for (const width of WIDTHS[size]) {
      for (const ss of windows(g, width, (u) => out.has(u))) {
        const word = words.get(ss[0].src[1]);
        if (!word || word.loads.length !== width) continue;
        if (ss.some((s, i) => s.src[1] !== word.loads[i])) continue;
        const firstAt = Math.min(...ss.map((s) => order.get(s)!));
        const wide: WideStore = {
          stores: ss,
          word,
          first: ss.findIndex((s) => order.get(s) === firstAt),
        };
        for (const s of ss) out.set(s, wide);
      }
    }
  }
  return out;
}

/**
 * A tensor-core fragment read from shared memory by one warp-wide ldmatrix instead of one load
 * per element pair. The fragment's element loads are the operands of an mma (a: 8 elements,
 * b: 4) whose indexes are idx0 + (lane/4)*cg + (lane%4)*ct + the element's constant, as
 * src/opt/tc.ts writes them. ldmatrix has each lane give the address of one 16-byte row of an
 * 8x8 matrix: a row r of matrix j starts at idx0 - (lane/4)*cg - (lane%4)*ct + r*row + offs[j].
 * a (row-major 16x16, x4): row = cg, offs = [0, 8 rows, 8 k, both]. b (16x8, x2 .trans): the
 * matrix rows are k rows of the shared tile, row = ct/2, offs = [0, 8 k rows].
 */
export interface MatrixFragment {
  /** the lane: the node whose /4 and %4 are the fragment's g and t */
  lane: UOp;
  /** element 0's index */
  idx0: UOp;
  cg: number;
  ct: number;
  row: number;
  offs: number[];
  trans: boolean;
}

type Terms = Map<UOp, number>;
const termsOf = (u: UOp): { t: Terms; k: number } | null => {
  const s = linSum(u);
  if (!s) return null;
  const t: Terms = new Map();
  s.terms.forEach((x, i) => s.coefs[i] && t.set(x, (t.get(x) ?? 0) + s.coefs[i]));
  return { t, k: s.k };
};
const sameTerms = (a: Terms, b: Terms): boolean =>
  a.size === b.size && [...a].every(([x, c]) => b.get(x) === c);

/**
 * the ldmatrix form of an mma operand's element loads (a: 8, b: 4), or null where they are not
 * 16-bit loads of one 16-byte aligned shared array in the fragment layout
 */
export function matrixFragment(loads: readonly UOp[]): MatrixFragment | null {
  const isA = loads.length === 8;
  if (!isA && loads.length !== 4) return null;
  const idxs: UOp[] = [];
  for (const l of loads) {
    const idx = l.src[0];
    if (l.op !== Ops.LOAD || idx?.op !== Ops.INDEX || idx.src.length !== 2) return null;
    if (idx.src[0].op !== Ops.DEFINE_LOCAL || idx.src[0] !== loads[0].src[0].src[0]) return null;
    if (l.dtype.itemsize !== 2 || idx.src[0].dtype !== l.dtype) return null;
    idxs.push(idx.src[1]);
  }
  const sums = idxs.map(termsOf);
  if (sums.some((s) => !s || !sameTerms(s.t, sums[0]!.t))) return null;
  const d = sums.map((s) => s!.k - sums[0]!.k);
  // the lane: x in x/4 and x%4, found in no other term
  const s0 = sums[0]!;
  let lane: UOp | undefined, cg = 0, ct = 0;
  for (const [x, c] of s0.t) {
    if (x.op !== Ops.IDIV || x.src[1].op !== Ops.CONST || x.src[1].arg !== 4) continue;
    const m = [...s0.t].find(([y]) =>
      y.op === Ops.MOD && y.src[0] === x.src[0] && y.src[1].op === Ops.CONST && y.src[1].arg === 4
    );
    if (m) [lane, cg, ct] = [x.src[0], c, m[1]];
  }
  if (!lane || lane.vmin !== 0 || lane.vmax !== 31) return null;
  const rest = [...s0.t].filter(([x]) =>
    !(x.src[0] === lane && (x.op === Ops.IDIV || x.op === Ops.MOD))
  );
  if (rest.some(([x]) => x.toposort().includes(lane!))) return null;
  // every row address 16-byte aligned: the terms left and the constant are multiples of 8
  if (rest.some(([, c]) => c % 8 !== 0) || s0.k % 8 !== 0) return null;
  const eq = (want: number[]) => want.every((w, i) => d[i] === w);
  if (isA) {
    const R = 8 * cg;
    if (ct !== 2 || cg % 8 !== 0 || !eq([0, 1, R, R + 1, 8, 9, R + 8, R + 9])) return null;
    return { lane, idx0: idxs[0], cg, ct, row: cg, offs: [0, R, 8, R + 8], trans: false };
  }
  const row = ct / 2;
  if (cg !== 1 || row % 8 !== 0 || !eq([0, row, 8 * row, 9 * row])) return null;
  return { lane, idx0: idxs[0], cg, ct, row, offs: [0, 8 * row], trans: true };
}

/** element index the lane `L` gives ldmatrix for `f`: a row start (see MatrixFragment) */
export function matrixRowStart(f: MatrixFragment, idx0: number, L: number): number {
  const base = idx0 - (L >> 2) * f.cg - (L & 3) * f.ct;
  return base + (L & 7) * f.row + (f.offs[(L >> 3) % f.offs.length]);
}

/**
 * Stores of computed values into a global buffer at consecutive aligned indexes (a tensor-core
 * lane's pair of adjacent outputs, UPCAST elementwise copies) packed into one word, written by
 * the last of them in program order, when every value exists. The outputs of a kernel are not
 * read back by it, so deferring the earlier elements' stores to there changes nothing.
 */
export interface PackedStore {
  /** the stores of the word, by element */
  stores: UOp[];
  bytes: number;
  /** the element whose store comes last in program order (it writes the word) */
  last: number;
}

/** dtypes whose stored bits pack into 32-bit words */
const PACKABLE = new Set(["float16", "bfloat16", "float32", "int32", "uint32"]);

/** the packed store each global store is part of, among stores `taken` does not claim */
export function planPackedStores(
  lin: LinearProgram,
  taken: (u: UOp) => boolean,
): Map<UOp, PackedStore> {
  const order = new Map(lin.uops.map((u, i) => [u, i]));
  const out = new Map<UOp, PackedStore>();
  for (const g of groupsOf(lin, Ops.STORE)) {
    if (g.at.size < 2) continue;
    const s0 = g.at.values().next().value!;
    if (s0.src[0].src[0].op !== Ops.DEFINE_GLOBAL || !PACKABLE.has(s0.src[1].dtype.name)) continue;
    const size = itemsize(s0);
    for (const width of WIDTHS[size]) {
      for (const ss of windows(g, width, (u) => out.has(u) || taken(u) || u.arg !== undefined)) {
        const lastAt = Math.max(...ss.map((s) => order.get(s)!));
        const p: PackedStore = {
          stores: ss,
          bytes: width * size,
          last: ss.findIndex((s) => order.get(s) === lastAt),
        };
        for (const s of ss) out.set(s, p);
      }
    }
  }
  return out;
}
