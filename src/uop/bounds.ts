// vmin/vmax of int and bool expressions by interval arithmetic (floats are unbounded).
import { type DType, dtypes } from "../dtype.ts";
import { type Bounds, Ops, type UOp } from "./ops.ts";

// ---- bounds (interval arithmetic) ----

export function computeBounds(u: UOp): Bounds {
  const d = u.dtype.scalar();
  const full: Bounds = [d.min, d.max];
  if (d.isFloat) return full;
  const s = u.src;
  switch (u.op) {
    case Ops.CONST:
      return [Number(u.arg), Number(u.arg)];
    case Ops.DEFINE_VAR: {
      const [, lo, hi] = u.arg as [string, number, number];
      return [lo, hi];
    }
    case Ops.RANGE:
    case Ops.SPECIAL:
      return [0, Math.max(0, s[0].vmax - 1)];
    case Ops.ADD:
      return clampTo(d, s[0].vmin + s[1].vmin, s[0].vmax + s[1].vmax);
    case Ops.SUB:
      return clampTo(d, s[0].vmin - s[1].vmax, s[0].vmax - s[1].vmin);
    case Ops.NEG:
      return clampTo(d, -s[0].vmax, -s[0].vmin);
    case Ops.MUL: {
      const c = [
        s[0].vmin * s[1].vmin,
        s[0].vmin * s[1].vmax,
        s[0].vmax * s[1].vmin,
        s[0].vmax * s[1].vmax,
      ];
      return clampTo(d, Math.min(...c), Math.max(...c));
    }
    case Ops.MAX:
      return [Math.max(s[0].vmin, s[1].vmin), Math.max(s[0].vmax, s[1].vmax)];
    case Ops.IDIV: {
      const [lo, hi] = s[1].bounds;
      if (lo > 0 || hi < 0) {
        // truncating division is monotone in each argument while the divisor keeps its sign
        const [a, b] = s[0].bounds;
        const q = [a / lo, a / hi, b / lo, b / hi].map(Math.trunc);
        return clampTo(d, Math.min(...q), Math.max(...q));
      }
      return full;
    }
    case Ops.MOD: {
      const [lo, hi] = s[1].bounds;
      if (lo <= 0 && hi >= 0) return full;
      // C remainder: the dividend's sign, magnitude below the divisor's
      const [a, b] = s[0].bounds;
      const small = Math.min(Math.abs(lo), Math.abs(hi)),
        m = Math.max(Math.abs(lo), Math.abs(hi)) - 1;
      if (Math.max(Math.abs(a), Math.abs(b)) < small) return [a, b];
      if (lo === hi && a >= 0 && Math.floor(a / Math.abs(lo)) === Math.floor(b / Math.abs(lo))) {
        return [a % lo, b % lo];
      }
      if (lo === hi && b <= 0 && Math.floor(-b / Math.abs(lo)) === Math.floor(-a / Math.abs(lo))) {
        return [a % lo, b % lo];
      }
      if (a >= 0) return [0, Math.min(m, b)];
      if (b <= 0) return [Math.max(-m, a), 0];
      return [Math.max(-m, a), Math.min(m, b)];
    }
    case Ops.MULACC: {
      const [a, b] = [s[0].bounds, s[1].bounds];
      const c = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]];
      return clampTo(d, Math.min(...c) + s[2].vmin, Math.max(...c) + s[2].vmax);
    }
    case Ops.TRUNC:
      return s[0].bounds;
    case Ops.SHL:
      if (s[1].vmin === s[1].vmax && s[1].vmin >= 0 && s[1].vmin < 31) {
        return clampTo(d, s[0].vmin * 2 ** s[1].vmin, s[0].vmax * 2 ** s[1].vmin);
      }
      return full;
    case Ops.SHR:
      if (s[1].vmin === s[1].vmax && s[1].vmin >= 0) {
        return [Math.floor(s[0].vmin / 2 ** s[1].vmin), Math.floor(s[0].vmax / 2 ** s[1].vmin)];
      }
      return full;
    case Ops.AND:
      if (d === dtypes.bool) return [s[0].vmin & s[1].vmin, s[0].vmax & s[1].vmax];
      if (s[1].vmin === s[1].vmax && s[1].vmin >= 0) return [0, s[1].vmin];
      if (s[0].vmin >= 0 && s[1].vmin >= 0) return [0, Math.min(s[0].vmax, s[1].vmax)];
      return full;
    case Ops.OR:
    case Ops.XOR:
      if (d === dtypes.bool) {
        if (u.op === Ops.OR) return [s[0].vmin | s[1].vmin, s[0].vmax | s[1].vmax];
        return [0, 1];
      }
      if (s[0].vmin >= 0 && s[1].vmin >= 0 && Math.max(s[0].vmax, s[1].vmax) < 2 ** 30) {
        // no bit above the larger operand's top bit
        const top = 2 ** Math.ceil(Math.log2(Math.max(s[0].vmax, s[1].vmax) + 1)) - 1;
        return [u.op === Ops.OR ? Math.max(s[0].vmin, s[1].vmin) : 0, top];
      }
      return full;
    case Ops.CMPLT:
      return [s[0].vmax < s[1].vmin ? 1 : 0, s[0].vmin < s[1].vmax ? 1 : 0];
    case Ops.CMPNE:
      if (s[0].vmax < s[1].vmin || s[0].vmin > s[1].vmax) return [1, 1];
      if (s[0].vmin === s[0].vmax && s[1].vmin === s[1].vmax && s[0].vmin === s[1].vmin) {
        return [0, 0];
      }
      return [0, 1];
    case Ops.CMPEQ:
      if (s[0].vmax < s[1].vmin || s[0].vmin > s[1].vmax) return [0, 0];
      if (s[0].vmin === s[0].vmax && s[1].vmin === s[1].vmax && s[0].vmin === s[1].vmin) {
        return [1, 1];
      }
      return [0, 1];
    case Ops.WHERE:
      if (s[0].vmin === 1) return s[1].bounds;
      if (s[0].vmax === 0) return s[2].bounds;
      return [Math.min(s[1].vmin, s[2].vmin), Math.max(s[1].vmax, s[2].vmax)];
    case Ops.CAST: {
      const [lo, hi] = s[0].bounds;
      if (lo >= d.min && hi <= d.max) return [lo, hi];
      return full;
    }
  }
  return full;
}

/** an interval that leaves the dtype's range may wrap: then nothing is known */
function clampTo(d: DType, lo: number, hi: number): Bounds {
  // beyond 2^53 the interval arithmetic itself is inexact (64-bit ints)
  if (lo < d.min || hi > d.max || !(Math.abs(lo) < 2 ** 53) || !(Math.abs(hi) < 2 ** 53)) {
    return [d.min, d.max];
  }
  return [lo, hi];
}
