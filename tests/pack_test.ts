// Packed right operands (src/tensor/nnfunc.ts): a large float32 matmul on the CPU copies its
// right operand into 16-column panels first; the result, batched or not, and its gradients equal
// the JS device's plain matmul, and the heuristic then keeps the reduce one long loop (no TILE).
import assert from "node:assert/strict";
import { Tensor } from "../mod.ts";
import { handCodedOpts } from "../src/opt/heuristic.ts";
import { kernelAxes, OptOps } from "../src/opt/opts.ts";
import { PACK_FROM } from "../src/tensor/nnfunc.ts";
import { seededRandom } from "./support/fixtures.ts";

function randomData(n: number, seed: number): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: n }, () => r() * 2 - 1);
}

function close(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  assert.equal(got.length, want.length, `${what}: lengths`);
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= 1e-4 * Math.max(1, Math.abs(want[i])))) {
      assert.fail(`${what}: element ${i} is ${got[i]}, JS gives ${want[i]}`);
    }
  }
}

const on = (dev: string, shape: number[], data: Float32Array) =>
  Tensor.from(data, { device: dev }).reshape(shape);

Deno.test("a packed CPU matmul equals the JS matmul (2-D, batched, broadcast batch)", () => {
  const cases: [number[], number[]][] = [
    [[24, 1024], [1024, 272]],
    [[2, 8, 640], [2, 640, 512]],
    [[3, 5, 520], [520, 528]],
  ];
  for (const [sa, sb] of cases) {
    assert.ok(sb.at(-2)! * sb.at(-1)! > PACK_FROM, `${sb} is packed`);
    const da = randomData(sa.reduce((p, x) => p * x), 1);
    const db = randomData(sb.reduce((p, x) => p * x), 2);
    const got = on("CPU", sa, da).matmul(on("CPU", sb, db));
    const want = on("JS", sa, da).matmul(on("JS", sb, db));
    assert.deepEqual(got.shape, want.shape);
    // the packed form is two kernels (the panels, the product); the plain one is one
    assert.equal(got.schedule().length, 2, `${sa} @ ${sb}: kernels`);
    close(got.dataSync() as Float32Array, want.dataSync() as Float32Array, `${sa} @ ${sb}`);
  }
});

Deno.test("gradients through a packed CPU matmul equal the JS ones", () => {
  const da = randomData(16 * 768, 3), db = randomData(768 * 512, 4);
  const grads = (dev: string) => {
    const a = on(dev, [16, 768], da), b = on(dev, [768, 512], db);
    a.requiresGrad = true;
    b.requiresGrad = true;
    a.matmul(b).relu().sum().backward();
    return [a.grad!.dataSync() as Float32Array, b.grad!.dataSync() as Float32Array];
  };
  const [ga, gb] = grads("CPU"), [wa, wb] = grads("JS");
  close(ga, wa, "grad of a");
  close(gb, wb, "grad of b");
});

Deno.test("a packed matmul's reduce is one loop with a 4x16 register tile, two panels at a time", () => {
  const a = Tensor.empty([512, 2048], { device: "CPU" });
  const b = Tensor.empty([2048, 512], { device: "CPU" });
  const ast = a.matmul(b).schedule().at(-1)!.ast;
  const opts = handCodedOpts(ast);
  const reduceAxis = kernelAxes(ast).find((x) => x.reduce)!.id;
  assert.ok(!opts.some((o) => o.op === OptOps.TILE && o.axis === reduceAxis), JSON.stringify(opts));
  assert.deepEqual(opts.map((o) => [OptOps[o.op], o.amount]), [
    ["UPCAST", 16],
    ["UPCAST", 4],
    ["TILE", 2],
  ]);
  // unpacked (the JS device), the same reduce is blocked
  const ja = Tensor.empty([512, 2048], { device: "JS" });
  const jb = Tensor.empty([2048, 512], { device: "JS" });
  const plain = handCodedOpts(ja.matmul(jb).schedule().at(-1)!.ast);
  assert.ok(plain.some((o) => o.op === OptOps.TILE), JSON.stringify(plain));
});
