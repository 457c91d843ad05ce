// The staged tensor-core matmul (TC with a stage's k, src/opt/tc.ts STAGED) without a GPU: a
// simulation of the lowered kernel's indexes over every block, thread, k stage and k slice shows
// that the copies fill each stage of shared memory exactly once, that the fragments read the
// current stage only (and never a slot the next stage's copy writes: one barrier per stage is
// enough), and that every output is stored once and sums a[m,k]*b[k,n] over every k exactly
// once; shapes that do not fit are rejected with the reason, the CUDA heuristic picks it, and
// the source compiles with nvcc for sm_90 (skipped without nvcc). tests/gpu/tc_test.ts checks
// the numbers on a GPU.
import assert from "node:assert/strict";
import { type DType, dtypes, Tensor } from "../mod.ts";
import { INDEX_LDMATRIX, Ops, STORE_ASYNC, type UOp } from "../src/uop/ops.ts";
import { lowerKernel, toProgram } from "../src/codegen/index.ts";
import { kernelAxes, type Opt, OptError, OptOps } from "../src/opt/opts.ts";
import { withOpts } from "../src/opt/heuristic.ts";
import { PIPE, STAGED, tcOpts } from "../src/opt/tc.ts";
import { planWideLoads, planWideStores } from "../src/renderer/wide_loads.ts";
import { findNvcc, nvccCubin } from "./support/nvcc.ts";
import { evalInt } from "./support/eval_index.ts";

const astOf = (t: Tensor): UOp => t.schedule().at(-1)!.ast;
const matmul = (m: number, k: number, n: number, dt: DType) => {
  const a = Tensor.empty([m, k], { device: "JS", dtype: dt });
  return astOf(a.matmul(Tensor.empty([k, n], { device: "JS", dtype: dt })));
};
const staged = (ast: UOp): Opt => ({
  op: OptOps.TC,
  axis: kernelAxes(ast).find((a) => a.reduce)!.id,
  amount: STAGED.bk,
});

const pipelined = (ast: UOp): Opt => ({ ...staged(ast), amount: PIPE.bk });

const bufOf = (u: UOp): UOp => u.src[0].src[0];
const wmmaKey = (u: UOp) => u.src.slice(0, 12).map((x) => x.id).join(",");

