// Fusion through the public API: how many kernels common programs schedule into.
import assert from "node:assert/strict";
import { Tensor } from "../mod.ts";

const n = (t: Tensor): number => t.schedule().length;

Deno.test("(a+b).sum() is one kernel", () => {
  const a = Tensor.rand([16, 16]).realize(), b = Tensor.rand([16, 16]).realize();
  assert.equal(n(a.add(b).sum()), 1);
});

Deno.test("10 chained elementwise ops are one kernel", () => {
  const a = Tensor.rand([64]).realize();
  let x = a;
  for (let i = 0; i < 10; i++) x = i % 2 ? x.mul(a) : x.add(1).relu();
  assert.equal(n(x), 1);
});

Deno.test("softmax over the last axis is at most 3 kernels", () => {
  const a = Tensor.rand([8, 32]).realize();
  assert.ok(n(a.softmax()) <= 3, `softmax took ${n(a.softmax())} kernels`);
});

Deno.test("a @ b is one kernel, and matmul + relu + sum still one", () => {
  const a = Tensor.rand([16, 8]).realize(), b = Tensor.rand([8, 12]).realize();
  assert.equal(n(a.matmul(b)), 1);
  assert.equal(n(a.matmul(b).relu().sum()), 1);
});

Deno.test("a permute or reshape before an elementwise op adds no copy kernel", () => {
  const a = Tensor.rand([4, 8]).realize(), b = Tensor.rand([8, 4]).realize();
  assert.equal(n(a.permute([1, 0]).add(b)), 1);
  assert.equal(n(a.reshape([8, 4]).mul(b)), 1);
  assert.equal(n(a.T.reshape([32]).exp()), 1);
});

Deno.test("fused and unfused softmax agree", async () => {
  const a = Tensor.rand([5, 7]).realize();
  const fused = await a.softmax().data();
  const m = a.max(-1, true).contiguous();
  const e = a.sub(m).exp().contiguous();
  const unfused = await e.div(e.sum(-1, true).contiguous()).data();
  for (let i = 0; i < fused.length; i++) {
    assert.ok(Math.abs(Number(fused[i]) - Number(unfused[i])) < 1e-6);
  }
});
