// Compile time per kernel on CPU: cold (empty cache dir: the compiler runs), warm (a fresh
// process-like device on the same dir: load + hash check + dlopen), and the in-process hit.
// Prints JSON lines. Usage: deno run -A bench/compile.ts [kernels=16]

import { dtypes } from "../src/dtype.ts";
import type { ProgramSpec } from "../src/runtime/device.ts";
import { CpuDevice } from "../src/runtime/cpu.ts";

const N = Number(Deno.args[0] ?? 16);
const SIZE = 1 << 16;

// distinct kernels shaped like generated ones: an elementwise chain and a parallel reduction
function kernel(i: number): ProgramSpec {
  const name = `E_${SIZE}_${i}`;
  const src = `#include <math.h>
void ${name}(float* restrict data0, const float* restrict data1, const float* restrict data2) {
#pragma omp parallel for
  for (int r0 = 0; r0 < ${SIZE / 256}; r0++) {
    float acc0 = 0.0f;
    for (int r1 = 0; r1 < 256; r1++) {
      int idx = r0 * 256 + r1;
      float v = data1[idx] * ${i + 1}.5f + data2[idx];
      acc0 += (v > 0.0f ? v : 0.0f) + expf(-v * v);
    }
    data0[r0] = sqrtf(acc0) + ${i}.0f;
  }
}
`;
  const f = dtypes.float32;
  return {
    name,
    src,
    lang: "c",
    globalSize: [1],
    localSize: null,
    vars: [],
    bufs: [
      { slot: 0, dtype: f, size: SIZE / 256, mutable: true },
      { slot: 1, dtype: f, size: SIZE, mutable: false },
      { slot: 2, dtype: f, size: SIZE, mutable: false },
    ],
  };
}

function timeAll(dev: CpuDevice, specs: ProgramSpec[]): number {
  const t0 = performance.now();
  for (const s of specs) dev.compile(s);
  return (performance.now() - t0) / specs.length;
}

const dir = Deno.makeTempDirSync({ prefix: "tg-bench-compile-" });
try {
  const specs = Array.from({ length: N }, (_, i) => kernel(i));
  const cold = new CpuDevice({ cacheDir: dir });
  cold.compiler.flags; // the OpenMP probe runs once per compiler, not per kernel: keep it out
  const coldMs = timeAll(cold, specs);
  if (cold.stats.compiled !== N) throw new Error(`cold run compiled ${cold.stats.compiled}/${N}`);
  const warm = new CpuDevice({ cacheDir: dir });
  warm.compiler.flags;
  const warmMs = timeAll(warm, specs);
  if (warm.stats.compiled !== 0) throw new Error(`warm run compiled ${warm.stats.compiled}`);
  const memMs = timeAll(warm, specs);
  const base = { bench: "cpu_compile", device: "CPU", kernels: N, compiler: cold.compiler.cmd[0] };
  const line = (cache: string, ms: number) =>
    console.log(JSON.stringify({ ...base, cache, value: +ms.toFixed(4), unit: "ms/kernel" }));
  line("cold", coldMs);
  line("disk", warmMs);
  line("memory", memMs);
} finally {
  Deno.removeSync(dir, { recursive: true });
}
