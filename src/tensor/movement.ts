// Movement ops: views recorded as RESHAPE/PERMUTE/EXPAND/PAD/SHRINK/FLIP; nothing is copied.
import { dtypes, leastUpperDType } from "../dtype.ts";
import { Ops, type Pad, prod, UOp } from "../uop/ops.ts";
import { Tensor } from "../tensor.ts";
import {
  constU,
  expandU,
  fmtShape,
  reshapeU,
  resolveAxes,
  resolveAxis,
  sameDevice,
} from "./broadcast.ts";
import { add, where } from "./elementwise.ts";

const wrap = (x: Tensor, u: UOp): Tensor => (u === x.uop ? x : new Tensor(u, x.device));

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  if (!Array.isArray(shape)) throw new TypeError(`reshape: shape must be an array, got ${shape}`);
  const n = x.numel();
  const holes = shape.filter((d) => d === -1).length;
  if (holes > 1 || shape.some((d) => !Number.isInteger(d) || d < -1)) {
    throw new Error(
      `reshape: bad shape ${fmtShape(shape)}: sizes must be integers >= 0 with at most one -1`,
    );
  }
  let out = [...shape];
  if (holes === 1) {
    const known = prod(shape.filter((d) => d !== -1));
    if (known === 0 || n % known !== 0) {
      throw new Error(
        `reshape: cannot infer -1 in ${fmtShape(shape)} for ${n} elements (shape ${
          fmtShape(x.shape)
        })`,
      );
    }
    out = shape.map((d) => (d === -1 ? n / known : d));
  }
  if (prod(out) !== n) {
    throw new Error(
      `reshape: cannot reshape ${fmtShape(x.shape)} (${n} elements) to ${fmtShape(out)} (${
        prod(out)
      } elements); the element count must stay the same`,
    );
  }
  return wrap(x, reshapeU(x.uop, out));
}

export function permute(x: Tensor, order: readonly number[]): Tensor {
  if (!Array.isArray(order) || order.length !== x.ndim) {
    throw new Error(
      `permute: order [${order}] must name each of the ${x.ndim} axes of ${fmtShape(x.shape)} once`,
    );
  }
  const p = order.map((a) => resolveAxis("permute", a, x.ndim));
  if (new Set(p).size !== p.length) {
    throw new Error(
      `permute: order [${order}] repeats an axis; give a permutation of 0..${x.ndim - 1}`,
    );
  }
  if (p.every((a, i) => a === i)) return x;
  return wrap(x, UOp.make(Ops.PERMUTE, x.dtype, [x.uop], p));
}

export function transpose(x: Tensor, a = 1, b = 0): Tensor {
  const i = resolveAxis("transpose", a, x.ndim), j = resolveAxis("transpose", b, x.ndim);
  const order = [...Array(x.ndim).keys()];
  [order[i], order[j]] = [order[j], order[i]];
  return permute(x, order);
}

/** broadcast to `shape`; -1 keeps an axis; new axes may be added in front */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const off = shape.length - x.ndim;
  const target = shape.map((d, i) => (d === -1 && i >= off ? x.shape[i - off] : d));
  if (target.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`expand: bad shape ${fmtShape(shape)}; sizes must be integers >= 0 (or -1)`);
  }
  return wrap(x, expandU("expand", x.uop, target));
}

/** one [a, b] per axis; null (or a missing trailing entry) is `dflt(size)` */
function pairsFor(
  op: string,
  x: Tensor,
  arg: readonly (readonly number[] | null)[],
  dflt: (size: number) => Pad,
): Pad[] {
  if (!Array.isArray(arg) || arg.length > x.ndim) {
    throw new Error(
      `${op}: expected at most one pair per axis of ${fmtShape(x.shape)}, got ${
        JSON.stringify(arg)
      }`,
    );
  }
  return x.shape.map((n, i) => {
    const p = arg[i];
    if (p === undefined || p === null) return dflt(n);
    if (!Array.isArray(p) || p.length !== 2 || !p.every(Number.isInteger)) {
      throw new Error(`${op}: axis ${i} needs a pair of integers [a, b], got ${JSON.stringify(p)}`);
    }
    return [p[0], p[1]] as Pad;
  });
}

