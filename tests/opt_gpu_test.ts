// The GPU opts (LOCAL, GROUP, GROUPTOP) and PADTO: each computes what the unoptimized kernel
// computes, on JS and CPU (where workgroup threads are loops and shared memory a local array)
// and on WEBGPU (real workgroups, var<workgroup> and barriers; a software adapter in CI), for
// reductions and matmuls of random shapes; opts that do not fit are rejected with a reason; the
// CUDA source of a grouped reduce uses shared memory, a barrier and one writer per group.
import assert from "node:assert/strict";
import { Device, Tensor } from "../mod.ts";
import type { UOp } from "../src/uop/ops.ts";
import { dtypes } from "../src/dtype.ts";
import { type CodegenLang, toProgram } from "../src/codegen/index.ts";
import { Buffer, webgpuReady } from "../src/runtime/device.ts";
import { kernelAxes, type Opt, OptError, OptOps } from "../src/opt/opts.ts";
import { withOpts } from "../src/opt/heuristic.ts";
import { loopCap } from "../src/runtime/webgpu.ts";
import { seededRandom } from "./support/fixtures.ts";

await webgpuReady();
const DEVICES: [string, CodegenLang][] = [["JS", "js"], ["CPU", "c"]];
if (Device.list().includes("WEBGPU")) DEVICES.push(["WEBGPU", "wgsl"]);
else console.log("opt_gpu_test: WEBGPU not available here: checked on JS and CPU only");
console.log(`opt_gpu_test: devices ${DEVICES.map((d) => d[0]).join(", ")}`);

const astOf = (t: Tensor): UOp => {
  const s = t.schedule();
  assert.equal(s.length, 1, "one kernel");
  return s[0].ast;
};

async function run(ast: UOp, dev: string, lang: CodegenLang, seed: number): Promise<Float32Array> {
  const spec = toProgram(ast, lang, { checkBounds: true });
  const r = seededRandom(seed);
  const bufs = spec.bufs.map((b) => {
    const buf = new Buffer(dev, b.dtype, b.size);
    buf.copyin(Float32Array.from({ length: b.size }, () => r() * 2 - 1));
    return buf;
  });
  Device.get(dev).compile(spec).run(bufs.map((b) => b.handle), []);
  const out = await bufs[0].toTypedArray() as Float32Array;
  for (const b of bufs) b.free();
  return out;
}

async function assertSame(ast: UOp, opts: readonly Opt[], what: string): Promise<void> {
  const opt = withOpts(ast, opts), plain = withOpts(ast, []);
  const want = await run(plain, "JS", "js", 3);
  for (const [dev, lang] of DEVICES) {
    const got = await run(opt, dev, lang, 3);
    for (let i = 0; i < want.length; i++) {
      const tol = 1e-4 * Math.max(1, Math.abs(want[i]));
      if (!(Math.abs(got[i] - want[i]) <= tol)) {
        assert.fail(`${what} on ${dev}: element ${i} is ${got[i]}, unoptimized ${want[i]}`);
      }
    }
  }
}

const js = { device: "JS" } as const;

Deno.test("GROUP, GROUPTOP and LOCAL reductions match the unoptimized kernel", async () => {
  const r = seededRandom(5);
  const cases: [number[], number, OptOps[]][] = [];
  for (let t = 0; t < 6; t++) {
    const rows = [1, 3, 4, 8][Math.floor(r() * 4)];
    const cols = [64, 96, 256, 768][Math.floor(r() * 4)];
    const ops = [OptOps.GROUP, OptOps.GROUPTOP][t % 2];
    cases.push([[rows, cols], [16, 8, 32][t % 3], [ops]]);
  }
  for (const [shape, amount, [op]] of cases) {
    for (const reduce of ["sum", "max"] as const) {
      const x = Tensor.rand(shape, js);
      const ast = astOf(reduce === "sum" ? x.sum(1) : x.max(1));
      const red = kernelAxes(ast).find((a) => a.reduce)!,
        out = kernelAxes(ast).find((a) => a.output);
      const opts: Opt[] = [{ op, axis: red.id, amount }];
      if (out && out.size! % 2 === 0) opts.push({ op: OptOps.LOCAL, axis: out.id, amount: 2 });
      await assertSame(ast, opts, `${reduce} ${shape} ${OptOps[op]} ${amount}`);
    }
  }
});

Deno.test("a full reduction over GROUP threads, and GROUP after UNROLL", async () => {
  const ast = astOf(Tensor.rand([32, 64], js).mul(2).sum());
  const red = kernelAxes(ast).filter((a) => a.reduce);
  const last = red.at(-1)!;
  await assertSame(ast, [{ op: OptOps.GROUP, axis: last.id, amount: 32 }], "sum GROUP");
  await assertSame(
    ast,
    [{ op: OptOps.UNROLL, axis: last.id, amount: 4 }, {
      op: OptOps.GROUP,
      axis: last.id,
      amount: 16,
    }],
    "sum UNROLL+GROUP",
  );
});

Deno.test("LOCAL and UPCAST tile a matmul; GROUP splits its reduce", async () => {
  const ast = astOf(Tensor.rand([16, 48], js).matmul(Tensor.rand([48, 24], js)));
  const axes = kernelAxes(ast);
  const [m, n] = axes.filter((a) => a.output), k = axes.find((a) => a.reduce)!;
  await assertSame(ast, [
    { op: OptOps.LOCAL, axis: n.id, amount: 8 },
    { op: OptOps.LOCAL, axis: m.id, amount: 4 },
    { op: OptOps.UPCAST, axis: n.id, amount: 3 },
  ], "matmul LOCAL+UPCAST");
  await assertSame(ast, [
    { op: OptOps.GROUPTOP, axis: k.id, amount: 4 },
    { op: OptOps.LOCAL, axis: n.id, amount: 4 },
    { op: OptOps.UPCAST, axis: m.id, amount: 2 },
  ], "matmul GROUPTOP+LOCAL+UPCAST");
});

