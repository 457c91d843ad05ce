// nn.optim: a few fixed steps of each optimizer against the update equations written out in numpy
// (tests/fixtures/generate_nn.py), Newton-Schulz orthogonality, one schedule per step, the
// errors for unsupported options and shapes, learning-rate schedules, gradient accumulation.
import assert from "node:assert/strict";
import "../src/uop/symbolic.ts";
import { Tensor } from "../src/tensor.ts";
import { nn } from "../src/nn/index.ts";
import { assertClose } from "./support/reference.ts";

interface Arr {
  dtype: string;
  shape: number[];
  data: number[];
}
interface OptimCase {
  name: string;
  opt: "SGD" | "Adam" | "AdamW" | "LAMB" | "Muon";
  opts: Record<string, number | boolean>;
  params: Arr[];
  grads: Arr[][];
  expected: Arr[][];
}
const ref = JSON.parse(
  Deno.readTextFileSync(new URL("./fixtures/nn/reference.json", import.meta.url)),
) as { optim: OptimCase[] };
const tensorOf = (a: Arr, requiresGrad = false): Tensor =>
  Tensor.from(new Float32Array(a.data), { shape: a.shape, requiresGrad });
const vals = (t: Tensor): number[] => Array.from(t.dataSync(), Number);

function makeOpt(kind: OptimCase["opt"], ps: Tensor[], opts: object): nn.optim.Optimizer {
  return new nn.optim[kind](ps, opts);
}

for (const c of ref.optim) {
  Deno.test(`nn.optim.${c.opt} (${c.name}): ${c.grads.length} steps match numpy`, () => {
    const ps = c.params.map((a) => tensorOf(a, true));
    const opt = makeOpt(c.opt, ps, c.opts);
    c.grads.forEach((gs, step) => {
      ps.forEach((p, i) => (p.grad = tensorOf(gs[i])));
      opt.step();
      ps.forEach((p, i) => {
        assert.deepEqual(p.shape, c.expected[step][i].shape);
        const tol = c.opt === "Muon" ? 1e-4 : 2e-5;
        assertClose(vals(p), c.expected[step][i].data, tol, tol, `${c.name} step ${step} p${i}`);
      });
    });
  });
}

/** eigenvalues of a symmetric matrix (cyclic Jacobi rotations) */
function symEigen(a: number[][]): number[] {
  const n = a.length, m = a.map((r) => [...r]);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += m[p][q] ** 2;
    if (off < 1e-20) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        if (Math.abs(m[p][q]) < 1e-30) continue;
        const th = (m[q][q] - m[p][p]) / (2 * m[p][q]);
        const t = Math.sign(th || 1) / (Math.abs(th) + Math.sqrt(th * th + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) {
          const kp = m[k][p], kq = m[k][q];
          m[k][p] = c * kp - s * kq;
          m[k][q] = s * kp + c * kq;
        }
        for (let k = 0; k < n; k++) {
          const pk = m[p][k], qk = m[q][k];
          m[p][k] = c * pk - s * qk;
          m[q][k] = s * pk + c * qk;
        }
      }
    }
  }
  return m.map((r, i) => r[i]);
}
/** singular values of a row-major [r, c] matrix with r <= c, from the eigenvalues of X X^T */
function singularValues(x: number[], r: number, c: number): number[] {
  const g = Array.from({ length: r }, (_, i) =>
    Array.from({ length: r }, (_, j) => {
      let s = 0;
      for (let k = 0; k < c; k++) s += x[i * c + k] * x[j * c + k];
      return s;
    }));
  return symEigen(g).map((e) => Math.sqrt(Math.max(e, 0))).sort((a, b) => a - b);
}

Deno.test("newtonSchulz: a random matrix's singular values are all brought near 1", () => {
  Tensor.manualSeed(7);
  // spread the singular values over four orders of magnitude, tall and wide
  for (const [r, c] of [[8, 12], [12, 6]]) {
    const scale = Tensor.arange(c).cast("float32").mul(-4 / c).exp2().mul(10);
    const g = Tensor.randn([r, c]).mul(scale);
    const before = r <= c ? singularValues(vals(g), r, c) : singularValues(vals(g.T), c, r);
    assert.ok(before[before.length - 1] / before[0] > 10, `input spread ${before}`);
    const o = nn.optim.newtonSchulz(g);
    assert.deepEqual(o.shape, [r, c]);
    const sv = r <= c ? singularValues(vals(o), r, c) : singularValues(vals(o.T), c, r);
    // the quintic's fixed band: about [0.7, 1.2], not exactly 1
    for (const s of sv) assert.ok(s > 0.6 && s < 1.3, `singular values ${sv}`);
  }
});

