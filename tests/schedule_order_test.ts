// The planner's kernel order (planOrder) and in-place writes (withInPlace): both keep every result
// and lower the bytes alive, counted by hand and by the engine's allocation counter.
import assert from "node:assert/strict";
import { Device, GlobalCounters, memoryReport, nn, Tensor } from "../mod.ts";
import { rangeify } from "../src/rangeify/rangeify.ts";
import { bufferBase } from "../src/rangeify/rangeify.ts";
import { freeAfter, planOrder } from "../src/engine/memory.ts";
import { reportOf } from "../src/engine/memory_report.ts";
import { withInPlace } from "../src/engine/realize.ts";

const DEVICE = "JS";
const N = 1024, BYTES = 4 * N;

/** a -> b -> c -> d (each a float32 [N] buffer), r1 = sum(d), r2 = sum(a) */
function chain(x: Tensor) {
  const a = x.add(1).contiguous();
  const b = a.mul(2).contiguous(), c = b.add(3).contiguous(), d = c.mul(c).contiguous();
  return { r1: d.sum(), r2: a.sum() };
}

Deno.test("the planner reads `a` for the last time right after b, not after the chain: 2 buffers alive instead of 3", () => {
  const x = Tensor.rand([N], { device: DEVICE }).realize();
  const { r1, r2 } = chain(x);
  const roots = [r1.uop, r2.uop];
  const { realized, kernels } = rangeify(roots);
  assert.equal(realized.length, 6);
  // the rangeifier's order runs r2 last: a stays alive while c is made from b
  const plain = reportOf({
    order: realized,
    kernels,
    roots,
    freeAfter: freeAfter(realized, kernels, roots),
  });
  assert.equal(plain.peakBytes, 3 * BYTES);
  // planned: r2 frees a as soon as b has read it, then only two [N] buffers are ever alive
  const { order } = planOrder(realized, kernels, roots);
  assert.deepEqual(order.map((u) => realized.indexOf(u)), [0, 1, 5, 2, 3, 4]);
  const planned = reportOf({ order, kernels, roots, freeAfter: freeAfter(order, kernels, roots) });
  assert.equal(planned.peakBytes, 2 * BYTES + 4);
  assert.equal(memoryReport(r1, r2).peakBytes, planned.peakBytes);
  // the engine runs that order: its counter sees the same peak, and the values are unchanged
  GlobalCounters.reset();
  const before = GlobalCounters.memUsed;
  Tensor.realize(r1, r2);
  assert.equal(GlobalCounters.memPeak - before, planned.peakBytes);
  const xs = Array.from(x.dataSync() as Float32Array);
  const a = xs.map((v) => Math.fround(v + 1));
  const c = a.map((v) => Math.fround(Math.fround(v * 2) + 3));
  const { r1: w1, r2: w2 } = chain(x);
  assert.equal(r1.item(), w1.realize().item());
  assert.equal(r2.item(), w2.realize().item());
  const sum = (v: number[]) => v.reduce((s, t) => s + t, 0);
  assert.ok(Math.abs((r1.item() as number) - sum(c.map((v) => v * v))) < 1e-2 * N);
  assert.ok(Math.abs((r2.item() as number) - sum(a)) < 1e-3 * N);
});

Deno.test("an elementwise update is written over its input after every other reader of it ran", () => {
  const data = Float32Array.from({ length: N }, (_, i) => i % 7);
  const x = Tensor.from(data, { device: DEVICE });
  const buf = bufferBase(x.uop)!;
  const y = x.mul(2).add(1), s = x.sum();
  GlobalCounters.reset();
  const before = GlobalCounters.memUsed;
  // y is listed first: s, which reads the old x, must still run before y overwrites it
  withInPlace(new Map([[y.uop, x.uop]]), () => Tensor.realize(y, s));
  assert.equal(bufferBase(y.uop), buf, "y lives in x's buffer");
  assert.equal(GlobalCounters.memPeak - before, 4, "only the sum's 4 bytes are allocated");
  assert.equal(s.item(), data.reduce((t, v) => t + v, 0));
  assert.deepEqual(Array.from(y.dataSync() as Float32Array), Array.from(data, (v) => 2 * v + 1));
  assert.deepEqual(
    Array.from(x.dataSync() as Float32Array),
    Array.from(data, (v) => 2 * v + 1),
    "x was overwritten",
  );
});

