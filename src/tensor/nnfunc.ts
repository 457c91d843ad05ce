// Linear algebra and nn functional ops, composed from movement ops, ALU ops and reductions:
// matmul is a broadcast multiply reduced over the inner axis, conv2d and the pools are windows
// (movement ops only) reduced over the window axes.
import { type DType, dtypes, leastUpperDType } from "../dtype.ts";
import { Tensor } from "../tensor.ts";
import { fmtShape, fullOf, resolveAxis, sameDevice } from "./broadcast.ts";
import * as E from "./elementwise.ts";
import * as M from "./movement.ts";
import * as R from "./reduce.ts";
import { rand } from "./random.ts";

export function matmul(x: Tensor, w: Tensor): Tensor {
  if (!(w instanceof Tensor)) throw new TypeError("matmul: the right operand must be a Tensor");
  const n1 = x.ndim, n2 = w.ndim;
  if (n1 === 0 || n2 === 0) {
    throw new Error(
      `matmul: both operands need at least 1 dim, got ${fmtShape(x.shape)} and ${
        fmtShape(w.shape)
      }`,
    );
  }
  const k = x.shape[n1 - 1], wk = w.shape[n2 - Math.min(n2, 2)];
  if (k !== wk) {
    throw new Error(
      `matmul: inner dims differ: ${fmtShape(x.shape)} @ ${
        fmtShape(w.shape)
      } (${k} vs ${wk}); the last axis of the left must equal the ${
        n2 > 1 ? "second to last" : "only"
      } axis of the right`,
    );
  }
  sameDevice("matmul", [x, w]);
  const dt = leastUpperDType(x.dtype, w.dtype);
  const ones = Math.min(n1 - 1, n2 - 1, 1);
  const xs = M.reshape(x, [...x.shape.slice(0, -1), ...Array(ones).fill(1), k]);
  let ws = M.reshape(w, [
    ...w.shape.slice(0, -2),
    ...Array(ones).fill(1),
    ...w.shape.slice(-Math.min(n2, 2)),
  ]);
  if (n2 > 1 && packsRight(x, w, dt)) return packedMatmul(xs.cast(dt), ws.cast(dt));
  ws = M.transpose(ws, -1, -Math.min(n2, 2));
  return R.sum(E.mul(xs.cast(dt), ws.cast(dt)), -1).cast(dt);
}

/** the column panel width of a packed right operand: two 8-float AVX registers */
export const PACK_WIDTH = 16;
/** right operands of at least this many elements get packed (past 1 MiB of float32: past L2) */
export const PACK_FROM = 1 << 18;

/**
 * On the CPU a large right operand is packed first (as BLAS libraries do): [K, N] copied to
 * [N/16, K, 16], so the kernel's register tile reads one contiguous 64-byte row per step of k
 * and the reduce runs its whole length with the tile in registers. Read in place, the rows of a
 * 16-column panel lie N floats apart: they conflict in cache sets unless the reduce is cut into
 * short blocks, each re-reading and re-writing the output tile (about 2/3 of the packed speed).
 */
function packsRight(x: Tensor, w: Tensor, dt: DType): boolean {
  const [k, n] = w.shape.slice(-2);
  return x.device.split(":")[0] === "CPU" && dt === dtypes.float32 && n % PACK_WIDTH === 0 &&
    k * n > PACK_FROM && x.shape.length >= 2 && x.shape.at(-2)! >= 4;
}

/** xs [..., M, 1, K] @ ws [..., 1, K, N] with ws packed into 16-column panels */
function packedMatmul(xs: Tensor, ws: Tensor): Tensor {
  const lead = ws.shape.slice(0, -2), [k, n] = ws.shape.slice(-2), d = lead.length;
  const panels = M.permute(M.reshape(ws, [...lead, k, n / PACK_WIDTH, PACK_WIDTH]), [
    ...lead.map((_, i) => i),
    d + 1,
    d,
    d + 2,
  ]).contiguous();
  // [..., M, 1, K, 1] * [..., 1, N/16, K, 16] summed over K
  const a = M.reshape(xs, [...xs.shape.slice(0, -1), xs.shape.at(-1)!, 1]);
  const b = M.reshape(panels, [...lead, n / PACK_WIDTH, k, PACK_WIDTH]);
  const out = R.sum(E.mul(a, b), -2);
  return M.reshape(out, [...out.shape.slice(0, -2), n]);
}

