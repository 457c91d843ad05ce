// Random chains of elementwise, movement and reduce ops (fixed seed) evaluated on JS and on CPU:
// both devices must give the same shape, dtype and values. TG_FUZZ_CASES=n changes the count,
// TG_FUZZ_SEED=s the seed; a failing step names its case number, chain and shapes.
import assert from "node:assert/strict";
import { Device, dtypes, Tensor } from "../mod.ts";
import { assertClose, fmtShape, seededRandom, type Tolerance } from "./support/fixtures.ts";

const SEED = Number(Deno.env.get("TG_FUZZ_SEED") ?? 20251124);
const CASES = Number(Deno.env.get("TG_FUZZ_CASES") ?? 60);
const MAX_STEPS = 7;
const MAX_NUMEL = 1024;

type Kind = "float32" | "int32";
interface Step {
  desc: string;
  apply: (x: Tensor, device: string) => Tensor;
}
interface Chain {
  input: { shape: number[]; kind: Kind; data: number[] };
  steps: Step[];
  shape: number[];
  kind: Kind;
}

const rand = seededRandom(SEED);
const randint = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

function randomData(shape: number[], kind: Kind): number[] {
  return Array.from(
    { length: numel(shape) },
    () => kind === "int32" ? randint(-20, 20) : Math.fround(rand() * 4 - 2),
  );
}

function tensorOf(data: number[], shape: number[], kind: Kind, device: string): Tensor {
  const dtype = kind === "int32" ? dtypes.int32 : dtypes.float32;
  return Tensor.from(data, { dtype, device }).reshape(shape);
}

/** a shape that broadcasts with `shape`: some axes 1, maybe fewer leading axes */
function broadcastPartner(shape: number[]): number[] {
  const drop = shape.length > 0 ? randint(0, Math.min(1, shape.length)) : 0;
  return shape.slice(drop).map((d) => rand() < 0.3 ? 1 : d);
}

function randomAxes(ndim: number): number | number[] | undefined {
  const r = rand();
  if (r < 0.2 || ndim === 0) return undefined;
  if (r < 0.7) return randint(-ndim, ndim - 1);
  const axes = [...Array(ndim).keys()].filter(() => rand() < 0.5);
  return axes.length ? axes : [0];
}

function reducedShape(shape: number[], axis: number | number[] | undefined, keep: boolean) {
  const ax = axis === undefined
    ? shape.map((_, i) => i)
    : (Array.isArray(axis) ? axis : [axis]).map((a) => a < 0 ? a + shape.length : a);
  return keep
    ? shape.map((d, i) => ax.includes(i) ? 1 : d)
    : shape.filter((_, i) => !ax.includes(i));
}

type Gen = (c: Chain) => Step | null;

const floatUnary: [string, (x: Tensor) => Tensor][] = [
  ["neg", (x) => x.neg()],
  ["abs", (x) => x.abs()],
  ["sin", (x) => x.sin()],
  ["cos", (x) => x.cos()],
  ["tanh", (x) => x.tanh()],
  ["sigmoid", (x) => x.sigmoid()],
  ["relu", (x) => x.relu()],
  ["exp(tanh)", (x) => x.tanh().exp()],
  ["sqrt(abs)", (x) => x.abs().sqrt()],
  ["reciprocal(abs+1)", (x) => x.abs().add(1).reciprocal()],
  ["gelu", (x) => x.gelu()],
];
const intUnary: [string, (x: Tensor) => Tensor][] = [
  ["neg", (x) => x.neg()],
  ["abs", (x) => x.abs()],
  ["relu", (x) => x.relu()],
];
const floatBinary: [string, (x: Tensor, y: Tensor) => Tensor][] = [
  ["add", (x, y) => x.add(y)],
  ["sub", (x, y) => x.sub(y)],
  ["mul", (x, y) => x.mul(y)],
  ["maximum", (x, y) => x.maximum(y)],
  ["minimum", (x, y) => x.minimum(y)],
  ["div(|y|+0.5)", (x, y) => x.div(y.abs().add(0.5))],
  ["where(x<y, x, y*2)", (x, y) => x.lt(y).where(x, y.mul(2))],
];
const intBinary: [string, (x: Tensor, y: Tensor) => Tensor][] = [
  ["add", (x, y) => x.add(y)],
  ["sub", (x, y) => x.sub(y)],
  ["maximum", (x, y) => x.maximum(y)],
  ["minimum", (x, y) => x.minimum(y)],
  ["idiv(|y|+1)", (x, y) => x.idiv(y.abs().add(1))],
  ["mod(|y|+1)", (x, y) => x.mod(y.abs().add(1))],
  ["bitwiseXor", (x, y) => x.bitwiseXor(y)],
  ["where(x<y, x, y)", (x, y) => x.lt(y).where(x, y)],
];

