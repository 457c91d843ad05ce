// nn.state: state-dict names and loading errors, and safetensors: a round trip of every dtype, a
// file written by numpy from the format spec (tests/fixtures/generate_nn.py), malformed files.
import assert from "node:assert/strict";
import "../src/uop/symbolic.ts";
import { allDTypes, dtypes } from "../src/dtype.ts";
import { Tensor } from "../src/tensor.ts";
import { nn } from "../src/nn/index.ts";

interface Arr {
  dtype: string;
  shape: number[];
  data: (number | boolean)[];
}
const ref = JSON.parse(
  Deno.readTextFileSync(new URL("./fixtures/nn/reference.json", import.meta.url)),
) as {
  safetensors: { file: string; metadata: Record<string, string>; tensors: Record<string, Arr> };
};
const vals = (t: Tensor): number[] => Array.from(t.dataSync(), Number);

class Block {
  lin = new nn.Linear(3, 4, false);
  norm = new nn.BatchNorm(4);
  act = "relu"; // not a tensor: skipped
}
class Model {
  embed = new nn.Embedding(5, 3);
  layers = [new Block(), new Block()];
  head = new nn.Linear(4, 2);
  extra: Map<string, Tensor> = new Map([["scale", Tensor.ones([1])]]);
}

Deno.test("getStateDict names tensors by dotted field paths; getParameters lists each once", () => {
  const m = new Model();
  const sd = nn.state.getStateDict(m);
  assert.deepEqual(Object.keys(sd), [
    "embed.weight",
    "layers.0.lin.weight",
    "layers.0.norm.weight",
    "layers.0.norm.bias",
    "layers.0.norm.running_mean",
    "layers.0.norm.running_var",
    "layers.0.norm.num_batches_tracked",
    "layers.1.lin.weight",
    "layers.1.norm.weight",
    "layers.1.norm.bias",
    "layers.1.norm.running_mean",
    "layers.1.norm.running_var",
    "layers.1.norm.num_batches_tracked",
    "head.weight",
    "head.bias",
    "extra.scale",
  ]);
  assert.equal(sd["head.weight"], m.head.weight);
  // a shared tensor is one parameter
  m.layers[1].lin.weight = m.layers[0].lin.weight;
  const ps = nn.state.getParameters(m);
  assert.equal(ps.length, 15);
  assert.equal(new Set(ps).size, 15);
  assert.equal(ps.filter((p) => p.requiresGrad).length, 8);
});

Deno.test("loadStateDict copies values and checks names, shapes and dtypes", () => {
  const a = new nn.Linear(3, 2), b = new nn.Linear(3, 2);
  nn.state.loadStateDict(b, nn.state.getStateDict(a));
  assert.deepEqual(vals(b.weight), vals(a.weight));
  assert.notEqual(b.weight, a.weight);
  // a second load replaces the values again
  const src = { weight: Tensor.zeros([2, 3]), bias: Tensor.ones([2]) };
  nn.state.loadStateDict(b, src);
  assert.deepEqual(vals(b.bias!), [1, 1]);
  assert.throws(
    () => nn.state.loadStateDict(b, { weight: Tensor.zeros([2, 3]) }),
    /missing from the dict: \[bias\]; in the dict but not the model: \[\]\); pass \{ strict: false \}/,
  );
  assert.throws(
    () => nn.state.loadStateDict(b, { ...src, other: Tensor.zeros([1]) }),
    /in the dict but not the model: \[other\]/,
  );
  nn.state.loadStateDict(b, { weight: Tensor.full([2, 3], 2.5) }, { strict: false });
  assert.deepEqual(vals(b.weight), [2.5, 2.5, 2.5, 2.5, 2.5, 2.5]);
  assert.deepEqual(vals(b.bias!), [1, 1]);
  assert.throws(
    () => nn.state.loadStateDict(b, { weight: Tensor.zeros([3, 2]), bias: Tensor.zeros([2]) }),
    /loadStateDict: weight has shape \[3, 2\] in the dict, the model needs \[2, 3\]/,
  );
  assert.throws(
    () =>
      nn.state.loadStateDict(b, {
        weight: Tensor.zeros([2, 3], { dtype: dtypes.float16 }),
        bias: Tensor.zeros([2]),
      }),
    /weight is float16 in the dict, the model needs float32/,
  );
});

