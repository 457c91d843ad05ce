// BEAM (src/opt/beam.ts): the search returns an opt list that applies, whose kernel computes
// what the unoptimized one does on CPU and JS; a second search of the same kernel comes from the
// disk cache (a temp CACHEDIR) and times nothing.
import assert from "node:assert/strict";
import { Tensor } from "../mod.ts";
import type { UOp } from "../src/uop/ops.ts";
import { toProgram } from "../src/codegen/index.ts";
import { Buffer, Device } from "../src/runtime/device.ts";
import { CpuDevice } from "../src/runtime/cpu.ts";
import { applyOpt } from "../src/opt/opts.ts";
import { handCodedOpts, withOpts } from "../src/opt/heuristic.ts";
import { beamSearch, beamStats, candidateOpts, timingBuffers } from "../src/opt/beam.ts";

function run(ast: UOp, dev: string, lang: "js" | "c"): Float32Array {
  const spec = toProgram(ast, lang, { checkBounds: true });
  const bufs = spec.bufs.map((b, s) => {
    const buf = new Buffer(dev, b.dtype, b.size);
    buf.copyin(Float32Array.from({ length: b.size }, (_, i) => Math.sin(i * 0.37 + s)));
    return buf;
  });
  Device.get(dev).compile(spec).run(bufs.map((b) => b.handle), []);
  const out = bufs[0].toTypedArraySync() as Float32Array;
  for (const b of bufs) b.free();
  return out;
}

Deno.test("BEAM picks a valid opt list, equal to the plain kernel, cached on disk", () => {
  const dir = Deno.makeTempDirSync({ prefix: "tg-beam-test-" });
  try {
    const a = Tensor.rand([32, 48], { device: "CPU" }),
      b = Tensor.rand([48, 64], { device: "CPU" });
    const ast = a.matmul(b).schedule().at(-1)!.ast;
    assert.ok(candidateOpts(ast).length > 5);
    const before = { ...beamStats };
    const opts = beamSearch(ast, "c", {
      width: 2,
      timeLimit: 4,
      cacheDir: dir,
      seed: handCodedOpts(ast),
    });
    assert.equal(beamStats.searched, before.searched + 1);
    assert.ok(beamStats.timed > before.timed + 5, "it timed candidates");
    opts.reduce(applyOpt, ast); // applies without OptError
    for (const [dev, lang] of [["CPU", "c"], ["JS", "js"]] as const) {
      const want = run(withOpts(ast, []), dev, lang), got = run(withOpts(ast, opts), dev, lang);
      for (let i = 0; i < want.length; i++) {
        assert.ok(
          Math.abs(got[i] - want[i]) <= 1e-4 * Math.max(1, Math.abs(want[i])),
          `${dev} ${i}`,
        );
      }
    }
    const timed = beamStats.timed;
    // the cache is keyed by where the search starts too: the same seed finds the entry
    const again = beamSearch(ast, "c", {
      width: 2,
      timeLimit: 4,
      cacheDir: dir,
      seed: handCodedOpts(ast),
    });
    assert.deepEqual(again, opts);
    assert.equal(beamStats.timed, timed, "the second search timed nothing");
    assert.equal(beamStats.cacheHits, before.cacheHits + 1);
    assert.ok([...Deno.readDirSync(dir)].some((e) => e.name.startsWith("beam-")));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("BEAM times kernels on buffers holding values a real input would, not pooled leftovers", () => {
  const x = Tensor.rand([64, 64], { device: "CPU" }).realize();
  // leave a freed buffer of the right size holding infinities in the pool
  const junk = x.log().sub(x.log()).div(0).realize();
  junk.dispose();
  const ast = x.softmax(-1).schedule().at(-1)!.ast;
  const bufs = timingBuffers("CPU", ast, "c")!;
  try {
    for (const b of bufs) {
      const v = b.toTypedArraySync() as Float32Array;
      assert.ok(v.every((e) => e >= 0 && e < 1), "floats in [0, 1)");
      assert.ok(v.some((e) => e !== 0), "not all zero");
    }
  } finally {
    for (const b of bufs) b.free();
  }
});

Deno.test("the CPU compiles a round of candidates side by side into its cache; a bad one spoils none", () => {
  const dir = Deno.makeTempDirSync({ prefix: "tg-precompile-test-" });
  try {
    const dev = new CpuDevice({ cacheDir: dir });
    const a = Tensor.rand([16, 24], { device: "CPU" }),
      b = Tensor.rand([24, 32], { device: "CPU" });
    const ast = a.matmul(b).schedule().at(-1)!.ast;
    const lists = candidateOpts(ast).slice(0, 5).map((o) => [o]);
    const specs = lists.map((opts) => toProgram(withOpts(ast, opts), "c"));
    const bad = { ...specs[0], name: "broken", src: "this is not C" };
    const before = dev.stats.compiled;
    dev.precompile([...specs, bad]);
    assert.equal(dev.stats.compiled - before, new Set(specs.map((s) => s.src)).size);
    const hits = dev.stats.diskHits;
    for (const s of specs) dev.compile(s); // each found on disk, none compiled again
    assert.equal(dev.stats.diskHits - hits, new Set(specs.map((s) => s.src)).size);
    assert.equal(dev.stats.compiled - before, new Set(specs.map((s) => s.src)).size);
    assert.throws(() => dev.compile(bad), /compile of kernel 'broken' failed/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
