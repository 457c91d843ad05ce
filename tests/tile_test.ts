// TILE (src/opt/tile.ts): blocked output and reduce loops compute what the unoptimized kernel
// computes, on JS and CPU, for random shapes (non-divisible ones rejected with the reason), alone
// and combined with register tiles; reduces that are not stored sums refuse a reduce block.
import assert from "node:assert/strict";
import { Tensor } from "../mod.ts";
import { Ops, type UOp } from "../src/uop/ops.ts";
import { lowerKernel, toProgram } from "../src/codegen/index.ts";
import { Buffer, Device } from "../src/runtime/device.ts";
import { applyOpt, kernelAxes, type Opt, OptError, OptOps } from "../src/opt/opts.ts";
import { withOpts } from "../src/opt/heuristic.ts";
import { seededRandom } from "./support/fixtures.ts";

const astOf = (t: Tensor): UOp => t.schedule().at(-1)!.ast;

function run(ast: UOp, dev: string, lang: "js" | "c"): Float32Array {
  const spec = toProgram(ast, lang, { checkBounds: true });
  const r = seededRandom(3);
  const bufs = spec.bufs.map((b) => {
    const buf = new Buffer(dev, b.dtype, b.size);
    buf.copyin(Float32Array.from({ length: b.size }, () => r() * 2 - 1));
    return buf;
  });
  Device.get(dev).compile(spec).run(bufs.map((b) => b.handle), []);
  const out = bufs[0].toTypedArraySync() as Float32Array;
  for (const b of bufs) b.free();
  return out;
}

function assertSame(ast: UOp, opts: readonly Opt[], what: string): void {
  for (const [dev, lang] of [["JS", "js"], ["CPU", "c"]] as const) {
    const want = run(withOpts(ast, []), dev, lang), got = run(withOpts(ast, opts), dev, lang);
    for (let i = 0; i < want.length; i++) {
      if (!(Math.abs(got[i] - want[i]) <= 1e-4 * Math.max(1, Math.abs(want[i])))) {
        assert.fail(`${what} on ${dev}: element ${i} is ${got[i]}, unoptimized ${want[i]}`);
      }
    }
  }
}

const matmul = (m: number, k: number, n: number): UOp =>
  astOf(Tensor.rand([m, k], { device: "JS" }).matmul(Tensor.rand([k, n], { device: "JS" })));
const T = OptOps.TILE, U = OptOps.UPCAST, R = OptOps.UNROLL;

Deno.test("TILE on output and reduce axes matches the unoptimized matmul (random shapes)", () => {
  const r = seededRandom(11), dims = [4, 6, 8, 9, 12, 16, 20, 24];
  const pick = () => dims[Math.floor(r() * dims.length)];
  let applied = 0, rejected = 0;
  for (let t = 0; t < 6; t++) {
    const [m, k, n] = [pick(), pick(), pick()];
    const ast = matmul(m, k, n);
    const [i, j] = kernelAxes(ast).filter((a) => a.output),
      [kk] = kernelAxes(ast).filter((a) => a.reduce);
    const combos: Opt[][] = [
      [{ op: T, axis: j.id, amount: 4 }],
      [{ op: T, axis: kk.id, amount: 4 }],
      [{ op: T, axis: i.id, amount: 2 }, { op: T, axis: kk.id, amount: 2 }],
      [{ op: T, axis: j.id, amount: 4 }, { op: T, axis: kk.id, amount: 4 }],
      [
        { op: U, axis: j.id, amount: 2 },
        { op: U, axis: i.id, amount: 2 },
        { op: R, axis: kk.id, amount: 2 },
        { op: T, axis: j.id, amount: 2 },
        { op: T, axis: kk.id, amount: 2 },
      ],
    ];
    for (const opts of combos) {
      const what = `matmul ${m}x${k}x${n} ${opts.map((o) => `${OptOps[o.op]}(${o.amount})`)}`;
      try {
        opts.reduce(applyOpt, ast);
      } catch (e) {
        assert.ok(e instanceof OptError, `${what}: ${e}`);
        assert.match(e.message, /not a multiple|not smaller/, what);
        rejected++;
        continue;
      }
      assertSame(ast, opts, what);
      applied++;
    }
  }
  assert.ok(applied >= 10 && rejected >= 3, `applied ${applied}, rejected ${rejected}`);
});

Deno.test("TILE puts the block loops outward: output block outermost, reduce block inside it", () => {
  const ast = matmul(8, 12, 16);
  const [, j] = kernelAxes(ast).filter((a) => a.output),
    [k] = kernelAxes(ast).filter((a) => a.reduce);
  const opts: Opt[] = [{ op: T, axis: j.id, amount: 4 }, { op: T, axis: k.id, amount: 3 }];
  const lin = lowerKernel(withOpts(ast, opts)).lin;
  const loops = lin.uops.filter((u) => u.op === Ops.RANGE).map((u) => u.src[0].arg);
  // jb(4), kb(4), i(8), ji(4), ki(3)
  assert.deepEqual(loops, [4, 4, 8, 4, 3]);
  assertSame(ast, opts, "8x12x16 blocked");
});

Deno.test("TILE refuses what it cannot block, naming why", () => {
  const x = () => Tensor.rand([8, 8], { device: "JS" });
  const maxAst = astOf(x().max(1));
  const [red] = kernelAxes(maxAst).filter((a) => a.reduce);
  assert.throws(() => applyOpt(maxAst, { op: T, axis: red.id, amount: 2 }), /sum stored as is/);
  const expAst = astOf(x().sum(1).exp());
  const [r2] = kernelAxes(expAst).filter((a) => a.reduce);
  assert.throws(() => applyOpt(expAst, { op: T, axis: r2.id, amount: 2 }), /sum stored as is/);
  const ast = matmul(8, 12, 16);
  const [, j] = kernelAxes(ast).filter((a) => a.output);
  assert.throws(() => applyOpt(ast, { op: T, axis: j.id, amount: 16 }), /not smaller/);
  assert.throws(() => applyOpt(ast, { op: T, axis: j.id, amount: 5 }), /not a multiple/);
  assert.throws(() => applyOpt(ast, { op: T, axis: 99, amount: 2 }), /no LOOP or REDUCE axis/);
  // a sum tiled and stored as is stays exact for a float32 sum of rows
  const sumAst = astOf(x().sum(1));
  const [r3] = kernelAxes(sumAst).filter((a) => a.reduce);
  assert.equal(sumAst.src.length, 1);
  assertSame(sumAst, [{ op: T, axis: r3.id, amount: 2 }], "sum(1) blocked");
});
