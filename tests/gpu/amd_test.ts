// The AMD device on a real GPU (TG_GPU_TESTS=1 where ROCm sees an AMD GPU, `deno task test:gpu`):
// the HIP runtime and hiprtc load, memory round-trips and is reused, kernels time with events,
// errors carry sizes and names, and the whole op suite matches the numpy fixtures on AMD.
// Not yet run on AMD hardware: on a machine without an AMD GPU every test is ignored.
import assert from "node:assert/strict";
import { Device, dtypes, Tensor } from "../../mod.ts";
import { toProgram } from "../../src/codegen/index.ts";
import type { AmdDevice, HipMem } from "../../src/runtime/amd.ts";

const asked = Deno.env.get("TG_GPU_TESTS") === "1";
const status = asked ? Device.status().find((s) => s.name === "AMD") : undefined;
const enabled = asked && status?.available === true;
if (!asked) console.log("amd_test: SKIPPED (set TG_GPU_TESTS=1 on a machine with an AMD GPU)");
else if (!enabled) console.log(`amd_test: SKIPPED (no AMD device here: ${status?.error})`);

const amd = (): AmdDevice => Device.get("AMD") as unknown as AmdDevice;

Deno.test({
  name: "the AMD device opens and reports its card",
  ignore: !enabled,
  fn: () => {
    const info = amd().info();
    console.log(`AMD: ${JSON.stringify(info)}`);
    assert.match(String(info.arch), /^gfx[0-9a-f]+$/);
    assert.ok(info.warpSize === 32 || info.warpSize === 64, `warp size ${info.warpSize}`);
  },
});

Deno.test({
  name: "AMD memory round-trips, copies on the device, and freed blocks are reused",
  ignore: !enabled,
  fn: () => {
    const a = amd().allocator;
    const h = a.alloc(4096), h2 = a.alloc(4096);
    const data = new Uint8Array(4096).map((_, i) => (i * 7) & 255);
    a.copyin(h, data);
    assert.deepEqual(a.copyout(h), data);
    a.copy(h2, h);
    assert.deepEqual(a.copyout(h2), data);
    a.free(h);
    const h3 = a.alloc(4096);
    assert.equal(h3.ptr, h.ptr, "a freed block of the same size comes back");
    a.free(h2);
    a.free(h3);
  },
});

Deno.test({
  name: "an allocation larger than the card fails naming the size",
  ignore: !enabled,
  fn: () => {
    const a = amd().allocator, before = a.inUse;
    assert.throws(() => a.alloc(2 ** 50), /out of memory allocating 1048576\.00 GiB \(.* free of/);
    assert.equal(a.inUse, before, "nothing leaked");
  },
});

Deno.test({
  name: "a guarded elementwise kernel computes every element and events time it",
  ignore: !enabled,
  fn: async () => {
    const n = 1031 * 33;
    const data = Array.from({ length: n }, (_, i) => i);
    const x = Tensor.from(data, { dtype: dtypes.float32, device: "AMD" }).reshape([33, 1031]);
    const y = x.mul(2).add(1);
    const [k] = y.schedule();
    const got = await y.data() as Float32Array;
    for (let i = 0; i < n; i++) assert.equal(got[i], 2 * i + 1, `element ${i}`);
    const dev = amd();
    const prog = dev.compile(toProgram(k.ast, "hip"));
    const bufs = prog.spec.bufs.map((b) => dev.allocator.alloc(b.size * b.dtype.itemsize));
    const t = prog.run(bufs as HipMem[], [], { timing: true });
    assert.ok(t !== undefined && t > 0 && t < 1, `kernel time ${t} s`);
    bufs.forEach((b) => dev.allocator.free(b));
  },
});

Deno.test({
  name: "a hiprtc compile error carries the log and the source",
  ignore: !enabled,
  fn: () => {
    const spec = {
      name: "broken",
      src: 'extern "C" __global__ void broken(float* data0) { data0[0] = undefined_thing; }\n',
      lang: "hip" as const,
      globalSize: [1, 1, 1],
      localSize: [1, 1, 1],
      bufs: [{ slot: 0, dtype: dtypes.float32, size: 1, mutable: true }],
      vars: [],
    };
    assert.throws(() => amd().compile(spec), /HIPRTC_ERROR_COMPILATION[\s\S]*undefined_thing/);
  },
});

if (enabled) {
  // the op suite of tests/ops_test.ts, run on AMD
  Deno.env.set("TG_OPS_DEVICES", "AMD");
  await import("../ops_test.ts");
}
