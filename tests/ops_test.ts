// Every op of the public API against numpy reference values (tests/fixtures/*.json, written by
// tests/fixtures/generate.py), on each device of JS and CPU that works here. One test per fixture
// group, one step per case and device, named "<op> [<device>] <case>"; to run some of them:
// `TG_OPS_FILTER='softmax \[CPU\]' deno test -A tests/ops_test.ts` (a regular expression).
import assert from "node:assert/strict";
import { Device, dtypes, Tensor } from "../mod.ts";
import {
  assertClose,
  decodeData,
  decodeScalar,
  describeInputs,
  type FixtureArray,
  type FixtureCase,
  fixtureResult,
  type FixtureScalar,
  type Json,
  loadFixtures,
  type ViewOp,
} from "./support/fixtures.ts";

type DType = typeof dtypes.float32;
type OpResult = Tensor | Tensor[];
type OpFn = (inputs: Tensor[], args: unknown[], device: string) => OpResult;
// deno-lint-ignore no-explicit-any
type Fn = (...args: any[]) => unknown;
type MethodName = { [K in keyof Tensor]: Tensor[K] extends Fn ? K : never }[keyof Tensor];

// TG_OPS_DEVICES (comma-separated) runs the suite elsewhere, e.g. on CUDA from tests/gpu/
const TESTED_DEVICES = (Deno.env.get("TG_OPS_DEVICES") ?? "JS,CPU").split(",");
const filter = Deno.env.get("TG_OPS_FILTER");
const selected = (stepName: string): boolean => !filter || new RegExp(filter).test(stepName);
const devices = Device.list().filter((d) => TESTED_DEVICES.includes(d));

function dtypeByName(name: string): DType {
  const d = (dtypes as unknown as Record<string, DType | undefined>)[name];
  if (!d) throw new Error(`fixture names dtype '${name}', which dtypes does not have`);
  return d;
}

/** `inputs[0].name(...args)`: the fixture's args are the method's positional arguments */
function method(name: MethodName): OpFn {
  return (inputs, args) => {
    const fn = inputs[0][name] as unknown as ((...a: unknown[]) => OpResult) | undefined;
    if (typeof fn !== "function") throw new Error(`Tensor has no method '${name}' (API.md has)`);
    return fn.apply(inputs[0], args);
  };
}

/**
 * a creation op with `nArgs` positional arguments: the fixture's args (missing optional ones
 * passed as undefined, as API.md's conventions say), then opts with the device under test
 */
function creation(fn: (...a: unknown[]) => Tensor, nArgs: number): OpFn {
  return (_inputs, args, device) => {
    const opts = args.length > nArgs ? args[nArgs] as Record<string, unknown> : {};
    const positional = Array.from({ length: nArgs }, (_, i) => args[i]);
    return fn(...positional, { ...opts, device });
  };
}

const staticFn = (f: unknown) => f as (...a: unknown[]) => Tensor;

const OPS: Record<string, OpFn> = {
  // creation
  from: creation(staticFn(Tensor.from.bind(Tensor)), 1),
  zeros: creation(staticFn(Tensor.zeros.bind(Tensor)), 1),
  ones: creation(staticFn(Tensor.ones.bind(Tensor)), 1),
  full: creation(staticFn(Tensor.full.bind(Tensor)), 2),
  linspace: creation(staticFn(Tensor.linspace.bind(Tensor)), 3),
  // eye(n, m?) and arange(stop) / arange(start, stop, step?): opts after the optional numbers
  eye: creation(staticFn(Tensor.eye.bind(Tensor)), 2),
  arange: creation(staticFn(Tensor.arange.bind(Tensor)), 3),
  zerosLike: method("zerosLike"),
  onesLike: method("onesLike"),
  fullLike: method("fullLike"),
  contiguous: method("contiguous"),
  detach: method("detach"),
  dropout: method("dropout"),
  cast: method("cast"),
  bitcast: method("bitcast"),
  // movement; cat and stack are static and take the tensor list first
  T: ([x]) => x.T,
  cat: (_i, [ts, axis]) => staticFn(Tensor.cat.bind(Tensor))(ts, axis),
  stack: (_i, [ts, axis]) => staticFn(Tensor.stack.bind(Tensor))(ts, axis),
};
for (
  const name of [
    // elementwise
    "add sub mul div pow neg maximum minimum mod idiv exp exp2 log log2 sqrt rsqrt reciprocal",
    "square abs sign sin cos tan tanh sigmoid relu leakyRelu gelu quickGelu silu swish softplus",
    "elu erf floor ceil round trunc clamp where lt le gt ge eq ne logicalNot bitwiseAnd bitwiseOr",
    "bitwiseXor lshift rshift isnan isinf lerp",
    // reduce
    "sum prod max min mean var std any all argmax argmin logsumexp softmax logSoftmax cumsum",
    "cummax",
    // movement
    "reshape permute transpose expand pad shrink flip flatten unflatten squeeze unsqueeze repeat",
    "split chunk slice",
    // linear algebra and nn
    "matmul dot linear conv2d maxPool2d avgPool2d layernorm rmsnorm batchnorm oneHot",
    "scaledDotProductAttention sparseCategoricalCrossentropy crossEntropy binaryCrossentropy",
    "binaryCrossentropyLogits",
  ].join(" ").split(" ")
) OPS[name] = method(name as MethodName);

/** API.md ops that get no fixture: random values, or exercised elsewhere (`to`: the fuzz test) */
const NOT_IN_FIXTURES = ["empty", "rand", "randn", "randint", "manualSeed", "randLike", "to"];