/** x @ weight + bias, weight [in, out] */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  const y = weight.ndim === 1 ? E.mul(x, weight) : matmul(x, weight);
  return bias === undefined ? y : E.add(y, bias);
}

export interface ConvOpts {
  stride?: number | number[];
  /** a number, one per spatial axis, or tinygrad's [left, right, top, bottom] (last axis first) */
  padding?: number | number[];
  dilation?: number | number[];
  groups?: number;
}

/** per-axis [before, after] pads for the spatial axes from the forms conv2d accepts */
function spatialPads(
  op: string,
  padding: number | number[] | undefined,
  dims: number,
): [number, number][] {
  const p = padding ?? 0;
  if (typeof p === "number") return Array.from({ length: dims }, () => [p, p]);
  if (p.length === dims) return p.map((v) => [v, v]);
  if (p.length === 2 * dims) {
    // flat pairs from the last axis, as tinygrad and torch's F.pad
    return Array.from({ length: dims }, (_, i) => {
      const j = dims - 1 - i;
      return [p[2 * j], p[2 * j + 1]];
    });
  }
  throw new Error(`${op}: padding [${p}] needs 1, ${dims} or ${2 * dims} numbers`);
}

const tupleOf = (v: number | number[] | undefined, n: number, dflt: number): number[] =>
  v === undefined ? Array(n).fill(dflt) : typeof v === "number" ? Array(n).fill(v) : [...v];

export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor, opts: ConvOpts = {}): Tensor {
  const groups = opts.groups ?? 1;
  const HW = weight.shape.slice(2), nd = HW.length;
  const bad = (why: string): never => {
    throw new Error(
      `conv2d: input ${fmtShape(x.shape)} and weight ${
        fmtShape(weight.shape)
      } (groups ${groups}): ${why}`,
    );
  };
  if (x.ndim !== weight.ndim || nd < 1) {
    bad("need input [N, Cin, *spatial] and weight [Cout, Cin/groups, *kernel] of the same rank");
  }
  const [bs, cinAll] = x.shape, [cout, cin] = weight.shape;
  if (!Number.isInteger(groups) || groups < 1) bad("groups must be a positive integer");
  if (groups * cin !== cinAll) {
    bad(`input channels ${cinAll} must equal groups*weight.shape[1] = ${groups * cin}`);
  }
  if (cout % groups !== 0) bad(`output channels ${cout} must be divisible by groups`);
  const stride = tupleOf(opts.stride, nd, 1), dilation = tupleOf(opts.dilation, nd, 1);
  if (stride.length !== nd || dilation.length !== nd) bad(`stride and dilation need ${nd} numbers`);
  const pads = spatialPads("conv2d", opts.padding, nd);
  const padded = M.pad(x, [null, null, ...pads]);
  padded.shape.slice(2).forEach((n, i) => {
    if (dilation[i] * (HW[i] - 1) + 1 > n) {
      bad(`kernel ${HW[i]} (dilation ${dilation[i]}) is larger than the padded input size ${n}`);
    }
  });
  const win = M.pool(padded, HW, stride, dilation); // [bs, cinAll, *out, *HW]
  const rcout = cout / groups, out = win.shape.slice(2, 2 + nd);
  let t = M.reshape(win, [bs, groups, cin, 1, ...out, ...HW]);
  t = M.expand(t, [bs, groups, cin, rcout, ...out, ...HW]);
  // [bs, groups, rcout, *out, cin, *HW]
  t = M.permute(t, [0, 1, 3, ...out.map((_, i) => 4 + i), 2, ...HW.map((_, i) => 4 + nd + i)]);
  const w = M.reshape(weight, [1, groups, rcout, ...out.map(() => 1), cin, ...HW]);
  const axes = Array.from({ length: 1 + nd }, (_, i) => -1 - i);
  const dt = leastUpperDType(x.dtype, weight.dtype);
  const ret = M.reshape(R.sum(E.mul(t, w), axes, true).cast(dt), [bs, cout, ...out]);
  return bias === undefined ? ret : E.add(ret, M.reshape(bias, [1, -1, ...HW.map(() => 1)]));
}

