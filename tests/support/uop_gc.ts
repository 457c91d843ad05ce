// Run with --v8-flags=--expose-gc: builds many UOps, drops them, collects garbage and prints
// the hash-cons cache size before and after as JSON (used by tests/uop_test.ts).
import { uopCacheSize, Variable } from "../../src/uop/ops.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");
const base = uopCacheSize();
(() => {
  let e = Variable("gc_x", 0, 100);
  for (let i = 0; i < 20000; i++) e = e.add(i).mul(2);
})();
const built = uopCacheSize();
// finalizers run on later turns of the event loop
for (let i = 0; i < 20 && uopCacheSize() > base + 100; i++) {
  gc();
  await new Promise((r) => setTimeout(r, 10));
}
console.log(JSON.stringify({ base, built, after: uopCacheSize() }));
