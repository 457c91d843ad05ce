// Attention as rangeify fuses it: scaledDotProductAttention and the same math written by hand
// schedule into one kernel (the causal mask too: arange is an index) with the same loop structure, allocate no
// N*N buffer (memPeak stays at inputs + output), and equal the unfused reference (a contiguous()
// between every step) on JS, CPU and, where an adapter exists, WEBGPU.
import assert from "node:assert/strict";
import { Device, GlobalCounters, Tensor } from "../mod.ts";
import { Ops, type UOp } from "../src/uop/ops.ts";
import { lowerKernel } from "../src/codegen/index.ts";
import { webgpuReady } from "../src/runtime/device.ts";

await webgpuReady();
const DEVICES = ["JS", "CPU", ...["WEBGPU", "CUDA"].filter((d) => Device.list().includes(d))];

const qkv = (shape: number[], device: string): Tensor[] =>
  [1, 2, 3].map(() => Tensor.randn(shape, { device }).realize());

const byHand = (q: Tensor, k: Tensor, v: Tensor): Tensor =>
  q.matmul(k.transpose(-1, -2)).div(Math.sqrt(q.shape.at(-1)!)).softmax().matmul(v);

/** the unfused reference: every intermediate realized (an N*N buffer, as before fusion) */
function unfused(q: Tensor, k: Tensor, v: Tensor, causal: boolean): Tensor {
  let s = q.matmul(k.transpose(-1, -2)).contiguous().mul(1 / Math.sqrt(q.shape.at(-1)!))
    .contiguous();
  if (causal) {
    const n = q.shape.at(-2)!;
    const mask = Tensor.ones([n, n], { device: q.device }).tril().cast("bool").contiguous();
    s = mask.where(s, -Infinity).contiguous();
  }
  const m = s.max(-1, true).contiguous();
  const e = s.sub(m).exp().contiguous();
  return e.div(e.sum(-1, true).contiguous()).contiguous().matmul(v);
}

/** loop sizes and axis types of a kernel after its passes, in program order */
function loops(ast: UOp): string {
  return lowerKernel(ast).lin.uops.filter((u) => u.op === Ops.RANGE).map((r) =>
    `${r.src[0].arg}:${(r.arg as [number, number])[1]}`
  ).join(" ");
}

async function close(got: Tensor, want: Tensor, what: string): Promise<void> {
  const a = await got.data() as Float32Array, b = await want.data() as Float32Array;
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    if (!(Math.abs(a[i] - b[i]) <= 2e-5 + 2e-5 * Math.abs(b[i]))) {
      assert.fail(`${what}: element ${i} is ${a[i]}, unfused ${b[i]}`);
    }
  }
}

Deno.test("attention is one kernel, causal or not, with no N*N buffer", () => {
  const [B, H, N, D] = [1, 4, 1024, 64];
  const [q, k, v] = qkv([B, H, N, D], "CPU");
  const nn = B * H * N * N * 4, io = 4 * B * H * N * D * 4;
  for (const causal of [false, true]) {
    const s = q.scaledDotProductAttention(k, v, { isCausal: causal }).schedule();
    assert.equal(s.length, 1, `${s.length} kernels (causal ${causal})`);
    for (const item of s) {
      for (const u of item.ast.toposort()) {
        if (u.op !== Ops.DEFINE_GLOBAL) continue;
        const elems = (u.arg as [number, number])[1];
        assert.ok(elems * 4 < nn / 8, `a buffer of ${elems} elements (N*N is ${N * N})`);
      }
    }
  }
  // memory: what one realize allocates beyond q, k, v is the output (and a mask row of N)
  const before = GlobalCounters.memUsed;
  GlobalCounters.reset();
  const small = qkv([1, 2, 128, 32], "CPU");
  const out = small[0].scaledDotProductAttention(small[1], small[2], { isCausal: true });
  const base = GlobalCounters.memUsed;
  out.realize();
  const extra = GlobalCounters.memPeak - base;
  assert.ok(extra <= 1 * 2 * 128 * 32 * 4 + 128 * 4 * 2, `peak grew by ${extra} bytes`);
  assert.ok(before >= 0 && io > 0);
});

Deno.test("the helper and the hand-written math give the same loop structure", () => {
  const [q, k, v] = qkv([1, 2, 256, 32], "CPU");
  const a = q.scaledDotProductAttention(k, v).schedule(), b = byHand(q, k, v).schedule();
  assert.equal(a.length, 1);
  assert.equal(b.length, 1);
  assert.equal(loops(a[0].ast), loops(b[0].ast));
});

Deno.test("fused attention equals the unfused reference on every device", async () => {
  for (const dev of DEVICES) {
    const [q, k, v] = qkv([2, 2, 64, 16], dev);
    for (const causal of [false, true]) {
      const want = unfused(q, k, v, causal).realize();
      await close(
        q.scaledDotProductAttention(k, v, { isCausal: causal }),
        want,
        `${dev} causal=${causal}`,
      );
    }
    await close(byHand(q, k, v), unfused(q, k, v, false), `${dev} by hand`);
  }
});
