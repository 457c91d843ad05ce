// What every tensor-core rebuild (src/opt/tc.ts for CUDA, src/opt/tc_amd.ts for AMD) shares: the
// tile loops that replace a matmul's m, n and k ranges, and the store of the summed tile that
// ends the kernel.
import { AxisType, Ops, UOp } from "../uop/ops.ts";
import { dtypes } from "../dtype.ts";

export const unCast = (u: UOp): UOp => (u.op === Ops.CAST ? unCast(u.src[0]) : u);

export const sizeOf = (
  r: UOp,
): number | null => (r.src[0].op === Ops.CONST ? r.src[0].arg as number : null);

/** a range of `n` iterations, or the constant 0 where there would be one iteration */
export const loop = (n: number, id: number, type: AxisType): UOp =>
  n === 1 ? UOp.const(dtypes.int32, 0) : UOp.range(n, id, type);

const idOf = (r: UOp) => (r.arg as [number])[0];

/** the tile loops over m, n (outputs) and k (the reduce) for tiles of tm x tn x tk, same ids */
export function tileLoops(
  m: UOp,
  n: UOp,
  k: UOp,
  [tm, tn, tk]: readonly [number, number, number],
): [UOp, UOp, UOp] {
  return [
    loop(sizeOf(m)! / tm, idOf(m), AxisType.LOOP),
    loop(sizeOf(n)! / tn, idOf(n), AxisType.LOOP),
    loop(sizeOf(k)! / tk, idOf(k), AxisType.REDUCE),
  ];
}

/**
 * `sink` ending in the store of `sum` at `idx` in place of the store `st`: the casts between the
 * sum and the store stay (a float16 rounding before a float32 store), the output loops m and n
 * become their tile loops, and `inner` (the threads and register copies) close after them
 */
export function storeTiles(
  sink: UOp,
  st: UOp,
  outs: readonly UOp[],
  idx: UOp,
  sum: UOp,
  [m, n, mo, no]: readonly [UOp, UOp, UOp, UOp],
  inner: readonly UOp[],
): UOp {
  const red = unCast(st.src[1]);
  const store = UOp.make(Ops.STORE, dtypes.void, [
    idx,
    st.src[1].substitute(new Map([[red, sum.cast(red.dtype)]])),
  ]);
  const ranges = outs.map((r) => (r === m ? mo : r === n ? no : r))
    .filter((r) => r.op === Ops.RANGE);
  return sink.replace({ src: [UOp.make(Ops.END, dtypes.void, [store, ...ranges, ...inner])] });
}
