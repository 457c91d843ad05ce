// Buffer lifetimes within a schedule: intermediates are freed after their last reader.
import assert from "node:assert/strict";
import { GlobalCounters, Tensor } from "../mod.ts";

Deno.test("a chain of realized intermediates keeps at most two alive at once", async () => {
  for (const device of ["JS", "CPU"]) {
    const n = 1 << 16, bytes = 4 * n;
    const x = Tensor.rand([n], { device }).realize();
    let y = x;
    for (let i = 0; i < 10; i++) y = y.add(1).contiguous();
    assert.equal(y.schedule().length, 10);
    GlobalCounters.reset();
    const before = GlobalCounters.memUsed;
    y.realize();
    // input (already alive) + the step's input and output intermediates + the final output
    const peak = GlobalCounters.memPeak - before;
    assert.ok(peak <= 2 * bytes, `${device}: peak ${peak} bytes for ${bytes}-byte steps`);
    let z = x;
    for (let i = 0; i < 10; i++) z = z.add(1);
    const got = await y.data(), want = await z.data();
    for (let i = 0; i < n; i++) {
      if (got[i] !== want[i]) assert.fail(`${device}: element ${i}: ${got[i]} != ${want[i]}`);
    }
  }
});
