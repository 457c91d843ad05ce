// Reductions on the CPU in GB/s: softmax over the last axis of [4096,4096] and a sum of [8192,8192]
// (float32), each with the heuristic and with BEAM=2 (set per run in a subprocess), beside the
// machine's memory bandwidth (a numpy copy of 256 MB, measured in the same run) and numpy's own
// figure for the same op. Bytes are the least the op must move: its input read once and its
// output written once. `value` gives each output back (Tensor.dispose) before the next call, so
// the next output reuses its memory, as in tinygrad or PyTorch where a dropped tensor is freed at
// once; `fresh_output` is the same op keeping every output until the garbage collector runs (each
// output is then new memory: a page fault per 4 KiB). `exp_ceiling` is tg's own x.exp() over
// the same input in the same units: softmax computes at least one exp per element, so it cannot
// be faster than that on this machine however its memory traffic is arranged.
import { Tensor } from "../mod.ts";
import { emit, numpyFigure, timeIt } from "./common.ts";

interface Case {
  name: string;
  shape: [number, number];
  /** bytes read and written at least */
  bytes: number;
  run: (x: Tensor) => Tensor;
  numpy: string;
}

const CASES: Case[] = [
  {
    name: "softmax_f32",
    shape: [4096, 4096],
    bytes: 2 * 4 * 4096 * 4096,
    run: (x) => x.softmax(-1),
    numpy: "e=np.exp(a-a.max(-1,keepdims=True)); e/e.sum(-1,keepdims=True)",
  },
  {
    name: "sum_f32",
    shape: [8192, 8192],
    bytes: 4 * 8192 * 8192 + 4,
    run: (x) => x.sum(),
    numpy: "a.sum()",
  },
];

function measure(c: Case, run = c.run, dispose = true): number {
  const x = Tensor.rand(c.shape, { device: "CPU" }).realize();
  const once = dispose ? () => run(x).realize().dispose() : () => void run(x).realize();
  return c.bytes / timeIt(once, 15, 2) / 1e9;
}

if (Deno.args[0] === "--one") {
  const c = CASES.find((c) => c.name === Deno.args[1])!;
  const figures = [measure(c), measure(c, c.run, false)];
  if (c.name === "softmax_f32") figures.push(measure(c, (x) => x.exp()));
  console.log(figures.join(" "));
} else {
  const copy = numpyFigure(`
a=np.ones(64*1024*1024,np.float32); b=np.empty_like(a); np.copyto(b,a)
ts=[]
for _ in range(5):
  t=time.perf_counter(); np.copyto(b,a); ts.append(time.perf_counter()-t)
print(2*a.nbytes/min(ts)/1e9)`);
  for (const c of CASES) {
    const numpy = numpyFigure(`
a=np.random.rand(${c.shape.join(",")}).astype(np.float32); ${c.numpy}
ts=[]
for _ in range(5):
  t=time.perf_counter(); ${c.numpy}; ts.append(time.perf_counter()-t)
ts.sort(); print(${c.bytes}/ts[len(ts)//2]/1e9)`);
    for (const beam of ["0", "2"]) {
      const out = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", new URL(import.meta.url).pathname, "--one", c.name],
        env: { BEAM: beam },
        stdout: "piped",
        stderr: "inherit",
      }).outputSync();
      if (!out.success) Deno.exit(out.code);
      const [v, fresh, exp] = new TextDecoder().decode(out.stdout).trim().split(" ").map(Number);
      emit({
        bench: c.name,
        device: "CPU",
        shape: c.shape,
        value: v,
        unit: "GB/s",
        opt: beam === "0" ? "heuristic" : "BEAM=2",
        bandwidth: copy,
        of_bandwidth: copy ? v / copy : null,
        fresh_output: fresh,
        ...(exp === undefined ? {} : { exp_ceiling: exp, of_exp_ceiling: v / exp }),
        numpy,
        ratio: numpy ? v / numpy : null,
      });
    }
  }
}
