// Realize latency of small cached graphs, run again and again: a 64x64 linear + relu + sum (one
// fused matmul kernel) and a 64x64 add + relu + sum (where scheduling overhead dominates).
import { Device, Tensor } from "../mod.ts";
import { emit, timeIt } from "./common.ts";

for (const device of Device.list().filter((d) => d === "CPU" || d === "JS")) {
  const x = Tensor.rand([64, 64], { device }).realize(),
    w = Tensor.rand([64, 64], { device }).realize();
  const lin = timeIt(() => x.matmul(w).relu().sum().realize(), 200, 20);
  emit({
    bench: "small_graph_realize",
    graph: "linear_relu_sum",
    device,
    shape: [64, 64],
    value: lin * 1e6,
    unit: "us",
    tinygrad_reference_us: 2000,
  });
  const ew = timeIt(() => x.add(w).relu().sum().realize(), 500, 50);
  emit({
    bench: "small_graph_realize",
    graph: "add_relu_sum",
    device,
    shape: [64, 64],
    value: ew * 1e6,
    unit: "us",
    tinygrad_reference_us: 2000,
  });
}
