// Shared helpers of the scripted benchmarks: JSON lines out, numpy references in the same run.

export interface BenchLine {
  bench: string;
  device: string;
  shape: number[];
  value: number;
  unit: string;
  [k: string]: unknown;
}

export function emit(line: BenchLine): void {
  console.log(JSON.stringify(line));
}

/** the median of `reps` timings of `fn` in seconds, after `warmup` untimed runs */
export function timeIt(fn: () => void, reps = 10, warmup = 2): number {
  for (let i = 0; i < warmup; i++) fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    ts.push((performance.now() - t0) / 1e3);
  }
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)];
}

/** run a python3+numpy snippet that prints one number; null when python3 or numpy is absent */
export function numpyFigure(code: string): number | null {
  try {
    const out = new Deno.Command("python3", {
      args: ["-c", `import numpy as np, time\n${code}`],
      stdout: "piped",
      stderr: "piped",
    })
      .outputSync();
    if (!out.success) return null;
    const v = Number(new TextDecoder().decode(out.stdout).trim().split("\n").pop());
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}
