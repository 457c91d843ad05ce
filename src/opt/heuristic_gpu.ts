// The hand-coded GPU heuristic. A GPU needs thousands of threads: a reduce whose output is too
// small to give them (a full sum, a few long rows) is GROUPed, so a workgroup of threads shares
// each output's reduce through shared memory. A matmul-like kernel gets a register tile (each
// thread computes a few outputs, reusing each loaded value) and a 2-D workgroup over the output
// tile, so neighbouring threads read neighbouring columns. Other kernels keep gpudims' own
// one-thread-per-output mapping.
import { type GpuLimits } from "../codegen/gpudims.ts";
import { CUDA_LIMITS } from "../codegen/gpudims.ts";
import { WEBGPU_LIMITS } from "../renderer/wgsl.ts";
import { AMD_LIMITS } from "../renderer/hip.ts";
import { AxisType, Ops, type UOp } from "../uop/ops.ts";
import { dtypes } from "../dtype.ts";
import { Device } from "../runtime/device.ts";
import {
  applyFirst,
  kernelAxes,
  type KernelAxis,
  nestedReduces,
  type Opt,
  OptOps,
  outputAxes,
} from "./opts.ts";
import { innerReduceUnrolls, matmulReduce } from "./heuristic.ts";
import { tcOpts } from "./tc.ts";
import { AMD_TC_AMOUNT, amdTcKindFor } from "./tc_amd.ts";

/** the languages that run on GPUs, with their workgroup limits */
export const GPU_LIMITS: Readonly<Record<string, GpuLimits>> = {
  cuda: CUDA_LIMITS,
  hip: AMD_LIMITS,
  wgsl: WEBGPU_LIMITS,
};

/** outputs below which a reduce is grouped (too few threads to fill a GPU) */
export const GROUP_BELOW = 16384;
/** the shortest reduce worth grouping */
export const GROUP_MIN_REDUCE = 256;
/** output elements from which an elementwise kernel gives each thread two */
export const ELEMENTWISE_UPCAST_FROM = 1 << 20;
/** bytes of shared memory grouped reduces may use (of the 48 KiB any CUDA block may have) */
export const SMEM_BUDGET = 16384;

/** the reduce axes of REDUCEs that no other REDUCE's value contains */
function outermostReduceAxes(sink: UOp, reduces: KernelAxis[]): KernelAxis[] {
  const nested = nestedReduces(sink);
  const outer = new Set(
    sink.toposort().filter((u) => u.op === Ops.REDUCE && !nested.has(u)).flatMap((r) =>
      r.src.slice(1)
    ),
  );
  return reduces.filter((a) => outer.has(a.range));
}

/**
 * the gfx target AMD kernels are built for where the caller does not say: AMD_ARCH (e.g.
 * "gfx1100"), else the AMD device's own where one opens, else none (no matrix cores)
 */
function envAmdArch(): string | null {
  try {
    const env = Deno.env.get("AMD_ARCH");
    if (env) return env;
  } catch { /* no env permission: ask the device */ }
  try {
    const arch = Device.get("AMD").info().arch;
    return typeof arch === "string" ? arch : null;
  } catch {
    return null; // no AMD device here (the registry remembers the failure: asking is cheap)
  }
}

/**
 * An AMD float16/bfloat16 matmul on the matrix cores of `arch` (src/opt/tc_amd.ts: RDNA3 WMMA,
 * CDNA MFMA), one wave per 16x16 tile, then 2x2 tiles per wave (each a and b operand loaded feeds
 * two instructions); null where the target has none, the shapes do not fit, or TC=0. Untested on
 * AMD hardware: the 2x2 is CUDA's starting point, not a measured pick.
 */
