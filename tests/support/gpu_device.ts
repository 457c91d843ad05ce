// The checks every GPU device gets on real hardware (tests/gpu/*_test.ts): it opens and reports
// its card, memory round-trips, copies on the device and is reused, an impossible allocation
// fails naming the size without leaking, a guarded elementwise kernel computes every element
// and events time it, a compile error carries the log, and the op suite matches the fixtures.
import assert from "node:assert/strict";
import { Device, dtypes, Tensor } from "../../mod.ts";
import { type CodegenLang, toProgram } from "../../src/codegen/index.ts";
import type { ProgramSpec } from "../../src/runtime/device.ts";
import type { CachingAllocator, GpuMem } from "../../src/runtime/gpu_memory.ts";

interface GpuDevice {
  allocator: CachingAllocator<GpuMem>;
  info(): Record<string, unknown>;
  compile(spec: ProgramSpec): {
    spec: ProgramSpec;
    run(b: GpuMem[], v: number[], o: { timing: boolean }): number | undefined;
  };
}

export interface GpuDeviceCase {
  /** the device name (CUDA, AMD) */
  device: string;
  lang: CodegenLang;
  /** what the card's architecture name looks like */
  arch: RegExp;
  /** a kernel source that does not compile, and what its error must mention */
  broken: { src: string; error: RegExp };
  enabled: boolean;
}

export function gpuDeviceTests(c: GpuDeviceCase): void {
  const dev = (): GpuDevice => Device.get(c.device) as unknown as GpuDevice;
  const test = (name: string, fn: () => void | Promise<void>) =>
    Deno.test({ name: `${c.device}: ${name}`, ignore: !c.enabled, fn });

  test("the device opens and reports its card", () => {
    const st = Device.status().find((s) => s.name === c.device);
    assert.ok(st?.available, `${c.device} is not available: ${st?.error}`);
    const info = dev().info();
    console.log(`${c.device}: ${JSON.stringify(info)}`);
    assert.match(String(info.arch), c.arch);
  });

  test("memory round-trips, copies on the device, and freed blocks are reused", () => {
    const a = dev().allocator;
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
  });

  test("an allocation larger than the card fails naming the size", () => {
    const a = dev().allocator, before = a.inUse;
    assert.throws(() => a.alloc(2 ** 50), /out of memory allocating 1048576\.00 GiB \(.* free of/);
    assert.equal(a.inUse, before, "nothing leaked");
  });

  test("a guarded elementwise kernel computes every element and events time it", async () => {
    const n = 1031 * 33;
    const data = Array.from({ length: n }, (_, i) => i);
    const x = Tensor.from(data, { dtype: dtypes.float32, device: c.device }).reshape([33, 1031]);
    const y = x.mul(2).add(1);
    const [k] = y.schedule();
    const got = await y.data() as Float32Array;
    for (let i = 0; i < n; i++) assert.equal(got[i], 2 * i + 1, `element ${i}`);
    const d = dev();
    const prog = d.compile(toProgram(k.ast, c.lang));
    const bufs = prog.spec.bufs.map((b) => d.allocator.alloc(b.size * b.dtype.itemsize));
    const t = prog.run(bufs, [], { timing: true });
    assert.ok(t !== undefined && t > 0 && t < 1, `kernel time ${t} s`);
    bufs.forEach((b) => d.allocator.free(b));
  });

  test("a compile error carries the log and the source", () => {
    const spec: ProgramSpec = {
      name: "broken",
      src: c.broken.src,
      lang: c.lang,
      globalSize: [1, 1, 1],
      localSize: [1, 1, 1],
      bufs: [{ slot: 0, dtype: dtypes.float32, size: 1, mutable: true }],
      vars: [],
    };
    assert.throws(() => dev().compile(spec), c.broken.error);
  });
}
