// Elementwise add of 16M float32 on each device, beside numpy's figure for the same work.
import { Device, Tensor } from "../mod.ts";
import { emit, numpyFigure, timeIt } from "./common.ts";

const N = 16 * 1024 * 1024;
const bytes = 3 * 4 * N; // two reads and one write
const ref = numpyFigure(`
a=np.random.rand(${N}).astype(np.float32); b=np.random.rand(${N}).astype(np.float32); c=np.empty_like(a)
np.add(a,b,out=c)
ts=[]
for _ in range(10):
  t=time.perf_counter(); np.add(a,b,out=c); ts.append(time.perf_counter()-t)
ts.sort(); print(${bytes}/ts[len(ts)//2]/1e9)`);
for (const device of Device.list().filter((d) => d === "CPU")) {
  const a = Tensor.rand([N], { device }).realize(), b = Tensor.rand([N], { device }).realize();
  const s = timeIt(() => a.add(b).realize(), 10, 2);
  emit({
    bench: "add_f32",
    device,
    shape: [N],
    value: bytes / s / 1e9,
    unit: "GB/s",
    numpy: ref,
    ratio: ref ? bytes / s / 1e9 / ref : null,
  });
}