/** simulates the staged kernel of out[M,N] = a[M,K] @ b[K,N]; checks what the header says */
function simulate(M: number, K: number, N: number, dt: DType): void {
  const ast = matmul(M, K, N, dt);
  const { sink, dims, lin } = lowerKernel(withOpts(ast, [staged(ast)]), {}, "cuda");
  assert.deepEqual(dims!.localSize, [32, 2, 2], "2x2 warps of 32 lanes");
  assert.deepEqual(dims!.globalSize, [N / 128, M / 128, 1], "a block per 128x128 output tile");
  const topo = sink.toposort();
  const specials = new Map(topo.filter((u) => u.op === Ops.SPECIAL).map((u) => [u.arg, u]));
  const copies = topo.filter((u) => u.op === Ops.STORE && bufOf(u).op === Ops.DEFINE_LOCAL);
  assert.equal(copies.length, 64, "4 chunks of 8 elements of a and of b per thread");
  // the stage loop (what the copies run in) and the loop over a stage's 2 k slices
  const ranges = topo.filter((u) => u.op === Ops.RANGE);
  assert.equal(ranges.length, 2);
  const ko = ranges.find((r) => copies[0].toposort().includes(r))!;
  const kk = ranges.find((r) => r !== ko)!;
  assert.deepEqual([ko.src[0].arg, kk.src[0].arg], [K / 32, 2]);
  const wmmas = topo.filter((u) => u.op === Ops.WMMA);
  const groups = new Map<string, UOp[]>();
  for (const w of wmmas) groups.set(wmmaKey(w), [...(groups.get(wmmaKey(w)) ?? []), w]);
  assert.equal(groups.size, 4 * 8, "a warp's 4x8 mma tiles");
  // the global store of each WMMA element: through the accumulator it adds into
  const regOf = new Map<UOp, UOp>();
  for (const u of topo) {
    if (u.op === Ops.STORE && bufOf(u).op === Ops.DEFINE_REG && u.src[1].op === Ops.WMMA) {
      regOf.set(u.src[1], bufOf(u));
    }
  }
  const outStores = topo.filter((u) => u.op === Ops.STORE && bufOf(u).op === Ops.DEFINE_GLOBAL);
  assert.equal(outStores.length, 4 * 8 * 4);
  const storeOf = new Map<UOp, UOp>();
  for (const s of outStores) {
    const reg = s.src[1].toposort().find((u) => u.op === Ops.DEFINE_REG)!;
    storeOf.set(reg, s);
  }
  // the order of one stage: every copy, the barrier, then the fragment reads
  const at = (p: (u: UOp) => boolean) =>
    lin.uops.map((u, i) => (p(u) ? i : -1)).filter((i) => i >= 0);
  const bar = at((u) => u.op === Ops.BARRIER);
  assert.equal(bar.length, 1, "one barrier per stage");
  assert.ok(at((u) => copies.includes(u)).every((i) => i < bar[0]));
  assert.ok(
    at((u) => u.op === Ops.LOAD && bufOf(u).op === Ops.DEFINE_LOCAL).every((i) => i > bar[0]),
  );

  const stored = new Uint8Array(M * N);
  const ks = Array.from({ length: M * N }, () => new Set<number>());
  for (let by = 0; by < M / 128; by++) {
    for (let bx = 0; bx < N / 128; bx++) {
      // shared memory: each slot's global element (buffer slot, index)
      const smem = new Map<UOp, Map<number, number>>();
      let readBefore = new Map<UOp, Set<number>>();
      for (let s = 0; s < K / 32; s++) {
        const envOf = (tid: number, k2: number) =>
          new Map<UOp, number>([
            [specials.get("gidx1")!, by],
            [specials.get("gidx0")!, bx],
            [specials.get("lidx0")!, tid % 32],
            [specials.get("lidx1")!, (tid >> 5) % 2],
            [specials.get("lidx2")!, tid >> 6],
            [ko, s],
            [kk, k2],
          ]);
        const written = new Map<UOp, Set<number>>();
        for (let tid = 0; tid < 128; tid++) {
          const env = envOf(tid, 0);
          for (const c of copies) {
            const buf = bufOf(c), slot = evalInt(c.src[0].src[1], env);
            const w = written.get(buf) ?? new Set();
            written.set(buf, w);
            assert.ok(!w.has(slot), `slot ${slot} written twice in stage ${s}`);
            assert.ok(!readBefore.get(buf)?.has(slot), "a copy overwrites what the last read");
            w.add(slot);
            const v = c.src[1];
            assert.equal(v.op, Ops.LOAD);
            if (!smem.has(buf)) smem.set(buf, new Map());
            smem.get(buf)!.set(slot, evalInt(v.src[0].src[1], env));
          }
        }
        assert.deepEqual([...written.values()].map((w) => w.size), [128 * 32, 32 * 128]);
        const read = new Map<UOp, Set<number>>();
        let seen = new Map<string, number>();
        const fetch = (u: UOp, env: Map<UOp, number>, lane: number) => {
          const key = `${lane}|${u.id}`, hit = seen.get(key);
          if (hit !== undefined) return hit;
          const buf = bufOf(u), slot = evalInt(u.src[0].src[1], env);
          if (!read.has(buf)) read.set(buf, new Set());
          read.get(buf)!.add(slot);
          assert.ok(written.get(buf)!.has(slot), "a fragment reads a slot of this stage");
          const v = smem.get(buf)!.get(slot)!;
          seen.set(key, v);
          return v;
        };
        for (let k2 = 0; k2 < 2; k2++) {
          for (let warp = 0; warp < 4; warp++) {
            seen = new Map();
            for (const ws of groups.values()) {
              // the mma's 16x16 a tile and 16x8 b tile from the lanes' fragments (PTX layouts)
              const A: number[][] = Array.from({ length: 16 }, () => []);
              const B: number[][] = Array.from({ length: 16 }, () => []);
              for (let lane = 0; lane < 32; lane++) {
                const env = envOf(warp * 32 + lane, k2), g = lane >> 2, t = lane & 3;
                for (let e = 0; e < 8; e++) {
                  const k = 2 * t + (e & 1) + 8 * +(e >= 4);
                  A[g + 8 * ((e >> 1) & 1)][k] = fetch(ws[0].src[e], env, lane);
                }
                for (let e = 0; e < 4; e++) {
                  B[2 * t + (e & 1) + 8 * +(e >= 2)][g] = fetch(ws[0].src[8 + e], env, lane);
                }
              }
              for (let lane = 0; lane < 32; lane++) {
                const env = envOf(warp * 32 + lane, k2), g = lane >> 2, t = lane & 3;
                for (const w of ws) {
                  const u = w.src[12].arg as number;
                  const out = evalInt(storeOf.get(regOf.get(w)!)!.src[0].src[1], env);
                  if (s === 0 && k2 === 0) assert.equal(stored[out]++, 0, `${out} stored twice`);
                  const row = Math.floor(out / N), col = out % N;
                  for (let x = 0; x < 16; x++) {
                    const a = A[g + 8 * (u >> 1)][x], b = B[x][2 * t + (u & 1)], k = a % K;
                    // plain checks in the innermost loop: assert only what fails (fast)
                    if (Math.floor(a / K) !== row || b % N !== col || k !== Math.floor(b / N)) {
                      assert.fail(`output ${out} sums a[${a}] * b[${b}]`);
                    }
                    if (ks[out].has(k)) assert.fail(`k ${k} summed twice into ${out}`);
                    ks[out].add(k);
                  }
                }
              }
            }
          }
        }
        readBefore = read;
      }
    }
  }
  assert.ok(stored.every((c) => c === 1), "every output stored once");
  assert.ok(ks.every((s) => s.size === K), "every output sums over every k");
}