export interface PoolOpts {
  stride?: number | number[];
  padding?: number | number[];
  dilation?: number | number[];
}

function poolWindows(
  op: string,
  x: Tensor,
  kernel: number | number[],
  opts: PoolOpts,
  padValue: number,
): Tensor {
  const k = typeof kernel === "number" ? [kernel, kernel] : [...kernel];
  if (x.ndim < k.length || k.some((v) => !Number.isInteger(v) || v < 1)) {
    throw new Error(`${op}: kernel [${k}] does not fit input ${fmtShape(x.shape)}`);
  }
  const stride = tupleOf(opts.stride, k.length, 0).map((s, i) => (s === 0 ? k[i] : s));
  const dilation = tupleOf(opts.dilation, k.length, 1);
  const pads = spatialPads(op, opts.padding, k.length);
  const padded = M.pad(
    x,
    [...x.shape.slice(0, x.ndim - k.length).map(() => null), ...pads],
    padValue,
  );
  return M.pool(padded, k, stride, dilation);
}

export function maxPool2d(x: Tensor, kernel: number | number[] = 2, opts: PoolOpts = {}): Tensor {
  const min = x.dtype.isFloat ? -Infinity : x.dtype.min;
  const w = poolWindows("maxPool2d", x, kernel, opts, min);
  const nk = typeof kernel === "number" ? 2 : kernel.length;
  return R.max(w, Array.from({ length: nk }, (_, i) => -1 - i));
}

/** the mean over each window, padding included (as tinygrad) */
export function avgPool2d(x: Tensor, kernel: number | number[] = 2, opts: PoolOpts = {}): Tensor {
  const w = poolWindows("avgPool2d", x, kernel, opts, 0);
  const nk = typeof kernel === "number" ? 2 : kernel.length;
  return R.mean(w, Array.from({ length: nk }, (_, i) => -1 - i));
}

export function layernorm(x: Tensor, axis: number | number[] = -1, eps = 1e-5): Tensor {
  const y = E.sub(x, R.mean(x, axis, true));
  return E.mul(y, E.rsqrt(E.add(R.mean(E.mul(y, y), axis, true), eps)));
}

export function rmsnorm(x: Tensor, axis: number | number[] = -1, eps = 1e-6): Tensor {
  return E.mul(x, E.rsqrt(E.add(R.mean(E.square(x), axis, true), eps)));
}

/** (x - mean) * weight * invstd + bias, the 1-d parameters along `axis` (default the channels) */
export function batchnorm(
  x: Tensor,
  weight: Tensor | undefined,
  bias: Tensor | undefined,
  mean: Tensor,
  invstd: Tensor,
  axis = 1,
): Tensor {
  const a = resolveAxis("batchnorm", axis, x.ndim);
  const shape = x.shape.map((d, i) => (i === a ? d : 1));
  const along = (p: Tensor, name: string): Tensor => {
    if (p.ndim !== 1 || p.shape[0] !== x.shape[a]) {
      throw new Error(
        `batchnorm: ${name} must have shape [${x.shape[a]}] (axis ${axis} of ${
          fmtShape(x.shape)
        }), got ${fmtShape(p.shape)}`,
      );
    }
    return M.reshape(p, shape);
  };
  let y = E.sub(x, along(mean, "mean"));
  if (weight !== undefined) y = E.mul(y, along(weight, "weight"));
  y = E.mul(y, along(invstd, "invstd"));
  return bias === undefined ? y : E.add(y, along(bias, "bias"));
}

