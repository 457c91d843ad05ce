// The TC opt without a GPU: it rebuilds float16/bfloat16 matmuls of mma-divisible shapes around
// one warp per 16x8 tile (the PTX fragment layouts cover each tile's a, b and c elements exactly
// once), rejects what it cannot do with the reason, the CUDA heuristic picks it, other
// renderers refuse WMMA, and the CUDA source compiles with nvcc for sm_90 (skipped without
// nvcc). tests/gpu/tc_test.ts checks the numbers on a GPU.
import assert from "node:assert/strict";
import { type DType, dtypes, Tensor } from "../mod.ts";
import { Ops, type UOp } from "../src/uop/ops.ts";
import { lowerKernel, toProgram } from "../src/codegen/index.ts";
import { kernelAxes, type Opt, OptError, OptOps } from "../src/opt/opts.ts";
import { withOpts } from "../src/opt/heuristic.ts";
import { gpuOpts } from "../src/opt/heuristic_gpu.ts";
import { CUDA_LIMITS } from "../src/codegen/gpudims.ts";
import { AMD_LIMITS } from "../src/renderer/hip.ts";
import { findNvcc, nvccCubin } from "./support/nvcc.ts";
import { evalInt } from "./support/eval_index.ts";

const half = (shape: number[], dt: DType) => Tensor.rand(shape).cast(dt).realize();
const astOf = (t: Tensor): UOp => t.schedule().at(-1)!.ast;
const matmul = (m: number, k: number, n: number, dt: DType) =>
  astOf(half([m, k], dt).matmul(half([k, n], dt)));
const tcOpt = (ast: UOp): Opt => ({
  op: OptOps.TC,
  axis: kernelAxes(ast).find((a) => a.reduce)!.id,
  amount: 16,
});

/** the buffer index a LOAD (through casts) reads */
const loadIndex = (u: UOp): UOp => (u.op === Ops.CAST ? loadIndex(u.src[0]) : u.src[0].src[1]);

Deno.test("TC on an f16 and a bf16 matmul: one warp per 16x8 tile, every element once", () => {
  const [M, K, N] = [32, 48, 16];
  for (const dt of [dtypes.float16, dtypes.bfloat16]) {
    const ast = matmul(M, K, N, dt);
    const { sink, dims } = lowerKernel(withOpts(ast, [tcOpt(ast)]), {}, "cuda");
    assert.deepEqual([dims!.globalSize, dims!.localSize], [[N / 8, M / 16, 1], [32, 1, 1]]);
    const topo = sink.toposort();
    const wmmas = topo.filter((u) => u.op === Ops.WMMA);
    assert.equal(wmmas.length, 4, "the 4 accumulator elements of one mma");
    assert.ok(wmmas.every((w) => w.src.slice(0, 12).every((s, i) => s === wmmas[0].src[i])));
    assert.deepEqual(wmmas.map((w) => w.src[12].arg).sort(), [0, 1, 2, 3]);
    const stores = topo.filter((u) =>
      u.op === Ops.STORE && u.src[0].src[0].op === Ops.DEFINE_GLOBAL
    );
    assert.equal(stores.length, 4);
    const range = topo.find((u) => u.op === Ops.RANGE)!; // the loop over k slices
    const specials = topo.filter((u) => u.op === Ops.SPECIAL);
    const byName = (n: string) => specials.find((s) => s.arg === n)!;
    // every (block, lane, k slice): which A[m,k], B[k,n] go in, and which C[m,n] come out
    const seenA = new Map<number, number>(), seenB = new Map<number, number>();
    const seenC = new Uint8Array(M * N);
    for (let by = 0; by < M / 16; by++) {
      for (let bx = 0; bx < N / 8; bx++) {
        for (let ks = 0; ks < K / 16; ks++) {
          const tileA = new Set<number>(), tileB = new Set<number>();
          for (let lane = 0; lane < 32; lane++) {
            const env = new Map<UOp, number>([
              [byName("gidx1"), by],
              [byName("gidx0"), bx],
              [byName("lidx0"), lane],
              [range, ks],
            ]);
            const a = wmmas[0].src.slice(0, 8).map((s) => evalInt(loadIndex(s), env));
            const b = wmmas[0].src.slice(8, 12).map((s) => evalInt(loadIndex(s), env));
            a.forEach((i) => tileA.add(i)), b.forEach((i) => tileB.add(i));
            // c element u is the dot product of a row and b column: check it on the ISA layout
            const g = lane >> 2, t = lane & 3;
            for (let e = 0; e < 8; e++) {
              const row = by * 16 + g + 8 * ((e >> 1) & 1),
                k = ks * 16 + 2 * t + (e & 1) + 8 * +(e >= 4);
              assert.equal(a[e], row * K + k, `a element ${e} of lane ${lane}`);
            }
            for (let e = 0; e < 4; e++) {
              const k = ks * 16 + 2 * t + (e & 1) + 8 * +(e >= 2);
              assert.equal(b[e], k * N + bx * 8 + g, `b element ${e} of lane ${lane}`);
            }
            if (ks > 0) continue;
            for (const st of stores) {
              const u = wmmaOf(st.src[1]).src[12].arg as number;
              const i = evalInt(st.src[0].src[1], env);
              assert.equal(i, (by * 16 + g + 8 * (u >> 1)) * N + bx * 8 + 2 * t + (u & 1));
              assert.equal(seenC[i]++, 0, `output ${i} stored twice`);
            }
          }
          assert.equal(tileA.size, 256, "the warp reads a 16x16 tile of A");
          assert.equal(tileB.size, 128, "the warp reads a 16x8 tile of B");
          for (const i of tileA) seenA.set(i, (seenA.get(i) ?? 0) + 1);
          for (const i of tileB) seenB.set(i, (seenB.get(i) ?? 0) + 1);
        }
      }
    }
    assert.equal(seenC.reduce((x, y) => x + y, 0), M * N, "every output stored");
    assert.equal(seenA.size, M * K);
    assert.ok([...seenA.values()].every((c) => c === N / 8), "each A element once per n tile");
    assert.equal(seenB.size, K * N);
    assert.ok([...seenB.values()].every((c) => c === M / 16), "each B element once per m tile");
  }
});

