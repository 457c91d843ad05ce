// Linear algebra and nn functional ops against naive JS loops.
import assert from "node:assert/strict";
import { dtypes } from "../src/dtype.ts";
import { Ops } from "../src/uop/ops.ts";
import { Tensor } from "../src/tensor.ts";
import { setBackend } from "../src/tensor/backend.ts";
import { assertClose, refBackend, refOf } from "./support/reference.ts";

setBackend(refBackend);

/** deterministic small values (exact in float32) */
const vals = (n: number, seed = 1) =>
  Array.from({ length: n }, (_, i) => (((i + 1) * 37 * seed) % 17) / 4 - 2);
const T = (shape: number[], seed = 1) =>
  Tensor.from(new Float32Array(vals(shape.reduce((a, b) => a * b, 1), seed)), { shape });

function jsMatmul(a: number[], b: number[], m: number, k: number, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p] * b[p * n + j];
      out.push(s);
    }
  }
  return out;
}

Deno.test("matmul: 2-D, batched with broadcasting, vector cases; one reduce of products", () => {
  const a = T([3, 4]), b = T([4, 5], 2);
  const c = a.matmul(b);
  assert.deepEqual(c.shape, [3, 5]);
  assertClose(refOf(c), jsMatmul(vals(12), vals(20, 2), 3, 4, 5));
  const red = c.uop.toposort().filter((u) => u.op === Ops.REDUCE_AXIS);
  assert.equal(red.length, 1);
  assert.equal(red[0].src[0].op, Ops.MUL);
  const ba = T([2, 3, 4]), bb = T([4, 5], 2);
  const bc = ba.matmul(bb);
  assert.deepEqual(bc.shape, [2, 3, 5]);
  const av = vals(24);
  assertClose(refOf(bc), [
    ...jsMatmul(av.slice(0, 12), vals(20, 2), 3, 4, 5),
    ...jsMatmul(av.slice(12), vals(20, 2), 3, 4, 5),
  ]);
  assert.deepEqual(T([4]).matmul(T([4, 5])).shape, [5]);
  assert.deepEqual(T([3, 4]).matmul(T([4])).shape, [3]);
  assert.deepEqual(T([4]).dot(T([4], 3)).shape, []);
  assertClose(refOf(T([4]).dot(T([4], 3))), [
    vals(4).reduce((s, v, i) => s + v * vals(4, 3)[i], 0),
  ]);
  assert.equal(Tensor.from([[1, 2]]).matmul(Tensor.from([[3], [4]])).dtype, dtypes.int32);
  assert.deepEqual(refOf(Tensor.from([[1, 2]]).matmul(Tensor.from([[3], [4]]))), [11]);
  assert.throws(
    () => T([3, 4]).matmul(T([5, 2])),
    /matmul: inner dims differ: \[3, 4\] @ \[5, 2\] \(4 vs 5\)/,
  );
  assert.throws(() => T([3]).matmul(Tensor.from(2)), /matmul: both operands need at least 1 dim/);
});

Deno.test("linear is x @ W + b with W [in, out]", () => {
  const x = T([2, 3]), w = T([3, 4], 2), b = T([4], 3);
  const want = jsMatmul(vals(6), vals(12, 2), 2, 3, 4).map((v, i) => v + vals(4, 3)[i % 4]);
  assertClose(refOf(x.linear(w, b)), want);
  assertClose(refOf(x.linear(w)), jsMatmul(vals(6), vals(12, 2), 2, 3, 4));
});

function jsConv(
  x: number[],
  [N, C, H, W]: number[],
  w: number[],
  [O, Cg, KH, KW]: number[],
  o: { stride?: number[]; pad?: number[]; dil?: number[]; groups?: number; bias?: number[] },
) {
  const [sh, sw] = o.stride ?? [1, 1], [ph, pw] = o.pad ?? [0, 0], [dh, dw] = o.dil ?? [1, 1];
  const g = o.groups ?? 1, opg = O / g;
  const OH = Math.floor((H + 2 * ph - dh * (KH - 1) - 1) / sh) + 1;
  const OW = Math.floor((W + 2 * pw - dw * (KW - 1) - 1) / sw) + 1;
  const out: number[] = [];
  for (let n = 0; n < N; n++) {
    for (let oc = 0; oc < O; oc++) {
      for (let i = 0; i < OH; i++) {
        for (let j = 0; j < OW; j++) {
          let s = o.bias ? o.bias[oc] : 0;
          const grp = Math.floor(oc / opg);
          for (let c = 0; c < Cg; c++) {
            for (let a = 0; a < KH; a++) {
              for (let b = 0; b < KW; b++) {
                const y = i * sh + a * dh - ph, xx = j * sw + b * dw - pw;
                if (y < 0 || y >= H || xx < 0 || xx >= W) continue;
                s += x[((n * C + grp * Cg + c) * H + y) * W + xx] *
                  w[((oc * Cg + c) * KH + a) * KW + b];
              }
            }
          }
          out.push(s);
        }
      }
    }
  }
  return { out, shape: [N, O, OH, OW] };
}