/** zero a fraction p of the elements and scale the rest by 1/(1-p), only while Tensor.training */
export function dropout(x: Tensor, p = 0.5): Tensor {
  if (!(p >= 0 && p <= 1)) throw new Error(`dropout: p must be in [0, 1], got ${p}`);
  if (!Tensor.training || p === 0) return x;
  if (p === 1) return E.mul(x, 0);
  const keep = E.ge(rand(x.shape, { device: x.device }), p);
  return E.where(keep, E.div(x, 1 - p), 0);
}

/** int32 one-hot vectors on a new last axis */
export function oneHot(x: Tensor, numClasses: number): Tensor {
  if (!x.dtype.isInt) {
    throw new Error(`oneHot: needs an int tensor of class indices, got ${x.dtype.name}`);
  }
  if (!Number.isInteger(numClasses) || numClasses < 1) {
    throw new Error(`oneHot: numClasses must be a positive integer, got ${numClasses}`);
  }
  const classes = Tensor.arange(numClasses, undefined, 1, { device: x.device });
  return E.eq(M.unsqueeze(x, -1), classes).cast(dtypes.int32);
}

/** the [rows, cols] bool mask of j - i >= diagonal (upper) or <= diagonal (lower) */
function triMask(x: Tensor, diagonal: number, upper: boolean): Tensor {
  if (x.ndim < 2) {
    throw new Error(`${upper ? "triu" : "tril"}: needs at least 2 dims, got ${fmtShape(x.shape)}`);
  }
  const [r, c] = x.shape.slice(-2);
  const i = M.reshape(Tensor.arange(r, undefined, 1, { device: x.device }), [r, 1]);
  const j = M.reshape(Tensor.arange(c, undefined, 1, { device: x.device }), [1, c]);
  const d = E.sub(j, i);
  return upper ? E.ge(d, diagonal) : E.le(d, diagonal);
}
export function triu(x: Tensor, diagonal = 0): Tensor {
  return E.where(triMask(x, diagonal, true), x, fullOf(x, 0));
}
export function tril(x: Tensor, diagonal = 0): Tensor {
  return E.where(triMask(x, diagonal, false), x, fullOf(x, 0));
}

export interface AttentionOpts {
  /** bool: true where attention is allowed; otherwise added to the scores */
  mask?: Tensor;
  isCausal?: boolean;
  /** replaces 1/sqrt(d) */
  scale?: number;
}

/** softmax(q @ k^T * scale + mask) @ v */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOpts = {},
): Tensor {
  if (q.ndim < 2 || k.ndim < 2 || v.ndim < 2) {
    throw new Error(
      `scaledDotProductAttention: q, k, v need at least 2 dims, got ${fmtShape(q.shape)}, ${
        fmtShape(k.shape)
      }, ${fmtShape(v.shape)}`,
    );
  }
  if (opts.isCausal && opts.mask !== undefined) {
    throw new Error("scaledDotProductAttention: give either mask or isCausal, not both");
  }
  const scale = opts.scale ?? 1 / Math.sqrt(q.shape[q.ndim - 1]);
  let scores = E.mul(matmul(q, M.transpose(k, -2, -1)), scale);
  let mask = opts.mask;
  if (opts.isCausal) {
    const [L, S] = scores.shape.slice(-2);
    mask = tril(Tensor.full([L, S], true, { device: q.device }));
  }
  if (mask !== undefined) {
    scores = mask.dtype === dtypes.bool ? E.where(mask, scores, -Infinity) : E.add(scores, mask);
  }
  return matmul(R.softmax(scores, -1), v);
}

export type Reduction = "mean" | "sum" | "none";

function reduceLoss(op: string, t: Tensor, reduction: Reduction): Tensor {
  if (reduction === "mean") return R.mean(t);
  if (reduction === "sum") return R.sum(t);
  if (reduction === "none") return t;
  throw new Error(`${op}: reduction must be "mean", "sum" or "none", got ${reduction}`);
}

