// Optimizers. Each computes every parameter's new value (and new state) from its `.grad` as a
// lazy graph; step() realizes all of them in one Tensor.realize, so the scheduler sees the whole
// update at once. Parameters and state are updated in place (the engine writes each new value
// over the old buffer where the update is elementwise), so a step needs no second copy of them.
// Hyperparameters that change per step (lr, bias corrections) are uploaded as scalar tensors, so
// a learning-rate schedule reuses the same compiled kernels.
import { dtypes } from "../dtype.ts";
import { Tensor } from "../tensor.ts";
import { fmtShape } from "../tensor/broadcast.ts";
import { bufferBase } from "../rangeify/rangeify.ts";
import { withInPlace } from "../engine/realize.ts";

type Update = [target: Tensor, value: Tensor];

function checkOpts(name: string, opts: object, allowed: string[], hint = ""): void {
  for (const k of Object.keys(opts)) {
    if (!allowed.includes(k)) {
      throw new Error(
        `${name}: option "${k}" is not supported (supported: ${allowed.join(", ")})${hint}`,
      );
    }
  }
}
function checkRange(name: string, key: string, v: number, lo: number, hi = Infinity): number {
  if (typeof v !== "number" || !(v >= lo && v < hi)) {
    throw new Error(`${name}: ${key} must be in [${lo}, ${hi}), got ${v}`);
  }
  return v;
}

export abstract class Optimizer {
  /** the tensors with requiresGrad: these are updated */
  readonly params: Tensor[];
  /** the other tensors passed in (BatchNorm running stats): realized with each step */
  readonly buffers: Tensor[];
  lr: number;
  /** steps taken so far */
  stepCount = 0;
  constructor(readonly name: string, params: Tensor[], lr: number) {
    if (
      !Array.isArray(params) || params.length === 0 || !params.every((p) => p instanceof Tensor)
    ) {
      throw new Error(
        `${name}: needs a non-empty array of Tensors (nn.state.getParameters(model))`,
      );
    }
    this.params = params.filter((p) => p.requiresGrad);
    this.buffers = params.filter((p) => !p.requiresGrad);
    if (this.params.length === 0) {
      throw new Error(`${name}: none of the ${params.length} tensors has requiresGrad`);
    }
    for (const p of this.params) {
      if (!p.dtype.isFloat) {
        throw new Error(
          `${name}: parameter ${fmtShape(p.shape)} is ${p.dtype.name}; needs a float dtype`,
        );
      }
      if (p.device !== this.params[0].device) {
        throw new Error(
          `${name}: parameters on ${p.device} and ${
            this.params[0].device
          }; use one optimizer per device`,
        );
      }
    }
    this.lr = checkRange(name, "lr", lr, 0);
  }

  /** forget the gradients (set each `.grad` to null) */
  zeroGrad(): void {
    for (const p of this.params) p.grad = null;
  }

  /**
   * One update of every parameter from its `.grad`, all in one schedule. The optimizer's state
   * (moments, step counts) is written over its old buffers (nobody else reads them). Tensors in
   * `also` (the loss) are realized in the same schedule, and then the parameters are updated in
   * place too, so the step holds no second copy of them: a lazy tensor not passed that reads a
   * parameter would afterwards see the new value, so pass every one still to be read. With the
   * gradients not yet realized, forward, backward and update become one schedule in which each
   * gradient is freed once its parameter is updated; such gradients are dropped (`.grad` is null
   * afterwards).
   */
  step(...also: Tensor[]): void {
    const grads = this.params.map((p, i) => {
      const g = p.grad;
      if (g === null) {
        throw new Error(
          `${this.name}.step: parameter ${i} ${
            fmtShape(p.shape)
          } has no grad; call loss.backward() ` +
            `first, or leave tensors the loss does not use out of the optimizer`,
        );
      }
      if (g.shape.join() !== p.shape.join()) {
        throw new Error(
          `${this.name}.step: parameter ${i} is ${fmtShape(p.shape)} but its grad is ${
            fmtShape(g.shape)
          }`,
        );
      }
      return g.cast(dtypes.float32);
    });
    this.stepCount++;
    const updates = this.update(grads);
    const lazyGrads = also.length ? this.params.filter((p) => !bufferBase(p.grad!.uop)) : [];
    const params = new Set(this.params);
    const targets = new Map(
      updates.filter(([t]) => also.length > 0 || !params.has(t)).map(([t, v]) => [v.uop, t.uop]),
    );
    withInPlace(
      targets,
      () => Tensor.realize(...also, ...updates.map(([, v]) => v), ...this.buffers),
    );
    for (const [t, v] of updates) t.uop = v.uop;
    // their graphs read the parameters' old values, which were overwritten
    for (const p of lazyGrads) p.grad = null;
  }