/** pad each axis by [before, after] from the first axis; negative amounts shrink */
export type Pairs = readonly (readonly [number, number] | null)[];

export function pad(x: Tensor, pads: Pairs, value = 0): Tensor {
  const p = pairsFor("pad", x, pads, () => [0, 0]);
  const keep: Pad[] = p.map(([b, a], i) => [Math.max(0, -b), x.shape[i] - Math.max(0, -a)]);
  if (keep.some(([s, e]) => e < s)) {
    throw new Error(
      `pad: negative padding ${JSON.stringify(pads)} removes more than shape ${
        fmtShape(x.shape)
      } has`,
    );
  }
  const inner = shrink(x, keep);
  const grow: Pad[] = p.map(([b, a]) => [Math.max(0, b), Math.max(0, a)]);
  if (grow.every(([b, a]) => b === 0 && a === 0)) return inner;
  const padded = wrap(inner, UOp.make(Ops.PAD, x.dtype, [inner.uop], grow));
  if (value === 0) return padded;
  // PAD fills zeros; another value goes where a padded all-true mask is false
  const mask = UOp.make(Ops.PAD, dtypes.bool, [constU(dtypes.bool, true, inner.shape)], grow);
  return where(new Tensor(mask, x.device), padded, value);
}

export function shrink(x: Tensor, ranges: Pairs): Tensor {
  const r = pairsFor("shrink", x, ranges, (n) => [0, n]);
  r.forEach(([s, e], i) => {
    if (s < 0 || e > x.shape[i] || s > e) {
      throw new Error(
        `shrink: range [${s}, ${e}] is out of bounds for axis ${i} of size ${x.shape[i]} (shape ${
          fmtShape(x.shape)
        }); need 0 <= start <= end <= size`,
      );
    }
  });
  if (r.every(([s, e], i) => s === 0 && e === x.shape[i])) return x;
  return wrap(x, UOp.make(Ops.SHRINK, x.dtype, [x.uop], r));
}

export function flip(x: Tensor, axis: number | number[]): Tensor {
  const axes = resolveAxes("flip", axis, x.ndim);
  if (axes.length === 0) return x;
  return wrap(x, UOp.make(Ops.FLIP, x.dtype, [x.uop], x.shape.map((_, i) => axes.includes(i))));
}

export function flatten(x: Tensor, start = 0, end = -1): Tensor {
  if (x.ndim === 0) return reshape(x, [1]);
  const s = resolveAxis("flatten", start, x.ndim), e = resolveAxis("flatten", end, x.ndim);
  if (s > e) throw new Error(`flatten: start axis ${start} comes after end axis ${end}`);
  const sh = x.shape;
  return reshape(x, [...sh.slice(0, s), prod(sh.slice(s, e + 1)), ...sh.slice(e + 1)]);
}

export function unflatten(x: Tensor, axis: number, sizes: readonly number[]): Tensor {
  const a = resolveAxis("unflatten", axis, x.ndim);
  const sh = x.shape;
  const known = prod(sizes.filter((d) => d !== -1));
  const full = sizes.map((d) => (d === -1 && known > 0 ? sh[a] / known : d));
  if (prod(full) !== sh[a] || full.some((d) => !Number.isInteger(d))) {
    throw new Error(
      `unflatten: sizes [${sizes}] do not multiply to ${sh[a]}, the size of axis ${axis} of ${
        fmtShape(sh)
      }`,
    );
  }
  return reshape(x, [...sh.slice(0, a), ...full, ...sh.slice(a + 1)]);
}

/** drop size-1 axes (all, or those named; named axes of another size are kept, as in torch) */
export function squeeze(x: Tensor, axis?: number | number[]): Tensor {
  const axes = resolveAxes("squeeze", axis, x.ndim);
  return reshape(x, x.shape.filter((d, i) => !(d === 1 && axes.includes(i))));
}

