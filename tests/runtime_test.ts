import assert from "node:assert/strict";
import { type DType, dtypes } from "../src/dtype.ts";
import {
  Buffer,
  Device,
  type DeviceImpl,
  memStats,
  type ProgramSpec,
  registerDevice,
  resetMemPeak,
} from "../src/runtime/device.ts";
import { CpuDevice } from "../src/runtime/cpu.ts";
import { JsDevice } from "../src/runtime/js.ts";
import { compileStats, DiskCache } from "../src/runtime/cache.ts";

const f32 = dtypes.float32, i32 = dtypes.int32;
const tmpRoot = Deno.makeTempDirSync({ prefix: "tg-runtime-test-" });
globalThis.addEventListener("unload", () => Deno.removeSync(tmpRoot, { recursive: true }));
const tmpDir = (prefix: string) => Deno.makeTempDirSync({ dir: tmpRoot, prefix });
const tmpCache = tmpDir("cache-");

function spec(
  name: string,
  lang: "c" | "js",
  src: string,
  bufs: [DType, number, boolean][],
  vars: string[] = [],
): ProgramSpec {
  return {
    name,
    lang,
    src,
    globalSize: [1],
    localSize: null,
    vars,
    bufs: bufs.map(([dtype, size, mutable], slot) => ({ slot, dtype, size, mutable })),
  };
}

function buf(dev: DeviceImpl, dtype: DType, data: number[] | number): Buffer {
  const n = typeof data === "number" ? data : data.length;
  const b = new Buffer(dev.name, dtype, n);
  if (typeof data !== "number") b.copyin(new (dtype === f32 ? Float32Array : Int32Array)(data));
  return b;
}

function run(dev: DeviceImpl, s: ProgramSpec, bufs: Buffer[], vars: number[] = []): void {
  dev.compile(s).run(bufs.map((b) => b.handle), vars);
}

// ---- kernels ----

const addC = (name: string) =>
  spec(
    name,
    "c",
    `void ${name}(float* restrict data0, const float* restrict data1, const float* restrict data2) {
  for (int i = 0; i < 5; i++) data0[i] = data1[i] + data2[i];
}`,
    [[f32, 5, true], [f32, 5, false], [f32, 5, false]],
  );
const addJs = spec(
  "add",
  "js",
  `function add(data0, data1, data2) { for (let i = 0; i < 5; i++) data0[i] = data1[i] + data2[i]; }`,
  [[f32, 5, true], [f32, 5, false], [f32, 5, false]],
);
const axpyC = spec(
  "axpy",
  "c",
  `void axpy(int* restrict data0, const int* restrict data1, const int var0, const int var1) {
  for (int i = 0; i < var1; i++) data0[i] = data1[i] * var0 + i;
}`,
  [[i32, 6, true], [i32, 6, false]],
  ["var0", "var1"],
);
const axpyJs = spec(
  "axpy",
  "js",
  `function axpy(data0, data1, var0, var1) {
  for (let i = 0; i < var1; i++) data0[i] = Math.imul(data1[i], var0) + i;
}`,
  [[i32, 6, true], [i32, 6, false]],
  ["var0", "var1"],
);
const ompC = spec(
  "omp_sq",
  "c",
  `void omp_sq(float* restrict data0, const float* restrict data1) {
#pragma omp parallel for
  for (int i = 0; i < 4096; i++) data0[i] = data1[i] * data1[i];
}`,
  [[f32, 4096, true], [f32, 4096, false]],
);

const cpu = new CpuDevice({ cacheDir: tmpCache });
const js: DeviceImpl = new JsDevice();

