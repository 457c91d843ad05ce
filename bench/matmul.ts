// float32 matmul on the CPU in GFLOP/s, with the kernel heuristic and without (NOOPT=1, set per
// run in a subprocess), beside numpy's figure for the same work in the same run.
import { Tensor } from "../mod.ts";
import { emit, numpyFigure, timeIt } from "./common.ts";

const SIZES = [512, 1024, 2048];

/** one size with the current environment: GFLOP/s of `a.matmul(b).realize()` */
function measure(n: number): number {
  const a = Tensor.rand([n, n], { device: "CPU" }).realize();
  const b = Tensor.rand([n, n], { device: "CPU" }).realize();
  const reps = n >= 2048 ? 3 : n >= 1024 ? 5 : 10;
  const s = timeIt(() => a.matmul(b).realize(), reps, 1);
  return 2 * n ** 3 / s / 1e9;
}

if (Deno.args[0] === "--one") {
  console.log(measure(Number(Deno.args[1])));
} else {
  for (const n of SIZES) {
    const numpy = numpyFigure(`
n=${n}; a=np.random.rand(n,n).astype(np.float32); b=np.random.rand(n,n).astype(np.float32)
a@b
ts=[]
for _ in range(${n >= 2048 ? 3 : 10}):
  t=time.perf_counter(); a@b; ts.append(time.perf_counter()-t)
ts.sort(); print(2*n**3/ts[len(ts)//2]/1e9)`);
    for (const noopt of [false, true]) {
      if (noopt && n > 1024) continue; // the scalar triple loop at 2048 takes minutes
      const out = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", new URL(import.meta.url).pathname, "--one", String(n)],
        env: { NOOPT: noopt ? "1" : "0" },
        stdout: "piped",
        stderr: "inherit",
      }).outputSync();
      if (!out.success) Deno.exit(out.code);
      const v = Number(new TextDecoder().decode(out.stdout).trim());
      emit({
        bench: "matmul_f32",
        device: "CPU",
        shape: [n, n, n],
        value: v,
        unit: "GFLOP/s",
        opt: noopt ? "NOOPT" : "heuristic",
        numpy,
        ratio: numpy ? v / numpy : null,
      });
    }
  }
}