/** the WMMA under a stored value (a CAST, the accumulator's LOAD, its update) */
function wmmaOf(v: UOp): UOp {
  const w = v.toposort().find((u) => u.op === Ops.WMMA);
  assert.ok(w, "a stored value comes from a WMMA");
  return w;
}

Deno.test("TC is rejected with the reason for float32, shapes that do not fit, and non-matmuls", () => {
  const reject = (ast: UOp, opt: Opt, why: RegExp) => {
    assert.throws(() => withOpts(ast, [opt]), (e) => e instanceof OptError && why.test(e.message));
  };
  const f32 = astOf(Tensor.rand([32, 32]).matmul(Tensor.rand([32, 16])));
  reject(f32, tcOpt(f32), /float16 or bfloat16 factors, got float32 \* float32/);
  const odd = matmul(20, 32, 16, dtypes.float16);
  reject(odd, tcOpt(odd), /M=20, N=16, K=32 do not fit m16n8k16/);
  const oddK = matmul(32, 24, 16, dtypes.float16);
  reject(oddK, tcOpt(oddK), /K=24 do not fit/);
  const sum = astOf(half([32, 64], dtypes.float16).sum(1));
  reject(sum, tcOpt(sum), /not of a product/);
  const add = astOf(half([32, 64], dtypes.float16).add(1));
  reject(add, { op: OptOps.TC, axis: 0, amount: 16 }, /not a sum/);
  const mm = matmul(32, 32, 16, dtypes.float16);
  reject(mm, { ...tcOpt(mm), amount: 8 }, /the mma's K, 16 \(m16n8k16\), or the k of one .* 32/);
  const n = kernelAxes(mm).find((a) => a.output)!;
  assert.throws(
    () => withOpts(mm, [{ op: OptOps.UPCAST, axis: n.id, amount: 2 }, tcOpt(mm)]),
    /TC must be the first opt/,
  );
});

Deno.test("the CUDA heuristic puts 16-bit matmuls on tensor cores (not float32, not HIP)", () => {
  const mm = matmul(64, 64, 32, dtypes.bfloat16);
  const opts = gpuOpts(mm, CUDA_LIMITS);
  assert.deepEqual(opts[0], tcOpt(mm));
  assert.ok(opts.slice(1).every((o) => o.op === OptOps.UPCAST && o.amount === 2));
  const p = toProgram(mm, "cuda");
  assert.match(p.src, /mma\.sync\.aligned\.m16n8k16\.row\.col\.f32\.bf16\.bf16\.f32/);
  assert.deepEqual(p.localSize, [32, 1, 1]);
  assert.ok(!gpuOpts(mm, AMD_LIMITS).some((o) => o.op === OptOps.TC));
  const f32 = astOf(Tensor.rand([64, 64]).matmul(Tensor.rand([64, 32])));
  assert.ok(!gpuOpts(f32, CUDA_LIMITS).some((o) => o.op === OptOps.TC));
});

Deno.test("renderers other than CUDA refuse tensor cores", () => {
  const mm = matmul(32, 32, 16, dtypes.float16);
  const opt = withOpts(mm, [tcOpt(mm)]);
  for (const lang of ["c", "js", "hip"] as const) {
    assert.throws(
      () => toProgram(opt, lang),
      /tensor cores \(WMMA\) render only for CUDA and HIP/,
      lang,
    );
  }
});

const nvcc = findNvcc();
if (!nvcc) console.log("tc_test: nvcc not found: SKIPPING the sm_90 compile check");

Deno.test({
  name: "tensor-core matmuls in float16 and bfloat16 compile with nvcc -cubin -arch=sm_90",
  ignore: nvcc === null,
  fn: async () => {
    const ps = [dtypes.float16, dtypes.bfloat16].flatMap((dt) => {
      const mm = matmul(64, 32, 32, dt);
      return [toProgram(withOpts(mm, [tcOpt(mm)]), "cuda"), toProgram(mm, "cuda")];
    });
    // extern "C" names are global: each kernel renamed to stay unique
    const src = ps.map((p, i) =>
      `namespace tg${i} {\n${p.src.replaceAll(p.name, `k${i}_${p.name}`)}}\n`
    )
      .join("");
    // 64x32 outputs: the heuristic gives each warp a 2x4 block of tiles (2x2, then 2 more)
    assert.equal(src.match(/mma\.sync/g)?.length, 1 + 8 + 1 + 8, "TC alone, TC with a 2x4 tile");
    const { ok, log } = await nvccCubin(nvcc!, src);
    assert.ok(ok, `nvcc failed:\n${log}\n${src}`);
  },
});
