// TinyJit: replays match eager runs (elementwise, reduce, matmul, a cross-device copy), a replay
// launches the captured kernels without running the function or the engine, argument mismatches
// are refused by name, a training loop with SGD momentum gives the eager losses, reset captures
// anew, and host data that changes per call is refused at capture.
import assert from "node:assert/strict";
import "../src/uop/symbolic.ts";
import { Tensor } from "../src/tensor.ts";
import { Device } from "../src/runtime/device.ts";
import { GlobalCounters } from "../src/engine/counters.ts";
import { type Launch, setCaptureSink } from "../src/engine/realize.ts";
import { bufferBase } from "../src/rangeify/rangeify.ts";
import { TinyJit } from "../src/engine/jit.ts";
import { nn } from "../src/nn/index.ts";

const devices = ["JS", "CPU"].filter((d) => Device.list().includes(d));
const rand = (shape: number[], device: string): Tensor => Tensor.rand(shape, { device }).realize();

const fns: [string, (x: Tensor, y: Tensor) => Tensor, number[], number[]][] = [
  ["elementwise", (x, y) => x.mul(y).add(1).relu().sub(y.exp()), [5, 7], [5, 7]],
  ["reduce", (x, y) => x.add(y).sum(1).add(x.max(1)), [6, 9], [6, 9]],
  ["matmul", (x, w) => x.matmul(w).relu().mean(0), [8, 5], [5, 4]],
  ["two realizes", (x, y) => x.add(y).realize().mul(x).sum(), [3, 4], [3, 4]],
];

for (const device of devices) {
  for (const [name, f, xs, ys] of fns) {
    Deno.test(`TinyJit ${name} on ${device}: 6 calls (4 replays) equal eager runs`, () => {
      const jit = new TinyJit(f);
      for (let i = 0; i < 6; i++) {
        const x = rand(xs, device), y = rand(ys, device);
        const got = jit.call(x, y).dataSync();
        assert.deepEqual(got, f(x, y).dataSync(), `call ${i + 1}`);
      }
      assert.equal(jit.replays, 4);
    });
  }

  Deno.test(`TinyJit on ${device}: a replay launches the captured kernels and nothing else`, () => {
    let ran = 0;
    const f = (x: Tensor, w: Tensor): Tensor => {
      ran++;
      return x.matmul(w).relu().add(x.sum(1, true)).realize().sum(0);
    };
    const x = rand([4, 3], device), w = rand([3, 3], device);
    let k0 = GlobalCounters.kernelCount;
    f(x, w).realize();
    const eagerKernels = GlobalCounters.kernelCount - k0;
    assert.ok(eagerKernels >= 2);
    const jit = new TinyJit(f);
    jit.call(x, w);
    jit.call(x, w);
    assert.equal(ran, 3);
    assert.equal(jit.kernelCount, eagerKernels);
    const seen: Launch[] = [];
    setCaptureSink((l) => seen.push(l));
    const outs: Tensor[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        k0 = GlobalCounters.kernelCount;
        outs.push(jit.call(rand([4, 3], device), rand([3, 3], device)));
        assert.equal(GlobalCounters.kernelCount - k0, eagerKernels);
      }
    } finally {
      setCaptureSink(null);
    }
    assert.equal(ran, 3, "the function ran on a replay");
    assert.equal(seen.length, 0, "a replay went through realize");
    // the returned tensors are backed by one buffer: a later replay overwrites an earlier result
    assert.equal(bufferBase(outs[0].uop), bufferBase(outs[2].uop));
    const x2 = rand([4, 3], device), w2 = rand([3, 3], device);
    assert.deepEqual(jit.call(x2, w2).dataSync(), f(x2, w2).dataSync());
    assert.deepEqual(outs[0].dataSync(), f(x2, w2).dataSync());
  });

  Deno.test(`TinyJit on ${device}: mismatched arguments are refused, naming them`, () => {
    const jit = new TinyJit((x: Tensor, k: number) => x.mul(k).sum());
    const x = rand([4, 3], device);
    jit.call(x, 2);
    jit.call(x, 2);
    assert.throws(
      () => jit.call(rand([5, 3], device), 2),
      new RegExp(
        `argument 0 was float32 \\[4, 3\\] on ${device} at capture, ` +
          `got float32 \\[5, 3\\] on ${device}`,
      ),
    );
    assert.throws(
      () => jit.call(rand([4, 3], device).cast("int32").realize(), 2),
      /argument 0 was float32 \[4, 3\] .* got int32 \[4, 3\]/,
    );
    const other = devices.find((d) => d !== device);
    if (other) {
      assert.throws(
        () => jit.call(rand([4, 3], other), 2),
        new RegExp(`got float32 .* on ${other}`),
      );
    }
    assert.throws(
      () => jit.call(Tensor.rand([4, 3], { device }).add(1), 2),
      /argument 0 .* not realized/,
    );
    assert.throws(() => jit.call(x, 3), /argument 1 was 2 at capture, got 3/);
    assert.throws(() => (jit.call as (...a: unknown[]) => Tensor)(x), /captured with 2 arguments/);
    assert.throws(
      () => new TinyJit((t: Tensor) => t).call(Tensor.rand([2]).add(1)),
      /not realized/,
    );
    assert.throws(
      () => (jit.call as (...a: unknown[]) => Tensor)(3, 2),
      /argument 0 was a Tensor \(float32 \[4, 3\]/,
    );
  });

  Deno.test(`TinyJit on ${device}: SGD with momentum gives the eager losses for 10 steps`, () => {
    const train = (jit: boolean): { losses: number[]; w: number[] } => {
      const prev = Device.DEFAULT;
      Device.DEFAULT = device;
      try {
        Tensor.manualSeed(7);
        const l1 = new nn.Linear(4, 8), l2 = new nn.Linear(8, 1);
        const opt = new nn.optim.SGD(nn.state.getParameters({ l1, l2 }), {
          lr: 0.05,
          momentum: 0.9,
        });
        const step = (x: Tensor, y: Tensor): Tensor => {
          const loss = l2.call(l1.call(x).relu()).sub(y).square().mean();
          opt.zeroGrad();
          loss.backward();
          opt.step();
          return loss;
        };
        const f = jit ? TinyJit.wrap(step) : step;
        const losses: number[] = [];
        for (let i = 0; i < 10; i++) {
          const x = rand([6, 4], device);
          losses.push(f(x, x.sum(1, true).sin().realize()).item() as number);
        }
        return { losses, w: Array.from(l1.weight.dataSync(), Number) };
      } finally {
        Device.DEFAULT = prev;
      }
    };
    const eager = train(false), jitted = train(true);
    assert.deepEqual(jitted.losses, eager.losses);
    assert.deepEqual(jitted.w, eager.w);
    assert.ok(eager.losses[9] < eager.losses[0], "the loop does not train");
  });

  Deno.test(`TinyJit on ${device}: reset drops the capture`, () => {
    let ran = 0;
    const f = TinyJit.wrap((x: Tensor) => (ran++, x.add(1).sum()));
    for (let i = 0; i < 3; i++) f(rand([3], device));
    assert.equal(ran, 2);
    assert.ok(f.jit.captured);
    f.reset();
    assert.equal(f.jit.captured, false);
    const y = rand([2, 2], device);
    f(y);
    f(y);
    assert.equal(ran, 4);
    const z = rand([2, 2], device);
    assert.deepEqual(f(z).dataSync(), z.add(1).sum().dataSync());
    assert.equal(ran, 4);
  });

  Deno.test(`TinyJit on ${device}: host data that changes per call is refused at capture`, () => {
    let step = 0;
    const f = new TinyJit((x: Tensor) => {
      step++;
      return x.mul(Tensor.from(new Float32Array([step]), { shape: [], device })).sum();
    });
    f.call(rand([3], device));
    assert.throws(() => f.call(rand([3], device)), /changed between call 1 \[1\] and call 2 \[2\]/);
    assert.equal(f.captured, false);
  });
}

