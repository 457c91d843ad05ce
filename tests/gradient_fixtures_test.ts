// Autograd against gradients derived by hand in numpy (tests/fixtures/grad/generate_grad.py): for
// each case backward() of sum(f(inputs) * w) in float32 must give the fixture's dL/d(input), on
// the JS device for every case and on CPU for each op's first case. Complements gradient_test.ts,
// which checks against central differences.
import assert from "node:assert/strict";
import { Device, dtypes, Tensor } from "../mod.ts";

interface GradArray {
  dtype: string;
  shape: number[];
  data: (number | boolean)[];
}

type Arg = null | number | boolean | Arg[];

interface GradCase {
  family: string;
  op: string;
  name: string;
  args: Arg[];
  inputs: GradArray[];
  consts: GradArray[];
  w: GradArray;
  grads: GradArray[];
}

const doc = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/grad/grad.json", import.meta.url)),
) as { cases: GradCase[] };

const devices = ["JS", "CPU"].filter((d) => Device.list().includes(d));
const RTOL = 1e-4, ATOL = 1e-5;

type Build = (xs: Tensor[], cs: Tensor[], args: Arg[]) => Tensor;

const num = (a: Arg): number => a as number;
const axisArg = (a: Arg): number | number[] | undefined =>
  a === null ? undefined : (a as number | number[]);
const pairs = (a: Arg): [number, number][] => a as [number, number][];
const unary = (f: (x: Tensor) => Tensor): Build => (xs) => f(xs[0]);
const binary = (f: (a: Tensor, b: Tensor) => Tensor): Build => (xs) => f(xs[0], xs[1]);

/** how each fixture op is built with the public API */
const BUILD: Record<string, Build> = {
  add: binary((a, b) => a.add(b)),
  sub: binary((a, b) => a.sub(b)),
  mul: binary((a, b) => a.mul(b)),
  div: binary((a, b) => a.div(b)),
  maximum: binary((a, b) => a.maximum(b)),
  pow: (xs, _, args) => xs[0].pow(args.length ? num(args[0]) : xs[1]),
  where: (xs, cs) => cs[0].where(xs[0], xs[1]),
  exp: unary((x) => x.exp()),
  log: unary((x) => x.log()),
  sqrt: unary((x) => x.sqrt()),
  sin: unary((x) => x.sin()),
  cos: unary((x) => x.cos()),
  tanh: unary((x) => x.tanh()),
  sigmoid: unary((x) => x.sigmoid()),
  relu: unary((x) => x.relu()),
  gelu: unary((x) => x.gelu()),
  sum: (xs, _, [axis, keep]) => xs[0].sum(axisArg(axis), keep as boolean),
  mean: (xs, _, [axis, keep]) => xs[0].mean(axisArg(axis), keep as boolean),
  max: (xs, _, [axis, keep]) => xs[0].max(axisArg(axis), keep as boolean),
  matmul: binary((a, b) => a.matmul(b)),
  softmax: (xs, _, [axis]) => xs[0].softmax(num(axis)),
  logSoftmax: (xs, _, [axis]) => xs[0].logSoftmax(num(axis)),
  logsumexp: (xs, _, [axis]) => xs[0].logsumexp(num(axis)),
  layernorm: unary((x) => x.layernorm()),
  conv2d: (xs, _, [stride, padding]) =>
    xs[0].conv2d(xs[1], xs[2], { stride: num(stride), padding: num(padding) }),
  maxPool2d: (xs, _, [k, stride, padding]) =>
    xs[0].maxPool2d(num(k), { stride: num(stride), padding: num(padding) }),
  avgPool2d: (xs, _, [k, stride, padding]) =>
    xs[0].avgPool2d(num(k), { stride: num(stride), padding: num(padding) }),
  crossEntropy: (xs, cs, [ls]) => xs[0].crossEntropy(cs[0], { labelSmoothing: num(ls) }),
  sparseCategoricalCrossentropy: (xs, cs, [ignore]) =>
    xs[0].sparseCategoricalCrossentropy(cs[0], { ignoreIndex: num(ignore) }),
  reshape: (xs, _, [shape]) => xs[0].reshape(shape as number[]),
  permute: (xs, _, [order]) => xs[0].permute(order as number[]),
  pad: (xs, _, [pads]) => xs[0].pad(pairs(pads)),
  shrink: (xs, _, [ranges]) => xs[0].shrink(ranges as ([number, number] | null)[]),
  slice: (xs, _, [idx]) =>
    xs[0].slice(
      ...(idx as (number[] | null)[]).map((s) =>
        s === null ? null : s.map((v) => v ?? undefined) as [number?, number?, number?]
      ),
    ),
  flip: (xs, _, [axes]) => xs[0].flip(axes as number[]),
  expand: (xs, _, [shape]) => xs[0].expand(shape as number[]),
  mlp: (xs, cs) => {
    const [x, w1, b1, w2, b2] = xs;
    return x.linear(w1, b1).relu().linear(w2, b2).sparseCategoricalCrossentropy(cs[0]);
  },
};