function decodeArg(v: Json, inputs: Tensor[]): unknown {
  if (Array.isArray(v)) return v.map((x) => decodeArg(x, inputs));
  if (v === null || typeof v !== "object") return v;
  if ("$t" in v) return inputs[v.$t as number];
  if ("$u" in v) return undefined;
  if ("$dtype" in v) return dtypeByName(v.$dtype as string);
  if ("$num" in v) return decodeScalar(v.$num as FixtureScalar);
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, decodeArg(x, inputs)]));
}

function applyView(t: Tensor, [op, ...args]: ViewOp): Tensor {
  const a = args as unknown[];
  switch (op) {
    case "permute":
      return t.permute(a[0] as number[]);
    case "flip":
      return t.flip(a[0] as number[]);
    case "shrink":
      return t.shrink(a[0] as ([number, number] | null)[]);
    case "pad":
      return t.pad(a[0] as [number, number][], a[1] as number | undefined);
    case "expand":
      return t.expand(a[0] as number[]);
    case "reshape":
      return t.reshape(a[0] as number[]);
  }
  throw new Error(`fixture view op '${op}' is unknown to ops_test.ts`);
}

function buildInput(a: FixtureArray, device: string): Tensor {
  const data = decodeData(a) as Parameters<typeof Tensor.from>[0];
  let t = Tensor.from(data, { dtype: dtypeByName(a.dtype), device }).reshape(a.shape);
  for (const v of a.view ?? []) t = applyView(t, v);
  return t;
}

async function runCase(group: string, c: FixtureCase, device: string): Promise<void> {
  const ctx = `${c.op} on ${device} (${group}/${c.name}); inputs: ${describeInputs(c.inputs)}; ` +
    `args: ${JSON.stringify(c.args)}`;
  const fn = OPS[c.op];
  if (!fn) throw new Error(`${ctx}: ops_test.ts has no dispatcher for op '${c.op}'`);
  let outs: Tensor[];
  try {
    const inputs = c.inputs.map((a) => buildInput(a, device));
    const out = fn(inputs, c.args.map((a) => decodeArg(a, inputs)), device);
    outs = Array.isArray(out) ? out : [out];
  } catch (e) {
    throw new Error(`${ctx}\n  threw while building the graph: ${(e as Error).message}`, {
      cause: e,
    });
  }
  assert.equal(outs.length, c.expected.length, `${ctx}\n  number of outputs`);
  for (const [i, o] of outs.entries()) {
    const where = outs.length > 1 ? `${ctx}; output ${i}` : ctx;
    let data;
    try {
      data = await o.data();
    } catch (e) {
      throw new Error(`${where}\n  threw while realizing: ${(e as Error).message}`, { cause: e });
    }
    assert.equal(String(o.device).split(":")[0], device, `${where}\n  result is on another device`);
    assertClose(
      { shape: o.shape, dtype: o.dtype.name, data },
      fixtureResult(c.expected[i]),
      where,
      c.tol,
    );
  }
}

const files = await loadFixtures();
// op -> device -> [passed, failed]
const tally = new Map<string, Map<string, [number, number]>>();
function record(op: string, device: string, ok: boolean): void {
  const byDev = tally.get(op) ?? new Map<string, [number, number]>();
  const t = byDev.get(device) ?? [0, 0];
  t[ok ? 0 : 1]++;
  byDev.set(device, t);
  tally.set(op, byDev);
}

if (devices.length === 0) {
  console.log(`ops_test: SKIPPED: none of ${TESTED_DEVICES.join(", ")} works here`);
}

Deno.test("ops fixtures: every dispatcher has cases and every case a dispatcher", () => {
  const fixtureOps = new Set(files.flatMap((f) => f.cases.map((c) => c.op)));
  const noCases = Object.keys(OPS).filter((op) => !fixtureOps.has(op));
  const noDispatch = [...fixtureOps].filter((op) => !(op in OPS));
  assert.deepEqual(noCases, [], `ops without fixture cases (extend generate.py): ${noCases}`);
  assert.deepEqual(noDispatch, [], `fixture ops without a dispatcher in ops_test.ts`);
  assert.ok(!NOT_IN_FIXTURES.some((op) => op in OPS));
});

for (const file of files) {
  Deno.test({
    name: `ops vs numpy: ${file.group} (${file.cases.length} cases)`,
    ignore: devices.length === 0,
    fn: async (t) => {
      for (const c of file.cases) {
        for (const device of devices) {
          const stepName = `${c.op} [${device}] ${c.name}`;
          if (!selected(stepName)) continue;
          const ok = await t.step(stepName, () => runCase(file.group, c, device));
          record(c.op, device, ok);
        }
      }
    },
  });
}

Deno.test({
  name: "ops vs numpy: summary of ops per device",
  ignore: devices.length === 0,
  fn: () => {
    const lines: string[] = [];
    for (const device of devices) {
      let pass = 0, fail = 0;
      const failing: string[] = [];
      const full: string[] = [];
      for (const [op, byDev] of [...tally].sort(([a], [b]) => a.localeCompare(b))) {
        const [p, f] = byDev.get(device) ?? [0, 0];
        pass += p;
        fail += f;
        if (f > 0) failing.push(`${op} (${f}/${p + f} failed)`);
        else if (p > 0) full.push(op);
      }
      lines.push(
        `${device}: ${pass} cases passed, ${fail} failed; ${full.length} ops pass every case` +
          (failing.length ? `; failing: ${failing.join(", ")}` : ""),
      );
    }
    console.log(`ops vs numpy by device:\n  ${lines.join("\n  ")}`);
    assert.ok(tally.size > 0, "no op ran: the fixture tests did not run before the summary");
  },
});
