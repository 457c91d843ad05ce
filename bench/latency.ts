// Realize latency of a small cached graph: a 64x64 linear + relu + sum, run again and again.
import { Device, Tensor } from "../mod.ts";
import { emit, timeIt } from "./common.ts";

for (const device of Device.list().filter((d) => d === "CPU" || d === "JS")) {
  const x = Tensor.rand([64, 64], { device }).realize(),
    w = Tensor.rand([64, 64], { device }).realize();
  const s = timeIt(() => x.matmul(w).relu().sum().realize(), 200, 20);
  emit({
    bench: "small_graph_realize",
    device,
    shape: [64, 64],
    value: s * 1e6,
    unit: "us",
    tinygrad_reference_us: 2000,
  });
}