Deno.test("the staged TC kernel: each stage copied once, every output the sum over every k once", () => {
  simulate(256, 96, 256, dtypes.float16);
  simulate(128, 96, 128, dtypes.bfloat16);
});

/** an index's value (the pipelined kernel's clamp is a MAX of NEGs) */
function evalIdx(u: UOp, env: Map<UOp, number>): number {
  const v = env.get(u);
  if (v !== undefined) return v;
  if (u.op === Ops.MAX) return Math.max(evalIdx(u.src[0], env), evalIdx(u.src[1], env));
  if (u.op === Ops.NEG) return -evalIdx(u.src[0], env);
  if (u.op === Ops.CONST) return Number(u.arg);
  const s = u.src.map((x) => evalIdx(x, env));
  if (u.op === Ops.ADD) return s[0] + s[1];
  if (u.op === Ops.SUB) return s[0] - s[1];
  if (u.op === Ops.XOR) return s[0] ^ s[1];
  if (u.op === Ops.AND) return s[0] & s[1];
  if (u.op === Ops.MUL) return s[0] * s[1];
  if (u.op === Ops.IDIV) return Math.trunc(s[0] / s[1]);
  if (u.op === Ops.MOD) return s[0] % s[1];
  return evalInt(u, env);
}

/**
 * The pipelined kernel (PIPE) of out[M,N] = a[M,K] @ b[K,N], simulated per thread with its
 * async copies (one 16-byte cp.async each, in program order) landing at any time up to the
 * barrier whose wait_group lets the last n of them stay in flight: every fragment reads a slot
 * that a landed copy of its own slice wrote, no copy that may be in flight while a warp reads
 * a slice (issued before the barrier and not waited for, or issued after it) touches a slot the
 * slice's reads use or a slot another one in flight writes, and every output sums every k once.
 */
