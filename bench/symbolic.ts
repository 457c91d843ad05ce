// Simplifies a fixed corpus of kernel-style index expressions (reshape/permute/pad/shrink index
// math over RANGEs) and prints JSON lines: microseconds per expression (cold: every node new;
// warm: the same expression objects again, which the per-node cache answers) and the pattern
// matcher's throughput in successful rewrites per second.
import { AxisType, UOp } from "../src/uop/ops.ts";
import { simplify, symbolic } from "../src/uop/symbolic.ts";
import type { PatternMatcher } from "../src/uop/upat.ts";

const N_EXPR = 300;
const ROUNDS = 5;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SIZES = [2, 3, 4, 5, 8, 16, 32, 64];
const stridesOf = (shape: number[]): number[] => {
  const st = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) st[i] = acc, acc *= shape[i];
  return st;
};
const prod = (xs: number[]): number => xs.reduce((a, b) => a * b, 1);

interface Spec {
  outShape: number[];
  midShape: number[];
  perm: number[];
  pad: number[];
  shrink: number[];
}

/** one expression's recipe, so the corpus can be rebuilt with new RANGE ids */
function makeSpecs(seed: number): Spec[] {
  const rnd = mulberry32(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)];
  const specs: Spec[] = [];
  while (specs.length < N_EXPR) {
    const nd = 2 + Math.floor(rnd() * 3);
    const outShape = Array.from({ length: nd }, () => pick(SIZES));
    // a different factorization of the same element count for the reshape
    const total = prod(outShape);
    const midShape: number[] = [];
    let left = total;
    while (left > 1 && midShape.length < 4) {
      const divs = SIZES.filter((s) => left % s === 0 && s <= left);
      const s = divs.length ? pick(divs) : left;
      midShape.push(s);
      left /= s;
    }
    if (left > 1) midShape.push(left);
    const perm = midShape.map((_, i) => i).sort(() => rnd() - 0.5);
    const pad = perm.map(() => (rnd() < 0.3 ? 1 : 0));
    const shrink = perm.map(() => (rnd() < 0.2 ? 1 : 0));
    specs.push({ outShape, midShape, perm, pad, shrink });
  }
  return specs;
}

/** the input offset and validity a kernel computes for output element (r0, r1, ...) */
function build(spec: Spec, axisBase: number): UOp {
  const rs = spec.outShape.map((s, i) => UOp.range(s, axisBase + i, AxisType.LOOP));
  const ost = stridesOf(spec.outShape);
  let flat: UOp = rs[0].mul(ost[0]);
  for (let i = 1; i < rs.length; i++) flat = flat.add(rs[i].mul(ost[i]));
  // reshape to midShape: coordinates by // and %
  const mst = stridesOf(spec.midShape);
  const coords = spec.midShape.map((s, i) => flat.idiv(mst[i]).mod(s));
  // permute, then shrink (offset) and pad (shift with a validity gate) per axis
  const pshape = spec.perm.map((p) => spec.midShape[p]);
  const ist = stridesOf(pshape.map((s, i) => s + spec.pad[i]));
  let idx: UOp | null = null, valid: UOp | null = null;
  spec.perm.forEach((p, i) => {
    let c = coords[p].add(spec.shrink[i]);
    if (spec.pad[i]) {
      c = c.sub(spec.pad[i]);
      const v = c.ge(0);
      valid = valid ? valid.and(v) : v;
    }
    const term = c.mul(ist[i]);
    idx = idx ? idx.add(term) : term;
  });
  return valid ? (valid as UOp).where(idx!, idx!.constLike(-1)) : idx!;
}

function countRewrites(pm: PatternMatcher, f: () => void): number {
  const orig = pm.rewrite;
  let n = 0;
  (pm as { rewrite: PatternMatcher["rewrite"] }).rewrite = function (u, ctx) {
    const r = orig.call(this, u, ctx);
    if (r !== undefined) n++;
    return r;
  };
  try {
    f();
  } finally {
    (pm as { rewrite: PatternMatcher["rewrite"] }).rewrite = orig;
  }
  return n;
}

const specs = makeSpecs(1234);
let axisBase = 0;
const fresh = (): UOp[] => {
  const out = specs.map((s) => build(s, axisBase));
  axisBase += 16;
  return out;
};

// warm-up of the JIT on a separate corpus
for (let i = 0; i < 2; i++) fresh().forEach(simplify);

const coldUs: number[] = [];
let lastCorpus: UOp[] = [];
let nodesIn = 0, nodesOut = 0;
for (let r = 0; r < ROUNDS; r++) {
  const corpus = fresh();
  const t0 = performance.now();
  for (const u of corpus) simplify(u);
  coldUs.push(((performance.now() - t0) * 1000) / corpus.length);
  lastCorpus = corpus;
}
for (const u of lastCorpus) {
  nodesIn += u.toposort().length;
  nodesOut += simplify(u).toposort().length;
}
const t1 = performance.now();
for (let r = 0; r < ROUNDS; r++) for (const u of lastCorpus) simplify(u);
const warmUs = ((performance.now() - t1) * 1000) / (ROUNDS * lastCorpus.length);

// throughput: successful rule applications per second on a cold corpus
const corpus = fresh();
const rewrites = countRewrites(symbolic, () => corpus.forEach(simplify));
const corpus2 = fresh();
const t2 = performance.now();
corpus2.forEach(simplify);
const coldS = (performance.now() - t2) / 1000;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const line = (o: Record<string, unknown>) => console.log(JSON.stringify(o));
line({
  bench: "symbolic_simplify",
  value: +median(coldUs).toFixed(2),
  unit: "us/expr",
  mode: "cold",
  exprs: N_EXPR,
  rounds: ROUNDS,
  nodes_in: nodesIn,
  nodes_out: nodesOut,
});
line({ bench: "symbolic_simplify", value: +warmUs.toFixed(3), unit: "us/expr", mode: "warm" });
line({
  bench: "pattern_matcher_throughput",
  value: Math.round(rewrites / coldS),
  unit: "rewrites/s",
  rewrites_per_expr: +(rewrites / corpus.length).toFixed(1),
});
