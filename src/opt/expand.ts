// UPCAST and UNROLL ranges make no loop: the computation is copied once per value of the range.
// A REDUCE over an UNROLL range reduces the combined copies in one accumulator update; a store
// under an UPCAST range becomes one store per value, and the REDUCEs it reads become one REDUCE
// per value over the same reduce loops (loads that ignore the upcast axis are shared by
// hash-consing, so each is loaded once per iteration).
import { AxisType, Ops, UOp } from "../uop/ops.ts";
import { PatternMatcher, UPat } from "../uop/upat.ts";

const isType = (t: AxisType) => (r: UOp): boolean =>
  r.op === Ops.RANGE && (r.arg as [number, AxisType])[1] === t;

/** each assignment of a value to every range in `rs` (the last range varies fastest) */
function assignments(rs: readonly UOp[]): Map<UOp, UOp>[] {
  let out: Map<UOp, UOp>[] = [new Map()];
  for (const r of rs) {
    const n = r.src[0].arg as number;
    out = out.flatMap((m) =>
      Array.from({ length: n }, (_, i) => new Map([...m, [r, UOp.const(r.dtype, i)]]))
    );
  }
  return out;
}

function expandReduce(red: UOp): UOp | undefined {
  const [value, ...ranges] = red.src;
  const unrolled = ranges.filter(isType(AxisType.UNROLL));
  if (!unrolled.length) return undefined;
  const vals = assignments(unrolled).map((m) => value.substitute(m));
  const combined = vals.reduce((acc, v) => acc.alu(red.arg as Ops, v));
  const rest = ranges.filter((r) => !unrolled.includes(r));
  // a reduce whose loops were all unrolled is just the combined value
  return rest.length ? red.replace({ src: [combined, ...rest] }) : combined;
}

/** the stores of an END (or bare STORE), one per value of its UPCAST ranges */
function expandStore(x: UOp): UOp[] {
  if (x.op !== Ops.END) return [x];
  const [store, ...ranges] = x.src;
  const up = ranges.filter(isType(AxisType.UPCAST));
  if (!up.length) return [x];
  const rest = ranges.filter((r) => !up.includes(r));
  return assignments(up).map((m) => {
    const s = store.substitute(m);
    return rest.length ? x.replace({ src: [s, ...rest] }) : s;
  });
}

/** REDUCEs lose their UNROLL ranges, the kernel's stores (and a barrier's) their UPCAST ranges */
export const pmExpand = new PatternMatcher<unknown>([
  [new UPat({ op: Ops.REDUCE, name: "red" }), (b) => expandReduce(b.red)],
  // stores a barrier waits for (a copy into shared memory, src/opt/tc.ts) expand likewise
  [new UPat({ op: Ops.BARRIER, name: "b" }), (b) => {
    const upcast = (x: UOp) => x.op === Ops.END && x.src.slice(1).some(isType(AxisType.UPCAST));
    return b.b.src.some(upcast) ? b.b.replace({ src: b.b.src.flatMap(expandStore) }) : undefined;
  }],
  // and the copies an access is ordered after (src/opt/tc.ts PIPE: a shared-memory read after
  // the next slice's copies, a prologue slice's copies after the last one's)
  [new UPat({ op: [Ops.LOAD, Ops.STORE], name: "l" }), (b) => {
    const upcast = (x: UOp) => x.op === Ops.END && x.src.slice(1).some(isType(AxisType.UPCAST));
    return b.l.src.some(upcast) ? b.l.replace({ src: b.l.src.flatMap(expandStore) }) : undefined;
  }],
  [new UPat({ op: Ops.SINK, name: "s" }), (b) => {
    const upcast = (x: UOp) => x.op === Ops.END && x.src.slice(1).some(isType(AxisType.UPCAST));
    return b.s.src.some(upcast) ? b.s.replace({ src: b.s.src.flatMap(expandStore) }) : undefined;
  }],
]);