function simulatePipe(M: number, K: number, N: number, dt: DType): void {
  const ast = matmul(M, K, N, dt);
  const { sink, dims, lin } = lowerKernel(withOpts(ast, [pipelined(ast)]), {}, "cuda");
  assert.deepEqual(dims!.localSize, [32, 2, 2]);
  const S = PIPE.stages, KT = K / PIPE.bk, threads = 128;
  const topo = sink.toposort();
  const specials = new Map(topo.filter((u) => u.op === Ops.SPECIAL).map((u) => [u.arg, u]));
  const copies = lin.uops.filter((u) => u.op === Ops.STORE && bufOf(u).op === Ops.DEFINE_LOCAL);
  assert.ok(copies.every((u) => u.arg === STORE_ASYNC), "every copy is async");
  // the copy units: one 16-byte word each, issued where its first store is
  const wide = planWideStores(lin, planWideLoads(lin));
  assert.ok(copies.every((u) => wide.get(u)?.word.bytes === 16), "every copy is a 16-byte word");
  const units = [...new Set(copies.map((u) => wide.get(u)!))];
  const pos = (u: UOp) => lin.uops.indexOf(u);
  const bars = lin.uops.filter((u) => u.op === Ops.BARRIER);
  assert.equal(bars.length, 1, "one barrier per k slice");
  const bar = bars[0];
  // the k loop: the loop the barrier is in
  const ko = lin.block.get(bar)!;
  assert.ok(ko?.op === Ops.RANGE && ko.src[0].arg === KT, "the barrier is in the k loop");
  assert.equal(bar.arg, (S - 2) * 16, "it lets the 16 copies of each later slice stay in flight");
  const inLoop = (u: UOp) => lin.block.get(u) === ko;
  const prologue = units.filter((w) => !inLoop(w.stores[0]));
  const loop = units.filter((w) => inLoop(w.stores[0]));
  assert.deepEqual([prologue.length, loop.length], [(S - 1) * 16, 16]);
  assert.ok(prologue.every((w) => pos(w.stores[w.first]) < pos(ko)), "prologue before the loop");
  assert.ok(loop.every((w) => pos(w.stores[w.first]) > pos(bar)), "loop copies after the wait");
  const reads = lin.uops.filter((u) => u.op === Ops.LOAD && bufOf(u).op === Ops.DEFINE_LOCAL);
  assert.ok(reads.every((u) => pos(u) > pos(bar)), "reads after the barrier");
  const order = (ws: typeof units) =>
    ws.sort((x, y) => pos(x.stores[x.first]) - pos(y.stores[y.first]));
  order(prologue), order(loop);
  const kk = lin.uops.find((u) => u.op === Ops.RANGE && u !== ko)!;
  const groups = new Map<string, UOp[]>();
  for (const w of topo.filter((u) => u.op === Ops.WMMA)) {
    groups.set(wmmaKey(w), [...(groups.get(wmmaKey(w)) ?? []), w]);
  }
  const regOf = new Map<UOp, UOp>();
  for (const u of topo) {
    if (u.op === Ops.STORE && bufOf(u).op === Ops.DEFINE_REG && u.src[1].op === Ops.WMMA) {
      regOf.set(u.src[1], bufOf(u));
    }
  }
  const storeOf = new Map<UOp, UOp>();
  for (const s of topo.filter((u) => u.op === Ops.STORE && bufOf(u).op === Ops.DEFINE_GLOBAL)) {
    storeOf.set(s.src[1].toposort().find((u) => u.op === Ops.DEFINE_REG)!, s);
  }
  const stored = new Uint8Array(M * N);
  const ks = Array.from({ length: M * N }, () => new Set<number>());
  type Copy = { slots: [UOp, number, number][] };
  for (let by = 0; by < M / 128; by++) {
    for (let bx = 0; bx < N / 128; bx++) {
      const envOf = (tid: number, s: number, k2: number) =>
        new Map<UOp, number>([
          [specials.get("gidx1")!, by],
          [specials.get("gidx0")!, bx],
          [specials.get("lidx0")!, tid % 32],
          [specials.get("lidx1")!, (tid >> 5) % 2],
          [specials.get("lidx2")!, tid >> 6],
          [ko, s],
          [kk, k2],
        ]);
      // each thread's copies in issue order: (shared buffer, slot, global element)
      const copyOf = (w: (typeof units)[number], env: Map<UOp, number>): Copy => ({
        slots: w.stores.map((st) => [
          bufOf(st),
          evalIdx(st.src[0].src[1], env),
          evalIdx(st.src[1].src[0].src[1], env),
        ]),
      });
      const issued: Copy[][] = Array.from(
        { length: threads },
        (_, tid) => prologue.map((w) => copyOf(w, envOf(tid, 0, 0))),
      );
      const smem = new Map<UOp, Map<number, number>>();
      let landed = 0; // copies per thread applied to smem
      for (let s = 0; s < KT; s++) {
        // at the barrier: all but the last bar.arg copies of each thread have landed
        const done = issued[0].length - (bar.arg as number);
        for (let i = landed; i < done; i++) {
          for (let tid = 0; tid < threads; tid++) {
            for (const [buf, slot, v] of issued[tid][i].slots) {
              if (!smem.has(buf)) smem.set(buf, new Map());
              smem.get(buf)!.set(slot, v);
            }
          }
        }
        landed = done;
        // in flight while slice s is read: the copies not waited for and those issued now
        const flying = new Map<UOp, Set<number>>();
        const fly = (c: Copy) => {
          for (const [buf, slot] of c.slots) {
            const f = flying.get(buf) ?? new Set();
            flying.set(buf, f);
            assert.ok(!f.has(slot), `two copies in flight write slot ${slot}`);
            f.add(slot);
          }
        };
        for (let tid = 0; tid < threads; tid++) {
          issued[tid].slice(done).forEach(fly);
          const now = loop.map((w) => copyOf(w, envOf(tid, s, 0)));
          now.forEach(fly);
          issued[tid].push(...now);
        }
        let seen = new Map<string, number>();
        const fetch = (u: UOp, env: Map<UOp, number>, lane: number) => {
          const key = `${lane}|${u.id}`, hit = seen.get(key);
          if (hit !== undefined) return hit;
          const buf = bufOf(u), slot = evalIdx(u.src[0].src[1], env);
          if (flying.get(buf)?.has(slot)) assert.fail(`slot ${slot} read while a copy writes it`);
          const v = smem.get(buf)?.get(slot);
          if (v === undefined) assert.fail(`slot ${slot} read before any copy landed there`);
          seen.set(key, v);
          return v;
        };
        for (let k2 = 0; k2 < PIPE.bk / 16; k2++) {
          for (let warp = 0; warp < 4; warp++) {
            seen = new Map();
            for (const ws of groups.values()) {
              const A: number[][] = Array.from({ length: 16 }, () => []);
              const B: number[][] = Array.from({ length: 16 }, () => []);
              for (let lane = 0; lane < 32; lane++) {
                const env = envOf(warp * 32 + lane, s, k2), g = lane >> 2, t = lane & 3;
                for (let e = 0; e < 8; e++) {
                  const k = 2 * t + (e & 1) + 8 * +(e >= 4);
                  A[g + 8 * ((e >> 1) & 1)][k] = fetch(ws[0].src[e], env, lane);
                }
                for (let e = 0; e < 4; e++) {
                  B[2 * t + (e & 1) + 8 * +(e >= 2)][g] = fetch(ws[0].src[8 + e], env, lane);
                }
              }
              if (s === 0 && k2 === 0 && warp === 0) checkLdmatrix(ws[0], (l) => envOf(l, s, k2));
              for (let lane = 0; lane < 32; lane++) {
                const env = envOf(warp * 32 + lane, s, k2), g = lane >> 2, t = lane & 3;
                for (const w of ws) {
                  const u = w.src[12].arg as number;
                  const out = evalIdx(storeOf.get(regOf.get(w)!)!.src[0].src[1], env);
                  if (s === 0 && k2 === 0) assert.equal(stored[out]++, 0, `${out} stored twice`);
                  const row = Math.floor(out / N), col = out % N;
                  for (let x = 0; x < 16; x++) {
                    const a = A[g + 8 * (u >> 1)][x], b = B[x][2 * t + (u & 1)], k = a % K;
                    if (Math.floor(a / K) !== row || b % N !== col || k !== Math.floor(b / N)) {
                      assert.fail(`output ${out} sums a[${a}] * b[${b}]`);
                    }
                    if (ks[out].has(k)) assert.fail(`k ${k} summed twice into ${out}`);
                    ks[out].add(k);
                  }
                }
              }
            }
          }
        }
      }
    }
  }
  assert.ok(stored.every((c) => c === 1), "every output stored once");
  assert.ok(ks.every((s) => s.size === K), "every output sums over every k");
}

