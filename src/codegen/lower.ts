// REDUCE -> accumulator: a one-element DEFINE_REG, set to the identity where the reduce's outer
// loops put it, updated inside the reduce loops, read after they END.
//
// Representation (kernel level, after this pass): LOAD(INDEX, ...after) and
// STORE(INDEX, value, ...after): sources past the required ones only order the access after
// those nodes (or, for RANGEs, inside those loops); renderers ignore them.
import { type ConstValue, GroupOp, opName, Ops, UOp } from "../uop/ops.ts";
import { PatternMatcher, UPat } from "../uop/upat.ts";
import { type DType, dtypes } from "../dtype.ts";
import { openRanges } from "./ranges.ts";

export interface LowerCtx {
  /** the next DEFINE_REG id */
  regs: number;
  /** every RANGE some REDUCE loops over (never parallel) */
  reduceRanges: Set<UOp>;
}

export const newLowerCtx = (): LowerCtx => ({ regs: 0, reduceRanges: new Set() });

export function reduceIdentity(op: Ops, d: DType): ConstValue {
  if (d === dtypes.bool) return op === Ops.MUL;
  if (op === Ops.ADD) return 0;
  if (op === Ops.MUL) return 1;
  return d.isFloat ? -Infinity : d.min;
}

function lowerReduce(red: UOp, ctx: LowerCtx): UOp {
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
  const upd = UOp.make(Ops.STORE, dtypes.void, [at, cur.alu(op, value), ...ranges]);
  return UOp.make(Ops.LOAD, red.dtype, [at, UOp.make(Ops.END, dtypes.void, [upd, ...ranges])]);
}

/** REDUCE to accumulator loops (inner REDUCEs are lowered first: sources rewrite before users) */
export const pmLowerReduce = new PatternMatcher<LowerCtx>([
  [new UPat({ op: Ops.REDUCE, name: "red" }), (b, ctx) => lowerReduce(b.red, ctx)],
]);
