// Staging (src/rangeify/rangeify.ts): on a device that loops over its output, a value with an exp
// in it that several passes of one kernel read (softmax's sum and output) is computed once per
// row into an array, and the passes load it.
import assert from "node:assert/strict";
import { Device, Tensor } from "../mod.ts";
import { Ops, type UOp } from "../src/uop/ops.ts";
import { setLoopsOver } from "../src/rangeify/split.ts";
import { applyOpt, kernelAxes, OptError, OptOps } from "../src/opt/opts.ts";
import { AxisType } from "../src/uop/ops.ts";

const stages = (ast: UOp) => ast.toposort().filter((u) => u.op === Ops.DEFINE_LOCAL);

/** float64 softmax along `axis` of a row-major array of `shape` */
function softmaxRef(v: Float32Array, shape: number[], axis: number, log = false): number[] {
  const outer = shape.slice(0, axis).reduce((p, d) => p * d, 1);
  const n = shape[axis], inner = shape.slice(axis + 1).reduce((p, d) => p * d, 1);
  const out = new Array<number>(v.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const at = (k: number) => (o * n + k) * inner + i;
      let m = -Infinity, s = 0;
      for (let k = 0; k < n; k++) m = Math.max(m, v[at(k)]);
      for (let k = 0; k < n; k++) s += Math.exp(v[at(k)] - m);
      for (let k = 0; k < n; k++) {
        out[at(k)] = log ? v[at(k)] - m - Math.log(s) : Math.exp(v[at(k)] - m) / s;
      }
    }
  }
  return out;
}

Deno.test("CPU softmax is one kernel computing each exp once, into an array inside the row loop", () => {
  const x = Tensor.rand([64, 1024], { device: "CPU" }).realize();
  const sched = x.softmax(-1).schedule();
  assert.equal(sched.length, 1);
  assert.equal(stages(sched[0].ast).length, 1);
  const [k] = x.softmax(-1).kernels();
  // one exp polynomial (its log2(e) factor appears once), the array declared in the parallel loop
  assert.equal(k.src.split("1.442695f").length - 1, 1, k.src);
  assert.match(
    k.src,
    /#pragma omp parallel for\n\s*for \(int Lidx0[^\n]*\n\s*float smem\d+\[1024\];/,
  );
});

Deno.test("staged softmax and log-softmax equal float64 math on CPU and JS, any axis and size", async () => {
  const cases: [number[], number][] = [[[37, 1031], -1], [[33, 20], 0], [[3, 300, 5], 1], [
    [4, 9],
    -1,
  ]];
  for (const [shape, axis] of cases) {
    const base = Tensor.rand(shape, { device: "CPU" }).mul(8).sub(4).realize();
    const v = await base.data() as Float32Array;
    for (const device of ["CPU", "JS"]) {
      const x = base.to(device).realize();
      for (const log of [false, true]) {
        const got = await (log ? x.logSoftmax(axis) : x.softmax(axis)).data() as Float32Array;
        const want = softmaxRef(v, shape, axis < 0 ? shape.length + axis : axis, log);
        for (let i = 0; i < want.length; i++) {
          const tol = 2e-6 + 2e-6 * Math.abs(want[i]);
          if (!(Math.abs(got[i] - want[i]) <= tol)) {
            assert.fail(
              `${device} ${log ? "logSoftmax" : "softmax"} ${shape} axis ${axis} @${i}: ${
                got[i]
              } vs ${want[i]}`,
            );
          }
        }
      }
    }
  }
});

Deno.test("a GPU schedule stages nothing (threads would share the array)", () => {
  setLoopsOver(Device.DEFAULT, false);
  try {
    const x = Tensor.rand([64, 1024]).realize();
    for (const { ast } of x.softmax(-1).schedule()) assert.equal(stages(ast).length, 0);
  } finally {
    setLoopsOver(Device.DEFAULT, null);
  }
});

Deno.test("a row's log broadcast along the row is not staged: only per-element exps are", () => {
  const x = Tensor.rand([16, 64], { device: "CPU" }).realize();
  // logSoftmax reads x - max - log(sum) in one pass after the reduces: nothing per element to keep
  for (const { ast } of x.logSoftmax(-1).schedule()) assert.equal(stages(ast).length, 0);
});

Deno.test("opts refuse to copy the loop a staged array belongs to, and split the others", () => {
  const x = Tensor.rand([64, 1024], { device: "CPU" }).realize();
  const [{ ast }] = x.softmax(-1).schedule();
  const row = kernelAxes(ast).find((a) => a.type === AxisType.LOOP)!;
  assert.throws(
    () => applyOpt(ast, { op: OptOps.UPCAST, axis: row.id, amount: 4 }),
    (e: unknown) => e instanceof OptError && /staged array/.test((e as Error).message),
  );
  const reduces = kernelAxes(ast).filter((a) => a.reduce);
  assert.equal(reduces.length, 2); // the max and the sum
  for (const r of reduces) applyOpt(ast, { op: OptOps.UNROLL, axis: r.id, amount: 8 });
});

Deno.test("CPU: short loops of long chains run 4 vectors side by side; accumulators and big bodies do not", () => {
  const pragma = "#pragma clang loop interleave_count(4)";
  const count = (src: string) => src.split(pragma).length - 1;
  const x = Tensor.rand([64, 1024], { device: "CPU" }).realize();
  // softmax: the loop filling the row of exps, nothing else (the reduces have accumulators)
  const [sm] = x.softmax(-1).kernels();
  assert.equal(count(sm.src), 1, sm.src);
  assert.match(
    sm.src,
    /interleave_count\(4\)\n\s*for \(int (\w+) = 0; \1 < 1024; \1\+\+\) \{\n(.*\n){0,12}.*smem\d+\[\1\] = /,
  );
  // an exp over every element
  assert.equal(count(x.exp().kernels()[0].src), 1);
  // a matmul's loops all carry accumulators
  const w = Tensor.rand([1024, 32], { device: "CPU" }).realize();
  assert.equal(count(x.matmul(w).kernels()[0].src), 0);
  // attention's row of scores: 64 products and an exp per element, too big to copy 4 times
  const [q, k, v] = [0, 1, 2].map(() => Tensor.rand([1, 2, 128, 64], { device: "CPU" }).realize());
  assert.equal(count(q.scaledDotProductAttention(k, v).kernels()[0].src), 0);
});
