// CUDA codegen without a GPU: the launch dimensions gpudims chooses, that each mapping covers
// every output element exactly once, and that the op suite's kernels rendered as CUDA compile
// with nvcc for sm_90 (skipped with a message where nvcc is absent).
import assert from "node:assert/strict";
import { Ops, Tensor, UOp } from "../mod.ts";
import { lowerKernel, toProgram } from "../src/codegen/index.ts";
import { chooseDims, CUDA_LIMITS } from "../src/codegen/gpudims.ts";
import { findNvcc, nvccCubin } from "./support/nvcc.ts";
import { evalInt } from "./support/eval_index.ts";
import { suitePrograms } from "./support/gpu_suite.ts";

const kernelsOf = (t: Tensor): UOp[] => t.schedule().map((s) => s.ast);

const programs = () => suitePrograms("cuda");

Deno.test("gpudims keeps every launch inside CUDA's grid and block limits", () => {
  const cases: number[][] = [
    [7],
    [1031],
    [4096, 4096],
    [3, 5, 7, 11],
    [2, 3, 70000, 4],
    [100000, 3],
    [70001, 70001],
    [2 ** 20, 2 ** 10],
  ];
  for (const sizes of cases) {
    const { groups, local, guarded } = chooseDims(sizes);
    assert.ok(groups.length <= 3, `${sizes}: ${groups.length} dimensions`);
    assert.deepEqual(groups.flat().sort((x, y) => x - y), sizes.map((_, i) => i), `${sizes}`);
    const threads = local.reduce((x, y) => x * y, 1);
    assert.ok(threads <= CUDA_LIMITS.localMax, `${sizes}: ${threads} threads per block`);
    groups.forEach((g, k) => {
      const size = g.reduce((x, i) => x * sizes[i], 1);
      const blocks = Math.ceil(size / local[k]);
      assert.ok(blocks <= CUDA_LIMITS.grid[k], `${sizes}: dim ${k} has ${blocks} blocks`);
      assert.ok(local[k] <= CUDA_LIMITS.block[k]);
      // only a guarded dimension may launch more threads than it has elements
      if (!guarded[k]) assert.equal(size % local[k], 0, `${sizes}: dim ${k}`);
    });
  }
  // a prime size gets full blocks and a guard, not blocks of one thread
  assert.deepEqual(chooseDims([1031]), { groups: [[0]], local: [128], guarded: [true] });
  assert.deepEqual(chooseDims([1000]).local, [125]);
  // y would need 70001 blocks: everything goes onto x
  assert.deepEqual(chooseDims([70001, 3]).groups.length, 1);
  assert.throws(() => chooseDims([2 ** 31, 2 ** 10]), /exceed the grid limits/);
});

Deno.test("each thread of the launch stores a distinct output element and all are stored", () => {
  // elementwise kernels over shapes that divide, do not divide (guard), and need merging
  for (const shape of [[33, 1031], [1000], [3, 5, 7, 11], [64, 130]]) {
    const t = Tensor.rand(shape).add(1).contiguous();
    const [ast] = kernelsOf(t);
    const { sink, dims } = lowerKernel(ast, {}, "cuda");
    const store = sink.toposort().find((u) => u.op === Ops.STORE)!;
    const specials = sink.toposort().filter((u) => u.op === Ops.SPECIAL);
    const n = shape.reduce((a, b) => a * b, 1);
    const seen = new Uint8Array(n);
    const { globalSize: g, localSize: l } = dims!;
    const launched = [0, 1, 2].map((k) => g[k] * l[k]);
    // every (block, thread) coordinate: SPECIALs take their value, guarded ones may exit
    const total = launched.reduce((a, b) => a * b, 1);
    for (let flat = 0; flat < total; flat++) {
      const tid = [flat % launched[0], Math.floor(flat / launched[0]) % launched[1]];
      tid.push(Math.floor(flat / (launched[0] * launched[1])));
      const env = new Map<UOp, number>();
      let exits = false;
      for (const s of specials) {
        const name = s.arg as string, k = Number(name.slice(-1)), size = s.src[0].arg as number;
        const v = name.startsWith("gidx")
          ? Math.floor(tid[k] / l[k])
          : name.startsWith("lidx")
          ? tid[k] % l[k]
          : tid[k];
        if (v >= size) exits = true;
        env.set(s, v);
      }
      if (exits) continue;
      const i = evalInt(store.src[0].src[1], env);
      assert.ok(i >= 0 && i < n, `${shape}: index ${i} out of [0, ${n})`);
      assert.equal(seen[i], 0, `${shape}: element ${i} stored twice`);
      seen[i] = 1;
    }
    assert.equal(seen.reduce((a, b) => a + b, 0), n, `${shape}: some elements never stored`);
  }
});

Deno.test("CUDA kernels declare their block size and index threads by blockIdx/threadIdx", () => {
  for (const { label, p } of programs()) {
    const threads = p.localSize!.reduce((a, b) => a * b, 1);
    assert.match(
      p.src,
      new RegExp(`extern "C" __global__ void __launch_bounds__\\(${threads}\\) ${p.name}\\(`),
      label,
    );
    assert.equal(p.lang, "cuda");
    assert.equal(p.globalSize.length, 3);
    // nvcc accepts GCC builtins, NVRTC does not
    assert.ok(!/__builtin_/.test(p.src), `${label}: NVRTC has no __builtin_*:\n${p.src}`);
    if (threads > 1) assert.match(p.src, /threadIdx\.x/, label);
  }
  const [ast] = kernelsOf(Tensor.rand([33, 1031]).add(1));
  const p = toProgram(ast, "cuda");
  assert.deepEqual([p.globalSize, p.localSize], [[9, 33, 1], [128, 1, 1]]);
  assert.match(p.src, /if \(blockIdx\.x\*128u\+threadIdx\.x >= 1031u\) return;/);
  // reduce ranges stay loops
  const [sum] = kernelsOf(Tensor.rand([33, 1031]).sum(1));
  assert.match(toProgram(sum, "cuda").src, /for \(int Ridx\d+ = 0; Ridx\d+ < 1031;/);
});

const nvcc = findNvcc();
if (!nvcc) console.log("cuda_render_test: nvcc not found: SKIPPING the sm_90 compile check");

Deno.test({
  name: "the op suite's CUDA kernels compile with nvcc -cubin -arch=sm_90",
  ignore: nvcc === null,
  fn: async () => {
    // one translation unit: each kernel in its own namespace, renamed to stay unique
    const ps = programs().map(({ label, p }, i) => ({
      label,
      name: `k${i}_${p.name}`,
      src: p.src.replaceAll(p.name, `k${i}_${p.name}`),
    }));
    const parts: string[] = [];
    const starts: { line: number; label: string }[] = [];
    let line = 1;
    for (const [i, p] of ps.entries()) {
      const text = `namespace tg${i} {\n${p.src}}\n`;
      starts.push({ line, label: p.label });
      parts.push(text);
      line += text.split("\n").length - 1;
    }
    const { ok, log } = await nvccCubin(nvcc!, parts.join(""));
    const where = (l: number) => starts.filter((s) => s.line <= l).at(-1)?.label ?? "?";
    const annotated = log.replace(/k\.cu\((\d+)\)/g, (m, l) => `${m} [${where(Number(l))}]`);
    assert.ok(ok, `nvcc failed:\n${annotated}`);
    assert.ok(ps.length >= 20, `only ${ps.length} kernels`);
  },
});
