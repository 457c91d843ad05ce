// TC on AMD matrix cores without an AMD GPU: the rebuilt kernel feeds RDNA3's WMMA and CDNA's
// MFMA exactly the A and B elements their operand layouts place in each lane and element (an
// index simulation of every product each output sums), rejects what it cannot do with the
// reason, the heuristic picks it for 16-bit matmuls on a known gfx target, and the HIP source
// compiles with amd_comgr for gfx1100 and gfx90a into code objects holding the instruction
// (skipped without amd_comgr). Nothing here ran on AMD hardware.
import assert from "node:assert/strict";
import { type DType, dtypes, Tensor } from "../mod.ts";
import { type AmdMmaKind, Ops, type UOp } from "../src/uop/ops.ts";
import { lowerKernel, toProgram } from "../src/codegen/index.ts";
import { kernelAxes, type Opt, OptError, OptOps } from "../src/opt/opts.ts";
import { withOpts } from "../src/opt/heuristic.ts";
import { gpuOpts } from "../src/opt/heuristic_gpu.ts";
import { AMD_TC_AMOUNT, amdTcKindFor } from "../src/opt/tc_amd.ts";
import { AMD_LIMITS } from "../src/renderer/hip.ts";
import { CUDA_LIMITS } from "../src/codegen/gpudims.ts";
import { comgrUnusable } from "./support/comgr.ts";
import { amdCompiler, codeObjectTarget } from "../src/runtime/amd_compile.ts";
import { evalInt } from "./support/eval_index.ts";

const half = (shape: number[], dt: DType) => Tensor.rand(shape).cast(dt).realize();
const astOf = (t: Tensor): UOp => t.schedule().at(-1)!.ast;
const matmul = (m: number, k: number, n: number, dt: DType) =>
  astOf(half([m, k], dt).matmul(half([k, n], dt)));
const tcOpt = (ast: UOp, kind: AmdMmaKind): Opt => ({
  op: OptOps.TC,
  axis: kernelAxes(ast).find((a) => a.reduce)!.id,
  amount: AMD_TC_AMOUNT[kind],
});
const loadIndex = (u: UOp): UOp => (u.op === Ops.CAST ? loadIndex(u.src[0]) : u.src[0].src[1]);

/**
 * Where the instruction keeps each matrix element: [lane, item] pairs, written as the AMD matrix
 * instruction calculator states them (independently of src/opt/tc_amd.ts's per-lane formulas).
 * RDNA3 v_wmma_f32_16x16x16_f16 (wave32): A[i][k] in lanes i and i+16, item k; B[k][j] in lanes
 * j and j+16, item k; D[i][j] in lane j + 16*(i%2), item i/2. CDNA v_mfma_f32_16x16x16f16
 * (wave64): A[i][k] in lane i + 16*(k/4), item k%4; B[k][j] in lane j + 16*(k/4), item k%4;
 * D[i][j] in lane j + 16*(i/4), item i%4.
 */
const ISA: Record<AmdMmaKind, {
  lanes: number;
  a: (i: number, k: number) => [number, number][];
  b: (k: number, j: number) => [number, number][];
  d: (i: number, j: number) => [number, number];
}> = {
  wmma_gfx11: {
    lanes: 32,
    a: (i, k) => [[i, k], [i + 16, k]],
    b: (k, j) => [[j, k], [j + 16, k]],
    d: (i, j) => [j + 16 * (i % 2), i >> 1],
  },
  mfma_gfx9: {
    lanes: 64,
    a: (i, k) => [[i + 16 * (k >> 2), k & 3]],
    b: (k, j) => [[j + 16 * (k >> 2), k & 3]],
    d: (i, j) => [j + 16 * (i >> 2), i & 3],
  },
};
const KINDS = Object.keys(ISA) as AmdMmaKind[];

/** the WMMA under a stored value (the accumulator's LOAD after its updates) */
function wmmaOf(v: UOp): UOp {
  const w = v.toposort().find((u) => u.op === Ops.WMMA);
  assert.ok(w, "a stored value comes from a WMMA");
  return w;
}

