// REDUCE -> accumulator: a one-element DEFINE_REG, set to the identity where the reduce's outer
// loops put it, updated inside the reduce loops, read after they END.
//
// A REDUCE over GROUP_REDUCE ranges (GPU threads of one workgroup) is two reduces: each thread
// reduces its share over the other ranges into a register and stores it to shared memory
// (DEFINE_LOCAL, one slot per thread of the workgroup), a BARRIER, then every thread reduces the
// slots of its group in a loop. On the CPU the group ranges stay loops closed before the
// BARRIER (which renders as nothing), so the same kernel is a correct sequential program.
//
// Representation (kernel level, after this pass): LOAD(INDEX, ...after) and
// STORE(INDEX, value, ...after): sources past the required ones only order the access after
// those nodes (or, for RANGEs, inside those loops); renderers ignore them.
import { AxisType, type ConstValue, GroupOp, opName, Ops, UOp } from "../uop/ops.ts";
import { PatternMatcher, UPat } from "../uop/upat.ts";
import { type DType, dtypes } from "../dtype.ts";
import { openRanges } from "./ranges.ts";

export interface LowerCtx {
  /** the next DEFINE_REG id */
  regs: number;
  /** every RANGE some REDUCE loops over (never parallel) */
  reduceRanges: Set<UOp>;
  /** the GROUP_REDUCE ranges of the kernel (threads on a GPU) */
  groupRanges: Set<UOp>;
  /** the next DEFINE_LOCAL id */
  locals: number;
  /** the next free axis id (for the loops that combine group partials) */
  nextAxis: number;
  /** the language the kernel is rendered in (the opts chosen depend on it) */
  lang: string;
}

export const newLowerCtx = (lang = "c"): LowerCtx => ({
  lang,
  regs: 0,
  reduceRanges: new Set(),
  groupRanges: new Set(),
  locals: 0,
  nextAxis: 0,
});

const isGroup = (r: UOp): boolean => (r.arg as [number, AxisType])[1] === AxisType.GROUP_REDUCE;
const sizeOf = (r: UOp): number => r.src[0].arg as number;

/** the slot of the current thread in a buffer laid out over `rs` (the last varies fastest) */
function slotOf(rs: readonly UOp[]): UOp {
  let e: UOp | null = null, stride = 1;
  for (let i = rs.length - 1; i >= 0; i--) {
    const term = stride === 1 ? rs[i] : rs[i].mul(stride);
    e = e ? e.add(term) : term;
    stride *= sizeOf(rs[i]);
  }
  return e ?? UOp.const(dtypes.int32, 0);
}

/** partials per group thread into shared memory, a barrier, then a loop over the partials */
function lowerGroupReduce(red: UOp, ctx: LowerCtx): UOp {
  const [value, ...ranges] = red.src;
  const group = ranges.filter(isGroup), rest = ranges.filter((r) => !isGroup(r));
  for (const g of group) {
    if (g.src[0].op !== Ops.CONST) throw new Error("REDUCE: a group range needs a constant size");
    ctx.groupRanges.add(g);
  }
  const partial = rest.length ? lowerReduce(red.replace({ src: [value, ...rest] }), ctx) : value;
  // other threads of the workgroup (LOCAL ranges) each need their own slots
  const locals = [...openRanges(value).get(value)!].filter((r) =>
    (r.arg as [number, AxisType])[1] === AxisType.LOCAL && r.src[0].op === Ops.CONST
  ).sort((a, b) => a.id - b.id);
  const slots = [...locals, ...group];
  const size = slots.reduce((p, r) => p * sizeOf(r), 1);
  const smem = UOp.make(Ops.DEFINE_LOCAL, red.dtype, [], [ctx.locals++, size]);
  const st = UOp.make(Ops.STORE, dtypes.void, [
    UOp.make(Ops.INDEX, red.dtype, [smem, slotOf(slots)]),
    partial,
  ]);
  const bar = UOp.make(Ops.BARRIER, dtypes.void, [UOp.make(Ops.END, dtypes.void, [st, ...group])]);
  const again = group.map((g) => UOp.range(sizeOf(g), ctx.nextAxis++, AxisType.REDUCE));
  const sub = new Map(group.map((g, i) => [g, again[i]]));
  const ld = UOp.make(Ops.LOAD, red.dtype, [
    UOp.make(Ops.INDEX, red.dtype, [smem, slotOf(slots.map((r) => sub.get(r) ?? r))]),
    bar,
  ]);
  return lowerReduce(red.replace({ src: [ld, ...again] }), ctx);
}

export function reduceIdentity(op: Ops, d: DType): ConstValue {
  if (d === dtypes.bool) return op === Ops.MUL;
  if (op === Ops.ADD) return 0;
  if (op === Ops.MUL) return 1;
  return d.isFloat ? -Infinity : d.min;
}

function lowerReduce(red: UOp, ctx: LowerCtx): UOp {
  if (red.src.slice(1).some(isGroup)) return lowerGroupReduce(red, ctx);
  const [value, ...ranges] = red.src;
  const op = red.arg as Ops;
  if (!GroupOp.ReduceOps.has(op)) {
    throw new Error(`REDUCE: arg must be ADD, MUL or MAX, got ${opName(op)}`);
  }
  if (value.dtype !== red.dtype) {
    throw new Error(`REDUCE: value is ${value.dtype.name} but the reduce is ${red.dtype.name}`);
  }
  for (const r of ranges) {
    if (r.op !== Ops.RANGE) throw new Error(`REDUCE: sources after the value must be RANGEs`);
    ctx.reduceRanges.add(r);
  }
  const acc = UOp.make(Ops.DEFINE_REG, red.dtype, [], [ctx.regs++, 1]);
  const at = UOp.make(Ops.INDEX, red.dtype, [acc, UOp.const(dtypes.int32, 0)]);
  // the init runs once per iteration of the loops the value needs besides the reduce ones:
  // a value that ignores an outer loop gets its whole reduce hoisted out of it
  const outer = [...openRanges(value).get(value)!].filter((r) => !ranges.includes(r));
  outer.sort((a, b) => a.id - b.id);
  const init = UOp.make(Ops.STORE, dtypes.void, [
    at,
    red.constLike(reduceIdentity(op, red.dtype)),
    ...outer,
  ]);
  const cur = UOp.make(Ops.LOAD, red.dtype, [at, init, ...ranges]);
  // a tensor-core product adds into the accumulator itself (the mma's C operand) instead of
  // into a zero the sum then adds: 4 float adds fewer per mma and lane
  const sum = value.op === Ops.WMMA && value.src.length === 13 && op === Ops.ADD
    ? value.replace({ src: [...value.src, cur] })
    : cur.alu(op, value);
  const upd = UOp.make(Ops.STORE, dtypes.void, [at, sum, ...ranges]);
  return UOp.make(Ops.LOAD, red.dtype, [at, UOp.make(Ops.END, dtypes.void, [upd, ...ranges])]);
}

/** REDUCE to accumulator loops (inner REDUCEs are lowered first: sources rewrite before users) */
export const pmLowerReduce = new PatternMatcher<LowerCtx>([
  [new UPat({ op: Ops.REDUCE, name: "red" }), (b, ctx) => lowerReduce(b.red, ctx)],
]);
