// The WEBGPU device (Deno's WebGPU; a software adapter in CI): the op fixtures that are Tensor
// methods, batched (every case of a file realized first, then read back together, since each
// wait on the GPU costs ~11 ms), the GPU-dims guard, and the errors WEBGPU gives.
import assert from "node:assert/strict";
import { Device, dtypes, Tensor } from "../mod.ts";
import {
  assertClose,
  decodeData,
  decodeScalar,
  type FixtureArray,
  type FixtureCase,
  fixtureResult,
  type FixtureScalar,
  type Json,
  loadFixtures,
} from "./support/fixtures.ts";
import { webgpuReady } from "../src/runtime/device.ts";
import type { GpuMem, WebGpuDevice } from "../src/runtime/webgpu.ts";
import { toProgram } from "../src/codegen/index.ts";
import { bufferOf } from "../src/engine/buffers.ts";

await webgpuReady();
const HAS = Device.list().includes("WEBGPU");
if (!HAS) {
  const why = Device.status().find((s) => s.name === "WEBGPU")?.error;
  console.log(`webgpu_test: SKIPPED: no WebGPU adapter here (${why})`);
}
const DEV = "WEBGPU";
type DType = typeof dtypes.float32;
const dt = (n: string) => (dtypes as unknown as Record<string, DType>)[n];
/** WGSL has no 64-bit types, and float16 needs the shader-f16 feature */
const UNSUPPORTED = ["float64", "int64", "uint64", "float16"];

function decodeArg(v: Json, inputs: Tensor[]): unknown {
  if (Array.isArray(v)) return v.map((x) => decodeArg(x, inputs));
  if (v === null || typeof v !== "object") return v;
  if ("$t" in v) return inputs[v.$t as number];
  if ("$u" in v) return undefined;
  if ("$dtype" in v) return dt(v.$dtype as string);
  if ("$num" in v) return decodeScalar(v.$num as FixtureScalar);
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, decodeArg(x, inputs)]));
}

function input(a: FixtureArray): Tensor {
  const data = decodeData(a) as Parameters<typeof Tensor.from>[0];
  let t = Tensor.from(data, { dtype: dt(a.dtype), device: DEV }).reshape(a.shape);
  for (const [op, ...args] of a.view ?? []) {
    const f = (t as unknown as Record<string, (...x: unknown[]) => Tensor>)[op];
    t = f.apply(t, args);
  }
  return t;
}

/** static or property ops, run by ops_test.ts with TG_OPS_DEVICES=WEBGPU */
const NOT_METHODS = new Set(["cat", "stack", "T"]);

/** a case's outputs, or null where the op is no Tensor method on its first input */
function build(c: FixtureCase): Tensor[] | null {
  if (!c.inputs.length || NOT_METHODS.has(c.op)) return null;
  const inputs = c.inputs.map(input);
  const fn = (inputs[0] as unknown as Record<string, unknown>)[c.op];
  if (typeof fn !== "function") return null;
  const out = (fn as (...a: unknown[]) => Tensor | Tensor[]).apply(
    inputs[0],
    c.args.map((a) => decodeArg(a, inputs)),
  );
  return Array.isArray(out) ? out : [out];
}

const usesDtype = (c: FixtureCase, names: string[]): boolean =>
  JSON.stringify([c.inputs.map((a) => a.dtype), c.expected.map((a) => a.dtype), c.args])
    .match(new RegExp(`"(${names.join("|")})"`)) !== null;

const files = HAS ? await loadFixtures() : [];
const ops = new Set<string>();

for (const file of files) {
  Deno.test(`WEBGPU ops vs numpy: ${file.group}`, async () => {
    const built: { c: FixtureCase; outs: Tensor[] }[] = [];
    let skipped = 0, notMethod = 0;
    for (const c of file.cases) {
      if (usesDtype(c, UNSUPPORTED)) {
        skipped++;
        continue;
      }
      const outs = build(c);
      if (outs) built.push({ c, outs });
      else notMethod++;
    }
    Tensor.realize(...built.flatMap((b) => b.outs));
    const data = await Promise.all(built.map((b) => Promise.all(b.outs.map((o) => o.data()))));
    const failed: string[] = [];
    built.forEach(({ c, outs }, i) => {
      try {
        outs.forEach((o, k) => {
          assert.equal(o.device, DEV);
          assertClose(
            { shape: o.shape, dtype: o.dtype.name, data: data[i][k] },
            fixtureResult(c.expected[k]),
            `${c.op} [WEBGPU] ${c.name}`,
            c.tol,
          );
        });
        ops.add(c.op);
      } catch (e) {
        failed.push((e as Error).message);
      }
    });
    console.log(
      `${file.group}: ${built.length - failed.length}/${built.length} cases pass on WEBGPU; ` +
        `${skipped} skipped (float64/int64/uint64, float16 without shader-f16), ${notMethod} ` +
        `not Tensor methods (creation/static ops: ops_test.ts with TG_OPS_DEVICES=WEBGPU)`,
    );
    assert.deepEqual(failed, []);
  });
}

Deno.test({
  name: "WEBGPU: Device.list() shows it and the ops that ran",
  ignore: !HAS,
  fn: () => {
    assert.ok(Device.list().includes("WEBGPU"));
    assert.notEqual(Device.DEFAULT, "WEBGPU", "WEBGPU is the default only through DEV=WEBGPU");
    console.log(`ops checked on WEBGPU: ${[...ops].sort().join(" ")}`);
  },
});