/**
 * every lane of an mma's ldmatrix gets the fragment elements its loads name: the element at
 * (row, column) of matrix j is at the row address lane 8j + row hands in, plus the column (for
 * .trans, lane 8j + column's row, plus the row)
 */
function checkLdmatrix(w: UOp, envOf: (lane: number) => Map<UOp, number>): void {
  for (const [from, n, trans] of [[0, 8, false], [8, 4, true]] as const) {
    const row = w.src[from].src.slice(1).find((x) =>
      x.op === Ops.INDEX && x.arg === INDEX_LDMATRIX
    );
    assert.ok(row, `operand ${from ? "b" : "a"} names its ldmatrix rows`);
    const addr = (L: number) => evalIdx(row.src[1], envOf(L));
    for (let L = 0; L < 32; L++) {
      for (let e = 0; e < n; e++) {
        const j = e >> 1, h = e & 1;
        const got = trans
          ? addr(8 * j + 2 * (L & 3) + h) + (L >> 2)
          : addr(8 * j + (L >> 2)) + 2 * (L & 3) + h;
        assert.equal(
          got,
          evalIdx(w.src[from + e].src[0].src[1], envOf(L)),
          `lane ${L} element ${e}`,
        );
      }
    }
  }
}

Deno.test("the pipelined TC kernel: cp.async copies land before their slice is read, never under a read", () => {
  simulatePipe(128, 192, 256, dtypes.float16);
  simulatePipe(128, 128, 128, dtypes.bfloat16);
});

