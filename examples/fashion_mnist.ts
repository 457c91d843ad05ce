// Trains a small CNN on Fashion-MNIST (Debian's dataset-fashion-mnist) and prints test accuracy.
//   deno run -A examples/fashion_mnist.ts [--steps N] [--batch B] [--lr LR] [--eval N]
import { parseArgs } from "node:util";
import { dtypes, GlobalCounters, nn, Tensor } from "../mod.ts";

export class Net {
  c1 = new nn.Conv2d(1, 16, 3);
  l1 = new nn.Linear(16 * 13 * 13, 64);
  l2 = new nn.Linear(64, 10);
  call(x: Tensor): Tensor {
    x = this.c1.call(x).relu().maxPool2d([2, 2]); // 28 -> 26 -> 13
    return this.l2.call(this.l1.call(x.flatten(1)).relu());
  }
}

export interface TrainResult {
  accuracy: number;
  seconds: number;
  examplesPerSecond: number;
  /** peak device memory of one training step (the data set left out) over the parameters' bytes */
  memRatio: number;
  paramBytes: number;
  stepPeakBytes: number;
}

export async function train(
  opts: { steps: number; batch: number; lr: number; evalN: number; log?: boolean },
): Promise<TrainResult> {
  Tensor.manualSeed(42);
  const { xTrain, yTrain, xTest, yTest } = nn.datasets.fashionMnist();
  Tensor.realize(xTrain, yTrain, xTest, yTest);
  const datasetBytes = GlobalCounters.memUsed;
  const norm = (x: Tensor) => x.cast(dtypes.float32).div(255).sub(0.286).div(0.353);
  const model = new Net();
  const params = nn.state.getParameters(model);
  const paramBytes = params.reduce((s, p) => s + p.numel() * p.dtype.itemsize, 0);
  const opt = new nn.optim.Adam(params, { lr: opts.lr });
  // cosine decay to a tenth of the peak: the last steps settle instead of bouncing
  const schedule = nn.optim.cosineSchedule({
    lr: opts.lr,
    totalSteps: opts.steps,
    minLr: opts.lr / 10,
  });
  // batches are gathered on the host: the data set lives in host memory anyway
  const xs = xTrain.dataSync() as Uint8Array, ys = yTrain.dataSync() as Uint8Array;
  const n = xTrain.shape[0], px = 28 * 28;
  let seed = 1234;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const t0 = performance.now();
  let stepPeakBytes = 0;
  for (let step = 0; step < opts.steps; step++) {
    const xb = new Float32Array(opts.batch * px), yb = new Int32Array(opts.batch);
    for (let b = 0; b < opts.batch; b++) {
      const r = Math.floor(rnd() * n);
      for (let k = 0; k < px; k++) xb[b * px + k] = (xs[r * px + k] / 255 - 0.286) / 0.353;
      yb[b] = ys[r];
    }
    const x = Tensor.from(xb, { shape: [opts.batch, 1, 28, 28] }),
      y = Tensor.from(yb, { shape: [opts.batch] });
    GlobalCounters.reset();
    opt.lr = schedule(step);
    opt.zeroGrad();
    const loss = model.call(x).sparseCategoricalCrossentropy(y);
    loss.backward();
    // the loss, the backward and the update in one schedule (the loss read after a plain step()
    // would run the forward again from the old weights)
    opt.step(loss);
    const l = Number(loss.item());
    if (step === 2) stepPeakBytes = GlobalCounters.memPeak - datasetBytes;
    if (opts.log && (step % 50 === 0 || step === opts.steps - 1)) {
      const s = (performance.now() - t0) / 1e3;
      console.log(
        `step ${String(step).padStart(5)}  loss ${l.toFixed(4)}  ${
          ((step + 1) * opts.batch / s).toFixed(0)
        } examples/s`,
      );
    }
  }
  const seconds = (performance.now() - t0) / 1e3;
  let correct = 0;
  const evalN = Math.min(opts.evalN, xTest.shape[0]);
  for (let i = 0; i < evalN; i += 1000) {
    const e = Math.min(i + 1000, evalN);
    const pred = model.call(norm(xTest.slice([i, e]))).argmax(1);
    const eq = await pred.eq(yTest.slice([i, e]).cast(dtypes.int32)).cast(dtypes.int32).sum()
      .item();
    correct += Number(eq);
  }
  return {
    accuracy: correct / evalN,
    seconds,
    examplesPerSecond: opts.steps * opts.batch / seconds,
    memRatio: stepPeakBytes / paramBytes,
    paramBytes,
    stepPeakBytes,
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      steps: { type: "string", default: "3000" },
      batch: { type: "string", default: "64" },
      lr: { type: "string", default: "0.002" },
      eval: { type: "string", default: "10000" },
    },
  });
  const r = await train({
    steps: Number(values.steps),
    batch: Number(values.batch),
    lr: Number(values.lr),
    evalN: Number(values.eval),
    log: true,
  });
  console.log(
    `test accuracy ${(r.accuracy * 100).toFixed(2)}%  train time ${r.seconds.toFixed(1)} s  ${
      r.examplesPerSecond.toFixed(0)
    } examples/s  step memPeak ${(r.stepPeakBytes / 1e6).toFixed(2)} MB = ${
      r.memRatio.toFixed(1)
    }x params (${(r.paramBytes / 1e6).toFixed(2)} MB)`,
  );
}
