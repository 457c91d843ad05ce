// Shapes, axes, broadcasting and operand dtypes: the checks every Tensor op starts with.
import { type DType, dtypeFromName, dtypes, leastUpperDType } from "../dtype.ts";
import { GroupOp, Ops, prod, UOp } from "../uop/ops.ts";
import { Tensor, type TensorLike } from "../tensor.ts";

export const fmtShape = (s: readonly number[]): string => `[${s.join(", ")}]`;

export function toDType(d: DType | string): DType {
  return typeof d === "string" ? dtypeFromName(d) : d;
}

/** a validated copy of a shape given by the user */
export function checkShape(op: string, shape: readonly number[]): number[] {
  if (!Array.isArray(shape)) {
    throw new TypeError(`${op}: shape must be an array of integers, got ${String(shape)}`);
  }
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new Error(
        `${op}: shape ${fmtShape(shape)} has size ${d}; sizes must be non-negative integers`,
      );
    }
  }
  return [...shape];
}

/** `axis` as an index in 0..ndim+extra-1 (negative counts from the end) */
export function resolveAxis(op: string, axis: number, ndim: number, extra = 0): number {
  const n = ndim + extra;
  if (!Number.isInteger(axis) || axis < -n || axis >= n) {
    throw new Error(
      `${op}: axis ${axis} is out of range for ${ndim} dims; use an integer in ${-n}..${n - 1}`,
    );
  }
  return axis < 0 ? axis + n : axis;
}

/** sorted distinct axes; undefined means all of them */
export function resolveAxes(
  op: string,
  axis: number | number[] | undefined,
  ndim: number,
): number[] {
  if (axis === undefined) return [...Array(ndim).keys()];
  const list = (Array.isArray(axis) ? axis : [axis]).map((a) => resolveAxis(op, a, ndim));
  const set = new Set(list);
  if (set.size !== list.length) {
    throw new Error(`${op}: repeated axis in [${Array.isArray(axis) ? axis : [axis]}]`);
  }
  return [...set].sort((a, b) => a - b);
}

/** the shape both (all) shapes broadcast to, aligned from the last axis */
export function broadcastShape(op: string, ...shapes: (readonly number[])[]): number[] {
  const n = Math.max(0, ...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const sizes = shapes.map((s) => s[s.length - n + i] ?? 1);
    const other = sizes.filter((d) => d !== 1);
    if (other.some((d) => d !== other[0])) {
      throw new Error(
        `${op}: cannot broadcast shapes ${shapes.map(fmtShape).join(" and ")}: axis ${
          i - n
        } has sizes ${sizes.join(" and ")}; each axis needs equal sizes or 1`,
      );
    }
    out.push(other[0] ?? 1);
  }
  return out;
}

export function reshapeU(u: UOp, shape: readonly number[]): UOp {
  const s = u.shape!;
  if (s.length === shape.length && s.every((d, i) => d === shape[i])) return u;
  return UOp.make(Ops.RESHAPE, u.dtype, [u], [...shape]);
}

/** `u` broadcast to `shape` (RESHAPE adds leading 1s, EXPAND grows the 1-sized axes) */
export function expandU(op: string, u: UOp, shape: readonly number[]): UOp {
  const s = u.shape!;
  const padded = [...Array(Math.max(0, shape.length - s.length)).fill(1), ...s];
  if (s.length > shape.length || padded.some((d, i) => d !== shape[i] && d !== 1)) {
    throw new Error(
      `${op}: cannot expand shape ${fmtShape(s)} to ${
        fmtShape(shape)
      }; only axes of size 1 can grow (new axes go in front)`,
    );
  }
  const r = reshapeU(u, padded);
  if (padded.every((d, i) => d === shape[i])) return r;
  return UOp.make(Ops.EXPAND, u.dtype, [r], [...shape]);
}

/** a constant tensor graph: EXPAND(RESHAPE(CONST, [1,..]), shape) */
export function constU(dtype: DType, value: number | boolean, shape: readonly number[]): UOp {
  const c = UOp.const(dtype, value);
  if (shape.length === 0) return c;
  return expandU("const", reshapeU(c, shape.map(() => 1)), shape);
}

/** the dtype of a bare JS value (tinygrad's dtypes.from_py) */
export function jsDType(v: number | boolean): DType {
  if (typeof v === "boolean") return dtypes.bool;
  return Number.isInteger(v) ? dtypes.default_int : dtypes.default_float;
}

/** the dtype a JS value takes beside a tensor of dtype `d`: JS numbers are weak */
export function weakDType(d: DType, v: number | boolean): DType {
  if (d.isFloat) return d;
  if (d.isInt && (typeof v === "boolean" || Number.isInteger(v))) return d;
  return leastUpperDType(d, jsDType(v));
}

export function checkValue(op: string, v: unknown): void {
  if (typeof v !== "number" && typeof v !== "boolean" && !(v instanceof Tensor)) {
    throw new TypeError(`${op}: expected a Tensor, number or boolean, got ${typeof v}`);
  }
}

/** a JS value as a tensor beside `like` (weak dtype, shape []) */
export function lift(op: string, like: Tensor, v: TensorLike): Tensor {
  checkValue(op, v);
  if (v instanceof Tensor) return v;
  return new Tensor(UOp.const(weakDType(like.dtype, v), v), like.device);
}

export function sameDevice(op: string, ts: readonly Tensor[]): string {
  const d = ts[0].device;
  for (const t of ts) {
    if (t.device !== d) {
      throw new Error(
        `${op}: tensors are on different devices (${
          ts.map((x) => x.device).join(", ")
        }); move them to one with .to(device)`,
      );
    }
  }
  return d;
}

/** tensors broadcast to one shape (dtypes unchanged) */
export function broadcastAll(op: string, ts: Tensor[]): Tensor[] {
  sameDevice(op, ts);
  const shape = broadcastShape(op, ...ts.map((t) => t.shape));
  return ts.map((t) => new Tensor(expandU(op, t.uop, shape), t.device));
}

/** tensors cast to one dtype (their least upper dtype unless given) and broadcast to one shape */
export function matchAll(op: string, ts: Tensor[], dtype?: DType): Tensor[] {
  const dt = dtype ?? leastUpperDType(...ts.map((t) => t.dtype));
  return broadcastAll(op, ts.map((t) => t.cast(dt)));
}

/** the operands of a broadcasting binary op: one dtype, one shape (reverse swaps them) */
export function operands(op: string, x: Tensor, y: TensorLike, reverse = false): [Tensor, Tensor] {
  checkValue(op, y);
  // a JS value becomes a constant of the result dtype directly (no CAST node)
  const yt = y instanceof Tensor
    ? y
    : new Tensor(UOp.const(leastUpperDType(x.dtype, weakDType(x.dtype, y)), y), x.device);
  const [a, b] = matchAll(op, [x, yt]);
  return reverse ? [b, a] : [a, b];
}

/** one ALU node over tensors of equal shape and dtype */
export function alu(op: Ops, x: Tensor, ...rest: Tensor[]): Tensor {
  const dt = GroupOp.Comparison.has(op) ? dtypes.bool : op === Ops.WHERE ? rest[0].dtype : x.dtype;
  return new Tensor(UOp.make(op, dt, [x.uop, ...rest.map((r) => r.uop)]), x.device);
}

export const numelOf = (s: readonly number[]): number => prod(s);

/** a constant tensor with the shape and device of `like` */
export function fullOf(like: Tensor, v: number | boolean, dtype: DType = like.dtype): Tensor {
  return new Tensor(constU(dtype, v, like.shape), like.device);
}