/** logits [..., classes] against int class indices [...] */
export function sparseCategoricalCrossentropy(
  x: Tensor,
  labels: Tensor,
  opts: { ignoreIndex?: number; labelSmoothing?: number; reduction?: Reduction } = {},
): Tensor {
  const { ignoreIndex = -1, labelSmoothing = 0, reduction = "mean" } = opts;
  if (!labels.dtype.isInt) {
    throw new Error(
      `sparseCategoricalCrossentropy: labels must be int class indices, got ${labels.dtype.name}`,
    );
  }
  const lead = x.shape.slice(0, -1);
  if (labels.ndim !== lead.length || labels.shape.some((d, i) => d !== lead[i])) {
    throw new Error(
      `sparseCategoricalCrossentropy: labels ${
        fmtShape(labels.shape)
      } must have the logits' shape without the class axis, ${fmtShape(lead)}`,
    );
  }
  const logp = R.logSoftmax(x, -1);
  const valid = E.ne(labels, ignoreIndex);
  const y = E.mul(oneHot(labels, x.shape[x.ndim - 1]), M.unsqueeze(valid, -1));
  const smooth = E.mul(E.mul(R.mean(logp, -1), valid), labelSmoothing);
  const per = E.add(E.mul(R.sum(E.mul(logp, y), -1), 1 - labelSmoothing), smooth);
  if (reduction === "mean") return E.neg(E.div(R.sum(per), R.sum(valid)));
  return E.neg(reduceLoss("sparseCategoricalCrossentropy", per, reduction));
}

/** logits [N, C, ...] against class probabilities of the same shape, or class indices [N, ...] */
export function crossEntropy(
  x: Tensor,
  target: Tensor,
  opts: { reduction?: Reduction; labelSmoothing?: number } = {},
): Tensor {
  const { reduction = "mean", labelSmoothing = 0 } = opts;
  if (x.ndim < 2) {
    throw new Error(`crossEntropy: logits need [N, C, ...], got ${fmtShape(x.shape)}`);
  }
  const C = x.shape[1];
  let y = target;
  if (target.ndim === x.ndim - 1) {
    y = M.permute(oneHot(target, C), [
      0,
      x.ndim - 1,
      ...Array.from({ length: x.ndim - 2 }, (_, i) => i + 1),
    ]);
  }
  if (y.ndim !== x.ndim || y.shape.some((d, i) => d !== x.shape[i])) {
    throw new Error(
      `crossEntropy: target ${fmtShape(target.shape)} must be probabilities of shape ${
        fmtShape(x.shape)
      } or class indices of shape ${fmtShape([x.shape[0], ...x.shape.slice(2)])}`,
    );
  }
  y = E.add(E.mul(y, 1 - labelSmoothing), labelSmoothing / C);
  return reduceLoss("crossEntropy", E.neg(R.sum(E.mul(R.logSoftmax(x, 1), y), 1)), reduction);
}

/** -(y*log(p) + (1-y)*log(1-p)) on probabilities p */
export function binaryCrossentropy(
  x: Tensor,
  target: Tensor,
  reduction: Reduction = "mean",
): Tensor {
  const pos = E.mul(target, E.log(x));
  const neg = E.mul(E.sub(target, 1, true), E.log(E.sub(x, 1, true)));
  return reduceLoss("binaryCrossentropy", E.neg(E.add(pos, neg)), reduction);
}

/** binaryCrossentropy of sigmoid(x), computed stably from the logits */
export function binaryCrossentropyLogits(
  x: Tensor,
  target: Tensor,
  reduction: Reduction = "mean",
  posWeight?: Tensor,
): Tensor {
  const pos = E.mul(target, E.logsigmoid(x));
  const neg = E.mul(E.sub(target, 1, true), E.logsigmoid(E.neg(x)));
  const l = E.add(posWeight === undefined ? pos : E.mul(pos, posWeight), neg);
  return reduceLoss("binaryCrossentropyLogits", E.neg(l), reduction);
}