Deno.test("the staged TC is rejected with the reason where the block tile does not fit", () => {
  const reject = (ast: UOp, why: RegExp, opts: Opt[] = [staged(ast)]) => {
    assert.throws(() => withOpts(ast, opts), (e) => e instanceof OptError && why.test(e.message));
  };
  reject(matmul(192, 64, 256, dtypes.float16), /M=192, N=256, K=64 do not fit the staged block/);
  reject(matmul(256, 48, 256, dtypes.float16), /K=48 do not fit .* K of 32/);
  const f32 = astOf(Tensor.rand([128, 32]).matmul(Tensor.rand([32, 128])));
  reject(f32, /float16 or bfloat16 factors, got float32/);
  // nothing may split its ranges afterwards: each copy would write the same shared slots
  const mm = matmul(256, 64, 256, dtypes.float16);
  const out = kernelAxes(withOpts(mm, [staged(mm)])).find((a) => a.output)!;
  reject(mm, /already staged through shared memory/, [staged(mm), {
    op: OptOps.UPCAST,
    axis: out.id,
    amount: 2,
  }]);
});

Deno.test("the CUDA heuristic stages 16-bit matmuls whose shapes fit, TC without staging otherwise", () => {
  for (const dt of [dtypes.float16, dtypes.bfloat16]) {
    const mm = matmul(256, 64, 384, dt);
    assert.deepEqual(tcOpts(mm), [staged(mm)]);
    const p = toProgram(mm, "cuda");
    assert.deepEqual([p.globalSize, p.localSize], [[3, 2, 1], [32, 2, 2]]);
    assert.match(p.src, /__shared__ __align__\(16\) unsigned short smem0\[10240\];/);
    assert.equal(p.src.match(/__syncthreads\(\);/g)?.length, 1);
    const odd = matmul(256, 64, 192, dt);
    assert.equal(tcOpts(odd)![0].amount, 16, "N=192: no 128-wide block tile");
  }
});

Deno.test("the CUDA heuristic pipelines 16-bit matmuls whose shapes fit (cp.async, dynamic shared memory); TC_PIPE=0 stages them", () => {
  for (const dt of [dtypes.float16, dtypes.bfloat16]) {
    const mm = matmul(256, 128, 384, dt);
    assert.deepEqual(tcOpts(mm), [pipelined(mm)]);
    const p = toProgram(mm, "cuda");
    assert.equal(p.sharedMem, 3 * (128 * 64 + 64 * 128) * 2, "3 stages of 128x64 and 64x128");
    assert.match(p.src, /extern __shared__ __align__\(16\) unsigned char tg_smem\[\];/);
    assert.doesNotMatch(p.src, /__shared__ [^\n]*smem0\[/, "no static array");
    // 2 prologue slices and 1 per iteration, 16 copies each; the wait lets one slice's fly
    assert.equal(p.src.match(/cp\.async\.cg\.shared\.global/g)?.length, 3 * 16);
    assert.equal(p.src.match(/cp\.async\.wait_group 16;[^\n]*__syncthreads\(\);/g)?.length, 1);
    assert.equal(p.src.match(/ldmatrix/g)?.length, 4 + 8, "x4 per a fragment, x2 per b one");
    assert.equal(tcOpts(matmul(256, 64, 384, dt))![0].amount, STAGED.bk, "K=64: one slice");
  }
  const mm = matmul(256, 128, 384, dtypes.float16);
  Deno.env.set("TC_PIPE", "0");
  try {
    assert.deepEqual(tcOpts(mm), [staged(mm)]);
  } finally {
    Deno.env.delete("TC_PIPE");
  }
});

const nvcc = findNvcc();
if (!nvcc) console.log("tc_smem_test: nvcc not found: SKIPPING the sm_90 compile check");

Deno.test({
  name:
    "staged and pipelined tensor-core matmuls in float16 and bfloat16 compile with nvcc for sm_90",
  ignore: nvcc === null,
  fn: async () => {
    const ps = [dtypes.float16, dtypes.bfloat16].flatMap((dt) => {
      const mm = matmul(256, 96, 128, dt), pipe = matmul(256, 192, 128, dt);
      return [
        toProgram(withOpts(mm, [staged(mm)]), "cuda"),
        toProgram(withOpts(pipe, [pipelined(pipe)]), "cuda"),
      ];
    });
    const src = ps.map((p, i) =>
      `namespace tg${i} {\n${p.src.replaceAll(p.name, `k${i}_${p.name}`)}}\n`
    ).join("");
    assert.equal(src.match(/mma\.sync/g)?.length, 4 * 32);
    const { ok, log } = await nvccCubin(nvcc!, src);
    assert.ok(ok, `nvcc failed:\n${log}\n${src}`);
  },
});
