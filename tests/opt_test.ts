// Kernel opts (src/opt/): every opt and combination the heuristic uses computes what the
// unoptimized kernel computes, on JS and CPU, for random shapes (non-divisible ones included);
// opts that do not fit are rejected with a reason; the heuristic tiles matmul kernels only.
import assert from "node:assert/strict";
import { Tensor } from "../mod.ts";
import { AxisType, Ops, UOp } from "../src/uop/ops.ts";
import { dtypes } from "../src/dtype.ts";
import { lowerKernel, toProgram } from "../src/codegen/index.ts";
import { Buffer, Device } from "../src/runtime/device.ts";
import { applyOpt, kernelAxes, MAX_COPIES, type Opt, OptError, OptOps } from "../src/opt/opts.ts";
import { handCodedOpts, matmulReduce, withOpts } from "../src/opt/heuristic.ts";
import { seededRandom } from "./support/fixtures.ts";

const DEVICES = [["JS", "js"], ["CPU", "c"]] as const;

const astOf = (t: Tensor): UOp => {
  const s = t.schedule();
  assert.equal(s.length, 1, "one kernel");
  return s[0].ast;
};

/** run a kernel AST (opts already applied) on `dev` with random float32 inputs; slot 0 out */
function run(ast: UOp, dev: string, lang: "js" | "c", seed: number): Float32Array {
  const spec = toProgram(ast, lang, { checkBounds: true });
  const r = seededRandom(seed);
  const bufs = spec.bufs.map((b) => {
    assert.equal(b.dtype, dtypes.float32);
    const buf = new Buffer(dev, b.dtype, b.size);
    buf.copyin(Float32Array.from({ length: b.size }, () => r() * 2 - 1));
    return buf;
  });
  Device.get(dev).compile(spec).run(bufs.map((b) => b.handle), []);
  const out = bufs[0].toTypedArraySync() as Float32Array;
  for (const b of bufs) b.free();
  return out;
}

/** `opts` on `ast` computes what the plain kernel computes, on both renderers */
function assertSame(ast: UOp, opts: readonly Opt[], what: string): void {
  const opt = withOpts(ast, opts), plain = withOpts(ast, []);
  for (const [dev, lang] of DEVICES) {
    const want = run(plain, dev, lang, 7), got = run(opt, dev, lang, 7);
    for (let i = 0; i < want.length; i++) {
      const tol = 1e-5 * Math.max(1, Math.abs(want[i])) * 16;
      if (!(Math.abs(got[i] - want[i]) <= tol)) {
        assert.fail(`${what} on ${dev}: element ${i} is ${got[i]}, unoptimized ${want[i]}`);
      }
    }
  }
}

const axisOf = (ast: UOp, pick: (a: ReturnType<typeof kernelAxes>[number]) => boolean) =>
  kernelAxes(ast).filter(pick);

const matmul = (m: number, k: number, n: number): UOp =>
  astOf(Tensor.rand([m, k], { device: "JS" }).matmul(Tensor.rand([k, n], { device: "JS" })));

Deno.test("UPCAST, UNROLL and their combinations match the unoptimized matmul (random shapes)", () => {
  const r = seededRandom(42);
  const dims = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16, 17, 24, 32];
  const pick = () => dims[Math.floor(r() * dims.length)];
  let applied = 0, rejected = 0;
  for (let t = 0; t < 5; t++) {
    const [m, k, n] = [pick(), pick(), pick()];
    const ast = matmul(m, k, n);
    const outs = axisOf(ast, (a) => a.output), reds = axisOf(ast, (a) => a.reduce);
    const inner = outs.at(-1), outer = outs.at(-2), red = reds.at(-1);
    const combos: Opt[][] = [];
    for (const a of [4, 2]) {
      if (inner) combos.push([{ op: OptOps.UPCAST, axis: inner.id, amount: a }]);
      if (outer) combos.push([{ op: OptOps.UPCAST, axis: outer.id, amount: a }]);
      if (red) combos.push([{ op: OptOps.UNROLL, axis: red.id, amount: a }]);
    }
    if (inner) combos.push([{ op: OptOps.UPCAST, axis: inner.id, amount: 8 }]);
    if (inner && outer && red) {
      for (const [x, y, z] of [[8, 4, 4], [4, 2, 2], [2, 2, 4]]) {
        combos.push([
          { op: OptOps.UPCAST, axis: inner.id, amount: x },
          { op: OptOps.UPCAST, axis: outer.id, amount: y },
          { op: OptOps.UNROLL, axis: red.id, amount: z },
        ]);
      }
    }
    combos.push(handCodedOpts(ast));
    for (const opts of combos) {
      const what = `matmul ${m}x${k}x${n} with ${
        opts.map((o) => `${OptOps[o.op]}(${o.axis},${o.amount})`).join(" ")
      }`;
      let ok = true;
      try {
        opts.reduce(applyOpt, ast);
      } catch (e) {
        assert.ok(e instanceof OptError, `${what}: ${e}`);
        const sizes = opts.map((o) => kernelAxes(ast).find((a) => a.id === o.axis)!.size!);
        // the only reason here: some size is not a multiple of its amount (after earlier splits)
        assert.match(e.message, /not a multiple/, what);
        assert.ok(opts.some((o, i) => sizes[i] % o.amount !== 0), what);
        ok = false;
        rejected++;
      }
      if (ok) {
        assertSame(ast, opts, what);
        applied++;
      }
    }
  }
  assert.ok(applied > 15 && rejected > 5, `applied ${applied}, rejected ${rejected}`);
});