const unary: Gen = (c) => {
  const [name, f] = pick(c.kind === "float32" ? floatUnary : intUnary);
  return { desc: name, apply: f };
};

const binary: Gen = (c) => {
  const shape = broadcastPartner(c.shape);
  const data = randomData(shape, c.kind);
  const [name, f] = pick(c.kind === "float32" ? floatBinary : intBinary);
  return {
    desc: `${name}(${c.kind}${fmtShape(shape)})`,
    apply: (x, device) => f(x, tensorOf(data, shape, c.kind, device)),
  };
};

const scalar: Gen = (c) => {
  const k = c.kind === "int32" ? randint(-5, 5) : Math.fround(rand() * 4 - 2);
  const mul = rand() < 0.5;
  return { desc: `${mul ? "mul" : "add"}(${k})`, apply: (x) => mul ? x.mul(k) : x.add(k) };
};

const permute: Gen = (c) => {
  if (c.shape.length < 2) return null;
  const order = c.shape.map((_, i) => i).sort(() => rand() - 0.5);
  c.shape = order.map((i) => c.shape[i]);
  return { desc: `permute(${fmtShape(order)})`, apply: (x) => x.permute(order) };
};

const flip: Gen = (c) => {
  if (c.shape.length === 0) return null;
  const axis = randint(-c.shape.length, c.shape.length - 1);
  return { desc: `flip(${axis})`, apply: (x) => x.flip(axis) };
};

const transpose: Gen = (c) => {
  if (c.shape.length < 2) return null;
  const a = randint(0, c.shape.length - 1);
  const b = (a + randint(1, c.shape.length - 1)) % c.shape.length;
  const next = [...c.shape];
  [next[a], next[b]] = [next[b], next[a]];
  c.shape = next;
  return { desc: `transpose(${a}, ${b})`, apply: (x) => x.transpose(a, b) };
};

const reshape: Gen = (c) => {
  const s = c.shape;
  let next: number[];
  const r = rand();
  if (r < 0.35 && s.length >= 2) {
    const i = randint(0, s.length - 2);
    next = [...s.slice(0, i), s[i] * s[i + 1], ...s.slice(i + 2)];
  } else if (r < 0.7) {
    const i = randint(0, Math.max(0, s.length - 1));
    const d = s[i] ?? 1;
    const f = [2, 3].find((k) => d % k === 0 && d > k);
    if (f === undefined) return null;
    next = [...s.slice(0, i), f, d / f, ...s.slice(i + 1)];
  } else if (r < 0.85) {
    next = [numel(s)];
  } else {
    const i = randint(0, s.length);
    next = [...s.slice(0, i), 1, ...s.slice(i)];
  }
  c.shape = next;
  return { desc: `reshape(${fmtShape(next)})`, apply: (x) => x.reshape(next) };
};

const pad: Gen = (c) => {
  if (c.shape.length === 0) return null;
  const pads = c.shape.map((): [number, number] => [randint(0, 2), randint(0, 2)]);
  const next = c.shape.map((d, i) => d + pads[i][0] + pads[i][1]);
  if (numel(next) > MAX_NUMEL) return null;
  const value = c.kind === "int32" ? pick([0, 3, -7]) : pick([0, 1.5, -1]);
  c.shape = next;
  return { desc: `pad(${JSON.stringify(pads)}, ${value})`, apply: (x) => x.pad(pads, value) };
};