/** distinct values that each dtype holds exactly */
function sample(name: string, n: number): number[] {
  const d = allDTypes.find((x) => x.name === name)!;
  return Array.from({ length: n }, (_, i) => {
    if (d === dtypes.bool) return i % 2;
    if (d.isFloat) return (i - 2) * 0.375 + (d.itemsize >= 4 ? 1e-3 * i : 0);
    return d.isUnsigned ? (i * 37) % 250 : ((i * 37) % 250) - 120;
  });
}

Deno.test("safetensors round trip: every dtype, a scalar, an empty tensor, metadata", async () => {
  const dict: Record<string, Tensor> = {};
  for (const d of allDTypes) {
    dict[`t.${d.name}`] = Tensor.from(Float64Array.from(sample(d.name, 6)), {
      shape: [2, 3],
      dtype: d,
    });
  }
  dict.scalar = Tensor.from(new Float32Array([1.5]), { shape: [] });
  dict.empty = Tensor.zeros([0, 4]);
  dict.big64 = Tensor.from(new BigInt64Array([-(2n ** 62n), 2n ** 62n + 1n]));
  const path = await Deno.makeTempFile({ suffix: ".safetensors" });
  try {
    await nn.state.safeSave(dict, path, { note: "round trip" });
    const bytes = Deno.readFileSync(path);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal((8 + n) % 8, 0, "data starts 8-byte aligned");
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    assert.deepEqual(header["t.bfloat16"].dtype, "BF16");
    assert.deepEqual(header["t.bool"].dtype, "BOOL");
    assert.deepEqual(header.__metadata__, { note: "round trip" });
    const back = nn.state.safeLoad(path);
    assert.deepEqual(Object.keys(back).sort(), Object.keys(dict).sort());
    for (const [k, t] of Object.entries(dict)) {
      assert.equal(back[k].dtype, t.dtype, k);
      assert.deepEqual(back[k].shape, t.shape, k);
      assert.deepEqual(back[k].tolistSync(), t.tolistSync(), k);
    }
    assert.deepEqual([...back.big64.dataSync()], [-(2n ** 62n), 2n ** 62n + 1n]);
    assert.deepEqual(nn.state.safeLoadMetadata(path), { note: "round trip" });
  } finally {
    Deno.removeSync(path);
  }
});

Deno.test("a safetensors file written by numpy from the format spec loads with its values", () => {
  const st = ref.safetensors;
  const path = new URL(`./fixtures/nn/${st.file}`, import.meta.url);
  const got = nn.state.safeLoad(path);
  assert.deepEqual(Object.keys(got).sort(), Object.keys(st.tensors).sort());
  for (const [k, want] of Object.entries(st.tensors)) {
    assert.equal(got[k].dtype.name, want.dtype, k);
    assert.deepEqual(got[k].shape, want.shape, k);
    const data = vals(got[k]).map((v) => (got[k].dtype === dtypes.bool ? v !== 0 : v));
    assert.deepEqual(data, want.data, k);
  }
  assert.deepEqual(nn.state.safeLoadMetadata(path), st.metadata);
  // the file's names load straight into a model with the same structure
  const model = { model: { layers: [{ weight: Tensor.zeros([3, 1]) }] } };
  nn.state.loadStateDict(model, { "model.layers.0.weight": got["model.layers.0.weight"] });
  assert.deepEqual(vals(model.model.layers[0].weight), st.tensors["model.layers.0.weight"].data);
});