Deno.test("step realizes every parameter and state in one Tensor.realize call", () => {
  const ps = [
    Tensor.ones([3, 4], { requiresGrad: true }),
    Tensor.ones([4], { requiresGrad: true }),
  ];
  const running = Tensor.zeros([2]).add(1); // a lazy buffer (like BatchNorm's stats)
  for (const [kind, opts] of [["SGD", { momentum: 0.9 }], ["AdamW", {}], ["LAMB", {}]] as const) {
    const opt = makeOpt(kind, [...ps, running], opts);
    assert.equal(opt.params.length, 2);
    assert.deepEqual(opt.buffers, [running]);
    ps.forEach((p) => (p.grad = p.onesLike()));
    const orig = Tensor.realize;
    let calls = 0;
    Tensor.realize = (...ts: Tensor[]) => {
      calls++;
      orig.apply(Tensor, ts);
    };
    try {
      opt.step();
    } finally {
      Tensor.realize = orig;
    }
    assert.equal(calls, 1, kind);
    assert.ok(vals(ps[0]).every((v) => v < 1), `${kind} moved the weights down the gradient`);
  }
  assert.deepEqual(vals(running), [1, 1]);
});

Deno.test("optimizers refuse unsupported options, shapes and missing grads, saying so", () => {
  const w = Tensor.ones([2, 3], { requiresGrad: true }),
    b = Tensor.ones([3], { requiresGrad: true });
  assert.throws(
    () => new nn.optim.Muon([w, b]),
    /Muon: parameter 1 has shape \[3\]; Muon orthogonalizes matrices.*AdamW/,
  );
  assert.throws(
    () => new nn.optim.Adam([w], { weightDecay: 0.1 } as object),
    /Adam: option "weightDecay" is not supported .*use AdamW/,
  );
  assert.throws(
    () => new nn.optim.SGD([w], { dampening: 0.1 } as object),
    /SGD: option "dampening" is not supported \(supported: lr, momentum, weightDecay, nesterov\)/,
  );
  assert.throws(() => new nn.optim.SGD([w], { nesterov: true }), /nesterov needs momentum > 0/);
  assert.throws(() => new nn.optim.SGD([w], { lr: -1 }), /lr must be in \[0, Infinity\), got -1/);
  assert.throws(() => new nn.optim.Adam([w], { b1: 1 }), /b1 must be in \[0, 1\), got 1/);
  assert.throws(() => new nn.optim.Muon([w], { nsSteps: 0 }), /nsSteps must be a positive integer/);
  assert.throws(() => new nn.optim.SGD([]), /needs a non-empty array of Tensors/);
  assert.throws(
    () => new nn.optim.SGD([Tensor.ones([2])]),
    /none of the 1 tensors has requiresGrad/,
  );
  const opt = new nn.optim.SGD([w, b]);
  w.grad = w.onesLike();
  assert.throws(() => opt.step(), /SGD.step: parameter 1 \[3\] has no grad/);
  b.grad = Tensor.ones([4]);
  assert.throws(() => opt.step(), /parameter 1 is \[3\] but its grad is \[4\]/);
  opt.zeroGrad();
  assert.equal(w.grad, null);
});

Deno.test("schedules: linear warmup, then cosine decay to minLr", () => {
  const s = nn.optim.cosineSchedule({ lr: 1, totalSteps: 10, warmupSteps: 2, minLr: 0.1 });
  assertClose([s(0), s(1), s(2), s(6), s(10), s(50)], [0.5, 1, 1, 0.55, 0.1, 0.1], 1e-12, 1e-12);
  const w = nn.optim.linearWarmup(0.3, 3);
  assertClose([w(0), w(2), w(3)], [0.1, 0.3, 0.3], 1e-12, 1e-12);
  assert.throws(
    () => nn.optim.cosineSchedule({ lr: 1, totalSteps: 2, warmupSteps: 3 }),
    /warmupSteps 3 > totalSteps 2/,
  );
  // a new rate each step is used by the next step
  const p = Tensor.zeros([2], { requiresGrad: true });
  const opt = new nn.optim.SGD([p], { lr: 1 });
  for (let i = 0; i < 3; i++) {
    opt.lr = w(i);
    p.grad = p.onesLike();
    opt.step();
  }
  assertClose(vals(p), [-0.6, -0.6], 1e-6, 1e-6); // 0.1 + 0.2 + 0.3
});

Deno.test("GradAccumulator: the mean (or sum) of several micro-batch grads before one step", () => {
  const p = Tensor.zeros([3], { requiresGrad: true });
  const acc = new nn.optim.GradAccumulator([p]);
  for (const g of [[1, 2, 3], [3, 2, 1], [2, 5, -1]]) {
    p.grad = Tensor.from(new Float32Array(g));
    acc.add();
    assert.equal(p.grad, null);
  }
  assert.equal(acc.count, 3);
  acc.apply();
  assertClose(vals(p.grad!), [2, 3, 1]);
  const opt = new nn.optim.SGD([p], { lr: 0.5 });
  opt.step();
  assertClose(vals(p), [-1, -1.5, -0.5]);
  p.grad = Tensor.from(new Float32Array([1, 1, 1]));
  acc.add();
  acc.apply("sum");
  assertClose(vals(p.grad!), [1, 1, 1]);
  assert.throws(() => acc.apply(), /add\(\) was never called/);
  opt.zeroGrad();
  assert.throws(() => acc.add(), /parameter 0 \[3\] has no grad/);
});
