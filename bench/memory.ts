// Memory of a training step: the device's peak (GlobalCounters.memPeak) against the parameters'
// bytes, and what memoryReport predicts for the same schedules. One JSON line per model:
// examples/fashion_mnist.ts's CNN (Adam, batch 64) and examples/transformer.ts (AdamW, batch 8,
// sequence 128). Data are random: the bytes do not depend on the values.
//   deno run -A bench/memory.ts [fashion] [transformer]   (TSTEPS=N: transformer steps, default 2;
//   CHECKPOINT=0: the transformer's backward without recomputing activations)
import { Device, GlobalCounters, nn, Tensor } from "../mod.ts";
import { Net } from "../examples/fashion_mnist.ts";
import { randomTokens, SMALL, transformerTrainer } from "../examples/transformer.ts";
import { type PlannedRealize, setRealizeHook } from "../src/engine/realize.ts";
import { type MemoryReport, reportOf } from "../src/engine/memory_report.ts";
import { emit } from "./common.ts";

interface Trainer {
  paramBytes: number;
  /** one training step, realized */
  step(): void;
}

interface Seen {
  report: MemoryReport;
  /** bytes alive on the device when the schedule starts */
  usedAtStart: number;
}

/**
 * Buffers nobody holds are freed by a FinalizationRegistry, i.e. after a garbage collection: the
 * previous step's parameters, optimizer state and gradients would count towards this step's peak
 * unless collected first. Needs --v8-flags=--expose-gc (the script restarts itself with it).
 */
async function collect(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc!;
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 0));
  }
}

/** memPeak of the last of `steps` steps (the first ones compile), with each schedule's report */
async function measure(t: Trainer, steps: number) {
  let seen: Seen[] = [];
  let peak = 0, usedBefore = 0, seconds = 0;
  for (let i = 0; i < steps; i++) {
    seen = [];
    await collect();
    setRealizeHook((p: PlannedRealize) => {
      seen.push({ report: reportOf(p), usedAtStart: GlobalCounters.memUsed });
    });
    GlobalCounters.reset();
    usedBefore = GlobalCounters.memUsed;
    const t0 = performance.now();
    try {
      t.step();
    } finally {
      setRealizeHook(null);
    }
    seconds = (performance.now() - t0) / 1e3;
    peak = GlobalCounters.memPeak;
  }
  // the largest schedule, and the device peak its report predicts from what was alive before it
  const largest = seen.reduce((a, b) => b.report.peakTotalBytes > a.report.peakTotalBytes ? b : a);
  const predicted = Math.max(...seen.map((s) => s.usedAtStart + s.report.peakBytes));
  // what the device would hold if no intermediate were freed before its schedule ends
  const unfreed = Math.max(...seen.map((s) =>
    s.usedAtStart +
    s.report.buffers.filter((b) => b.kind !== "input").reduce((t, b) => t + b.bytes, 0)
  ));
  return {
    memPeak: peak,
    memUsedBefore: usedBefore,
    ratio: peak / t.paramBytes,
    paramBytes: t.paramBytes,
    schedules: seen.length,
    reportPeak: largest.report.peakTotalBytes,
    reportPeakAlive: largest.report.peakBytes,
    reportInputs: largest.report.inputBytes,
    reportSteps: largest.report.steps.length,
    reportPeakAt: `${largest.report.peakStep} ${largest.report.peakName}`,
    reportLongEdges: largest.report.longEdges.length,
    predictedPeak: predicted,
    unfreedRatio: unfreed / t.paramBytes,
    stepSeconds: seconds,
  };
}

function fashion(batch: number): Trainer {
  Tensor.manualSeed(42);
  const model = new Net();
  const params = nn.state.getParameters(model);
  Tensor.realize(...params);
  const opt = new nn.optim.Adam(params, { lr: 0.002 });
  return {
    paramBytes: params.reduce((s, p) => s + p.numel() * p.dtype.itemsize, 0),
    step() {
      const x = Tensor.rand([batch, 1, 28, 28]).realize();
      const y = Tensor.randint([batch], 0, 10).realize();
      opt.zeroGrad();
      const loss = model.call(x).sparseCategoricalCrossentropy(y);
      loss.backward();
      // forward, backward and update in one schedule (see Optimizer.step)
      opt.step(loss);
    },
  };
}

function transformer(batch: number, seq: number): Trainer {
  Tensor.manualSeed(0);
  const t = transformerTrainer(SMALL, 3e-4, Deno.env.get("CHECKPOINT") !== "0");
  return {
    paramBytes: t.paramBytes,
    step() {
      t.step(randomTokens(batch, seq, SMALL.vocab).realize());
    },
  };
}

if (!("gc" in globalThis)) {
  const out = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--expose-gc", new URL(import.meta.url).pathname, ...Deno.args],
    stdout: "inherit",
    stderr: "inherit",
  }).outputSync();
  Deno.exit(out.code);
}

const models: Record<string, () => { trainer: Trainer; shape: number[]; steps: number }> = {
  fashion_mnist_cnn: () => ({ trainer: fashion(64), shape: [64, 1, 28, 28], steps: 3 }),
  transformer_2x256: () => ({
    trainer: transformer(8, 128),
    shape: [8, 128],
    steps: Number(Deno.env.get("TSTEPS") ?? 2),
  }),
};
const alias: Record<string, string> = {
  fashion: "fashion_mnist_cnn",
  transformer: "transformer_2x256",
};
for (const arg of Deno.args.length ? Deno.args : ["fashion", "transformer"]) {
  const name = alias[arg] ?? arg;
  if (!models[name]) {
    throw new Error(`bench/memory.ts: unknown model '${arg}': choose fashion or transformer`);
  }
  const { trainer, shape, steps } = models[name]();
  const m = await measure(trainer, steps);
  // value: the step's device peak over the parameters' bytes
  emit({
    bench: "memory_train_step",
    model: name,
    device: Device.DEFAULT,
    shape,
    value: m.ratio,
    unit: "x params",
    ...m,
  });
}
