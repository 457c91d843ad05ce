// Wide loads on CUDA (src/renderer/wide_loads.ts): consecutive aligned loads of one buffer read
// as one 4/8/16-byte word, misaligned or gated ones stay scalar; tensor-core matmuls read their
// b fragments 16 bytes at a time and add into their accumulators; the sources compile with nvcc.
// (Their results are checked on the GPU machine: tests/gpu/.)
import assert from "node:assert/strict";
import { dtypes, Tensor } from "../mod.ts";
import { lowerKernel, toProgram } from "../src/codegen/index.ts";
import { Ops, type UOp } from "../src/uop/ops.ts";
import { linSum } from "../src/uop/symbolic.ts";
import {
  matrixFragment,
  matrixRowStart,
  planWideLoads,
  planWideStores,
} from "../src/renderer/wide_loads.ts";
import { evalInt } from "./support/eval_index.ts";
import { kernelAxes, OptOps } from "../src/opt/opts.ts";
import { withOpts } from "../src/opt/heuristic.ts";
import { STAGED } from "../src/opt/tc.ts";
import { findNvcc, nvccCubin } from "./support/nvcc.ts";

const cuda = (t: Tensor): string => toProgram(t.schedule().at(-1)!.ast, "cuda").src;
const count = (src: string, re: RegExp): number => (src.match(re) ?? []).length;

const js = (shape: number[], dtype = dtypes.float32) =>
  Tensor.empty(shape, { device: "JS", dtype });

/** the matmul's kernel with the staged TC (src/opt/tc.ts STAGED: padded rows, register copies) */
const staged = (t: Tensor): UOp => {
  const ast = t.schedule().at(-1)!.ast;
  const axis = kernelAxes(ast).find((a) => a.reduce)!.id;
  return withOpts(ast, [{ op: OptOps.TC, axis, amount: STAGED.bk }]);
};