for (const kind of KINDS) {
  Deno.test(`TC ${kind}: every output sums A[m,k]*B[k,n] over every k exactly once`, () => {
    const [M, K, N] = [32, 48, 48], isa = ISA[kind];
    for (const dt of [dtypes.float16, dtypes.bfloat16]) {
      const ast = matmul(M, K, N, dt);
      const { sink, dims } = lowerKernel(withOpts(ast, [tcOpt(ast, kind)]), {}, "hip");
      assert.deepEqual([dims!.globalSize, dims!.localSize], [[N / 16, M / 16, 1], [
        isa.lanes,
        1,
        1,
      ]]);
      const topo = sink.toposort();
      const wmmas = topo.filter((u) => u.op === Ops.WMMA);
      const nA = kind === "wmma_gfx11" ? 16 : 4, nC = kind === "wmma_gfx11" ? 8 : 4;
      assert.equal(wmmas.length, nC, "one WMMA per accumulator element");
      const ops = (w: UOp) => w.src.slice(0, 2 * nA);
      assert.ok(wmmas.every((w) => ops(w).every((s, i) => s === ops(wmmas[0])[i])));
      const stores = topo.filter((u) =>
        u.op === Ops.STORE && u.src[0].src[0].op === Ops.DEFINE_GLOBAL
      );
      assert.equal(stores.length, nC);
      const range = topo.find((u) => u.op === Ops.RANGE)!; // the loop over k slices
      const specials = topo.filter((u) => u.op === Ops.SPECIAL);
      const byName = (n: string) => specials.find((s) => s.arg === n)!;
      // per output index: the (A index, B index) products it sums
      const sums = new Map<number, string[]>();
      for (let by = 0; by < M / 16; by++) {
        for (let bx = 0; bx < N / 16; bx++) {
          for (let ks = 0; ks < K / 16; ks++) {
            const env = (lane: number) =>
              new Map<UOp, number>([
                [byName("gidx1"), by],
                [byName("gidx0"), bx],
                [byName("lidx0"), lane],
                [range, ks],
              ]);
            const aAt = ([l, e]: [number, number]) => evalInt(loadIndex(wmmas[0].src[e]), env(l));
            const bAt = ([l, e]: [number, number]) =>
              evalInt(loadIndex(wmmas[0].src[nA + e]), env(l));
            const outAt = ([l, e]: [number, number]) => {
              const st = stores.find((s) => wmmaOf(s.src[1]).src[2 * nA].arg === e)!;
              return evalInt(st.src[0].src[1], env(l));
            };
            for (let i = 0; i < 16; i++) {
              for (let j = 0; j < 16; j++) {
                const out = outAt(isa.d(i, j));
                if (!sums.has(out)) sums.set(out, []);
                for (let k = 0; k < 16; k++) {
                  // every lane holding A[i][k] (RDNA3: two) reads the same element
                  const as = new Set(isa.a(i, k).map(aAt)), bs = new Set(isa.b(k, j).map(bAt));
                  assert.equal(as.size, 1, `A[${i}][${k}] differs across its lanes`);
                  assert.equal(bs.size, 1, `B[${k}][${j}] differs across its lanes`);
                  sums.get(out)!.push(`${[...as][0]}*${[...bs][0]}`);
                }
              }
            }
          }
        }
      }
      assert.equal(sums.size, M * N, "every output stored");
      for (let m = 0; m < M; m++) {
        for (let n = 0; n < N; n++) {
          const want = Array.from({ length: K }, (_, k) => `${m * K + k}*${k * N + n}`).sort();
          assert.deepEqual(sums.get(m * N + n)?.sort(), want, `C[${m}][${n}] (${dt.name})`);
        }
      }
    }
  });
}

Deno.test("AMD TC is rejected with the reason for float32, odd shapes, non-matmuls", () => {
  const reject = (ast: UOp, opt: Opt, why: RegExp) => {
    assert.throws(() => withOpts(ast, [opt]), (e) => e instanceof OptError && why.test(e.message));
  };
  for (const kind of KINDS) {
    const f32 = astOf(Tensor.rand([32, 32]).matmul(Tensor.rand([32, 16])));
    reject(f32, tcOpt(f32, kind), /float16 or bfloat16 factors, got float32 \* float32/);
    const odd = matmul(32, 32, 24, dtypes.float16);
    reject(odd, tcOpt(odd, kind), new RegExp(`N=24, K=32 do not fit ${kind} \\(16x16x16\\)`));
    const oddK = matmul(32, 40, 16, dtypes.float16);
    reject(oddK, tcOpt(oddK, kind), /K=40 do not fit .* multiples of 16/);
    const sum = astOf(half([32, 64], dtypes.float16).sum(1));
    reject(sum, tcOpt(sum, kind), /not of a product/);
  }
  const mm = matmul(32, 32, 16, dtypes.float16);
  reject(mm, { ...tcOpt(mm, "mfma_gfx9"), amount: 10 }, /on AMD 11 \(wmma_gfx11\) or 9/);
});

