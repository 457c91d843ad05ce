// The layers of nn: plain objects whose Tensor fields are their parameters (nn.state walks the
// fields, so a field's name is its state-dict key). Each is applied with `layer.call(x)`.
// Initializations are tinygrad's (which are torch's): kaiming-uniform with a = sqrt(5) for Linear
// and Conv2d, glorot-uniform for Embedding, ones/zeros for the norms.
import { dtypes } from "../dtype.ts";
import { type ConvOpts, Tensor } from "../tensor.ts";
import { fmtShape } from "../tensor/broadcast.ts";

/** a trainable tensor: uniform in [-bound, bound), lazy until something realizes it */
function uniform(shape: number[], bound: number): Tensor {
  return param(Tensor.rand(shape).mul(2 * bound).sub(bound));
}
function param(t: Tensor): Tensor {
  t.requiresGrad = true;
  return t;
}
function checkDim(layer: string, name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
    throw new Error(`${layer}: ${name} must be a positive integer, got ${String(v)}`);
  }
  return v;
}

/** y = x @ weight.T + bias, weight [out, in] */
export class Linear {
  weight: Tensor;
  bias: Tensor | null;
  constructor(inFeatures: number, outFeatures: number, bias = true) {
    checkDim("nn.Linear", "inFeatures", inFeatures);
    checkDim("nn.Linear", "outFeatures", outFeatures);
    // kaiming_uniform(a = sqrt(5)) works out to a bound of 1/sqrt(fan_in)
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = uniform([outFeatures, inFeatures], bound);
    this.bias = bias ? uniform([outFeatures], bound) : null;
  }
  call(x: Tensor): Tensor {
    const inF = this.weight.shape[1];
    if (x.ndim < 1 || x.shape[x.ndim - 1] !== inF) {
      throw new Error(
        `nn.Linear(${inF}, ${this.weight.shape[0]}): input ${
          fmtShape(x.shape)
        } needs a last axis of ${inF}`,
      );
    }
    return x.linear(this.weight.T, this.bias ?? undefined);
  }
}

export interface Conv2dOpts extends ConvOpts {
  /** add a learned bias per output channel (default true) */
  bias?: boolean;
}

/** 2-D convolution of [N, inCh, H, W], weight [outCh, inCh / groups, kh, kw] */
export class Conv2d {
  weight: Tensor;
  bias: Tensor | null;
  readonly opts: ConvOpts;
  constructor(
    inChannels: number,
    outChannels: number,
    kernelSize: number | number[],
    opts: Conv2dOpts = {},
  ) {
    const { bias = true, ...conv } = opts;
    const groups = conv.groups ?? 1;
    checkDim("nn.Conv2d", "inChannels", inChannels);
    checkDim("nn.Conv2d", "outChannels", outChannels);
    checkDim("nn.Conv2d", "groups", groups);
    const ks = typeof kernelSize === "number" ? [kernelSize, kernelSize] : [...kernelSize];
    if (ks.length !== 2) {
      throw new Error(`nn.Conv2d: kernelSize must be a number or [kh, kw], got [${ks}]`);
    }
    ks.forEach((k) => checkDim("nn.Conv2d", "kernelSize", k));
    if (inChannels % groups !== 0 || outChannels % groups !== 0) {
      throw new Error(
        `nn.Conv2d: inChannels ${inChannels} and outChannels ${outChannels} must both be divisible by groups ${groups}`,
      );
    }
    const fanIn = (inChannels / groups) * ks[0] * ks[1];
    const bound = 1 / Math.sqrt(fanIn);
    this.weight = uniform([outChannels, inChannels / groups, ...ks], bound);
    this.bias = bias ? uniform([outChannels], bound) : null;
    this.opts = conv;
  }
  call(x: Tensor): Tensor {
    return x.conv2d(this.weight, this.bias ?? undefined, this.opts);
  }
}

/** normalizes over the trailing `normalizedShape` axes, then weight * x + bias */
export class LayerNorm {
  weight: Tensor | null;
  bias: Tensor | null;
  readonly normalizedShape: number[];
  constructor(normalizedShape: number | number[], readonly eps = 1e-5, elementwiseAffine = true) {
    const s = typeof normalizedShape === "number" ? [normalizedShape] : [...normalizedShape];
    s.forEach((d) => checkDim("nn.LayerNorm", "normalizedShape", d));
    this.normalizedShape = s;
    this.weight = elementwiseAffine ? param(Tensor.ones(s)) : null;
    this.bias = elementwiseAffine ? param(Tensor.zeros(s)) : null;
  }
  call(x: Tensor): Tensor {
    const s = this.normalizedShape, tail = x.shape.slice(x.ndim - s.length);
    if (x.ndim < s.length || tail.some((d, i) => d !== s[i])) {
      throw new Error(
        `nn.LayerNorm(${fmtShape(s)}): input ${fmtShape(x.shape)} must end in ${fmtShape(s)}`,
      );
    }
    const y = x.layernorm(s.map((_, i) => -1 - i), this.eps);
    if (this.weight === null || this.bias === null) return y;
    return y.mul(this.weight).add(this.bias);
  }
}