Deno.test("aligned consecutive loads become one wide load; a misaligned input stays scalar", () => {
  const a = js([4096, 4096]), b = js([4096, 4096]), odd = js([4096, 4097]);
  const aligned = cuda(a.add(b));
  assert.equal(count(aligned, /const uint2 wide\d+ = \*\(\(const uint2\*\)&data[12]\[/g), 2);
  assert.equal(count(aligned, /= data[12]\[/g), 0, aligned);
  // rows of 4097 floats: the second element of a pair starts at an odd index
  const shifted = cuda(odd.shrink([null, [1, 4097]]).add(b));
  assert.equal(count(shifted, /&data1\[/g), 0, shifted);
  assert.equal(count(shifted, /&data2\[/g), 1, shifted);
});

Deno.test("every wide word is aligned: its element indexes start at a multiple of its width", () => {
  const cases = [
    js([4096, 4096], dtypes.float16).matmul(js([4096, 4096], dtypes.float16)),
    js([64, 4097]).shrink([null, [1, 4097]]).add(js([64, 4096])),
    js([2048, 2048]).mul(2).add(js([2048, 2048])),
  ];
  let total = 0;
  for (const t of cases) {
    const { lin } = lowerKernel(t.schedule().at(-1)!.ast, {}, "cuda");
    const words = planWideLoads(lin);
    total += words.size;
    for (const w of new Set(words.values())) {
      const ks = w.loads.map((l: UOp) => linSum(l.src[0].src[1])!);
      const width = w.loads.length;
      assert.equal(w.bytes, width * w.loads[0].dtype.itemsize);
      assert.equal(((ks[0].k % width) + width) % width, 0, "the word starts aligned");
      ks.forEach((s, i) => {
        assert.equal(s.k, ks[0].k + i, "elements are consecutive");
        // (a clamp's MAX of negations has a negative coefficient: -0 is aligned too)
        for (const c of s.coefs) assert.equal(Math.abs(c % width), 0, "every term keeps alignment");
      });
      assert.ok(w.loads.every((l: UOp) => l.src[0].src.length === 2), "no gated load");
    }
  }
  assert.ok(total > 0, "some loads were widened");
});

Deno.test("padded (gated) loads stay scalar", () => {
  const src = cuda(js([1024, 1024]).pad([[0, 0], [1, 1]]).add(1));
  assert.equal(count(src, /wide\d+ =/g), 0, src);
});

Deno.test("a tensor-core matmul loads b 16 bytes and a 4 bytes at a time, adding into its accumulators", () => {
  // N = 192 is no multiple of the staged block tile (128): fragments come from global memory
  const t = js([256, 512], dtypes.float16).matmul(js([512, 192], dtypes.float16));
  const src = cuda(t);
  assert.ok(count(src, /const uint4 wide\d+ = \*\(\(const uint4\*\)&data2\[/g) >= 4, src);
  assert.ok(count(src, /const unsigned wide\d+ = \*\(\(const unsigned\*\)&data1\[/g) >= 4, src);
  assert.equal(count(src, /mma\d+_0 = 0\.0f/g), 0, "no mma starts from zero");
  assert.ok(count(src, /mma\d+_0 = acc\d+/g) > 0);
  const lowered = lowerKernel(t.schedule().at(-1)!.ast, {}, "cuda").sink;
  const wmmas = lowered.toposort().filter((u) => u.op === Ops.WMMA);
  assert.ok(wmmas.length > 0 && wmmas.every((u) => u.src.length === 14));
});

Deno.test("a staged tensor-core matmul copies 16-byte words into shared memory and reads its fragments from there with ldmatrix", () => {
  // the staged kernel itself (the heuristic pipelines this shape with cp.async: tc_smem_test)
  const ast = staged(js([256, 512], dtypes.float16).matmul(js([512, 256], dtypes.float16)));
  const src = toProgram(ast, "cuda").src;
  const { lin } = lowerKernel(ast, {}, "cuda");
  const words = planWideLoads(lin), stores = planWideStores(lin, words);
  const local = (u: UOp) => u.src[0].src[0].op === Ops.DEFINE_LOCAL;
  const copies = lin.uops.filter((u) => u.op === Ops.STORE && local(u));
  assert.equal(copies.length, 2 * 4 * 8, "4 chunks of 8 elements of A and of B per thread");
  assert.ok(copies.every((u) => stores.get(u)?.word.bytes === 16), "every copy store is wide");
  assert.equal(new Set(stores.values()).size, 8);
  for (const w of new Set(stores.values())) {
    assert.ok(w.stores.every((s, i) => s.src[1] === w.word.loads[i]), "element i into element i");
    const ks = w.stores.map((s) => linSum(s.src[0].src[1])!);
    assert.equal(ks[0].k % 8, 0, "the word starts aligned");
    ks.forEach((s, i) => assert.equal(s.k, ks[0].k + i));
    for (const c of ks[0].coefs) assert.equal(c % 8, 0, "every term keeps the alignment");
  }
  assert.equal(count(src, /\*\(\(uint4\*\)&smem[01]\[[^\]]*\]\) = wide\d+;/g), 8, src);
  assert.equal(count(src, /__shared__ __align__\(16\) unsigned short smem[01]\[/g), 2);
  // per 16-wide k slice: one x4 ldmatrix per a fragment (4 m tiles), one x2 .trans per b
  // fragment (8 n tiles)
  assert.equal(
    count(src, /ldmatrix\.sync\.aligned\.m8n8\.x4\.shared\.b16 [^\n]*&smem0\[/g),
    4,
    src,
  );
  assert.equal(
    count(src, /ldmatrix\.sync\.aligned\.m8n8\.x2\.trans\.shared\.b16 [^\n]*&smem1\[/g),
    8,
  );
  // (the element loads it replaces stay, unused: src/renderer/cuda.ts says why)
});

Deno.test("ldmatrix hands every lane of a staged tensor-core matmul the fragment elements its loads name", () => {
  const ast = staged(js([256, 512], dtypes.float16).matmul(js([512, 256], dtypes.float16)));
  const { lin } = lowerKernel(ast, {}, "cuda");
  const wmmas = lin.uops.filter((u) => u.op === Ops.WMMA);
  assert.equal(wmmas.length, 4 * 8 * 4, "4x8 mma tiles of 4 elements");
  // the other thread indexes and the loops at arbitrary values in range
  const env0 = new Map<UOp, number>();
  let seed = 7;
  for (const u of lin.uops) {
    if (u.op === Ops.SPECIAL || u.op === Ops.RANGE) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      env0.set(u, seed % (Number(u.vmax) + 1));
    }
  }
  let checked = 0;
  for (const w of wmmas) {
    for (const [from, n] of [[0, 8], [8, 4]]) {
      const loads = w.src.slice(from, from + n), f = matrixFragment(loads);
      assert.ok(f, `operand ${from ? "b" : "a"} is read by ldmatrix`);
      const at = (e: number, L: number) =>
        evalInt(loads[e].src[0].src[1], new Map([...env0, [f.lane, L]]));
      // the row that lane R gives for matrix j: evaluated with the lane at R
      const row = (R: number): number => matrixRowStart(f, at(0, R), R);
      for (let L = 0; L < 32; L++) {
        for (let e = 0; e < n; e++) {
          const j = e >> 1, h = e & 1;
          // x4: matrix j's rows come from lanes 8j..8j+7; lane L gets row L/4, columns 2(L%4)+h.
          // .trans: lane L gets row 2(L%4)+h, column L/4
          const got: number = f.trans
            ? row(8 * j + 2 * (L & 3) + h) + (L >> 2)
            : row(8 * j + (L >> 2)) + 2 * (L & 3) + h;
          assert.equal(got, at(e, L), `lane ${L} element ${e}`);
          checked++;
        }
      }
    }
  }
  assert.equal(checked, wmmas.length * 32 * 12);
});

Deno.test("kernels with wide loads compile with nvcc -cubin -arch=sm_90", async (t) => {
  const nvcc = findNvcc();
  if (!nvcc) {
    console.log("nvcc not found: compile check skipped");
    return;
  }
  const kernels = {
    "f32 add": js([4096, 4096]).add(js([4096, 4096])),
    "f16 tc matmul": js([256, 512], dtypes.float16).matmul(js([512, 256], dtypes.float16)),
    "bf16 tc matmul": js([128, 64], dtypes.bfloat16).matmul(js([64, 128], dtypes.bfloat16)),
    "f16 add": js([2048, 2048], dtypes.float16).add(js([2048, 2048], dtypes.float16)),
  };
  for (const [name, k] of Object.entries(kernels)) {
    await t.step(name, async () => {
      const r = await nvccCubin(nvcc, cuda(k));
      assert.ok(r.ok, r.log);
    });
  }
});

Deno.test("adjacent aligned stores of computed values are one packed word, written once", () => {
  const add = cuda(js([4096, 4096]).add(js([4096, 4096])));
  assert.equal(count(add, /\*\(\(uint2\*\)\(?&data0\[/g), 1, add);
  assert.equal(count(add, /^\s*data0\[/gm), 0, add);
  // a misaligned output (rows of 4097) stays element by element
  const odd = cuda(
    js([64, 4097]).shrink([null, [1, 4097]]).add(js([64, 4096])).pad([[0, 0], [
      0,
      1,
    ]]),
  );
  assert.equal(count(odd, /\*\(\((uint2|unsigned)\*\)\(?&data0\[/g), 0, odd);
  // a tensor-core lane's two adjacent outputs: one 4-byte store per pair
  const tc = cuda(js([256, 512], dtypes.float16).matmul(js([512, 256], dtypes.float16)));
  assert.ok(count(tc, /\*\(\(unsigned\*\)\(?&data0\[/g) > 0, tc);
  assert.equal(count(tc, /^\s*data0\[/gm), 0, "no scalar output store left");
});