if (devices.length === 2) {
  Deno.test("TinyJit: a cross-device copy of an argument is replayed", () => {
    const f = (x: Tensor): Tensor => x.to("CPU").mul(2).sum();
    const jit = new TinyJit(f);
    for (let i = 0; i < 4; i++) {
      const x = rand([5], "JS");
      assert.deepEqual(jit.call(x).dataSync(), f(x).dataSync());
    }
  });
}

Deno.test("TinyJit: Adam (bias corrections on the device) trains as it does without the JIT", () => {
  const prev = Device.DEFAULT;
  Device.DEFAULT = "JS";
  try {
    const losses = (jit: boolean): number[] => {
      Tensor.manualSeed(3);
      const l = new nn.Linear(3, 1);
      const opt = new nn.optim.Adam(nn.state.getParameters(l), { lr: 0.05 });
      const fn = (x: Tensor) => {
        const loss = l.call(x).square().mean();
        opt.zeroGrad();
        loss.backward();
        opt.step();
        return loss;
      };
      const step = jit ? TinyJit.wrap(fn) : fn;
      const x = Tensor.rand([4, 3]).realize();
      return Array.from({ length: 8 }, () => step(x).item() as number);
    };
    const eager = losses(false), jitted = losses(true);
    assert.deepEqual(jitted, eager);
    assert.ok(eager[7] < eager[0], `the loss falls: ${eager}`);
  } finally {
    Device.DEFAULT = prev;
  }
});

Deno.test("TinyJit: a jit called while another captures is refused", () => {
  const inner = new TinyJit((x: Tensor) => x.add(1));
  const outer = new TinyJit((x: Tensor) => inner.call(x).mul(2));
  assert.throws(() => outer.call(Tensor.rand([2]).realize()), /another TinyJit was capturing/);
});

Deno.test("a capture keeps the buffers it replays into: collected nodes give no memory to other tensors", () => {
  // in a subprocess with gc exposed: collect everything collectable, then take pooled memory
  const mod = new URL("../mod.ts", import.meta.url).href;
  const script = `import { Tensor, TinyJit } from "${mod}";
const gc = globalThis.gc, n = 4096;
const step = TinyJit.wrap((x) => x.add(1).contiguous().mul(2).contiguous().add(3));
for (let i = 0; i < 4; i++) await step(Tensor.full([n], i, { device: "CPU" }).realize()).data();
for (let k = 0; k < 5; k++) { gc(); await new Promise((r) => setTimeout(r, 10)); }
const others = Array.from({ length: 8 }, (_, i) => Tensor.full([n], 100 + i, { device: "CPU" }).realize());
const y = await step(Tensor.full([n], 10, { device: "CPU" }).realize()).data();
const after = await Promise.all(others.map(async (t) => (await t.data())[0]));
console.log(y[0], after.join(","));`;
  const out = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--v8-flags=--expose-gc", script],
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  const text = new TextDecoder().decode(out.stdout).trim();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal(text, "25 100,101,102,103,104,105,106,107");
});
