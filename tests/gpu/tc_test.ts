// Tensor cores on a real GPU (TG_GPU_TESTS=1 and a CUDA device of sm_80 or newer): float16 and
// bfloat16 matmuls that the CUDA heuristic puts on mma.sync (staged through shared memory or
// not) match a float32 matmul of the same 16-bit values on the CPU device.
import assert from "node:assert/strict";
import { Device, type DType, dtypes, Tensor } from "../../mod.ts";
import { toProgram } from "../../src/codegen/index.ts";
import { seededRandom } from "../support/fixtures.ts";

const enabled = Deno.env.get("TG_GPU_TESTS") === "1";
if (!enabled) console.log("tc_test (gpu): SKIPPED (set TG_GPU_TESTS=1 on a machine with a GPU)");

/** a [rows, cols] tensor of random 16-bit values on `device` */
function half(rows: number, cols: number, dt: DType, device: string, seed: number): Tensor {
  const r = seededRandom(seed);
  const data = Array.from({ length: rows * cols }, () => r() * 2 - 1);
  return Tensor.from(data, { dtype: dtypes.float32, device }).reshape([rows, cols]).cast(dt)
    .realize();
}

async function check(
  m: number,
  k: number,
  n: number,
  dt: DType,
  grid: number[],
  block = [32, 1, 1],
): Promise<void> {
  const what = `${dt.name} ${m}x${k} @ ${k}x${n}`;
  const a = half(m, k, dt, "CUDA", 1), b = half(k, n, dt, "CUDA", 2);
  const out = a.matmul(b);
  const ks = out.schedule();
  const p = toProgram(ks.at(-1)!.ast, "cuda");
  assert.match(p.src, new RegExp(`mma\\.sync\\.aligned\\.m16n8k16\\.row\\.col\\.f32`), what);
  assert.deepEqual([p.globalSize, p.localSize], [grid, block], what);
  // realized first: a cast fused into the matmul kernel would skip the 16-bit store
  out.realize();
  const got = await out.cast(dtypes.float32).data() as Float32Array;
  // the same 16-bit values, multiplied in float32 on the CPU
  const ra = half(m, k, dt, "CPU", 1).cast(dtypes.float32);
  const rb = half(k, n, dt, "CPU", 2).cast(dtypes.float32);
  const want = await ra.matmul(rb).data() as Float32Array;
  // the output is rounded to 16 bits: its relative step, plus float32 summation order
  const rel = dt === dtypes.float16 ? 2 ** -10 : 2 ** -7;
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]), tol = rel * Math.abs(want[i]) + 1e-3;
    worst = Math.max(worst, err / tol);
    if (!(err <= tol)) assert.fail(`${what}: element ${i} is ${got[i]}, float32 says ${want[i]}`);
  }
  console.log(`${what}: worst error ${worst.toFixed(3)} of the tolerance`);
}

Deno.test({
  name: "float16 and bfloat16 matmuls on tensor cores match float32 on the CPU",
  ignore: !enabled,
  fn: async () => {
    assert.ok(Device.list().includes("CUDA"), "no CUDA device");
    // the heuristic: staged through shared memory, 128x128 block tiles of 2x2 warps (grid 2x1)
    await check(256, 512, 128, dtypes.float16, [2, 1, 1], [32, 2, 2]);
    await check(256, 512, 128, dtypes.bfloat16, [2, 1, 1], [32, 2, 2]);
    await check(384, 96, 256, dtypes.float16, [2, 3, 1], [32, 2, 2]);
    // N not a multiple of 128: TC and a 2x16 block of mmas per warp (16x16 tiles of 16x8)
    await check(256, 512, 192, dtypes.float16, [3, 8, 1]);
    await check(256, 512, 192, dtypes.bfloat16, [3, 8, 1]);
    // tile counts the register tile does not divide: TC alone, one warp per 16x8 tile
    await check(48, 32, 24, dtypes.float16, [3, 3, 1]);
    // one tile, one k slice: no loops at all
    await check(16, 16, 8, dtypes.bfloat16, [1, 1, 1]);
  },
});