// Buffer looks its device up by name; these tests use their own instances for cache control,
// but the host memory of the registered CPU/JS devices is the same kind, so handles interoperate
const pairs: [DeviceImpl, ProgramSpec, ProgramSpec][] = [[cpu, addC("add"), axpyC], [
  js,
  addJs,
  axpyJs,
]];
for (const [dev, add, axpy] of pairs) {
  Deno.test(`${dev.name}: float32 add kernel gives the elementwise sum`, () => {
    const a = buf(dev, f32, [1, 2.5, -3, 1e30, NaN]);
    const b = buf(dev, f32, [10, 0.25, 3, 1e30, 1]);
    const out = buf(dev, f32, 5);
    run(dev, add, [out, a, b]);
    assert.deepEqual([...out.toTypedArraySync()], [11, 2.75, 0, Math.fround(2e30), NaN]);
  });

  Deno.test(`${dev.name}: int32 kernel takes its variables in order`, async () => {
    const x = buf(dev, i32, [1, -2, 3, 4, 5, 6]);
    const out = buf(dev, i32, [9, 9, 9, 9, 9, 9]);
    run(dev, axpy, [out, x], [3, 4]); // only the first 4 elements are written
    assert.deepEqual([...await out.toTypedArray()], [3, -5, 11, 15, 9, 9]);
  });

  Deno.test(`${dev.name}: a launch with a short buffer or wrong variables is refused`, () => {
    const p = dev.compile(axpy);
    const small = buf(dev, i32, 5), x = buf(dev, i32, 6);
    assert.throws(() => p.run([small.handle, x.handle], [1, 2]), /data0 needs 6 int32/);
    assert.throws(() => p.run([x.handle, x.handle], [1]), /2 variables \(var0, var1\)/);
    assert.throws(() => p.run([x.handle, x.handle], [1.5, 2]), /var0 = 1.5 is not an int32/);
  });
}

Deno.test("CPU: OpenMP kernel gives the right values, with and without OpenMP", () => {
  const xs = Array.from({ length: 4096 }, (_, i) => i / 7 - 100);
  const want = xs.map((v) => Math.fround(Math.fround(v) * Math.fround(v)));
  for (const dev of [cpu, new CpuDevice({ cacheDir: tmpCache, openmp: false })]) {
    const x = buf(dev, f32, xs), out = buf(dev, f32, 4096);
    run(dev, ompC, [out, x]);
    assert.deepEqual([...out.toTypedArraySync()], want);
  }
});

Deno.test("CPU: OpenMP spreads a parallel region over the cores", () => {
  if (!cpu.compiler.flags.includes("-fopenmp")) {
    console.log("skipped: this compiler has no working OpenMP");
    return;
  }
  const s = spec(
    "omp_count",
    "c",
    `void omp_count(int* restrict data0) {
#pragma omp parallel
  {
#pragma omp atomic
    data0[0]++;
  }
}`,
    [[i32, 1, true]],
  );
  const out = buf(cpu, i32, [0]);
  run(cpu, s, [out]);
  assert.equal(out.toTypedArraySync()[0], cpu.compiler.threads);
  if (navigator.hardwareConcurrency > 1 && !Deno.env.get("OMP_NUM_THREADS")) {
    assert.ok(cpu.compiler.threads > 1, "OpenMP ran the region on one thread");
  }
});

Deno.test("CPU: no fast-math and no FMA contraction (IEEE semantics hold)", () => {
  const s = spec(
    "ieee",
    "c",
    `void ieee(float* restrict data0, const float* restrict data1) {
  float a = data1[0], c = data1[1], x = data1[2];
  data0[0] = a * a + c;          /* contracted to fma this would be 2^-24, not 0 */
  data0[1] = (x != x) ? 1.0f : 0.0f;  /* fast-math folds this to 0 */
  data0[2] = x * 0.0f;           /* NaN * 0 = NaN */
  data0[3] = 1.0f / data1[3];    /* 1/0 = inf */
}`,
    [[f32, 4, true], [f32, 4, false]],
  );
  const a = 1 + 2 ** -12;
  const x = buf(cpu, f32, [a, -Math.fround(a * a), NaN, 0]), out = buf(cpu, f32, 4);
  run(cpu, s, [out, x]);
  assert.deepEqual([...out.toTypedArraySync()], [0, 1, NaN, Infinity]);
});

Deno.test("CPU: buffers are 64-byte aligned host memory", () => {
  for (const n of [1, 3, 1000]) {
    const h = cpu.allocator.alloc(n);
    assert.equal(Deno.UnsafePointer.value(h.ptr) % 64n, 0n);
    assert.equal(h.bytes.byteLength, n);
  }
});

