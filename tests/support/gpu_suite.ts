// The op-suite kernels the GPU renderers are compile-checked on without a GPU
// (tests/cuda_render_test.ts, tests/hip_render_test.ts), built through the public API.
import { Device, dtypes, Tensor } from "../../mod.ts";
import { setLoopsOver } from "../../src/rangeify/split.ts";
import { type CodegenLang, type ProgramSpec, toProgram } from "../../src/codegen/index.ts";

function suite(): [string, Tensor][] {
  const a = Tensor.rand([33, 1031]), b = Tensor.rand([1031, 64]), c = Tensor.rand([16, 16]);
  const x4 = Tensor.rand([3, 5, 7, 11]);
  const i = Tensor.arange(0, 1000, 1, { dtype: dtypes.int32 }).reshape([10, 100]);
  const h = c.cast(dtypes.float16), bf = c.cast(dtypes.bfloat16);
  return [
    ["add", a.add(1).mul(a)],
    ["exp log sqrt sin", a.exp().add(a.log()).add(a.sqrt()).add(a.sin())],
    ["where inf", a.lt(0.5).where(a, Infinity)],
    ["sum rows", a.sum(1)],
    ["sum all", a.sum()],
    ["max", a.max(0)],
    ["matmul", a.matmul(b)],
    ["softmax", a.softmax(1)],
    ["pad", a.pad([[1, 1], [2, 2]])],
    ["transpose", a.T.contiguous()],
    ["4-d permute", x4.permute([3, 1, 0, 2]).contiguous()],
    ["int idiv mod", i.idiv(i.add(-3)).add(i.mod(7))],
    ["float16 math", h.mul(2).add(h.exp())],
    ["float16 matmul", h.matmul(h)],
    ["bfloat16", bf.mul(bf).sum(1)],
    ["float64 to float16", c.cast(dtypes.float64).mul(1.5).cast(dtypes.float16)],
    ["float64 to bfloat16", c.cast(dtypes.float64).cast(dtypes.bfloat16)],
    ["bitcast", c.bitcast(dtypes.int32).add(1)],
    ["bool", c.gt(0.5).logicalNot().cast(dtypes.float32)],
  ];
}

/** every kernel of the suite rendered in `lang`, labelled by case and kernel number */
export function suitePrograms(lang: CodegenLang): { label: string; p: ProgramSpec }[] {
  // scheduled as on a GPU (threads, not loops: no reduce fused into a loop over its output)
  setLoopsOver(Device.DEFAULT, false);
  try {
    return suite().flatMap(([label, t]) =>
      t.schedule().map((s, k) => ({ label: `${label} #${k}`, p: toProgram(s.ast, lang) }))
    );
  } finally {
    setLoopsOver(Device.DEFAULT, null);
  }
}