Deno.test("malformed safetensors data is rejected with the reason", () => {
  const file = (header: unknown, data = new Uint8Array(0)): Uint8Array => {
    const h = new TextEncoder().encode(JSON.stringify(header));
    const out = new Uint8Array(8 + h.length + data.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
    out.set(h, 8);
    out.set(data, 8 + h.length);
    return out;
  };
  const parse = (b: Uint8Array) => nn.state.safeParse(b, "x");
  assert.throws(() => parse(new Uint8Array(4)), /only 4 bytes/);
  const long = file({});
  new DataView(long.buffer).setBigUint64(0, 1000n, true);
  assert.throws(() => parse(long), /header length 1000 is past the end of the file/);
  assert.throws(
    () =>
      parse(file({ a: { dtype: "F8_E4M3", shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1))),
    /a: dtype "F8_E4M3" is not one of BOOL/,
  );
  assert.throws(
    () => parse(file({ a: { dtype: "F32", shape: [2], data_offsets: [0, 4] } }, new Uint8Array(4))),
    /F32 \[2\] needs 8 bytes, data_offsets give 4/,
  );
  assert.throws(
    () => parse(file({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, new Uint8Array(4))),
    /outside the 4 data bytes/,
  );
  assert.throws(
    () => parse(file({ __metadata__: { n: 1 } })),
    /__metadata__ must be an object of strings/,
  );
  assert.throws(() => parse(file([1, 2])), /header is not a JSON object/);
});

Deno.test("readIdx reads plain and gzipped IDX files; fashionMnist names the package when absent", async () => {
  const { gzipSync } = await import("node:zlib");
  const dir = await Deno.makeTempDir();
  try {
    const idx = new Uint8Array([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]);
    Deno.writeFileSync(`${dir}/a`, idx);
    Deno.writeFileSync(`${dir}/a.gz`, gzipSync(idx));
    for (const f of ["a", "a.gz"]) {
      const { shape, data } = nn.datasets.readIdx(`${dir}/${f}`);
      assert.deepEqual(shape, [2, 3]);
      assert.deepEqual([...data], [1, 2, 3, 4, 5, 6]);
    }
    Deno.writeFileSync(`${dir}/b`, idx.subarray(0, 15));
    assert.throws(() => nn.datasets.readIdx(`${dir}/b`), /holds 3 bytes of data, \[2,3\] needs 6/);
    assert.throws(
      () => nn.datasets.fashionMnist(dir),
      /train-images-idx3-ubyte.gz not found; install Debian's package dataset-fashion-mnist/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

const haveFashion = (() => {
  try {
    return Deno.statSync(`${nn.datasets.FASHION_MNIST_DIR}/t10k-labels-idx1-ubyte.gz`).isFile;
  } catch {
    return false;
  }
})();
if (!haveFashion) {
  console.warn("skipping the fashionMnist data test: apt-get install -y dataset-fashion-mnist");
}
Deno.test({
  name: "fashionMnist: uint8 images [N, 1, 28, 28] and labels 0..9 from the Debian package",
  ignore: !haveFashion,
  fn() {
    const { xTrain, yTrain, xTest, yTest } = nn.datasets.fashionMnist();
    assert.deepEqual(xTrain.shape, [60000, 1, 28, 28]);
    assert.deepEqual(yTrain.shape, [60000]);
    assert.deepEqual(xTest.shape, [10000, 1, 28, 28]);
    assert.deepEqual(yTest.shape, [10000]);
    for (const t of [xTrain, yTrain, xTest, yTest]) assert.equal(t.dtype, dtypes.uint8);
    const counts = new Array(10).fill(0);
    for (const v of yTest.dataSync()) counts[Number(v)]++;
    assert.deepEqual(counts, new Array(10).fill(1000));
    const px = xTest.dataSync();
    assert.ok(px.some((v) => v === 255) && px.some((v) => v === 0));
  },
});