Deno.test("PADTO grows output and reduce axes and gates the extra iterations", async () => {
  const ast = astOf(Tensor.rand([13, 37], js).matmul(Tensor.rand([37, 11], js)));
  const axes = kernelAxes(ast);
  const [m, n] = axes.filter((a) => a.output), k = axes.find((a) => a.reduce)!;
  await assertSame(ast, [
    { op: OptOps.PADTO, axis: n.id, amount: 4 },
    { op: OptOps.UPCAST, axis: n.id, amount: 4 },
    { op: OptOps.PADTO, axis: k.id, amount: 8 },
    { op: OptOps.UNROLL, axis: k.id, amount: 8 },
    { op: OptOps.PADTO, axis: m.id, amount: 16 },
    { op: OptOps.LOCAL, axis: m.id, amount: 16 },
  ], "matmul PADTO");
  // a max pads with -inf, not 0: all-negative rows stay negative
  const mx = astOf(Tensor.rand([5, 29], js).realize().sub(2).max(1));
  const r = kernelAxes(mx).find((a) => a.reduce)!;
  await assertSame(mx, [
    { op: OptOps.PADTO, axis: r.id, amount: 8 },
    { op: OptOps.GROUP, axis: r.id, amount: 8 },
  ], "max PADTO+GROUP");
});

Deno.test("LOCAL, GROUP and PADTO reject what does not fit, naming why", () => {
  const ast = astOf(Tensor.rand([6, 10], js).sum(1));
  const out = kernelAxes(ast).find((a) => a.output)!, red = kernelAxes(ast).find((a) => a.reduce)!;
  const why = (opts: Opt[]) => {
    try {
      withOpts(ast, opts);
    } catch (e) {
      assert.ok(e instanceof OptError, String(e));
      return e.message;
    }
    return assert.fail(`${JSON.stringify(opts)} applied`);
  };
  assert.match(why([{ op: OptOps.LOCAL, axis: red.id, amount: 2 }]), /needs an output/);
  assert.match(why([{ op: OptOps.GROUP, axis: out.id, amount: 2 }]), /needs a reduce axis/);
  assert.match(why([{ op: OptOps.GROUP, axis: red.id, amount: 3 }]), /not a multiple/);
  assert.match(why([{ op: OptOps.PADTO, axis: red.id, amount: 5 }]), /already a multiple/);
  assert.match(why([{ op: OptOps.PADTO, axis: out.id, amount: 16 }]), /more than double/);
  const big = astOf(Tensor.rand([64, 64], js).sum(1));
  const [o2, r2] = [kernelAxes(big).find((a) => a.output)!, kernelAxes(big).find((a) => a.reduce)!];
  assert.match(
    (() => {
      try {
        withOpts(big, [
          { op: OptOps.LOCAL, axis: o2.id, amount: 32 },
          { op: OptOps.GROUP, axis: r2.id, amount: 64 },
        ]);
      } catch (e) {
        return (e as Error).message;
      }
      return "";
    })(),
    /more than 1024 threads/,
  );
});

Deno.test("a grouped reduce in CUDA: shared memory, a barrier, one writer per group", () => {
  const ast = astOf(Tensor.rand([8, 512], js).sum(1));
  const red = kernelAxes(ast).find((a) => a.reduce)!;
  const p = toProgram(withOpts(ast, [{ op: OptOps.GROUP, axis: red.id, amount: 32 }]), "cuda");
  assert.match(p.src, /__shared__ float smem0\[32\];/);
  assert.match(p.src, /__syncthreads\(\);/);
  assert.match(p.src, /if \(\(lidx0<1\)\) data0\[gidx0\] = /);
  assert.deepEqual([p.globalSize, p.localSize], [[8, 1, 1], [32, 1, 1]]);
  const w = toProgram(withOpts(ast, [{ op: OptOps.GROUP, axis: red.id, amount: 32 }]), "wgsl");
  assert.match(w.src, /var<workgroup> smem0: array<f32, 32>;/);
  assert.match(w.src, /workgroupBarrier\(\);/);
  assert.equal(dtypes.float32.itemsize, 4);
});

Deno.test("WEBGPU on llvmpipe refuses kernels past its silent loop limit; the heuristic groups", async () => {
  assert.equal(loopCap("llvmpipe (LLVM 15.0.6, 256 bits)"), 65535);
  assert.equal(loopCap("NVIDIA H100"), null);
  const ast = astOf(Tensor.rand([70000], js).sum());
  assert.ok(toProgram(withOpts(ast, []), "wgsl").loopIterations! >= 70000);
  const grouped = toProgram(ast, "wgsl");
  assert.ok(grouped.loopIterations! < 65535, `${grouped.loopIterations} iterations after GROUP`);
  if (!DEVICES.some(([d]) => d === "WEBGPU")) return;
  const desc = Device.get("WEBGPU").info().name;
  if (loopCap(desc) === null) return;
  assert.throws(
    () => Device.get("WEBGPU").compile(toProgram(withOpts(ast, []), "wgsl")),
    /silently stops loops after 65535/,
  );
  const d = Float32Array.from({ length: 1 << 18 }, (_, i) => (i % 7) * 0.25);
  const x = Tensor.from(d, { device: "WEBGPU" }).reshape([512, 512]);
  const want = d.reduce((a, b) => a + b, 0);
  assert.equal((await x.sum(1).sum().data())[0], want);
});