Deno.test("conv2d with stride, padding, dilation, groups and bias", () => {
  const cases = [
    { xs: [1, 2, 5, 5], ws: [3, 2, 3, 3], o: {} },
    { xs: [2, 2, 6, 7], ws: [4, 2, 3, 2], o: { stride: [2, 1], pad: [1, 2] } },
    { xs: [1, 4, 7, 7], ws: [4, 2, 2, 3], o: { dil: [2, 1], groups: 2, stride: [1, 2] } },
    { xs: [1, 1, 4, 4], ws: [2, 1, 1, 1], o: { bias: [0.5, -1] } },
  ];
  for (const { xs, ws, o } of cases) {
    const x = T(xs), w = T(ws, 5);
    const bias = (o as { bias?: number[] }).bias;
    const t = x.conv2d(w, bias ? Tensor.from(bias) : undefined, {
      stride: (o as { stride?: number[] }).stride,
      padding: (o as { pad?: number[] }).pad,
      dilation: (o as { dil?: number[] }).dil,
      groups: (o as { groups?: number }).groups,
    });
    const want = jsConv(vals(x.numel()), xs, vals(w.numel(), 5), ws, o);
    assert.deepEqual(t.shape, want.shape, JSON.stringify(o));
    assertClose(refOf(t), want.out, 1e-5, 1e-5, JSON.stringify(o));
  }
  const x = T([1, 1, 4, 4]), w = T([1, 1, 3, 3]);
  // tinygrad's flat [left, right, top, bottom] padding
  assert.deepEqual(x.conv2d(w, undefined, { padding: [1, 0, 2, 0] }).shape, [1, 1, 4, 3]);
  assert.throws(
    () => T([1, 3, 4, 4]).conv2d(T([2, 2, 3, 3])),
    /conv2d: input \[1, 3, 4, 4\] and weight \[2, 2, 3, 3\] \(groups 1\): input channels 3 must equal groups\*weight.shape\[1\] = 2/,
  );
  assert.throws(
    () => T([1, 1, 2, 2]).conv2d(T([1, 1, 3, 3])),
    /kernel 3 \(dilation 1\) is larger than the padded input size 2/,
  );
});

function jsPool(
  x: number[],
  [N, C, H, W]: number[],
  k: number,
  s: number,
  p: number,
  kind: "max" | "avg",
) {
  const OH = Math.floor((H + 2 * p - k) / s) + 1, OW = Math.floor((W + 2 * p - k) / s) + 1;
  const out: number[] = [];
  for (let nc = 0; nc < N * C; nc++) {
    for (let i = 0; i < OH; i++) {
      for (let j = 0; j < OW; j++) {
        let m = -Infinity, sum = 0;
        for (let a = 0; a < k; a++) {
          for (let b = 0; b < k; b++) {
            const y = i * s + a - p, xx = j * s + b - p;
            const v = y < 0 || y >= H || xx < 0 || xx >= W
              ? (kind === "max" ? -Infinity : 0)
              : x[(nc * H + y) * W + xx];
            m = Math.max(m, v);
            sum += v;
          }
        }
        out.push(kind === "max" ? m : sum / (k * k));
      }
    }
  }
  return { out, shape: [N, C, OH, OW] };
}

Deno.test("maxPool2d and avgPool2d (padding counted in the average)", () => {
  for (const [k, s, p] of [[2, 2, 0], [3, 1, 1], [3, 2, 1], [2, 3, 0]]) {
    const xs = [2, 2, 7, 6];
    const x = T(xs);
    for (const kind of ["max", "avg"] as const) {
      const t = kind === "max"
        ? x.maxPool2d(k, { stride: s, padding: p })
        : x.avgPool2d(k, { stride: s, padding: p });
      const want = jsPool(vals(x.numel()), xs, k, s, p, kind);
      assert.deepEqual(t.shape, want.shape, `${kind} ${k} ${s} ${p}`);
      assertClose(refOf(t), want.out, 1e-5, 1e-6, `${kind} ${k} ${s} ${p}`);
    }
  }
  assert.deepEqual(T([1, 1, 4, 4]).maxPool2d(2).shape, [1, 1, 2, 2]);
  assert.deepEqual(refOf(Tensor.from([[[[1, 5], [3, 2]]]]).maxPool2d(2)), [5]);
  assert.throws(() => T([4]).maxPool2d(2), /maxPool2d: kernel \[2,2\] does not fit input \[4\]/);
});