const shrink: Gen = (c) => {
  if (c.shape.length === 0) return null;
  const ranges = c.shape.map((d): [number, number] | null => {
    if (rand() < 0.4) return null;
    const a = randint(0, d - 1);
    return [a, randint(a + 1, d)];
  });
  c.shape = c.shape.map((d, i) => ranges[i] ? ranges[i]![1] - ranges[i]![0] : d);
  return { desc: `shrink(${JSON.stringify(ranges)})`, apply: (x) => x.shrink(ranges) };
};

const expand: Gen = (c) => {
  const ones = c.shape.map((d, i) => d === 1 ? i : -1).filter((i) => i >= 0);
  if (ones.length === 0) {
    const i = randint(0, c.shape.length);
    const k = randint(2, 3);
    const next = [...c.shape.slice(0, i), k, ...c.shape.slice(i)];
    if (numel(next) > MAX_NUMEL) return null;
    c.shape = next;
    return {
      desc: `unsqueeze(${i}).expand(${fmtShape(next)})`,
      apply: (x) => x.unsqueeze(i).expand(next),
    };
  }
  const next = c.shape.map((d, i) => ones.includes(i) ? randint(1, 4) : d);
  if (numel(next) > MAX_NUMEL) return null;
  c.shape = next;
  return { desc: `expand(${fmtShape(next)})`, apply: (x) => x.expand(next) };
};

const slice: Gen = (c) => {
  if (c.shape.length === 0) return null;
  const idx: (number | [number, number, number] | null)[] = [];
  const next: number[] = [];
  for (const d of c.shape) {
    const r = rand();
    if (r < 0.3) {
      idx.push(null);
      next.push(d);
    } else if (r < 0.45 && c.shape.length > 1) {
      idx.push(randint(-d, d - 1));
    } else {
      const start = randint(0, d - 1), step = randint(1, 2);
      const end = randint(start + 1, d);
      idx.push([start, end, step]);
      next.push(Math.ceil((end - start) / step));
    }
  }
  c.shape = next;
  return { desc: `slice(${JSON.stringify(idx)})`, apply: (x) => x.slice(...idx) };
};

const reduce: Gen = (c) => {
  const axis = randomAxes(c.shape.length);
  const keep = rand() < 0.4;
  const ops = c.kind === "float32" ? ["sum", "max", "min", "mean"] as const : [
    "sum",
    "max",
    "min",
  ] as const;
  const op = pick(ops);
  c.shape = reducedShape(c.shape, axis, keep);
  if (op === "mean") c.kind = "float32";
  return {
    desc: `${op}(${JSON.stringify(axis)}, ${keep})`,
    apply: (x) => x[op](axis, keep),
  };
};

const axisOp: Gen = (c) => {
  if (c.shape.length === 0) return null;
  const axis = randint(-c.shape.length, c.shape.length - 1);
  if (c.kind === "float32" && rand() < 0.5) {
    return { desc: `softmax(${axis})`, apply: (x) => x.softmax(axis) };
  }
  return { desc: `cumsum(${axis})`, apply: (x) => x.cumsum(axis) };
};

const toFloat: Gen = (c) => {
  if (c.kind !== "int32") return null;
  c.kind = "float32";
  return { desc: "cast(float32)", apply: (x) => x.cast(dtypes.float32) };
};

const GENS: [Gen, number][] = [
  [unary, 3],
  [binary, 3],
  [scalar, 1],
  [permute, 1],
  [flip, 1],
  [transpose, 1],
  [reshape, 1.5],
  [pad, 1],
  [shrink, 1],
  [expand, 1],
  [slice, 1],
  [reduce, 1.5],
  [axisOp, 1],
  [toFloat, 0.3],
];