Deno.test("CPU: the same source compiles once per process, and a second process compiles nothing", () => {
  const dir = tmpDir("tg-cache-hit-");
  const first = new CpuDevice({ cacheDir: dir });
  first.compile(addC("hit_add"));
  first.compile(addC("hit_add"));
  assert.deepEqual(first.stats, { compiled: 1, diskHits: 0, memHits: 1 });
  // a fresh device has an empty in-process cache: only the disk cache can serve it
  const second = new CpuDevice({ cacheDir: dir });
  const a = buf(second, f32, [1, 2, 3, 4, 5]), out = buf(second, f32, 5);
  run(second, addC("hit_add"), [out, a, a]);
  assert.deepEqual(second.stats, { compiled: 0, diskHits: 1, memHits: 0 });
  assert.deepEqual([...out.toTypedArraySync()], [2, 4, 6, 8, 10]);
  const names = [...Deno.readDirSync(dir)].map((e) => e.name);
  const key = second.cacheKey(addC("hit_add").src);
  assert.ok(names.includes(`${key}.so`) && names.includes(`${key}.so.sha256`));
});

Deno.test("CPU: a truncated or planted cache file is recompiled, never loaded", () => {
  const dir = tmpDir("tg-cache-bad-");
  const dev = () => new CpuDevice({ cacheDir: dir });
  const check = (d: CpuDevice, name: string) => {
    const a = buf(d, f32, [1, 2, 3, 4, 5]), out = buf(d, f32, 5);
    run(d, addC(name), [out, a, a]);
    assert.deepEqual([...out.toTypedArraySync()], [2, 4, 6, 8, 10]);
  };
  // truncated: an entry written by an earlier process, cut short (replaced by rename, as a
  // crashed writer would leave it; never rewritten in place under a loaded library)
  const d1 = dev();
  d1.compile(addC("trunc_add"));
  const so = `${dir}/${d1.cacheKey(addC("trunc_add").src)}.so`;
  const cut = Deno.readFileSync(so).slice(0, 100);
  Deno.writeFileSync(`${so}.x`, cut);
  Deno.renameSync(`${so}.x`, so);
  const rejected = compileStats.rejected;
  const d2 = dev();
  check(d2, "trunc_add");
  assert.deepEqual(d2.stats, { compiled: 1, diskHits: 0, memHits: 0 });
  assert.equal(compileStats.rejected, rejected + 1);
  assert.notDeepEqual(Deno.readFileSync(so), cut); // the entry was repaired

  // planted: garbage for a kernel never compiled, with a hash file that does not match it
  // (dlopen of this file would throw, so a pass proves it was not loaded)
  const d3 = dev();
  const plantedSo = `${dir}/${d3.cacheKey(addC("plant_add").src)}.so`;
  Deno.writeFileSync(plantedSo, new TextEncoder().encode("not a shared object"));
  Deno.writeTextFileSync(`${plantedSo}.sha256`, "0".repeat(64) + "\n");
  check(d3, "plant_add");
  assert.deepEqual(d3.stats, { compiled: 1, diskHits: 0, memHits: 0 });

  // planted without any hash file
  const d4 = dev();
  const bare = `${dir}/${d4.cacheKey(addC("bare_add").src)}.so`;
  Deno.writeFileSync(bare, new TextEncoder().encode("garbage"));
  check(d4, "bare_add");
  assert.equal(d4.stats.compiled, 1);
});

Deno.test("compile cache refuses a directory others can write, and creates its own private", () => {
  const open = tmpDir("tg-cache-open-");
  Deno.chmodSync(open, 0o777);
  const warn = console.warn;
  const warnings: string[] = [];
  console.warn = (m: string) => warnings.push(m);
  try {
    const c = new DiskCache(open);
    assert.notEqual(c.dir, open);
    assert.equal(Deno.statSync(c.dir).mode! & 0o077, 0);
    assert.match(warnings.join("\n"), /writable by others/);
  } finally {
    console.warn = warn;
  }
  const fresh = `${tmpDir("fresh-")}/a/tg`;
  const c = new DiskCache(fresh);
  assert.equal(c.dir, fresh);
  assert.equal(Deno.statSync(fresh).mode! & 0o077, 0);
});