Deno.test("opts on other kernels: upcast elementwise, unrolled sum and max, whole-axis splits", () => {
  const x = () => Tensor.rand([6, 8], { device: "JS" }),
    y = () => Tensor.rand([6, 8], { device: "JS" });
  const cases: [string, UOp][] = [
    ["add", astOf(x().add(y()))],
    ["sum(1)", astOf(x().sum(1))],
    ["max(1)", astOf(x().max(1))],
    ["sum(0)", astOf(x().sum(0))],
    ["sum()", astOf(x().reshape([48]).sum())],
  ];
  for (const [name, ast] of cases) {
    const axes = kernelAxes(ast);
    for (const a of axes) {
      for (const amount of [2, 4, 8, a.size!]) {
        if (amount < 2 || a.size! % amount !== 0) continue;
        const op = a.reduce ? OptOps.UNROLL : OptOps.UPCAST;
        assertSame(ast, [{ op, axis: a.id, amount }], `${name}: ${OptOps[op]}(${a.id},${amount})`);
      }
    }
  }
});

Deno.test("a whole axis upcast or unrolled leaves no loop for it", () => {
  const ast = matmul(4, 8, 8);
  const [i, j] = axisOf(ast, (a) => a.output), [k] = axisOf(ast, (a) => a.reduce);
  const opts: Opt[] = [
    { op: OptOps.UPCAST, axis: j.id, amount: 8 },
    { op: OptOps.UPCAST, axis: i.id, amount: 4 },
    { op: OptOps.UNROLL, axis: k.id, amount: 8 },
  ];
  const lin = lowerKernel(withOpts(ast, opts)).lin.uops;
  assert.equal(lin.filter((u) => u.op === Ops.RANGE).length, 0);
  assert.equal(
    lin.filter((u) => u.op === Ops.STORE && u.src[0].src[0].op === Ops.DEFINE_GLOBAL)
      .length,
    32,
  );
  assertSame(ast, opts, "4x8x8 fully unrolled");
});

Deno.test("opts that do not fit are rejected with the reason", () => {
  const ast = matmul(6, 10, 12);
  const [i, j] = axisOf(ast, (a) => a.output), [k] = axisOf(ast, (a) => a.reduce);
  const rejects: [Opt, RegExp][] = [
    [{ op: OptOps.UPCAST, axis: j.id, amount: 8 }, /size 12 is not a multiple/],
    [{ op: OptOps.UNROLL, axis: k.id, amount: 4 }, /size 10 is not a multiple/],
    [{ op: OptOps.UPCAST, axis: k.id, amount: 2 }, /UPCAST needs an output/],
    [{ op: OptOps.UNROLL, axis: i.id, amount: 2 }, /UNROLL needs a reduce axis/],
    [{ op: OptOps.UPCAST, axis: 99, amount: 2 }, /no splittable axis 99/],
    [{ op: OptOps.UPCAST, axis: i.id, amount: 1 }, /integer >= 2/],
    [{ op: OptOps.UPCAST, axis: i.id, amount: 2.5 }, /integer >= 2/],
  ];
  for (const [opt, why] of rejects) {
    assert.throws(
      () => applyOpt(ast, opt),
      (e: Error) => e instanceof OptError && why.test(e.message),
    );
  }
  // an axis already split into registers cannot be split again
  const up = applyOpt(ast, { op: OptOps.UPCAST, axis: j.id, amount: 4 });
  const inner = kernelAxes(up).find((a) => a.type === AxisType.UPCAST)!;
  assert.throws(() => applyOpt(up, { op: OptOps.UPCAST, axis: inner.id, amount: 2 }), OptError);
  // copies are bounded
  const big = matmul(64, 64, 64);
  const [bi, bj] = axisOf(big, (a) => a.output), [bk] = axisOf(big, (a) => a.reduce);
  assert.throws(
    () =>
      [
        { op: OptOps.UPCAST, axis: bj.id, amount: 16 },
        { op: OptOps.UPCAST, axis: bi.id, amount: 8 },
        { op: OptOps.UNROLL, axis: bk.id, amount: 4 },
      ].reduce(applyOpt, big),
    new RegExp(`more than ${MAX_COPIES} times`),
  );
  // a symbolic size cannot be split
  const n = UOp.variable("n", 1, 8), r = UOp.range(n, 0);
  const g = (slot: number) => UOp.make(Ops.DEFINE_GLOBAL, dtypes.float32, [], [slot, 8]);
  const at = (slot: number) => UOp.make(Ops.INDEX, dtypes.float32, [g(slot), r]);
  const st = UOp.make(Ops.STORE, dtypes.void, [at(0), UOp.make(Ops.LOAD, dtypes.float32, [at(1)])]);
  const sym = UOp.sink(UOp.make(Ops.END, dtypes.void, [st, r]));
  assert.throws(() => applyOpt(sym, { op: OptOps.UPCAST, axis: 0, amount: 2 }), /symbolic size/);
});