/** x / sqrt(mean(x^2) + eps) over the last axis (computed in float32), times weight */
export class RMSNorm {
  weight: Tensor | null;
  constructor(readonly dim: number, readonly eps = 1e-6, elementwiseAffine = true) {
    checkDim("nn.RMSNorm", "dim", dim);
    this.weight = elementwiseAffine ? param(Tensor.ones([dim])) : null;
  }
  call(x: Tensor): Tensor {
    if (x.ndim < 1 || x.shape[x.ndim - 1] !== this.dim) {
      throw new Error(
        `nn.RMSNorm(${this.dim}): input ${fmtShape(x.shape)} needs a last axis of ${this.dim}`,
      );
    }
    const y = x.cast(dtypes.float32).rmsnorm(-1, this.eps).cast(x.dtype);
    return this.weight === null ? y : y.mul(this.weight);
  }
}

/** a lookup table: int indices [...] to rows of weight, [..., dim] */
export class Embedding {
  weight: Tensor;
  constructor(readonly vocabSize: number, readonly dim: number) {
    checkDim("nn.Embedding", "vocabSize", vocabSize);
    checkDim("nn.Embedding", "dim", dim);
    this.weight = uniform([vocabSize, dim], Math.sqrt(6 / (vocabSize + dim)));
  }
  call(idx: Tensor): Tensor {
    if (!idx.dtype.isInt) {
      throw new Error(
        `nn.Embedding(${this.vocabSize}, ${this.dim}): indices must be an int tensor, got ${idx.dtype.name}`,
      );
    }
    // a compare against arange selects the row: no gather op, and the gradient is a plain sum
    const big = [...idx.shape, this.vocabSize, this.dim];
    const rows = Tensor.arange(this.vocabSize, undefined, 1, { device: idx.device })
      .reshape([...idx.shape.map(() => 1), this.vocabSize, 1]).expand(big);
    const hit = rows.eq(idx.reshape([...idx.shape, 1, 1]).expand(big));
    return hit.where(this.weight.expand(big), 0).sum(-2);
  }
}

export interface BatchNormOpts {
  eps?: number;
  /** weight of the new batch statistic in the running averages (default 0.1) */
  momentum?: number;
  /** learned scale and shift (default true) */
  affine?: boolean;
  /** keep running averages and use them outside training (default true) */
  trackRunningStats?: boolean;
}

/**
 * Batch normalization over axis 1 of [N, C, ...]. While `Tensor.training` it normalizes with the
 * batch's statistics and updates the running ones (lazily: they are realized with the next
 * optimizer step or read); otherwise it uses the running statistics.
 * The snake_case fields are the state-dict names torch and tinygrad checkpoints use.
 */
export class BatchNorm {
  weight: Tensor | null;
  bias: Tensor | null;
  running_mean: Tensor | null;
  running_var: Tensor | null;
  num_batches_tracked: Tensor | null;
  readonly eps: number;
  readonly momentum: number;
  constructor(readonly dim: number, opts: BatchNormOpts = {}) {
    checkDim("nn.BatchNorm", "dim", dim);
    const { eps = 1e-5, momentum = 0.1, affine = true, trackRunningStats = true } = opts;
    this.eps = eps;
    this.momentum = momentum;
    this.weight = affine ? param(Tensor.ones([dim])) : null;
    this.bias = affine ? param(Tensor.zeros([dim])) : null;
    this.running_mean = trackRunningStats ? Tensor.zeros([dim]) : null;
    this.running_var = trackRunningStats ? Tensor.ones([dim]) : null;
    this.num_batches_tracked = trackRunningStats
      ? Tensor.zeros([1], { dtype: dtypes.int32 })
      : null;
  }
  call(x: Tensor): Tensor {
    if (x.ndim < 2 || x.shape[1] !== this.dim) {
      throw new Error(
        `nn.BatchNorm(${this.dim}): input ${fmtShape(x.shape)} needs [N, ${this.dim}, ...]`,
      );
    }
    const weight = this.weight ?? undefined, bias = this.bias ?? undefined;
    const rm = this.running_mean, rv = this.running_var;
    if (rm !== null && rv !== null && !Tensor.training) {
      return x.batchnorm(weight, bias, rm, rv.add(this.eps).rsqrt());
    }
    const axes = x.shape.map((_, i) => i).filter((i) => i !== 1);
    const chan = [1, this.dim, ...x.shape.slice(2).map(() => 1)];
    const mean = x.mean(axes);
    const centered = x.sub(mean.detach().reshape(chan));
    const variance = centered.mul(centered).mean(axes);
    if (rm !== null && rv !== null && this.num_batches_tracked !== null) {
      const m = this.momentum, n = x.numel(), unbiased = n / Math.max(n - this.dim, 1);
      replace(rm, rm.mul(1 - m).add(mean.detach().mul(m)));
      replace(rv, rv.mul(1 - m).add(variance.detach().mul(m * unbiased)));
      replace(this.num_batches_tracked, this.num_batches_tracked.add(1));
    }
    return x.batchnorm(weight, bias, mean, variance.add(this.eps).rsqrt());
  }
}

/** make `target` (the same Tensor object, so references stay valid) compute `value` instead */
export function replace(target: Tensor, value: Tensor): void {
  if (value.dtype !== target.dtype || value.shape.join() !== target.shape.join()) {
    throw new Error(
      `replace: ${fmtShape(value.shape)} ${value.dtype.name} cannot replace ${
        fmtShape(target.shape)
      } ${target.dtype.name}`,
    );
  }
  if (value.device !== target.device) {
    throw new Error(`replace: value on ${value.device}, target on ${target.device}`);
  }
  target.uop = value.uop;
}