Deno.test("CPU: a C syntax error shows the compiler's message and the kernel source", () => {
  const bad = spec(
    "broken",
    "c",
    "void broken(float* restrict data0) {\n  data0[0] = 1.0f +;\n}",
    [[f32, 1, true]],
  );
  assert.throws(() => cpu.compile(bad), (e: Error) => {
    assert.match(e.message, /kernel 'broken' failed/);
    assert.match(e.message, /error: expected expression/); // clang's words; gcc says the same
    assert.match(e.message, /2 \|\s+data0\[0\] = 1\.0f \+;/);
    return true;
  });
});

Deno.test("JS: a syntax error shows the message and the source", () => {
  const bad = spec("broken", "js", "function broken(data0) { data0[0] = 1 +; }", [[f32, 1, true]]);
  assert.throws(
    () => js.compile(bad),
    /JS compile of kernel 'broken' failed: .*\n.*source.*\n.*1 \+;/,
  );
  assert.throws(() => js.compile({ ...addJs, lang: "c" }), /JS runs js kernels.*rendered as c/);
});

Deno.test("JS: each buffer is viewed as its dtype's storage array", () => {
  const s = spec(
    "kinds",
    "js",
    `function kinds(data0, data1, data2) {
  data0[0] = data1 instanceof Uint8Array && data2 instanceof BigInt64Array ? 1 : 0;
  data2[0] = 5n; data1[0] = 1;
}`,
    [[i32, 1, true], [dtypes.bool, 2, true], [dtypes.int64, 1, true]],
  );
  const out = new Buffer("JS", i32, 1), b = new Buffer("JS", dtypes.bool, 2);
  const l = new Buffer("JS", dtypes.int64, 1);
  js.compile(s).run([out.handle, b.handle, l.handle], [], {});
  assert.deepEqual([...out.toTypedArraySync()], [1]);
  assert.deepEqual([...b.toTypedArraySync()], [1, 0]);
  assert.deepEqual([...l.toTypedArraySync()], [5n]);
});

Deno.test("timing returns the kernel's seconds", () => {
  for (const dev of [cpu, js] as DeviceImpl[]) {
    const a = buf(dev, f32, 5), out = buf(dev, f32, 5);
    const s = dev === cpu ? addC("add") : addJs;
    const t = dev.compile(s).run([out.handle, a.handle, a.handle], [], { timing: true });
    assert.ok(typeof t === "number" && t >= 0 && t < 5, `${dev.name} timing ${t}`);
    assert.equal(dev.compile(s).run([out.handle, a.handle, a.handle], []), undefined);
  }
});

Deno.test("Device.get names the available devices for an unknown one; names are case-free", () => {
  assert.throws(() => Device.get("FOO"), /unknown device 'FOO': devices available here are .*JS/);
  assert.equal(Device.get("cpu").name, "CPU");
  assert.equal(Device.get("js"), Device.get("JS"));
  assert.deepEqual(Device.list().slice(-1), ["JS"]);
  assert.ok(Device.list().includes("CPU"));
  assert.throws(() => new Buffer("FOO", f32, 1).allocate(), /unknown device 'FOO'/);
});

Deno.test("a device that cannot work here says why, and a missing compiler is named", () => {
  registerDevice("BROKEN_TEST", () => {
    throw new Error("no driver installed");
  });
  assert.throws(
    () => Device.get("broken_test"),
    /device 'BROKEN_TEST' is not available here: no driver installed\. Devices available here: .*JS/,
  );
  assert.ok(!Device.list().includes("BROKEN_TEST"));
  assert.throws(
    () => new CpuDevice({ cc: "/nonexistent/tg-cc" }),
    /CC=\/nonexistent\/tg-cc cannot be run/,
  );
});