function pickGen(): Gen {
  let r = rand() * GENS.reduce((a, [, w]) => a + w, 0);
  for (const [g, w] of GENS) if ((r -= w) < 0) return g;
  return GENS[0][0];
}

function randomChain(): Chain {
  const kind: Kind = rand() < 0.25 ? "int32" : "float32";
  const shape = Array.from({ length: randint(1, 4) }, () => randint(1, 5));
  const c: Chain = {
    input: { shape, kind, data: randomData(shape, kind) },
    steps: [],
    shape: [...shape],
    kind,
  };
  const n = randint(2, MAX_STEPS);
  for (let tries = 0; c.steps.length < n && tries < 50; tries++) {
    const saved = { shape: [...c.shape], kind: c.kind };
    const step = pickGen()(c);
    // steps capture their shape arrays: never let a later step mutate one
    c.shape = [...c.shape];
    if (step) c.steps.push(step);
    else Object.assign(c, saved);
  }
  return c;
}

function evaluate(c: Chain, device: string): Tensor {
  let x = tensorOf(c.input.data, c.input.shape, c.input.kind, device);
  for (const s of c.steps) x = s.apply(x, device);
  return x;
}

/** chains amplify rounding (cancellation after sums): scale the absolute part by the magnitude */
function chainTolerance(data: ArrayLike<number | bigint | boolean>): Tolerance {
  let m = 0;
  for (let i = 0; i < data.length; i++) {
    const v = Math.abs(Number(data[i]));
    if (Number.isFinite(v)) m = Math.max(m, v);
  }
  return { rtol: 1e-4, atol: 1e-6 + 1e-5 * m };
}

const both = ["JS", "CPU"].every((d) => Device.list().includes(d));
if (!both) {
  console.log(`crossdevice fuzz: SKIPPED: needs JS and CPU, have ${Device.list().join(", ")}`);
}

Deno.test({
  name: `cross-device fuzz: ${CASES} random op chains agree on JS and CPU (seed ${SEED})`,
  ignore: !both,
  fn: async (t) => {
    const t0 = performance.now();
    let passed = 0, steps = 0;
    for (let i = 0; i < CASES; i++) {
      const c = randomChain();
      steps += c.steps.length;
      const chain = `${c.input.kind}${fmtShape(c.input.shape)} -> ${
        c.steps.map((s) => s.desc).join(" -> ")
      } => ${c.kind}${fmtShape(c.shape)}`;
      const ok = await t.step(`case ${i}: ${chain}`, async () => {
        const ctx = `fuzz case ${i} (seed ${SEED}): ${chain}`;
        const run = async (device: string) => {
          try {
            const x = evaluate(c, device);
            return { x, data: await x.data() };
          } catch (e) {
            throw new Error(`${ctx}\n  on ${device}: ${(e as Error).message}`, { cause: e });
          }
        };
        const { x: js, data: jsData } = await run("JS");
        const { x: cpu, data: cpuData } = await run("CPU");
        assert.deepEqual(js.shape, c.shape, `${ctx}\n  JS shape differs from the chain's`);
        assertClose(
          { shape: cpu.shape, dtype: cpu.dtype.name, data: cpuData },
          { shape: js.shape, dtype: js.dtype.name, data: jsData },
          `${ctx}\n  CPU (actual) vs JS (expected)`,
          c.kind === "int32" ? "exact" : chainTolerance(jsData),
        );
        if (i % 5 === 0) {
          // moving a realized result between devices keeps every bit
          const moved = js.to("CPU");
          assert.equal(String(moved.device).split(":")[0], "CPU");
          assertClose(
            { shape: moved.shape, dtype: moved.dtype.name, data: await moved.data() },
            { shape: js.shape, dtype: js.dtype.name, data: jsData },
            `${ctx}\n  JS result moved to CPU with to("CPU")`,
            "exact",
          );
        }
      });
      if (ok) passed++;
    }
    const s = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(
      `cross-device fuzz: ${passed}/${CASES} cases agree (${steps} ops in all) in ${s} s`,
    );
  },
});
