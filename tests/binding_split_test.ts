// Kernels over a device's binding limit are split (src/rangeify/split.ts): with the limit forced
// low on JS and CPU, and at the adapter's own limit on WEBGPU.
import assert from "node:assert/strict";
import { Device, GlobalCounters, Tensor } from "../mod.ts";
import { webgpuReady } from "../src/runtime/device.ts";
import { bindingLimit, setBindingLimit } from "../src/rangeify/split.ts";

await webgpuReady();
const HAS_WEBGPU = Device.list().includes("WEBGPU");
if (!HAS_WEBGPU) {
  const why = Device.status().find((s) => s.name === "WEBGPU")?.error;
  console.log(`binding_split_test: WEBGPU cases SKIPPED: no WebGPU adapter here (${why})`);
}

/** n distinct realized float32 inputs of `shape`, deterministic */
function inputs(n: number, shape: number[], device: string): Tensor[] {
  const size = shape.reduce((a, b) => a * b, 1);
  return Array.from({ length: n }, (_, k) => {
    const data = Float32Array.from({ length: size }, (_, i) => Math.sin(i * 0.37 + k * 1.3) * 4);
    return Tensor.from(data, { device }).reshape(shape).realize();
  });
}
const sumAll = (xs: Tensor[]): Tensor => xs.slice(1).reduce((a, b) => a.add(b), xs[0]);

/** kernels realizing `t` would run and the most buffers one of them binds */
function kernelStats(t: Tensor): { kernels: number; maxBufs: number } {
  const s = t.schedule();
  return { kernels: s.length, maxBufs: Math.max(...s.map((k) => k.bufs.length)) };
}

/** realize `t` and count the kernels that ran */
function run(t: Tensor): number {
  GlobalCounters.reset();
  t.realize();
  return GlobalCounters.kernelCount;
}

function withLimit<T>(device: string, n: number, fn: () => T): T {
  setBindingLimit(device, n);
  try {
    return fn();
  } finally {
    setBindingLimit(device, null);
  }
}

for (const dev of ["JS", "CPU"]) {
  Deno.test(`${dev}: a 12-input sum under a forced limit of 4 splits into fitting kernels, same result`, () => {
    const xs = inputs(12, [64], dev);
    assert.equal(bindingLimit(dev), Infinity, `${dev} has no binding limit of its own`);
    const whole = sumAll(xs);
    assert.deepEqual(kernelStats(whole), { kernels: 1, maxBufs: 13 });
    assert.equal(run(whole), 1);
    const split = withLimit(dev, 4, () => {
      const t = sumAll(xs);
      const st = kernelStats(t);
      assert.ok(st.kernels > 1, `expected a split, got ${st.kernels} kernel`);
      assert.ok(st.maxBufs <= 4, `a kernel binds ${st.maxBufs} buffers, over the limit 4`);
      assert.equal(run(t), st.kernels);
      return t;
    });
    // the same additions in the same order: float32 results are bit-identical
    assert.deepEqual(split.dataSync(), whole.dataSync());
    // the limit lifted, the same graph structure plans one kernel again (no stale cached plan)
    assert.equal(kernelStats(sumAll(xs)).kernels, 1);
  });

  Deno.test(`${dev}: reduces, broadcasts and where under a limit of 4 match the unsplit result`, () => {
    const [a, b, c, d, e, f, g] = inputs(7, [8, 16], dev);
    const build = () =>
      a.mul(b).add(c.mul(d)).sub(e).sum(1, true).add(f.mul(g).max(1, true))
        .mul(a.gt(b).where(c, d)).add(e.exp2().mul(f).sum(0));
    const ref = build(), refStats = kernelStats(ref);
    assert.ok(refStats.maxBufs > 4, `unsplit, a kernel binds ${refStats.maxBufs} buffers`);
    const want = ref.dataSync() as Float32Array;
    const got = withLimit(dev, 4, () => {
      const t = build();
      const st = kernelStats(t);
      assert.ok(st.maxBufs <= 4, `a kernel binds ${st.maxBufs} buffers`);
      assert.ok(st.kernels > refStats.kernels, `${st.kernels} vs ${refStats.kernels} kernels`);
      return t.realize().dataSync() as Float32Array;
    });
    assert.equal(got.length, want.length);
    for (let i = 0; i < want.length; i++) {
      assert.ok(
        Math.abs(got[i] - want[i]) <= 1e-4 * (1 + Math.abs(want[i])),
        `element ${i}: ${got[i]} vs ${want[i]}`,
      );
    }
  });
}

Deno.test("setBindingLimit refuses a limit no kernel could meet", () => {
  assert.throws(() => setBindingLimit("CPU", 3), /the limit must be an integer >= 4/);
  assert.equal(bindingLimit("CPU"), Infinity);
});

Deno.test({
  name: "WEBGPU: the adapter's storage-buffer limit is the binding limit, and sums over it run",
  ignore: !HAS_WEBGPU,
  fn: async () => {
    const limit = Device.get("WEBGPU").maxBuffers!;
    assert.ok(Number.isInteger(limit) && limit >= 4, `maxBuffers ${limit}`);
    assert.equal(bindingLimit("WEBGPU"), limit);
    const n = limit + 4; // more inputs than one kernel may bind
    const cpu = inputs(n, [1000], "CPU");
    const gpu = cpu.map((x) => Tensor.from(x.dataSync(), { device: "WEBGPU" }));
    const t = sumAll(gpu);
    const st = kernelStats(t);
    assert.ok(st.kernels > 1 && st.maxBufs <= limit, JSON.stringify(st));
    assert.deepEqual(await t.data(), sumAll(cpu).dataSync());
  },
});

Deno.test({
  name: "WEBGPU: a 12-input sum under a forced limit of 6 splits and is exact",
  ignore: !HAS_WEBGPU,
  fn: async () => {
    const cpu = inputs(12, [4, 250], "CPU");
    const gpu = cpu.map((x) => Tensor.from(x.dataSync(), { device: "WEBGPU" }).reshape([4, 250]));
    const t = withLimit("WEBGPU", 6, () => {
      const t = sumAll(gpu);
      const st = kernelStats(t);
      assert.ok(st.kernels > 1 && st.maxBufs <= 6, JSON.stringify(st));
      return t.realize();
    });
    assert.deepEqual(await t.data(), sumAll(cpu).dataSync());
  },
});