Deno.test("the GPU heuristic puts 16-bit matmuls on AMD matrix cores by gfx target", () => {
  const mm = matmul(64, 64, 32, dtypes.float16), bf = matmul(64, 64, 32, dtypes.bfloat16);
  for (const [arch, kind] of [["gfx1100", "wmma_gfx11"], ["gfx90a:sramecc+:xnack-", "mfma_gfx9"]]) {
    const opts = gpuOpts(mm, AMD_LIMITS, arch);
    assert.deepEqual(opts[0], tcOpt(mm, kind as AmdMmaKind), arch);
    assert.ok(opts.slice(1).every((o) => o.op === OptOps.UPCAST && o.amount === 2));
    assert.equal(gpuOpts(bf, AMD_LIMITS, arch)[0].amount, AMD_TC_AMOUNT[kind as AmdMmaKind]);
  }
  // no matrix cores (RDNA2), no bfloat16 MFMA (gfx908), no target, float32, CUDA's stays CUDA's
  const noTc = (ast: UOp, arch: string | null) =>
    !gpuOpts(ast, AMD_LIMITS, arch).some((o) => o.op === OptOps.TC);
  assert.ok(noTc(mm, "gfx1030") && noTc(mm, null) && noTc(bf, "gfx908"));
  assert.equal(amdTcKindFor("gfx908", false), "mfma_gfx9");
  assert.equal(amdTcKindFor("gfx942", true), "mfma_gfx9");
  assert.ok(noTc(astOf(Tensor.rand([64, 64]).matmul(Tensor.rand([64, 32]))), "gfx1100"));
  assert.equal(gpuOpts(mm, CUDA_LIMITS, "gfx1100")[0].amount, 16);
});

Deno.test("HIP renders AMD WMMAs with the builtins; C and JS refuse them", () => {
  const cases: [AmdMmaKind, DType, RegExp][] = [
    ["wmma_gfx11", dtypes.float16, /__builtin_amdgcn_wmma_f32_16x16x16_f16_w32\(\(tg_float16x16\)/],
    ["wmma_gfx11", dtypes.bfloat16, /__builtin_amdgcn_wmma_f32_16x16x16_bf16_w32\(\(tg_shortx16\)/],
    ["mfma_gfx9", dtypes.float16, /__builtin_amdgcn_mfma_f32_16x16x16f16\(.*, 0, 0, 0\);/],
    ["mfma_gfx9", dtypes.bfloat16, /__builtin_amdgcn_mfma_f32_16x16x16bf16_1k\(\(tg_shortx4\)/],
  ];
  for (const [kind, dt, re] of cases) {
    const mm = matmul(32, 32, 16, dt);
    const p = toProgram(withOpts(mm, [tcOpt(mm, kind)]), "hip");
    assert.match(p.src, re);
    assert.equal(p.src.match(/__builtin_amdgcn_/g)?.length, 1, "one instruction per k slice");
    for (const lang of ["c", "js"] as const) {
      assert.throws(() => toProgram(withOpts(mm, [tcOpt(mm, kind)]), lang), /WMMA/);
    }
  }
});

const comgrMissing = comgrUnusable("tc_amd_test", "the gfx1100/gfx90a compiles");

/**
 * the matrix instructions in a code object, by the first dword's top 16 bits (VOP3P encoding and
 * opcode): gfx11 v_wmma_f32_16x16x16_f16 0xcc40 and _bf16 0xcc41 (RDNA3 ISA VOP3P opcodes 64,
 * 65); gfx90a v_mfma_f32_16x16x16f16 0xd3cd and _bf16_1k 0xd3e7 (as llvm-objdump -d
 * --mcpu=gfx90a encodes them). A scan of the whole file: the kernel without TC is the control.
 */
const OPCODES: Record<string, number[]> = { gfx1100: [0xcc40, 0xcc41], gfx90a: [0xd3cd, 0xd3e7] };
function matrixOps(code: Uint8Array, arch: string): number {
  const v = new DataView(code.buffer, code.byteOffset, code.byteLength);
  let n = 0;
  for (let i = 0; i + 4 <= code.length; i += 4) {
    if (OPCODES[arch].includes(v.getUint32(i, true) >>> 16)) n++;
  }
  return n;
}

for (const [arch, kind] of [["gfx1100", "wmma_gfx11"], ["gfx90a", "mfma_gfx9"]] as const) {
  Deno.test({
    name: `AMD TC kernels compile with amd_comgr for ${arch} (${kind}) and hold the instruction`,
    ignore: comgrMissing !== "",
    fn: () => {
      const c = amdCompiler(arch);
      for (const dt of [dtypes.float16, dtypes.bfloat16]) {
        const mm = matmul(64, 32, 32, dt);
        // TC alone, and the heuristic's pick (2x2 tiles per wave)
        for (const opts of [[tcOpt(mm, kind)], gpuOpts(mm, AMD_LIMITS, arch)]) {
          assert.equal(opts[0].amount, AMD_TC_AMOUNT[kind]);
          const p = toProgram(withOpts(mm, opts), "hip");
          const code = c.compile(p.src, p.name);
          assert.equal(codeObjectTarget(code), arch);
          assert.ok(matrixOps(code, arch) >= 1, `${arch} ${dt.name}: no matrix instruction`);
        }
        const plain = toProgram(withOpts(mm, []), "hip");
        assert.equal(matrixOps(c.compile(plain.src, plain.name), arch), 0, "the control");
      }
      console.log(`tc_amd_test: ${kind} kernels compiled for ${arch} by amd_comgr`);
    },
  });
}