export function amdTcOpts(sink: UOp, arch: string): Opt[] | null {
  try {
    if (Deno.env.get("TC") === "0") return null;
  } catch { /* no env permission: on */ }
  const red = kernelAxes(sink).filter((a) => a.reduce && a.type === AxisType.REDUCE);
  if (red.length !== 1) return null;
  const bf16 = sink.toposort().some((u) => u.op === Ops.LOAD && u.dtype === dtypes.bfloat16);
  const kind = amdTcKindFor(arch, bf16);
  if (!kind) return null;
  const chosen: Opt[] = [];
  let s = applyFirst(sink, OptOps.TC, red[0].id, [AMD_TC_AMOUNT[kind]], chosen);
  if (!chosen.length) return null;
  const tiles = kernelAxes(s).filter((a) => a.output && a.type === AxisType.LOOP);
  s = applyFirst(s, OptOps.UPCAST, tiles.at(-2)?.id, [2], chosen);
  applyFirst(s, OptOps.UPCAST, tiles.at(-1)?.id, [2], chosen);
  return chosen;
}

/**
 * the opts the GPU heuristic picks for `sink` within `lim`; `amdArch`: the gfx target of an AMD
 * kernel (default AMD_ARCH), which decides its matrix instruction
 */
export function gpuOpts(
  sink: UOp,
  lim: GpuLimits,
  amdArch: string | null = envAmdArch(),
): Opt[] {
  const axes = kernelAxes(sink);
  if (axes.some((a) => a.size === null)) return [];
  // a float16/bfloat16 matmul on CUDA goes onto tensor cores (TC=0 turns that off), on AMD onto
  // the matrix cores of the target where it is known
  const tc = lim === CUDA_LIMITS
    ? tcOpts(sink)
    : lim === AMD_LIMITS && amdArch
    ? amdTcOpts(sink, amdArch)
    : null;
  if (tc) return tc;
  const chosen: Opt[] = [];
  const outs = outputAxes(sink, axes);
  const reduces = axes.filter((a) => a.reduce && a.type === AxisType.REDUCE);
  const outputs = outs.reduce((p, a) => p * a.size!, 1);
  const threads = [256, 128, 64, 32, 16].filter((t) => t <= lim.threads);

  if (matmulReduce(sink) && outs.length >= 2 && outputs >= GROUP_BELOW) {
    const [m, n] = [outs.at(-2)!, outs.at(-1)!], k = reduces.at(-1);
    let s = sink;
    s = applyFirst(s, OptOps.UPCAST, m.id, [4, 2], chosen);
    s = applyFirst(s, OptOps.UPCAST, n.id, [4, 2], chosen);
    s = applyFirst(s, OptOps.UNROLL, k?.id, [4, 2], chosen);
    s = applyFirst(s, OptOps.LOCAL, n.id, [16, 8, 4], chosen);
    s = applyFirst(s, OptOps.LOCAL, m.id, [8, 4, 2], chosen);
    // 4 more columns per thread: BEAM's pick on an H100 for float32 4096^3 (8.0 ms against 18.9)
    applyFirst(s, OptOps.UPCAST, n.id, [4, 2], chosen);
    return chosen;
  }
  // short reduces nested in a longer one unrolled whole (attention's dot products)
  const inner = innerReduceUnrolls(sink);
  if (inner.length) {
    chosen.push(...inner);
    return chosen;
  }
  // a big elementwise kernel: two elements per thread (BEAM's pick for a 64M add on an H100:
  // 269 us against 327 us for one)
  if (!reduces.length && outs.length && outputs >= ELEMENTWISE_UPCAST_FROM) {
    applyFirst(sink, OptOps.UPCAST, outs.at(-1)!.id, [2], chosen);
    return chosen;
  }
  // the reduce to share is an outermost one: grouping a nested reduce would add a barrier per
  // iteration of the loop around it
  const red = outermostReduceAxes(sink, reduces).sort((a, b) => b.size! - a.size!)[0];
  if (red && outputs < GROUP_BELOW && red.size! >= GROUP_MIN_REDUCE) {
    // each UPCAST copy of the reduce gets its own shared array: keep them within SMEM_BUDGET
    const copies = axes.filter((a) => a.type === AxisType.UPCAST).reduce((p, a) => p * a.size!, 1);
    const fit = threads.filter((t) => t * copies * 8 <= SMEM_BUDGET);
    applyFirst(sink, OptOps.GROUP, red.id, fit, chosen);
  }
  return chosen;
}