export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = resolveAxis("unsqueeze", axis, x.ndim, 1);
  const sh = x.shape;
  return reshape(x, [...sh.slice(0, a), 1, ...sh.slice(a)]);
}

/** tile the tensor reps[i] times along each axis (reps may add leading axes) */
export function repeat(x: Tensor, reps: readonly number[]): Tensor {
  if (
    !Array.isArray(reps) || reps.length < x.ndim || reps.some((r) => !Number.isInteger(r) || r < 0)
  ) {
    throw new Error(
      `repeat: need one non-negative integer per axis of ${
        fmtShape(x.shape)
      } (at least ${x.ndim}), got [${reps}]`,
    );
  }
  const base = [...Array(reps.length - x.ndim).fill(1), ...x.shape];
  const t = reshape(x, base.flatMap((d) => [1, d]));
  const e = expand(t, base.flatMap((d, i) => [reps[i], d]));
  return reshape(e, base.map((d, i) => d * reps[i]));
}

export function cat(tensors: readonly Tensor[], axis = 0): Tensor {
  if (!tensors || tensors.length === 0) {
    throw new Error("cat: needs at least one tensor");
  }
  const first = tensors[0];
  const a = resolveAxis("cat", axis, first.ndim);
  sameDevice("cat", tensors);
  for (const t of tensors) {
    if (t.ndim !== first.ndim || t.shape.some((d, i) => i !== a && d !== first.shape[i])) {
      throw new Error(
        `cat: shapes ${
          tensors.map((x) => fmtShape(x.shape)).join(", ")
        } differ outside axis ${axis}`,
      );
    }
  }
  const dt = leastUpperDType(...tensors.map((t) => t.dtype));
  const total = tensors.reduce((n, t) => n + t.shape[a], 0);
  let offset = 0;
  let out: Tensor | null = null;
  for (const t of tensors) {
    const pads = t.shape.map((_, i) =>
      i === a ? [offset, total - offset - t.shape[a]] as [number, number] : null
    );
    offset += t.shape[a];
    const p = pad(t.cast(dt), pads);
    out = out ? add(out, p) : p;
  }
  return out!;
}

export function stack(tensors: readonly Tensor[], axis = 0): Tensor {
  if (!tensors || tensors.length === 0) {
    throw new Error("stack: needs at least one tensor");
  }
  const s0 = tensors[0].shape;
  for (const t of tensors) {
    if (t.ndim !== s0.length || t.shape.some((d, i) => d !== s0[i])) {
      throw new Error(
        `stack: every tensor needs the same shape, got ${
          tensors.map((x) => fmtShape(x.shape)).join(", ")
        }`,
      );
    }
  }
  const a = resolveAxis("stack", axis, s0.length, 1);
  return cat(tensors.map((t) => unsqueeze(t, a)), a);
}

/** pieces of `sizes` elements along `axis` (a number: equal pieces, the last may be smaller) */
export function split(x: Tensor, sizes: number | readonly number[], axis = 0): Tensor[] {
  const a = resolveAxis("split", axis, x.ndim);
  const n = x.shape[a];
  let parts: number[];
  if (typeof sizes === "number") {
    if (!Number.isInteger(sizes) || sizes <= 0) {
      throw new Error(`split: size must be a positive integer, got ${sizes}`);
    }
    parts = [];
    for (let i = 0; i < n; i += sizes) parts.push(Math.min(sizes, n - i));
    if (n === 0) parts.push(0);
  } else {
    parts = [...sizes];
    if (
      parts.some((s) => !Number.isInteger(s) || s < 0) || parts.reduce((p, q) => p + q, 0) !== n
    ) {
      throw new Error(
        `split: sizes [${sizes}] must be non-negative integers summing to ${n}, the size of axis ${axis} of ${
          fmtShape(x.shape)
        }`,
      );
    }
  }
  let off = 0;
  return parts.map((p) => {
    const r = x.shape.map((_, i) => (i === a ? [off, off + p] as [number, number] : null));
    off += p;
    return shrink(x, r);
  });
}