Deno.test("layernorm, rmsnorm and batchnorm", () => {
  const x = T([2, 5]);
  const v = vals(10);
  const ln: number[] = [], rms: number[] = [];
  for (let r = 0; r < 2; r++) {
    const row = v.slice(5 * r, 5 * r + 5);
    const m = row.reduce((a, b) => a + b, 0) / 5;
    const va = row.reduce((a, b) => a + (b - m) ** 2, 0) / 5;
    ln.push(...row.map((y) => (y - m) / Math.sqrt(va + 1e-5)));
    const ms = row.reduce((a, b) => a + b * b, 0) / 5;
    rms.push(...row.map((y) => y / Math.sqrt(ms + 1e-6)));
  }
  assertClose(refOf(x.layernorm()), ln, 1e-5, 1e-5);
  assertClose(refOf(x.rmsnorm()), rms, 1e-5, 1e-5);
  const xb = T([2, 3, 2]);
  const w = Tensor.from([1, 2, 3]), b = Tensor.from([0.5, 0, -1]);
  const mean = Tensor.from([0.1, 0.2, 0.3]), inv = Tensor.from([2, 1, 0.5]);
  const vb = vals(12);
  const want = vb.map((y, i) => {
    const c = Math.floor(i / 2) % 3;
    return (y - [0.1, 0.2, 0.3][c]) * [1, 2, 3][c] * [2, 1, 0.5][c] + [0.5, 0, -1][c];
  });
  assertClose(refOf(xb.batchnorm(w, b, mean, inv)), want, 1e-5, 1e-6);
  assertClose(
    refOf(xb.batchnorm(undefined, undefined, mean, inv)),
    vb.map((y, i) => {
      const c = Math.floor(i / 2) % 3;
      return (y - [0.1, 0.2, 0.3][c]) * [2, 1, 0.5][c];
    }),
    1e-5,
    1e-6,
  );
  assert.throws(
    () => xb.batchnorm(undefined, undefined, Tensor.from([1, 2]), inv),
    /batchnorm: mean must have shape \[3\] \(axis 1 of \[2, 3, 2\]\), got \[2\]/,
  );
});

Deno.test("dropout is the identity unless training, then zeroes about p and rescales", () => {
  const x = Tensor.ones([2000]);
  assert.equal(x.dropout(0.5), x);
  Tensor.training = true;
  try {
    Tensor.manualSeed(3);
    const d = refOf(x.dropout(0.25));
    const zeros = d.filter((v) => v === 0).length;
    assert.ok(Math.abs(zeros / 2000 - 0.25) < 0.05, `${zeros} zeros`);
    assert.ok(d.every((v) => v === 0 || Math.abs(v - 1 / 0.75) < 1e-6));
  } finally {
    Tensor.training = false;
  }
  assert.throws(() => x.dropout(1.5), /dropout: p must be in \[0, 1\], got 1.5/);
});

Deno.test("oneHot, triu and tril", () => {
  const o = Tensor.from([0, 2, 1]).oneHot(3);
  assert.equal(o.dtype, dtypes.int32);
  assert.deepEqual(o.shape, [3, 3]);
  assert.deepEqual(refOf(o), [1, 0, 0, 0, 0, 1, 0, 1, 0]);
  assert.throws(
    () => Tensor.from([0.5]).oneHot(2),
    /oneHot: needs an int tensor of class indices, got float32/,
  );
  const m = Tensor.ones([3, 4]);
  assert.deepEqual(refOf(m.triu()), [1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 1, 1]);
  assert.deepEqual(refOf(m.tril()), [1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0]);
  assert.deepEqual(refOf(m.triu(1)), [0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1]);
  assert.deepEqual(refOf(m.tril(-1)), [0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0]);
  const b = Tensor.full([2, 2], true).tril();
  assert.equal(b.dtype, dtypes.bool);
  assert.deepEqual(refOf(b), [1, 0, 1, 1]);
});

function jsAttention(
  q: number[],
  k: number[],
  v: number[],
  L: number,
  S: number,
  D: number,
  mask?: (i: number, j: number) => boolean,
  scale = 1 / Math.sqrt(D),
) {
  const out: number[] = [];
  for (let i = 0; i < L; i++) {
    const sc = Array.from({ length: S }, (_, j) => {
      if (mask && !mask(i, j)) return -Infinity;
      let s = 0;
      for (let d = 0; d < D; d++) s += q[i * D + d] * k[j * D + d];
      return s * scale;
    });
    const m = Math.max(...sc), e = sc.map((s) => Math.exp(s - m)), z = e.reduce((a, b) => a + b, 0);
    for (let d = 0; d < D; d++) out.push(e.reduce((a, w, j) => a + (w / z) * v[j * D + d], 0));
  }
  return out;
}

