// Movement ops as index arithmetic: the index tuple a consumer reads a movement op's output at
// becomes the index tuple its source is read at. No views, no strides: symbolic does the merging.
import { dtypes } from "../dtype.ts";
import { Ops, type Pad, UOp } from "../uop/ops.ts";

/** where a node is read: one int32 index per axis, and a validity condition (null = always) */
export interface IndexTuple {
  readonly idx: readonly UOp[];
  readonly valid: UOp | null;
}

export const cint = (n: number): UOp => UOp.const(dtypes.int32, n);
const ZERO = () => cint(0);

export const sameTuple = (a: IndexTuple, b: IndexTuple): boolean =>
  a.valid === b.valid && a.idx.length === b.idx.length && a.idx.every((x, i) => x === b.idx[i]);

export const andValid = (a: UOp | null, b: UOp | null): UOp | null =>
  a === null ? b : b === null ? a : a === b ? a : a.and(b).simplify();

/** the row-major flat offset of `idx` in `shape` */
export function flatIndex(idx: readonly UOp[], shape: readonly number[]): UOp {
  let acc: UOp | null = null;
  let stride = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1) {
      const term = stride === 1 ? idx[i] : idx[i].mul(stride);
      acc = acc === null ? term : term.add(acc);
    }
    stride *= shape[i];
  }
  return (acc ?? ZERO()).simplify();
}

/** the tuple that `x.src[0]` is read at when the movement op `x` is read at `t` */
export function pushThroughMovement(x: UOp, t: IndexTuple): IndexTuple {
  const inShape = x.src[0].shape!;
  const outShape = x.shape!;
  switch (x.op) {
    case Ops.RESHAPE: {
      const flat = flatIndex(t.idx, outShape);
      const idx: UOp[] = new Array(inShape.length);
      let stride = 1;
      for (let i = inShape.length - 1; i >= 0; i--) {
        if (inShape[i] === 1) idx[i] = ZERO();
        else {
          let e = stride === 1 ? flat : flat.idiv(stride);
          if (i > 0 || stride * inShape[i] < flat.vmax + 1) e = e.mod(inShape[i]);
          idx[i] = e.simplify();
        }
        stride *= inShape[i];
      }
      return { idx, valid: t.valid };
    }
    case Ops.PERMUTE: {
      const perm = x.arg as number[];
      const idx: UOp[] = new Array(perm.length);
      perm.forEach((p, i) => (idx[p] = t.idx[i]));
      return { idx, valid: t.valid };
    }
    case Ops.EXPAND:
      return {
        idx: inShape.map((d, i) => (d === 1 && outShape[i] !== 1 ? ZERO() : t.idx[i])),
        valid: t.valid,
      };
    case Ops.SHRINK: {
      const p = x.arg as Pad[];
      return {
        idx: t.idx.map((e, i) => (p[i][0] === 0 ? e : e.add(p[i][0]).simplify())),
        valid: t.valid,
      };
    }
    case Ops.FLIP: {
      const f = x.arg as boolean[];
      return {
        idx: t.idx.map((e, i) => (f[i] ? cint(inShape[i] - 1).sub(e).simplify() : e)),
        valid: t.valid,
      };
    }
    case Ops.PAD: {
      const { idx, valid } = padTuple(x, t);
      return { idx, valid: andValid(t.valid, valid) };
    }
  }
  throw new Error(`pushThroughMovement: ${Ops[x.op]} is not a movement op`);
}

/** a PAD read at `t`: the source index and the condition that it lies inside the source */
export function padTuple(x: UOp, t: IndexTuple): { idx: UOp[]; valid: UOp | null } {
  const p = x.arg as Pad[];
  const inShape = x.src[0].shape!;
  let valid: UOp | null = null;
  const idx = t.idx.map((e, i) => {
    const [before, after] = p[i];
    if (before === 0 && after === 0) return e;
    const shifted = before === 0 ? e : e.sub(before).simplify();
    let v: UOp | null = null;
    if (shifted.vmin < 0) v = shifted.ge(0).simplify();
    if (shifted.vmax >= inShape[i]) v = andValid(v, shifted.lt(inShape[i]).simplify());
    valid = andValid(valid, v);
    return shifted;
  });
  return { idx, valid };
}
