// Shapes of tensor-graph nodes, derived per op (there are no views or strides).
import { GroupOp, opName, Ops, prod, type UOp } from "./ops.ts";

// ---- tensor-graph shapes ----

export type Pad = readonly [number, number];

export function computeShape(u: UOp): readonly number[] | null {
  const s = u.src;
  const bad = (why: string): never => {
    throw new Error(`${opName(u.op)}: ${why}`);
  };
  switch (u.op) {
    case Ops.BUFFER:
      return [(u.arg as { size: number }).size];
    case Ops.CONST:
    case Ops.DEFINE_VAR:
      return [];
    case Ops.IOTA:
      return [u.arg as number];
    case Ops.RESHAPE: {
      const ns = u.arg as number[];
      if (prod(ns) !== prod(s[0].shape!)) {
        bad(`cannot reshape [${s[0].shape}] to [${ns}]: element counts differ`);
      }
      return ns;
    }
    case Ops.PERMUTE: {
      const p = u.arg as number[], sh = s[0].shape!;
      if (p.length !== sh.length || [...p].sort((a, b) => a - b).some((v, i) => v !== i)) {
        bad(`[${p}] is not a permutation of ${sh.length} axes`);
      }
      return p.map((i) => sh[i]);
    }
    case Ops.EXPAND: {
      const ns = u.arg as number[], sh = s[0].shape!;
      if (ns.length !== sh.length || sh.some((d, i) => d !== ns[i] && d !== 1)) {
        bad(`cannot expand [${sh}] to [${ns}]`);
      }
      return ns;
    }
    case Ops.PAD: {
      const p = u.arg as Pad[], sh = s[0].shape!;
      if (p.length !== sh.length) bad(`needs one [before, after] pair per axis of [${sh}]`);
      return sh.map((d, i) => d + p[i][0] + p[i][1]);
    }
    case Ops.SHRINK: {
      const p = u.arg as Pad[], sh = s[0].shape!;
      if (p.length !== sh.length || p.some(([b, e], i) => b < 0 || e > sh[i] || b > e)) {
        bad(`bad ranges ${JSON.stringify(p)} for shape [${sh}]`);
      }
      return p.map(([b, e]) => e - b);
    }
    case Ops.FLIP:
      return s[0].shape;
    case Ops.REDUCE_AXIS: {
      const [, axes] = u.arg as [Ops, number[]];
      return s[0].shape!.map((d, i) => (axes.includes(i) ? 1 : d));
    }
    case Ops.BITCAST: {
      const sh = s[0].shape;
      if (sh === null) return null;
      const ratio = s[0].dtype.itemsize / u.dtype.itemsize;
      if (ratio === 1 || sh.length === 0) return sh;
      const last = sh[sh.length - 1] * ratio;
      if (!Number.isInteger(last)) {
        bad(
          `cannot bitcast last axis ${sh[sh.length - 1]} of ${s[0].dtype.name} to ${u.dtype.name}`,
        );
      }
      return [...sh.slice(0, -1), last];
    }
    case Ops.COPY:
    case Ops.CONTIGUOUS:
    case Ops.DETACH:
    case Ops.NOOP:
    case Ops.CAST:
      return s[0].shape;
  }
  if (GroupOp.ALU.has(u.op)) {
    const shapes = s.map((x) => x.shape);
    if (shapes.some((x) => x === null)) return null;
    const first = shapes[0]!;
    for (const sh of shapes) {
      if (sh!.length !== first.length || sh!.some((d, i) => d !== first[i])) {
        bad(
          `sources have different shapes ${
            shapes.map((x) => `[${x}]`).join(", ")
          }; broadcast them first`,
        );
      }
    }
    return first;
  }
  return null;
}
