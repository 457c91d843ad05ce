// Elementwise add of 16M float32 on each device, beside numpy's figure for the same work.
import { Device, Tensor } from "../mod.ts";
import { emit, numpyFigure, timeIt } from "./common.ts";

const N = 16 * 1024 * 1024;
const bytes = 3 * 4 * N; // two reads and one write
// numpy two ways: allocating a new result (the same work as ours: `a + b` makes a new tensor)
// and into a preallocated array (pure memory bandwidth)
const ref = (expr: string) =>
  numpyFigure(`
a=np.random.rand(${N}).astype(np.float32); b=np.random.rand(${N}).astype(np.float32); c=np.empty_like(a)
${expr}
ts=[]
for _ in range(10):
  t=time.perf_counter(); ${expr}; ts.append(time.perf_counter()-t)
ts.sort(); print(${bytes}/ts[len(ts)//2]/1e9)`);
const alloc = ref("d=a+b"), inplace = ref("np.add(a,b,out=c)");
for (const device of Device.list().filter((d) => d === "CPU")) {
  const a = Tensor.rand([N], { device }).realize(), b = Tensor.rand([N], { device }).realize();
  const s = timeIt(() => a.add(b).realize(), 10, 2);
  const gbs = bytes / s / 1e9;
  emit({
    bench: "add_f32",
    device,
    shape: [N],
    value: gbs,
    unit: "GB/s",
    numpy_alloc: alloc,
    ratio_alloc: alloc ? gbs / alloc : null,
    numpy_out: inplace,
    ratio_out: inplace ? gbs / inplace : null,
  });
}