export function chunk(x: Tensor, n: number, axis = 0): Tensor[] {
  if (!Number.isInteger(n) || n <= 0) {
    throw new Error(`chunk: the number of chunks must be a positive integer, got ${n}`);
  }
  const a = resolveAxis("chunk", axis, x.ndim);
  const size = x.shape[a];
  if (size === 0) return split(x, Array(n).fill(0), a);
  return split(x, Math.ceil(size / n), a);
}

export type SliceArg = number | readonly [number?, number?, number?] | null;

/** Python-style indexing: a number picks (and drops) an axis, [start, end, step?] slices, null keeps */
export function slice(x: Tensor, idx: readonly SliceArg[]): Tensor {
  if (idx.length > x.ndim) {
    throw new Error(
      `slice: ${idx.length} indices for a tensor of ${x.ndim} dims ${fmtShape(x.shape)}`,
    );
  }
  const ranges: [number, number][] = [], flips: number[] = [], steps: [number, number][] = [];
  const drop: number[] = [];
  x.shape.forEach((n, i) => {
    const s = idx[i];
    if (s === undefined || s === null) {
      ranges.push([0, n]);
    } else if (typeof s === "number") {
      if (!Number.isInteger(s) || s < -n || s >= n) {
        throw new Error(
          `slice: index ${s} is out of range for axis ${i} of size ${n} (use ${-n}..${n - 1})`,
        );
      }
      const k = s < 0 ? s + n : s;
      ranges.push([k, k + 1]);
      drop.push(i);
    } else if (Array.isArray(s)) {
      const [start, end, step = 1] = s;
      if (!Number.isInteger(step) || step === 0) {
        throw new Error(`slice: step must be a nonzero integer, got ${step} for axis ${i}`);
      }
      const [first, count] = sliceIndices(n, start, end, step);
      const last = first + (count - 1) * step;
      if (count === 0) ranges.push([0, 0]);
      else if (step > 0) ranges.push([first, last + 1]);
      else {
        ranges.push([last, first + 1]);
        flips.push(i);
      }
      if (Math.abs(step) !== 1 && count > 0) steps.push([i, Math.abs(step)]);
    } else {
      throw new Error(`slice: index for axis ${i} must be a number, [start, end, step?] or null`);
    }
  });
  let t = flips.length ? flip(shrink(x, ranges), flips) : shrink(x, ranges);
  for (const [i, st] of steps) {
    // every st-th element: pad to a multiple of st, fold, keep the first of each group
    const n = t.shape[i], count = Math.ceil(n / st);
    t = pad(t, t.shape.map((_, j) => (j === i ? [0, count * st - n] as [number, number] : null)));
    t = reshape(t, [...t.shape.slice(0, i), count, st, ...t.shape.slice(i + 1)]);
    t = shrink(
      t,
      t.shape.map((
        d,
        j,
      ) => (j === i + 1 ? [0, 1] as [number, number] : [0, d] as [number, number])),
    );
    t = reshape(t, [...t.shape.slice(0, i), count, ...t.shape.slice(i + 2)]);
  }
  return drop.length ? reshape(t, t.shape.filter((_, i) => !drop.includes(i))) : t;
}

/** Python's slice.indices: the first index and the element count */
function sliceIndices(
  n: number,
  start: number | undefined,
  end: number | undefined,
  step: number,
): [number, number] {
  const norm = (v: number | undefined, dflt: number, lo: number, hi: number): number => {
    if (v === undefined || v === null) return dflt;
    if (!Number.isInteger(v)) throw new Error(`slice: bounds must be integers, got ${v}`);
    const w = v < 0 ? v + n : v;
    return Math.min(Math.max(w, lo), hi);
  };
  const first = step > 0 ? norm(start, 0, 0, n) : norm(start, n - 1, -1, n - 1);
  const stop = step > 0 ? norm(end, n, 0, n) : norm(end, -1, -1, n - 1);
  const count = step > 0
    ? Math.max(0, Math.ceil((stop - first) / step))
    : Math.max(0, Math.ceil((first - stop) / -step));
  return [first, count];
}