Deno.test("no in-place write where the kernel reads other elements or a reader needs the new value", () => {
  const data = Float32Array.from({ length: N }, (_, i) => i);
  for (
    const make of [
      // reads element N-1-i to write element i
      (x: Tensor) => ({ y: x.flip(0).add(1), also: [] as Tensor[] }),
      // z reads both the old x and y: it cannot run both before and after y's write
      (x: Tensor) => {
        const y = x.add(1).contiguous();
        return { y, also: [y.add(x).sum()] };
      },
    ]
  ) {
    const x = Tensor.from(data, { device: DEVICE });
    const { y, also } = make(x);
    withInPlace(new Map([[y.uop, x.uop]]), () => Tensor.realize(y, ...also));
    assert.notEqual(bufferBase(y.uop), bufferBase(x.uop));
    assert.deepEqual(Array.from(x.dataSync() as Float32Array), Array.from(data), "x is unchanged");
  }
  const x = Tensor.from(data, { device: DEVICE });
  const y = x.add(1).contiguous(), z = y.add(x).sum();
  withInPlace(new Map([[y.uop, x.uop]]), () => Tensor.realize(y, z));
  assert.equal(z.item(), data.reduce((t, v) => t + 2 * v + 1, 0));
});

Deno.test("AdamW step(loss): parameters and moments updated in place, values as with a plain step", () => {
  const run = (fused: boolean) => {
    Tensor.manualSeed(5);
    const model = { l1: new nn.Linear(64, 64), l2: new nn.Linear(64, 4) };
    const params = nn.state.getParameters(model);
    Tensor.realize(...params);
    const opt = new nn.optim.AdamW(params, { lr: 0.01 });
    const x = Tensor.rand([2, 64]).realize();
    const losses: number[] = [], peaks: number[] = [];
    let sameBuffers = true;
    for (let i = 0; i < 3; i++) {
      const bufs = params.map((p) => bufferBase(p.uop));
      opt.zeroGrad();
      const loss = model.l2.call(model.l1.call(x).relu()).square().mean();
      loss.backward();
      GlobalCounters.reset();
      const before = GlobalCounters.memUsed;
      if (fused) opt.step(loss);
      else {
        Tensor.realize(loss, ...params.map((p) => p.grad!));
        opt.step();
      }
      peaks.push(GlobalCounters.memPeak - before);
      losses.push(loss.item() as number);
      if (i > 0) sameBuffers &&= params.every((p, j) => bufferBase(p.uop) === bufs[j]);
    }
    return {
      losses,
      peaks,
      sameBuffers,
      w: params.map((p) => Array.from(p.dataSync() as Float32Array)),
    };
  };
  const prev = Device.DEFAULT;
  Device.DEFAULT = DEVICE;
  let plain, fused;
  try {
    [plain, fused] = [run(false), run(true)];
  } finally {
    Device.DEFAULT = prev;
  }
  assert.deepEqual(fused.losses, plain.losses);
  assert.deepEqual(fused.w, plain.w);
  assert.ok(fused.sameBuffers, "the fused step writes over the parameters");
  assert.ok(!plain.sameBuffers, "a plain step gives parameters new buffers");
  // 64*64+64+64*4+4 floats: the plain step holds the gradients and the new parameters (its
  // moments are updated in place); the fused one only a layer's gradient and the activations
  const paramBytes = 4420 * 4;
  assert.ok(plain.peaks[2] >= 2 * paramBytes, `plain step: ${plain.peaks[2]} bytes`);
  assert.ok(fused.peaks[2] < 1.1 * 4096 * 4, `fused step: ${fused.peaks[2]} bytes`);
});
