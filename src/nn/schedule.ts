// Learning-rate schedules and gradient accumulation, the two things a training loop adds around
// an optimizer.
//
// A schedule is a function from the step number (0-based) to a learning rate; set it before
// each step:   opt.lr = sched(step); opt.step();
// The rate is uploaded as a tensor each step, so changing it recompiles nothing.
//
// Gradient accumulation sums the gradients of several micro-batches before one step:
//   const acc = new nn.optim.GradAccumulator(opt.params);
//   for (const mb of microBatches) { model.call(mb.x).crossEntropy(mb.y).backward(); acc.add(); }
//   acc.apply(); opt.step(); // p.grad is the mean of the micro-batch gradients
import { Tensor } from "../tensor.ts";
import { fmtShape } from "../tensor/broadcast.ts";

export type Schedule = (step: number) => number;

function checkSteps(op: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) {
    throw new Error(`${op}: ${name} must be an integer >= 0, got ${v}`);
  }
}

/** lr * (step + 1) / warmupSteps for the first warmupSteps steps, then lr */
export function linearWarmup(lr: number, warmupSteps: number): Schedule {
  checkSteps("linearWarmup", "warmupSteps", warmupSteps);
  return (step) => (step < warmupSteps ? (lr * (step + 1)) / warmupSteps : lr);
}

export interface CosineOpts {
  /** the peak learning rate */
  lr: number;
  /** the step at which the rate reaches minLr (it stays there after) */
  totalSteps: number;
  /** linear warmup from lr / warmupSteps to lr first (default 0) */
  warmupSteps?: number;
  /** the final learning rate (default 0) */
  minLr?: number;
}

/** linear warmup, then a half cosine from lr down to minLr at totalSteps */
export function cosineSchedule(opts: CosineOpts): Schedule {
  const { lr, totalSteps, warmupSteps = 0, minLr = 0 } = opts;
  checkSteps("cosineSchedule", "totalSteps", totalSteps);
  checkSteps("cosineSchedule", "warmupSteps", warmupSteps);
  if (warmupSteps > totalSteps) {
    throw new Error(`cosineSchedule: warmupSteps ${warmupSteps} > totalSteps ${totalSteps}`);
  }
  const warm = linearWarmup(lr, warmupSteps);
  return (step) => {
    if (step < warmupSteps) return warm(step);
    const p = Math.min(1, (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
    return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * p));
  };
}

/**
 * Sums the gradients of several backward passes. add() folds each parameter's current `.grad`
 * into the sums (realized at once, so each micro-batch's graph and activations can be freed) and
 * clears `.grad`; apply() puts the mean (or sum) into `.grad` for the optimizer and resets.
 */
export class GradAccumulator {
  private sums: (Tensor | null)[];
  /** micro-batches added since the last apply() */
  count = 0;
  constructor(readonly params: Tensor[]) {
    this.sums = params.map(() => null);
  }
  add(): void {
    this.sums = this.params.map((p, i) => {
      const g = p.grad, s = this.sums[i];
      if (g === null) {
        throw new Error(
          `GradAccumulator.add: parameter ${i} ${
            fmtShape(p.shape)
          } has no grad; call backward() first`,
        );
      }
      p.grad = null;
      return s === null ? g.contiguous() : s.add(g);
    });
    Tensor.realize(...(this.sums as Tensor[]));
    this.count++;
  }
  apply(reduce: "mean" | "sum" = "mean"): void {
    if (this.count === 0) throw new Error("GradAccumulator.apply: add() was never called");
    const scale = reduce === "mean" ? 1 / this.count : 1;
    this.params.forEach((p, i) => {
      const s = this.sums[i]!;
      p.grad = scale === 1 ? s : s.mul(scale);
    });
    this.sums = this.params.map(() => null);
    this.count = 0;
  }
}