/** sliding windows over the last k.length axes: [..., *out, *k] (tinygrad's _pool, in movement ops) */
export function pool(
  x: Tensor,
  k: readonly number[],
  stride: number | readonly number[] = 1,
  dilation: number | readonly number[] = 1,
): Tensor {
  const nk = k.length;
  const s = typeof stride === "number" ? k.map(() => stride) : [...stride];
  const d = typeof dilation === "number" ? k.map(() => dilation) : [...dilation];
  if (x.ndim < nk || s.length !== nk || d.length !== nk) {
    throw new Error(
      `pool: kernel [${k}], stride [${s}], dilation [${d}] do not fit shape ${fmtShape(x.shape)}`,
    );
  }
  const lead = x.shape.slice(0, x.ndim - nk), ins = x.shape.slice(x.ndim - nk);
  ins.forEach((n, i) => {
    if (d[i] * (k[i] - 1) + 1 > n || k[i] < 1 || s[i] < 1 || d[i] < 1) {
      throw new Error(
        `pool: kernel ${k[i]} (dilation ${d[i]}) does not fit in size ${n} of shape ${
          fmtShape(x.shape)
        }`,
      );
    }
  });
  const L = lead.length;
  const outs = ins.map((n, i) => Math.ceil((n - d[i] * (k[i] - 1)) / s[i]));
  const full = (r: number[][]): [number, number][] => [
    ...lead.map((n) => [0, n] as [number, number]),
    ...(r as [number, number][]),
  ];
  if (k.every((kk, i) => kk <= s[i] && d[i] === 1)) {
    // windows do not overlap: fold each axis into [out, stride] and keep the first k of each
    const grow = ins.map((n, i) => [0, Math.max(0, outs[i] * s[i] - n)] as [number, number]);
    let t = pad(x, [...lead.map(() => null), ...grow]);
    t = shrink(t, full(ins.map((_, i) => [0, outs[i] * s[i]])));
    t = reshape(t, [...lead, ...ins.flatMap((_, i) => [outs[i], s[i]])]);
    t = shrink(t, full(ins.flatMap((_, i) => [[0, outs[i]], [0, k[i]]])));
    return permute(t, [
      ...lead.keys(),
      ...ins.map((_, i) => L + 2 * i),
      ...ins.map((_, i) => L + 2 * i + 1),
    ]);
  }
  // repeat each axis so that row a of a [k, n*f+d] fold starts at element a*d: no padding needed
  const f = outs.map((o, i) => (o * s[i] > ins[i] - d[i] * (k[i] - 1) ? 2 : 1));
  const w = ins.map((n, i) => n * f[i] + d[i]);
  let t = repeat(x, [...lead.map(() => 1), ...ins.map((n, i) => Math.ceil((k[i] * w[i]) / n))]);
  t = shrink(t, full(ins.map((_, i) => [0, k[i] * w[i]])));
  t = reshape(t, [...lead, ...ins.flatMap((_, i) => [k[i], w[i]])]);
  t = shrink(t, full(ins.flatMap((_, i) => [[0, k[i]], [0, outs[i] * s[i]]])));
  t = reshape(t, [...lead, ...ins.flatMap((_, i) => [k[i], outs[i], s[i]])]);
  t = shrink(t, full(ins.flatMap((_, i) => [[0, k[i]], [0, outs[i]], [0, 1]])));
  t = reshape(t, [...lead, ...ins.flatMap((_, i) => [k[i], outs[i]])]);
  const order = [
    ...lead.keys(),
    ...ins.map((_, i) => L + 2 * i + 1),
    ...ins.map((_, i) => L + 2 * i),
  ];
  return permute(t, order);
}
