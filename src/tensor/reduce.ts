// Reductions: REDUCE_AXIS over ADD/MUL/MAX, and what composes from them.
import { type DType, dtypes, leastUpperDType, toFloat } from "../dtype.ts";
import { Ops, prod, UOp } from "../uop/ops.ts";
import { Tensor } from "../tensor.ts";
import { fmtShape, resolveAxes, resolveAxis } from "./broadcast.ts";
import * as E from "./elementwise.ts";
import * as M from "./movement.ts";

export type Axis = number | number[] | undefined;

/** the dtype sums accumulate in: small ints widen to 32 bits, half floats to float32 */
export function sumAccDType(d: DType): DType {
  if (d.isUnsigned) return leastUpperDType(d, dtypes.uint32);
  if (d.isInt || d === dtypes.bool) return leastUpperDType(d, dtypes.int32);
  return leastUpperDType(d, dtypes.float32);
}

const reduceAxis = (x: Tensor, op: Ops, axes: number[]): Tensor =>
  new Tensor(UOp.make(Ops.REDUCE_AXIS, x.dtype, [x.uop], [op, axes]), x.device);

function reduce(name: string, x: Tensor, op: Ops, axis: Axis, keepdim: boolean): Tensor {
  const axes = resolveAxes(name, axis, x.ndim);
  const r = axes.length === 0 ? x : splitReduce(x, op, axes) ?? reduceAxis(x, op, axes);
  return keepdim ? r : M.reshape(r, x.shape.filter((_, i) => !axes.includes(i)));
}

/** reduces at least this long with at most SPLIT_OUTPUTS outputs run in two stages */
export const SPLIT_FROM = 1 << 16;
export const SPLIT_OUTPUTS = 16;

/**
 * A long reduce of the trailing axes into few outputs, in two stages: P partial reduces (a
 * kernel whose outputs threads and workgroups can share) realized, then a short reduce of them.
 * In one stage such a reduce runs on one CPU thread (or leans on GROUP on a GPU).
 */
function splitReduce(x: Tensor, op: Ops, axes: number[]): Tensor | null {
  const n = x.ndim, k = axes.length;
  if ([...axes].sort((a, b) => a - b).some((a, i) => a !== n - k + i)) return null;
  const outer = x.shape.slice(0, n - k), len = prod(x.shape.slice(n - k));
  if (len < SPLIT_FROM || prod(outer) > SPLIT_OUTPUTS) return null;
  let parts = 0;
  for (let p = 256; p >= 32 && !parts; p--) if (len % p === 0 && len / p >= 2048) parts = p;
  if (!parts) return null;
  const partial = reduceAxis(M.reshape(x, [...outer, parts, len / parts]), op, [n - k + 1]);
  const total = reduceAxis(partial.contiguous(), op, [n - k]);
  return M.reshape(total, x.shape.map((d, i) => (axes.includes(i) ? 1 : d)));
}

const reducedCount = (name: string, x: Tensor, axis: Axis): number =>
  prod(resolveAxes(name, axis, x.ndim).map((a) => x.shape[a]));

export function sum(x: Tensor, axis?: Axis, keepdim = false): Tensor {
  const r = reduce("sum", x.cast(sumAccDType(x.dtype)), Ops.ADD, axis, keepdim);
  return x.dtype.isFloat ? r.cast(x.dtype) : r;
}
export function prodReduce(x: Tensor, axis?: Axis, keepdim = false): Tensor {
  const r = reduce("prod", x.cast(sumAccDType(x.dtype)), Ops.MUL, axis, keepdim);
  return x.dtype.isFloat ? r.cast(x.dtype) : r;
}
export function max(x: Tensor, axis?: Axis, keepdim = false): Tensor {
  return reduce("max", x, Ops.MAX, axis, keepdim);
}
export function min(x: Tensor, axis?: Axis, keepdim = false): Tensor {
  return E.inverse(reduce("min", E.inverse(x), Ops.MAX, axis, keepdim));
}
export function mean(x: Tensor, axis?: Axis, keepdim = false): Tensor {
  const n = reducedCount("mean", x, axis);
  const s = reduce("mean", x.cast(sumAccDType(x.dtype)), Ops.ADD, axis, keepdim);
  return E.div(s, n).cast(toFloat(x.dtype));
}
/** variance with `correction` (1: the unbiased estimate) */
export function variance(x: Tensor, axis?: Axis, keepdim = false, correction = 1): Tensor {
  const n = reducedCount("var", x, axis);
  const dev = E.square(E.sub(x, mean(x, axis, true)));
  return E.div(sum(dev, axis, keepdim), Math.max(0, n - correction));
}
export function std(x: Tensor, axis?: Axis, keepdim = false, correction = 1): Tensor {
  return E.sqrt(variance(x, axis, keepdim, correction));
}
export function any(x: Tensor, axis?: Axis, keepdim = false): Tensor {
  return reduce("any", x.cast(dtypes.bool), Ops.MAX, axis, keepdim);
}
export function all(x: Tensor, axis?: Axis, keepdim = false): Tensor {
  return E.logicalNot(any(E.logicalNot(x), axis, keepdim));
}