Deno.test("DEV chooses Device.DEFAULT; without it the first working device wins", async () => {
  const code = `import { Device } from "${new URL("../src/runtime/device.ts", import.meta.url)}";
console.log(Device.DEFAULT);`;
  const base = Deno.env.toObject();
  delete base.DEV;
  const go = async (dev?: string) => {
    const env = dev === undefined ? base : { ...base, DEV: dev };
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", code],
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { ok: out.success, out: dec.decode(out.stdout).trim(), err: dec.decode(out.stderr) };
  };
  const [jsRun, cpuRun, fooRun, autoRun] = await Promise.all([
    go("JS"),
    go("cpu"),
    go("FOO"),
    go(),
  ]);
  assert.deepEqual([jsRun.ok, jsRun.out], [true, "JS"]);
  assert.deepEqual([cpuRun.ok, cpuRun.out], [true, "CPU"]);
  assert.equal(fooRun.ok, false);
  assert.match(fooRun.err, /DEV=FOO: unknown device 'FOO': devices available here are .*JS/);
  assert.deepEqual([autoRun.ok, autoRun.out], [true, Device.list()[0]]);
});

Deno.test("memStats counts live bytes and the peak; free gives them back", async () => {
  resetMemPeak();
  const used0 = memStats.used, n0 = memStats.buffers;
  const a = new Buffer("JS", f32, 1000); // lazily allocated: nothing yet
  assert.equal(memStats.used, used0);
  a.allocate();
  const b = new Buffer("CPU", dtypes.float64, 10).copyin(new Float64Array(10).fill(2));
  assert.equal(memStats.used, used0 + 4080);
  assert.equal(memStats.buffers, n0 + 2);
  a.free();
  a.free(); // idempotent
  assert.equal(memStats.used, used0 + 80);
  assert.equal(memStats.peak, used0 + 4080);
  resetMemPeak();
  assert.equal(memStats.peak, memStats.used);
  b.free();
  assert.equal(memStats.used, used0);
  assert.throws(() => a.allocate(), /use after free/);
  // last: finalizers of other tests' buffers may run while this awaits
  const c = new Buffer("CPU", dtypes.float64, 2).copyin(new Float64Array([2, 3]));
  assert.deepEqual([...await c.toTypedArray()], [2, 3]);
});

Deno.test("Buffer.copyin checks the array type and length", () => {
  const b = new Buffer("JS", f32, 3);
  assert.throws(
    () => b.copyin(new Int32Array(3)),
    /needs a Float32Array of 3 elements.*Int32Array of 3/,
  );
  assert.throws(() => b.copyin(new Float32Array(4)), /Float32Array of 4/);
  b.copyin(new Uint8Array(new Float32Array([1, 2, 3]).buffer)); // raw bytes are fine
  assert.deepEqual([...b.toTypedArraySync()], [1, 2, 3]);
  assert.equal(new Buffer("JS", f32, 0).toTypedArraySync().length, 0);
  assert.throws(() => new Buffer("JS", f32, -1), /non-negative integer/);
  assert.throws(() => new Buffer("JS", 3 as unknown as DType, 3), /dtype must be a DType/);
});

Deno.test("CPU: a process that ran OpenMP kernels exits cleanly, with gcc's and clang's runtime", () => {
  // Deno closes every library at exit; the OpenMP runtime a kernel links must not be unloaded
  // under its idle threads (a segfault at exit with gcc's libgomp before kernels were pinned)
  const script = `import { Tensor } from "${new URL("../mod.ts", import.meta.url).href}";
const x = Tensor.rand([512, 512], { device: "CPU" }).realize();
console.log(x.sum().item() > 0, x.softmax(-1).sum().item());`;
  for (const cc of ["gcc", "clang"]) {
    try {
      new Deno.Command(cc, { args: ["--version"], stdout: "null", stderr: "null" }).outputSync();
    } catch {
      continue; // not installed here
    }
    for (let i = 0; i < 3; i++) {
      const out = new Deno.Command(Deno.execPath(), {
        args: ["eval", script],
        env: { CC: cc },
        stdout: "piped",
        stderr: "piped",
      }).outputSync();
      const text = new TextDecoder().decode(out.stdout).trim();
      assert.equal(out.code, 0, `${cc}: exit ${out.code} (signal ${out.signal}) after "${text}"`);
      assert.match(text, /^true 512$/, cc);
    }
  }
});