  /** a float32 scalar held in a buffer (not a constant, so kernels do not change with its value) */
  protected scalar(v: number): Tensor {
    return Tensor.from(new Float32Array([v]), { shape: [], device: this.params[0].device });
  }
  /** the parameter as float32, outside the gradient graph */
  protected weight(i: number): Tensor {
    return this.params[i].detach().cast(dtypes.float32);
  }
  /** the new value of parameter i, cast back to its dtype */
  protected set(i: number, w: Tensor): Update {
    return [this.params[i], w.cast(this.params[i].dtype)];
  }
  protected abstract update(grads: Tensor[]): Update[];
}

const zerosLike = (p: Tensor): Tensor => Tensor.zeros(p.shape, { device: p.device });

export interface SGDOpts {
  lr?: number;
  momentum?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

/**
 * g = grad + weightDecay * w;  b = momentum * b + g;  g = nesterov ? g + momentum * b : b;
 * w = w - lr * g  (torch's SGD with dampening 0).
 */
export class SGD extends Optimizer {
  readonly momentum: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;
  private b: Tensor[];
  constructor(params: Tensor[], opts: SGDOpts = {}) {
    super("SGD", params, opts.lr ?? 0.001);
    checkOpts("SGD", opts, ["lr", "momentum", "weightDecay", "nesterov"]);
    this.momentum = checkRange("SGD", "momentum", opts.momentum ?? 0, 0);
    this.weightDecay = checkRange("SGD", "weightDecay", opts.weightDecay ?? 0, 0);
    this.nesterov = opts.nesterov ?? false;
    if (this.nesterov && this.momentum === 0) throw new Error("SGD: nesterov needs momentum > 0");
    this.b = this.params.map(zerosLike);
  }
  protected update(grads: Tensor[]): Update[] {
    const lr = this.scalar(this.lr), out: Update[] = [];
    grads.forEach((grad, i) => {
      const w = this.weight(i);
      let g = this.weightDecay > 0 ? grad.add(w.mul(this.weightDecay)) : grad;
      if (this.momentum > 0) {
        const b = this.b[i].mul(this.momentum).add(g);
        out.push([this.b[i], b]);
        g = this.nesterov ? g.add(b.mul(this.momentum)) : b;
      }
      out.push(this.set(i, w.sub(g.mul(lr))));
    });
    return out;
  }
}

export interface AdamOpts {
  lr?: number;
  b1?: number;
  b2?: number;
  eps?: number;
}
export interface AdamWOpts extends AdamOpts {
  weightDecay?: number;
}
export type LAMBOpts = AdamWOpts;

/**
 * m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  m^ = m / (1 - b1^t);  v^ = v / (1 - b2^t);
 * u = m^ / (sqrt(v^) + eps) + weightDecay * w;  w = w - lr * r * u, where the trust ratio r is
 * ||w|| / ||u|| for LAMB (1 when either norm is 0) and 1 for Adam and AdamW.
 */
export class LAMB extends Optimizer {
  readonly b1: number;
  readonly b2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private m: Tensor[];
  private v: Tensor[];
  /** b1^t and b2^t, kept on the device so that a JIT replay advances them too */
  private b1t: Tensor;
  private b2t: Tensor;
  constructor(
    params: Tensor[],
    opts: LAMBOpts = {},
    name = "LAMB",
    private readonly adam = false,
    defaults = { lr: 0.001, eps: 1e-6, weightDecay: 0 },
  ) {
    super(name, params, opts.lr ?? defaults.lr);
    const allowed = ["lr", "b1", "b2", "eps", ...(name === "Adam" ? [] : ["weightDecay"])];
    checkOpts(name, opts, allowed, name === "Adam" ? "; for weight decay use AdamW" : "");
    this.b1 = checkRange(name, "b1", opts.b1 ?? 0.9, 0, 1);
    this.b2 = checkRange(name, "b2", opts.b2 ?? 0.999, 0, 1);
    this.eps = checkRange(name, "eps", opts.eps ?? defaults.eps, 0);
    this.weightDecay = checkRange(name, "weightDecay", opts.weightDecay ?? defaults.weightDecay, 0);
    this.m = this.params.map(zerosLike);
    this.v = this.params.map(zerosLike);
    const one = () => Tensor.full([], 1, { device: this.params[0].device });
    this.b1t = one();
    this.b2t = one();
  }
  protected update(grads: Tensor[]): Update[] {
    const lr = this.scalar(this.lr);
    const b1t = this.b1t.mul(this.b1), b2t = this.b2t.mul(this.b2);
    const c1 = b1t.neg().add(1), c2 = b2t.neg().add(1);
    const out: Update[] = [[this.b1t, b1t], [this.b2t, b2t]];
    grads.forEach((g, i) => {
      const w = this.weight(i);
      const m = this.m[i].mul(this.b1).add(g.mul(1 - this.b1));
      const v = this.v[i].mul(this.b2).add(g.square().mul(1 - this.b2));
      out.push([this.m[i], m], [this.v[i], v]);
      let u = m.div(c1).div(v.div(c2).sqrt().add(this.eps));
      if (this.weightDecay > 0) u = u.add(w.mul(this.weightDecay));
      if (!this.adam) {
        const wn = w.square().sum().sqrt(), un = u.square().sum().sqrt();
        u = u.mul(wn.gt(0).where(un.gt(0).where(wn.div(un), 1), 1));
      }
      out.push(this.set(i, w.sub(u.mul(lr))));
    });
    return out;
  }
}

/** Adam (Kingma and Ba): LAMB without the trust ratio or weight decay; eps 1e-8 */
export class Adam extends LAMB {
  constructor(params: Tensor[], opts: AdamOpts = {}) {
    super(params, opts, "Adam", true, { lr: 0.001, eps: 1e-8, weightDecay: 0 });
  }
}

/** AdamW: Adam with decoupled weight decay (default 0.01); eps 1e-8 */
export class AdamW extends LAMB {
  constructor(params: Tensor[], opts: AdamWOpts = {}) {
    super(params, opts, "AdamW", true, { lr: 0.001, eps: 1e-8, weightDecay: 0.01 });
  }
}

/**
 * The orthogonal factor of a matrix [rows, cols] (U V^T of its SVD), approximately: normalize by
 * the Frobenius norm, then `steps` iterations of X = a X + (b A + c A A) X with A = X X^T.
 * The default coefficients (Keller Jordan's) leave singular values in roughly [0.7, 1.2].
 */
export function newtonSchulz(
  g: Tensor,
  steps = 5,
  coefs: [number, number, number] = [3.4445, -4.775, 2.0315],
  eps = 1e-7,
): Tensor {
  if (g.ndim !== 2) throw new Error(`newtonSchulz: needs a matrix, got ${fmtShape(g.shape)}`);
  // iterate on the wide side: A is then the smaller Gram matrix
  if (g.shape[0] > g.shape[1]) return newtonSchulz(g.T, steps, coefs, eps).T;
  const [a, b, c] = coefs;
  let x = g.div(g.square().sum().sqrt().add(eps));
  for (let i = 0; i < steps; i++) {
    const A = x.matmul(x.T);
    x = x.mul(a).add(A.mul(b).add(A.matmul(A).mul(c)).matmul(x));
  }
  return x;
}

export interface MuonOpts {
  lr?: number;
  momentum?: number;
  nesterov?: boolean;
  weightDecay?: number;
  nsSteps?: number;
  nsCoefficients?: [number, number, number];
}

/**
 * Muon, for 2-D (or higher, flattened to [rows, rest]) weights:
 * b = momentum b + g;  g = nesterov ? g + momentum b : b;  o = newtonSchulz(g);
 * w = w (1 - lr weightDecay) - lr o.  Biases and norms need another optimizer (AdamW).
 */
export class Muon extends Optimizer {
  readonly momentum: number;
  readonly nesterov: boolean;
  readonly weightDecay: number;
  readonly nsSteps: number;
  readonly nsCoefficients: [number, number, number];
  private b: Tensor[];
  constructor(params: Tensor[], opts: MuonOpts = {}) {
    super("Muon", params, opts.lr ?? 0.001);
    checkOpts("Muon", opts, [
      "lr",
      "momentum",
      "nesterov",
      "weightDecay",
      "nsSteps",
      "nsCoefficients",
    ]);
    this.momentum = checkRange("Muon", "momentum", opts.momentum ?? 0.95, 0, 1);
    this.nesterov = opts.nesterov ?? true;
    this.weightDecay = checkRange("Muon", "weightDecay", opts.weightDecay ?? 0.1, 0);
    this.nsSteps = opts.nsSteps ?? 5;
    if (!Number.isInteger(this.nsSteps) || this.nsSteps < 1) {
      throw new Error(`Muon: nsSteps must be a positive integer, got ${this.nsSteps}`);
    }
    this.nsCoefficients = opts.nsCoefficients ?? [3.4445, -4.775, 2.0315];
    if (this.nsCoefficients.length !== 3) {
      throw new Error("Muon: nsCoefficients needs 3 numbers [a, b, c]");
    }
    this.params.forEach((p, i) => {
      if (p.ndim < 2) {
        throw new Error(
          `Muon: parameter ${i} has shape ${fmtShape(p.shape)}; Muon orthogonalizes matrices ` +
            `(2 or more dims), so give 1-D parameters (biases, norms) to AdamW instead`,
        );
      }
    });
    this.b = this.params.map(zerosLike);
  }
  protected update(grads: Tensor[]): Update[] {
    const lr = this.scalar(this.lr), out: Update[] = [];
    grads.forEach((grad, i) => {
      let w = this.weight(i);
      const b = this.b[i].mul(this.momentum).add(grad);
      out.push([this.b[i], b]);
      const g = this.nesterov ? grad.add(b.mul(this.momentum)) : b;
      const o = newtonSchulz(g.reshape([g.shape[0], -1]), this.nsSteps, this.nsCoefficients);
      if (this.weightDecay > 0) w = w.mul(lr.mul(-this.weightDecay).add(1));
      out.push(this.set(i, w.sub(o.reshape(g.shape).mul(lr))));
    });
    return out;
  }
}

export { cosineSchedule, GradAccumulator, linearWarmup } from "./schedule.ts";
export type { CosineOpts, Schedule } from "./schedule.ts";