Deno.test("scaledDotProductAttention: plain, causal, bool mask, additive mask and scale", () => {
  const L = 3, S = 3, D = 4;
  const q = T([1, L, D]), k = T([1, S, D], 2), v = T([1, S, D], 3);
  const [qv, kv, vv] = [vals(12), vals(12, 2), vals(12, 3)];
  assertClose(
    refOf(q.scaledDotProductAttention(k, v)),
    jsAttention(qv, kv, vv, L, S, D),
    1e-5,
    1e-6,
  );
  assertClose(
    refOf(q.scaledDotProductAttention(k, v, { isCausal: true })),
    jsAttention(qv, kv, vv, L, S, D, (i, j) => j <= i),
    1e-5,
    1e-6,
  );
  const bm = Tensor.from([[true, false, true], [true, true, false], [false, true, true]]);
  const allowed = [[1, 0, 1], [1, 1, 0], [0, 1, 1]];
  assertClose(
    refOf(q.scaledDotProductAttention(k, v, { mask: bm, scale: 0.3 })),
    jsAttention(qv, kv, vv, L, S, D, (i, j) => allowed[i][j] === 1, 0.3),
    1e-5,
    1e-6,
  );
  const add = bm.where(0, -Infinity);
  assertClose(
    refOf(q.scaledDotProductAttention(k, v, { mask: add.cast(dtypes.float32) })),
    jsAttention(qv, kv, vv, L, S, D, (i, j) => allowed[i][j] === 1),
    1e-5,
    1e-6,
  );
  assert.throws(
    () => q.scaledDotProductAttention(k, v, { mask: bm, isCausal: true }),
    /give either mask or isCausal/,
  );
});

Deno.test("losses: sparse categorical, cross entropy, binary cross entropy (and from logits)", () => {
  const logits = T([3, 4]), lv = vals(12);
  const labels = Tensor.from([2, 0, 3]), lab = [2, 0, 3];
  const logp = (r: number) => {
    const row = lv.slice(4 * r, 4 * r + 4), m = Math.max(...row);
    const l = m + Math.log(row.reduce((a, b) => a + Math.exp(b - m), 0));
    return row.map((x) => x - l);
  };
  const nll = lab.map((c, r) => -logp(r)[c]);
  const meanNll = nll.reduce((a, b) => a + b, 0) / 3;
  assertClose(refOf(logits.sparseCategoricalCrossentropy(labels)), [meanNll], 1e-5);
  assertClose(
    refOf(logits.sparseCategoricalCrossentropy(labels, { reduction: "none" })),
    nll,
    1e-5,
  );
  assertClose(refOf(logits.sparseCategoricalCrossentropy(labels, { reduction: "sum" })), [
    3 * meanNll,
  ], 1e-5);
  assertClose(
    refOf(logits.sparseCategoricalCrossentropy(Tensor.from([2, 5, 3]), { ignoreIndex: 5 })),
    [(nll[0] + nll[2]) / 2],
    1e-5,
  );
  const smooth = lab.map((c, r) =>
    -(0.9 * logp(r)[c] + 0.1 * logp(r).reduce((a, b) => a + b, 0) / 4)
  );
  assertClose(refOf(logits.sparseCategoricalCrossentropy(labels, { labelSmoothing: 0.1 })), [
    smooth.reduce((a, b) => a + b, 0) / 3,
  ], 1e-5);
  assertClose(refOf(logits.crossEntropy(labels)), [meanNll], 1e-5);
  assertClose(refOf(logits.crossEntropy(labels.oneHot(4).cast(dtypes.float32))), [meanNll], 1e-5);
  const p = Tensor.from([0.9, 0.2, 0.6]), y = Tensor.from([1, 0, 1]);
  const bce = [-Math.log(0.9), -Math.log(0.8), -Math.log(0.6)];
  assertClose(refOf(p.binaryCrossentropy(y)), [bce.reduce((a, b) => a + b, 0) / 3], 1e-5);
  const z = Tensor.from([2, -1, 0.5]);
  const sig = (t: number) => 1 / (1 + Math.exp(-t));
  const bcel = [-Math.log(sig(2)), -Math.log(1 - sig(-1)), -Math.log(sig(0.5))];
  assertClose(refOf(z.binaryCrossentropyLogits(y, "none")), bcel, 1e-5);
  assert.throws(
    () => logits.sparseCategoricalCrossentropy(Tensor.from([0.5, 1, 2])),
    /labels must be int class indices, got float32/,
  );
  assert.throws(
    () => logits.sparseCategoricalCrossentropy(Tensor.from([1, 2])),
    /labels \[2\] must have the logits' shape without the class axis, \[3\]/,
  );
  assert.throws(
    () => logits.crossEntropy(labels, { reduction: "avg" as "mean" }),
    /crossEntropy: reduction must be "mean", "sum" or "none", got avg/,
  );
});