Deno.test({
  name: "WEBGPU: a size no workgroup divides runs with the guard and is exact",
  ignore: !HAS,
  fn: async () => {
    const n = 66_071; // prime, above one workgroup of 256
    const a = Tensor.arange(0, n, 1, { device: DEV }), b = a.mul(3).add(1);
    const src = b.kernels().map((k) => k.src).join("\n");
    assert.match(src, new RegExp(`if \\(tg_id\\.x >= ${n}u\\) \\{ return; \\}`));
    const got = await b.data() as Int32Array;
    assert.equal(got.length, n);
    for (let i = 0; i < n; i++) if (got[i] !== 3 * i + 1) assert.fail(`element ${i}: ${got[i]}`);
  },
});

Deno.test({
  name: "WEBGPU: bool and int8 outputs are packed bytes written by neighbouring invocations",
  ignore: !HAS,
  fn: async () => {
    const x = Tensor.arange(0, 1000, 1, { device: DEV });
    const [odd, small] = [x.mod(2).eq(1), x.sub(500).cast(dtypes.int8)];
    Tensor.realize(odd, small);
    const [o, s] = await Promise.all([odd.data(), small.data()]);
    for (let i = 0; i < 1000; i++) {
      assert.equal(Boolean(o[i]), i % 2 === 1, `odd[${i}]`);
      assert.equal(s[i], ((i - 500) << 24) >> 24, `int8[${i}]`);
    }
  },
});

Deno.test({
  name: "WEBGPU: synchronous reads throw the async error; await data() works",
  ignore: !HAS,
  fn: async () => {
    const t = Tensor.from([1, 2, 3], { device: DEV }).add(1);
    assert.throws(
      () => t.dataSync(),
      /WEBGPU cannot read a buffer synchronously: .*await t\.data\(\)/,
    );
    assert.throws(() => t.sum().item(), /WEBGPU cannot read a buffer synchronously/);
    assert.deepEqual([...await t.data()], [2, 3, 4]);
    await Device.synchronize("WEBGPU");
  },
});

Deno.test({
  name: "WEBGPU: 64-bit dtypes are refused with an error naming the dtype",
  ignore: !HAS,
  fn: async () => {
    const t = Tensor.from([1, 2], { device: DEV }).cast(dtypes.float64).add(1);
    await assert.rejects(async () => await t.data(), /WGSL has no float64/);
    assert.throws(() => t.kernels(), /WGSL has no float64/);
  },
});

Deno.test({
  name: "WEBGPU: to() copies both ways; a copy out of WEBGPU is read back async and chained",
  ignore: !HAS,
  fn: async () => {
    const host = Tensor.from([1, 2, 3, 4, 5], { device: "CPU" });
    const g = host.to(DEV).mul(10); // CPU -> WEBGPU, computed on WEBGPU
    assert.equal(g.device, DEV);
    // WEBGPU -> CPU, then a CPU kernel that also reads a CPU tensor: it runs once the readback lands
    const c = g.add(1).to("CPU").add(host);
    c.realize();
    assert.equal(c.device, "CPU");
    assert.throws(() => c.dataSync(), /still being filled by a copy .*await t\.data\(\)/);
    assert.deepEqual([...await c.data()], [12, 23, 34, 45, 56]);
    assert.deepEqual([...c.dataSync()], [12, 23, 34, 45, 56], "sync reads work once filled");
    // a buffer still being filled feeds later schedules: WEBGPU -> JS -> WEBGPU, and JS -> CPU
    const j = g.to("JS");
    j.realize();
    const back = j.mul(2).to(DEV).add(g);
    const cpu = j.sum().to("CPU");
    assert.deepEqual([...await back.data()], [30, 60, 90, 120, 150]);
    assert.deepEqual([...await cpu.data()], [150]);
    assert.deepEqual([...await g.to("JS").tolist() as number[]], [10, 20, 30, 40, 50]);
  },
});

Deno.test({
  name: "WEBGPU: timestamp queries time kernels where the adapter has 'timestamp-query'",
  ignore: !HAS,
  fn: async () => {
    const dev = Device.get(DEV) as WebGpuDevice;
    const info = dev.info();
    console.log(`WEBGPU adapter ${info.name}: timestamp-query ${info.timestampQuery}`);
    if (!dev.hasTimestamps) return; // the adapter cannot time kernels: realize skips timing
    const a = Tensor.from(new Float32Array(1 << 16).fill(1), { device: DEV });
    const [item] = a.mul(3).schedule();
    const spec = toProgram(item.ast, "wgsl");
    const out = a.add(0).realize(); // any buffer of the output's size and dtype
    const slots = [out.uop, ...item.bufs.slice(1)];
    const bufs = spec.bufs.map((b) => bufferOf(slots[b.slot]).handle as GpuMem);
    const prog = dev.compile(spec);
    dev.kernelTimes.splice(0);
    for (let i = 0; i < 3; i++) assert.equal(prog.run(bufs, [], { timing: true }), undefined);
    await dev.synchronize();
    const times = dev.kernelTimes.splice(0);
    assert.equal(times.length, 3);
    for (const t of times) {
      assert.equal(t.name, spec.name);
      assert.ok(t.seconds > 0 && t.seconds < 10, `kernel time ${t.seconds} s`);
    }
  },
});
