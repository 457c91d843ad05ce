// Tensor.dispose(): memory given back at once, reused by the next allocation of its size, and
// never read again.
import assert from "node:assert/strict";
import { GlobalCounters, Tensor } from "../mod.ts";
import { bufferOf } from "../src/engine/buffers.ts";
import { bufferBase } from "../src/rangeify/rangeify.ts";

const handleOf = (t: Tensor) => bufferOf(bufferBase(t.uop)!).handle;

Deno.test("dispose frees a realized tensor's memory and the next output of its size reuses it", async () => {
  for (const device of ["JS", "CPU"]) {
    const x = Tensor.rand([64, 256], { device }).realize();
    const a = x.softmax(-1).realize();
    const mem = handleOf(a), bytes = 4 * 64 * 256;
    const before = GlobalCounters.memUsed;
    a.dispose();
    assert.equal(before - GlobalCounters.memUsed, bytes, `${device}: memUsed drops by the buffer`);
    const b = x.softmax(-1).realize();
    assert.equal(handleOf(b), mem, `${device}: the pooled memory is reused`);
    // the reused memory held the old result: the kernel must still write every element
    const want = x.exp().div(x.exp().sum(-1, true));
    const got = await b.data() as Float32Array, ref = await want.data() as Float32Array;
    for (let i = 0; i < got.length; i++) {
      assert.ok(Math.abs(got[i] - ref[i]) <= 1e-6, `${device}: element ${i}`);
    }
  }
});

Deno.test("a disposed tensor and its views throw when read or computed with", () => {
  for (const device of ["JS", "CPU"]) {
    const a = Tensor.rand([32, 32], { device }).realize();
    const view = a.reshape([1024]);
    a.dispose();
    assert.throws(() => a.dataSync(), /use after free.*dispose/);
    assert.throws(() => view.add(1).realize(), /use after free/);
    a.dispose(); // twice is harmless
  }
});

Deno.test("disposing a tensor that is not realized does nothing", async () => {
  const x = Tensor.rand([8], { device: "CPU" }).realize();
  const lazy = x.add(1);
  lazy.dispose();
  assert.deepEqual(
    [...await lazy.data()],
    [...await x.data() as Float32Array].map((v) => Math.fround(v + 1)),
  );
  assert.equal((await x.data()).length, 8);
});