function constTensor(a: GradArray, device: string): Tensor {
  if (a.dtype === "float32") {
    return Tensor.from(Float32Array.from(a.data as number[]), { shape: a.shape, device });
  }
  if (a.dtype === "int32") {
    return Tensor.from(Int32Array.from(a.data as number[]), { shape: a.shape, device });
  }
  if (a.dtype === "bool") return Tensor.from(a.data as boolean[], { device }).reshape(a.shape);
  throw new Error(`gradient fixture: const dtype ${a.dtype} is not handled`);
}

const f32 = (a: GradArray, device: string, requiresGrad = false): Tensor =>
  Tensor.from(Float32Array.from(a.data as number[]), { shape: a.shape, device, requiresGrad });

let checks = 0;

function runCase(c: GradCase, device: string): void {
  const build = BUILD[c.op];
  assert.ok(build, `no builder for fixture op ${c.op}`);
  const xs = c.inputs.map((a) => f32(a, device, true));
  const out = build(xs, c.consts.map((a) => constTensor(a, device)), c.args);
  assert.deepEqual(out.shape, c.w.shape, `${c.name}: output shape`);
  assert.equal(out.dtype, dtypes.float32);
  out.mul(f32(c.w, device)).sum().backward();
  xs.forEach((x, i) => {
    const want = c.grads[i];
    assert.ok(x.grad, `${c.name} on ${device}: input ${i} got no gradient`);
    assert.deepEqual(x.grad.shape, want.shape, `${c.name}: grad ${i} shape`);
    assert.equal(x.grad.dtype, dtypes.float32);
    const got = x.grad.dataSync() as Float32Array;
    (want.data as number[]).forEach((e, j) => {
      assert.ok(
        Math.abs(got[j] - e) <= ATOL + RTOL * Math.abs(e),
        `${c.name} on ${device}: d/dx${i}[${j}] = ${got[j]}, numpy says ${e}`,
      );
    });
    checks++;
  });
}

const onCpu = new Set(
  doc.cases.filter((c, i) => doc.cases.findIndex((d) => d.op === c.op) === i),
);
const families = [...new Set(doc.cases.map((c) => c.family))];

Deno.test("gradient fixtures cover every op family the generator writes", () => {
  assert.ok(devices.includes("JS"), "the JS device always works");
  assert.deepEqual(
    families,
    [
      "binary",
      "unary",
      "reduce",
      "matmul",
      "norm",
      "conv",
      "pool",
      "loss",
      "movement",
      "composite",
    ],
  );
  const missing = doc.cases.filter((c) => !(c.op in BUILD)).map((c) => c.op);
  assert.deepEqual(missing, [], "every fixture op has a builder");
});

for (const family of families) {
  Deno.test(`autograd matches numpy's analytic gradients: ${family}`, async (t) => {
    for (const c of doc.cases.filter((c) => c.family === family)) {
      for (const device of devices) {
        // C compiles dominate a cold run: the CPU device gets each op's first case
        if (device !== "JS" && !onCpu.has(c)) continue;
        await t.step(`${c.name} on ${device}`, () => runCase(c, device));
      }
    }
  });
}

Deno.test("gradient fixture check count", () => {
  const inputs = (cs: GradCase[]) => cs.reduce((n, c) => n + c.inputs.length, 0);
  const expected = inputs(doc.cases) + (devices.length - 1) * inputs([...onCpu]);
  console.log(
    `gradient fixtures: ${checks} gradient checks (${doc.cases.length} cases on JS, ${
      devices.length > 1 ? onCpu.size : 0
    } of them on CPU)`,
  );
  assert.equal(checks, expected, "every case's gradients were checked on every device");
});