/** the index of the first maximum along `axis` (over the flattened tensor when undefined), int32 */
export function argmax(x: Tensor, axis?: number, keepdim = false): Tensor {
  if (axis === undefined) {
    const r = argmax(M.flatten(x), 0);
    return keepdim ? M.reshape(r, x.shape.map(() => 1)) : r;
  }
  const a = resolveAxis("argmax", axis, x.ndim);
  const n = x.shape[a];
  if (n === 0) throw new Error(`argmax: axis ${axis} of ${fmtShape(x.shape)} is empty`);
  const isMax = E.eq(x, max(x, a, true));
  // count down from n so that the max over matches picks the first index
  const down = M.reshape(
    Tensor.arange(n, 0, -1, { device: x.device }),
    x.shape.map((_, i) => (i === a ? n : 1)),
  );
  return E.sub(max(E.where(isMax, down, 0), a, keepdim), n, true).cast(dtypes.int32);
}
export function argmin(x: Tensor, axis?: number, keepdim = false): Tensor {
  return argmax(E.inverse(x), axis, keepdim);
}

export function logsumexp(x: Tensor, axis?: Axis, keepdim = false): Tensor {
  const m = max(x, axis, true);
  const s = E.log(sum(E.exp(E.sub(x, m)), axis, keepdim));
  const axes = resolveAxes("logsumexp", axis, x.ndim);
  return E.add(s, keepdim ? m : M.reshape(m, x.shape.filter((_, i) => !axes.includes(i))));
}
export function softmax(x: Tensor, axis = -1): Tensor {
  const e = E.exp(E.sub(x, max(x, axis, true)));
  return E.div(e, sum(e, axis, true));
}
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const m = E.sub(x, max(x, axis, true));
  return E.sub(m, E.log(sum(E.exp(m), axis, true)));
}

// ---- scans: a sliding window over the axis padded in front (tinygrad's _cumalu) ----

const identity = (op: Ops, d: DType): number | boolean =>
  op === Ops.ADD
    ? 0
    : op === Ops.MUL
    ? 1
    : d.isFloat
    ? -Infinity
    : d === dtypes.bool
    ? false
    : d.min;

const scanReduce = (t: Tensor, op: Ops): Tensor =>
  op === Ops.ADD ? sum(t, -1) : op === Ops.MUL ? prodReduce(t, -1) : max(t, -1);

/** inclusive scan along the last axis by windows of n; includeInitial adds the identity first */
function scanLast(x: Tensor, op: Ops, includeInitial = false): Tensor {
  const n = x.shape[x.ndim - 1];
  const pads = x.shape.map((_, i) =>
    i === x.ndim - 1
      ? [n - (includeInitial ? 0 : 1), includeInitial ? -1 : 0] as [number, number]
      : null
  );
  const p = M.pad(x, pads, Number(identity(op, x.dtype)));
  return scanReduce(M.pool(p, [n]), op);
}

const SPLIT = 256;

/** a scan in two stages past 2*SPLIT elements, so the work stays linear-ish instead of n^2 */
function scan(name: string, x: Tensor, axis: number, op: Ops): Tensor {
  if (x.ndim === 0) return x;
  const a = resolveAxis(name, axis, x.ndim);
  if (x.numel() === 0) return x;
  const t = M.transpose(x, a, -1);
  const n = t.shape[t.ndim - 1];
  if (n <= 2 * SPLIT) return M.transpose(scanLast(t, op), a, -1);
  const padTo = Math.ceil(n / SPLIT) * SPLIT;
  const pads = t.shape.map((
    _,
    i,
  ) => (i === t.ndim - 1 ? [padTo - n, 0] as [number, number] : null));
  const blocks = M.unflatten(M.pad(t, pads, Number(identity(op, t.dtype))), -1, [-1, SPLIT]);
  const inner = scanLast(blocks, op);
  const last = M.slice(inner, [...inner.shape.slice(0, -1).map(() => null), -1]);
  const base = M.expand(M.unsqueeze(scanLast(last, op, true), -1), inner.shape);
  const fix = (u: Tensor): Tensor => {
    const f = M.flatten(u, -2);
    return M.shrink(
      f,
      f.shape.map((d, i) => (i === f.ndim - 1 ? [d - n, d] as [number, number] : null)),
    );
  };
  const combined = op === Ops.ADD
    ? E.add(fix(inner), fix(base))
    : op === Ops.MUL
    ? E.mul(fix(inner), fix(base))
    : E.maximum(fix(inner), fix(base));
  return M.transpose(combined, a, -1);
}

export function cumsum(x: Tensor, axis = 0): Tensor {
  return scan("cumsum", x, axis, Ops.ADD);
}
export function cumprod(x: Tensor, axis = 0): Tensor {
  return scan("cumprod", x, axis, Ops.MUL);
}
/** the running maximum (values) */
export function cummax(x: Tensor, axis = 0): Tensor {
  return scan("cummax", x, axis, Ops.MAX);
}
