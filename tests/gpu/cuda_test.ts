// The CUDA device on a real GPU (TG_GPU_TESTS=1, `deno task test:gpu`): the driver and NVRTC
// load, memory round-trips and is reused, kernels time with events, errors carry sizes and
// names, and the whole op suite matches the numpy fixtures on CUDA.
import assert from "node:assert/strict";
import { Device, dtypes, Tensor } from "../../mod.ts";
import { toProgram } from "../../src/codegen/index.ts";
import type { CudaDevice, CudaMem } from "../../src/runtime/cuda.ts";

const enabled = Deno.env.get("TG_GPU_TESTS") === "1";
if (!enabled) console.log("cuda_test: SKIPPED (set TG_GPU_TESTS=1 on a machine with a GPU)");

const cuda = (): CudaDevice => Device.get("CUDA") as unknown as CudaDevice;

Deno.test({
  name: "the CUDA device opens and reports its card",
  ignore: !enabled,
  fn: () => {
    const st = Device.status().find((s) => s.name === "CUDA");
    assert.ok(st?.available, `CUDA is not available: ${st?.error}`);
    const info = cuda().info();
    console.log(`CUDA: ${JSON.stringify(info)}`);
    assert.match(String(info.arch), /^sm_\d+$/);
  },
});

Deno.test({
  name: "CUDA memory round-trips, and freed blocks are reused",
  ignore: !enabled,
  fn: () => {
    const a = cuda().allocator;
    const h = a.alloc(4096);
    const data = new Uint8Array(4096).map((_, i) => (i * 7) & 255);
    a.copyin(h, data);
    assert.deepEqual(a.copyout(h), data);
    a.free(h);
    const h2 = a.alloc(4096);
    assert.equal(h2.ptr, h.ptr, "a freed block of the same size comes back");
    a.free(h2);
  },
});

Deno.test({
  name: "an allocation larger than the card fails naming the size",
  ignore: !enabled,
  fn: () => {
    const a = cuda().allocator, before = a.inUse;
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
    const x = Tensor.from(data, { dtype: dtypes.float32, device: "CUDA" }).reshape([33, 1031]);
    const y = x.mul(2).add(1);
    const [k] = y.schedule();
    const got = await y.data() as Float32Array;
    for (let i = 0; i < n; i++) assert.equal(got[i], 2 * i + 1, `element ${i}`);
    const dev = cuda();
    const prog = dev.compile(toProgram(k.ast, "cuda"));
    const bufs = prog.spec.bufs.map((b) => dev.allocator.alloc(b.size * b.dtype.itemsize));
    const t = prog.run(bufs as CudaMem[], [], { timing: true });
    assert.ok(t !== undefined && t > 0 && t < 1, `kernel time ${t} s`);
    bufs.forEach((b) => dev.allocator.free(b));
  },
});

Deno.test({
  name: "an NVRTC compile error carries the log and the source",
  ignore: !enabled,
  fn: () => {
    const spec = {
      name: "broken",
      src: 'extern "C" __global__ void broken(float* data0) { data0[0] = undefined_thing; }\n',
      lang: "cuda" as const,
      globalSize: [1, 1, 1],
      localSize: [1, 1, 1],
      bufs: [{ slot: 0, dtype: dtypes.float32, size: 1, mutable: true }],
      vars: [],
    };
    assert.throws(() => cuda().compile(spec), /NVRTC_ERROR_COMPILATION[\s\S]*undefined_thing/);
  },
});

if (enabled) {
  // the op suite of tests/ops_test.ts, run on CUDA
  Deno.env.set("TG_OPS_DEVICES", "CUDA");
  await import("../ops_test.ts");
}