Deno.test("the heuristic tiles a matmul: 16-wide x 4 register tile, reduce a plain loop", () => {
  const ast = matmul(64, 32, 48);
  assert.ok(matmulReduce(ast));
  const [i, j] = axisOf(ast, (a) => a.output);
  assert.deepEqual(handCodedOpts(ast), [
    { op: OptOps.UPCAST, axis: j.id, amount: 16 },
    { op: OptOps.UPCAST, axis: i.id, amount: 4 },
  ]);
  // tiny kernels are left alone
  assert.deepEqual(handCodedOpts(matmul(4, 8, 8)), []);
  const lin = lowerKernel(ast).lin.uops;
  const loops = lin.filter((u) => u.op === Ops.RANGE).map((u) => u.src[0].arg);
  assert.deepEqual(loops, [16, 3, 32], `loops ${loops} (an unoptimized kernel has 64, 48, 32)`);
  assert.equal(lin.filter((u) => u.op === Ops.DEFINE_REG).length, 64);
  const src = toProgram(ast, "c").src;
  assert.equal(src.match(/for \(/g)!.length, 3);
  assert.equal(src.match(/data0\[[^\]]*\] = /g)!.length, 64);
  // loads of a (4 rows) and b (16 columns) per k, shared by the 64 accumulators
  assert.equal(src.match(/= data[12]\[/g)!.length, 4 + 16);
  // non-divisible sizes fall back to smaller tiles or none
  const odd = matmul(66, 7, 36);
  const [, oj] = axisOf(odd, (a) => a.output);
  assert.deepEqual(handCodedOpts(odd).map((o) => [o.axis, o.amount]), [[oj.id, 4], [
    axisOf(odd, (a) => a.output)[0].id,
    2,
  ]]);
});

Deno.test("the heuristic leaves other kernels alone", () => {
  const x = () => Tensor.rand([16, 16], { device: "JS" });
  for (
    const t of [x().add(x()), x().sum(1), x().max(1), x().exp().sum(0), x().sum(1).exp()]
  ) {
    const ast = astOf(t);
    assert.deepEqual(handCodedOpts(ast), []);
    assert.equal(toProgram(ast, "c").src, toProgram(withOpts(ast, []), "c").src);
  }
});

Deno.test("a long reduce is blocked by 16 under an 8x16 tile, and computes the plain sum", () => {
  const ast = matmul(16, 1024, 32);
  const [i, j] = axisOf(ast, (a) => a.output), [k] = axisOf(ast, (a) => a.reduce);
  const opts = handCodedOpts(ast);
  assert.deepEqual(opts.slice(0, 3), [
    { op: OptOps.UPCAST, axis: j.id, amount: 16 },
    { op: OptOps.UPCAST, axis: i.id, amount: 8 },
    { op: OptOps.TILE, axis: k.id, amount: 16 },
  ]);
  // then the block's own reduce loop unrolled by 2
  assert.deepEqual([opts[3].op, opts[3].amount, opts.length], [OptOps.UNROLL, 2, 4]);
  const loops = lowerKernel(ast).lin.uops.filter((u) => u.op === Ops.RANGE).map((u) =>
    u.src[0].arg
  );
  // i (2), the reduce block (64), j (2), k in the block (16, unrolled by 2: 8)
  assert.deepEqual(loops, [2, 64, 2, 8]);
  assertSame(ast, opts, "16x1024x32 heuristic");
  // a reduce that is not a stored sum is not blocked (TILE refuses it), the tile stays
  const half = astOf(
    Tensor.rand([16, 1024], { device: "JS", dtype: dtypes.float16 }).matmul(
      Tensor.rand([1024, 32], { device: "JS", dtype: dtypes.float16 }),
    ),
  );
  const hopts = handCodedOpts(half);
  assert.ok(hopts.length === 0 || hopts.every((o) => o.op !== OptOps.TILE || o.amount === 16));
});

Deno.test("the reduce heuristic (UNROLL, TILE, 8 rows at once) computes the plain sums and maxes", () => {
  const r = seededRandom(11);
  for (const [rows, cols] of [[64, 2048], [8, 1024], [24, 3072]]) {
    for (const kind of ["sum", "max", "exp sum"] as const) {
      const x = Tensor.rand([rows, cols], { device: "JS" }).realize();
      const t = kind === "sum" ? x.sum(1) : kind === "max" ? x.max(1) : x.exp().sum(1);
      const ast = astOf(t);
      const opts = handCodedOpts(ast);
      assert.ok(opts.some((o) => o.op === OptOps.UNROLL), `${kind} ${rows}x${cols}: unrolled`);
      assertSame(ast, opts, `${kind} ${rows}x${cols} (seed ${r()})`);
    }
  }
});

Deno.test("the heuristic tiles a padded convolution by output channels (not its padded columns), correctly", () => {
  for (const [c, k, hw] of [[3, 8, 12], [4, 16, 10]]) {
    const x = Tensor.rand([2, c, hw, hw], { device: "JS" }).realize();
    const w = Tensor.rand([k, c, 3, 3], { device: "JS" }).realize();
    const ast = astOf(x.conv2d(w, undefined, { padding: 1 }));
    assert.ok(matmulReduce(ast), "a convolution is matmul-like (padded loads count as loads)");
    const opts = handCodedOpts(ast);
    // axis 1 is the output channels ([batch, channels, rows, columns])
    assert.deepEqual(opts.map((o) => [OptOps[o.op], o.axis, o.amount]), [["UPCAST", 1, 8]]);
    assertSame(ast, opts, `conv ${c}->${k} ${hw}x${hw}`);
  }
});

Deno.test("LANES (per-lane accumulators) matches the unoptimized reduce: sums, maxes, a matmul", () => {
  const cases: [string, UOp][] = [
    ["row sum", astOf(Tensor.rand([5, 96], { device: "JS" }).sum(1))],
    ["row max", astOf(Tensor.rand([7, 64], { device: "JS" }).max(1))],
    ["full sum", astOf(Tensor.rand([48], { device: "JS" }).sum())],
    ["matmul", matmul(6, 32, 10)],
  ];
  for (const [what, ast] of cases) {
    const red = axisOf(ast, (a) => a.reduce)[0];
    for (const k of [2, 4, 8, 16]) {
      if (red.size! % k) continue;
      assertSame(ast, [{ op: OptOps.LANES, axis: red.id, amount: k }], `${what} LANES ${k}`);
      // every lane its own accumulator: k REDUCEs after expansion
      const lowered = lowerKernel(withOpts(ast, [{ op: OptOps.LANES, axis: red.id, amount: k }]));
      const accs = lowered.sink.toposort().filter((u) => u.op === Ops.DEFINE_REG).length;
      assert.ok(accs >= k, `${what} LANES ${k}: ${accs} accumulators`);
    }
  }
  // with UPCAST of the output axis too
  const sum = astOf(Tensor.rand([16, 64], { device: "JS" }).sum(1));
  const out = axisOf(sum, (a) => a.output)[0], red = axisOf(sum, (a) => a.reduce)[0];
  assertSame(sum, [
    { op: OptOps.UPCAST, axis: out.id, amount: 4 },
    { op: OptOps.LANES, axis: red.id, amount: 8 },
  ], "row sum UPCAST 4 + LANES 8");
  assert.throws(
    () => applyOpt(sum, { op: OptOps.LANES, axis: out.id, amount: 4 }),
    (e: unknown) => e instanceof OptError && /reduce axis/.test((e as Error).message),
  );
});
