// 3x3 conv2d (padding 1) of [8,64,56,56] with 64 output channels, float32 on the CPU, in GFLOP/s,
// with the heuristic and with BEAM=2 (set per run in a subprocess), beside numpy's best in the
// same run: im2col through sliding_window_view, then tensordot (BLAS).
import { Tensor } from "../mod.ts";
import { emit, numpyFigure, timeIt } from "./common.ts";

const [N, C, H, W, K] = [8, 64, 56, 56, 64];
const FLOPS = 2 * N * K * H * W * C * 9;

function measure(): number {
  const x = Tensor.rand([N, C, H, W], { device: "CPU" }).realize();
  const w = Tensor.rand([K, C, 3, 3], { device: "CPU" }).realize();
  return FLOPS / timeIt(() => x.conv2d(w, undefined, { padding: 1 }).realize(), 5, 1) / 1e9;
}

if (Deno.args[0] === "--one") {
  console.log(measure());
} else {
  const numpy = numpyFigure(`
x=np.random.rand(${N},${C},${H},${W}).astype(np.float32); w=np.random.rand(${K},${C},3,3).astype(np.float32)
def conv():
  p=np.pad(x,((0,0),(0,0),(1,1),(1,1)))
  win=np.lib.stride_tricks.sliding_window_view(p,(3,3),axis=(2,3))  # N,C,H,W,3,3
  return np.tensordot(win,w,axes=([1,4,5],[1,2,3]))  # N,H,W,K
conv()
ts=[]
for _ in range(3):
  t=time.perf_counter(); conv(); ts.append(time.perf_counter()-t)
print(${FLOPS}/min(ts)/1e9)`);
  for (const beam of ["0", "2"]) {
    const out = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL(import.meta.url).pathname, "--one"],
      env: { BEAM: beam },
      stdout: "piped",
      stderr: "inherit",
    }).outputSync();
    if (!out.success) Deno.exit(out.code);
    const v = Number(new TextDecoder().decode(out.stdout).trim());
    emit({
      bench: "conv2d_f32",
      device: "CPU",
      shape: [N, C, H, W, K, 3, 3],
      value: v,
      unit: "GFLOP/s",
      opt: beam === "0" ? "heuristic" : "BEAM=2",
      numpy,
      ratio: numpy ? v / numpy : null,
    });
  }
}
