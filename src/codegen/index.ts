// Kernel AST -> ProgramSpec: lower reduces, check bounds, linearize, render.
import { GroupOp, Ops, type UOp } from "../uop/ops.ts";
import { graphRewrite, type PatternMatcher } from "../uop/upat.ts";
import { symbolic } from "../uop/symbolic.ts";
import { boundsCheckEnabled, checkBounds } from "./bounds.ts";
import { linearize, type LinearProgram, tripCount } from "./linearize.ts";
import { type LowerCtx, newLowerCtx, pmLowerReduce } from "./lower.ts";
import type { ProgramBuf, ProgramSpec } from "./program.ts";
import { ClangRenderer } from "../renderer/cpu.ts";
import { JSRenderer } from "../renderer/js.ts";
import { CUDARenderer } from "../renderer/cuda.ts";
import { AMD_LIMITS, HIPRenderer } from "../renderer/hip.ts";
import { WEBGPU_LIMITS, WGSLRenderer } from "../renderer/wgsl.ts";
import type { CStyleRenderer } from "../renderer/c.ts";
import { CUDA_LIMITS, gpuDims, type GpuLimits, type LaunchDims } from "./gpudims.ts";
import { pmOptimize } from "../opt/heuristic.ts";
import { pmTranscendental } from "./transcendental.ts";

export type { ProgramBuf, ProgramSpec } from "./program.ts";
export { linearize } from "./linearize.ts";

export interface ToProgramOpts {
  /** overrides SINK.arg.name and the E_/r_ name */
  name?: string;
  /** default: on unless CHECK_BOUNDS=0 */
  checkBounds?: boolean;
  /** top-level loops need this many body iterations to get threads (C); default 16384 */
  parallelMin?: number;
}

type Pass = readonly [name: string, pm: PatternMatcher<LowerCtx>];
/** the rewrites before linearizing, in order */
export const passes: readonly Pass[] = [
  ["optimize", pmOptimize],
  // C only: EXP2/LOG2 as plain ops, so that their loops vectorize (src/codegen/transcendental.ts)
  ["transcendental", pmTranscendental],
  ["symbolic", symbolic],
  ["lower reduces", pmLowerReduce],
];

export interface Lowered {
  sink: UOp;
  lin: LinearProgram;
  ctx: LowerCtx;
  /** GPU languages: the grid (blocks) and block (threads) the output ranges were mapped to */
  dims: LaunchDims | null;
  /**
   * the kernel before gpudims: the bounds check proves its loop form, since index arithmetic
   * merged across thread indices defeats interval reasoning (gpudims is a bijection onto the
   * same range values, tested in tests/cuda_render_test.ts)
   */
  checked: UOp;
}

export type CodegenLang = "c" | "js" | "cuda" | "hip" | "wgsl";
/** languages whose kernels run one thread per output element (src/codegen/gpudims.ts) */
const GPU_LANGS: ReadonlyMap<CodegenLang, GpuLimits> = new Map([
  ["cuda", CUDA_LIMITS],
  ["hip", AMD_LIMITS],
  ["wgsl", WEBGPU_LIMITS],
]);

/** the kernel with its passes applied and linearized (what renderers and tests inspect) */
export function lowerKernel(
  ast: UOp,
  opts: ToProgramOpts = {},
  lang: CodegenLang = "c",
): Lowered {
  if (ast.op !== Ops.SINK) throw new Error(`toProgram: a kernel AST is a SINK, got ${Ops[ast.op]}`);
  const ctx = newLowerCtx(lang);
  let sink = ast;
  for (const [name, pm] of passes) {
    if (name === "lower reduces") ctx.nextAxis = nextAxisId(sink);
    sink = graphRewrite(sink, pm, ctx);
  }
  let dims: LaunchDims | null = null;
  const checked = sink;
  const lim = GPU_LANGS.get(lang);
  if (lim) ({ sink, dims } = gpuDims(sink, ctx.reduceRanges, lim, ctx.groupRanges));
  return {
    sink,
    ctx,
    dims,
    checked,
    lin: linearize(sink, { reduceRanges: ctx.reduceRanges, parallelMin: opts.parallelMin }),
  };
}

/** one past the largest axis id of the kernel's ranges */
function nextAxisId(sink: UOp): number {
  let m = -1;
  for (const u of sink.toposort()) if (u.op === Ops.RANGE) m = Math.max(m, (u.arg as [number])[0]);
  return m + 1;
}

/** E_ for elementwise, r_ with a reduce, then the loop sizes in program order */
function kernelName(lin: LinearProgram, reduces: boolean, mapped: UOp[] = []): string {
  const sizes = [...mapped, ...lin.uops.filter((u) => u.op === Ops.RANGE)].map((r) => {
    const e = r.src[0];
    return e.op === Ops.CONST
      ? String(e.arg)
      : e.op === Ops.DEFINE_VAR
      ? (e.arg as [string])[0]
      : "n";
  });
  return `${reduces ? "r" : "E"}_${sizes.length ? sizes.join("_") : "1"}`.replace(
    /[^A-Za-z0-9_]/g,
    "_",
  );
}

const renderers: Record<CodegenLang, (dims: LaunchDims | null) => CStyleRenderer> = {
  c: () => new ClangRenderer(),
  js: () => new JSRenderer(),
  cuda: (dims) => new CUDARenderer(dims!.localSize),
  hip: (dims) => new HIPRenderer(dims!.localSize),
  wgsl: (dims) => new WGSLRenderer(dims!.localSize),
};

export function toProgram(ast: UOp, lang: CodegenLang, opts: ToProgramOpts = {}): ProgramSpec {
  const { sink, lin, ctx, dims, checked } = lowerKernel(ast, opts, lang);
  const name = opts.name ?? (ast.arg as { name?: string } | undefined)?.name ??
    kernelName(lin, ctx.reduceRanges.size > 0 || ctx.regs > 0, dims?.mapped);
  if (opts.checkBounds ?? boundsCheckEnabled()) checkBounds(checked, name);

  const globals = new Map<number, UOp>();
  const stored = new Set<UOp>();
  const vars = new Map<string, UOp>();
  for (const u of sink.toposort()) {
    if (u.op === Ops.DEFINE_GLOBAL) {
      const slot = (u.arg as [number, number])[0], prev = globals.get(slot);
      if (prev && prev !== u) {
        throw new Error(
          `kernel ${name}: slot ${slot} is defined twice (${prev.dtype.name}, ${u.dtype.name})`,
        );
      }
      globals.set(slot, u);
    } else if (u.op === Ops.STORE) stored.add(u.src[0].src[0]);
    else if (u.op === Ops.DEFINE_VAR) {
      const n = (u.arg as [string])[0], prev = vars.get(n);
      if (prev && prev !== u) {
        throw new Error(`kernel ${name}: variable '${n}' is defined twice with different bounds`);
      }
      vars.set(n, u);
    }
  }
  const bufs: ProgramBuf[] = [...globals.entries()].sort((a, b) => a[0] - b[0]).map((
    [slot, g],
  ) => ({
    slot,
    dtype: g.dtype,
    size: (g.arg as [number, number])[1],
    mutable: stored.has(g),
  }));
  const varList = [...vars.values()].sort((a, b) => {
    const x = (a.arg as [string])[0], y = (b.arg as [string])[0];
    return x < y ? -1 : x > y ? 1 : 0;
  });
  const renderer = renderers[lang](dims);
  const src = renderer.render({ name, lin, bufs, vars: varList });
  // shared arrays past the static limit are dynamic shared memory the launch sizes
  const sharedMem = renderer instanceof CUDARenderer ? renderer.dynamicShared : 0;
  return {
    ...(sharedMem ? { sharedMem } : {}),
    name,
    src,
    lang,
    globalSize: dims ? [...dims.globalSize] : [1, 1, 1],
    localSize: dims ? [...dims.localSize] : null,
    bufs,
    vars: varList.map((v) => (v.arg as [string])[0]),
    // on a GPU the body runs once per mapped output element
    ...estimates(lin, (dims?.mapped ?? []).reduce((a, r) => a * tripCount(r), 1)),
    loopIterations: loopIterations(lin),
  };
}

/** iterations of every loop of one thread: each loop's trip count times its enclosing loops' */
function loopIterations(lin: LinearProgram): number {
  let n = 0;
  for (const u of lin.uops) {
    if (u.op !== Ops.RANGE) continue;
    let m = 1;
    for (let x: UOp | null = u; x; x = lin.parent.get(x) ?? null) m *= tripCount(x);
    n += m;
  }
  return n;
}

/** flops (ALU ops outside index math) and bytes of global memory one run touches */
function estimates(lin: LinearProgram, threads = 1): { ops: number; mem: number } {
  const mult = (b: UOp | null): number => {
    let m = threads;
    for (let x = b; x; x = lin.parent.get(x) ?? null) m *= tripCount(x);
    return m;
  };
  // index-only nodes: every user is an INDEX address/gate or another index-only node
  const users = new Map<UOp, UOp[]>();
  for (const u of lin.uops) {
    for (const s of u.src) {
      if (!users.has(s)) users.set(s, []);
      users.get(s)!.push(u);
    }
  }
  const indexOnly = new Set<UOp>();
  for (let i = lin.uops.length - 1; i >= 0; i--) {
    const u = lin.uops[i], us = users.get(u) ?? [];
    if (
      us.length && us.every((x) => x.op === Ops.INDEX || x.op === Ops.RANGE || indexOnly.has(x))
    ) indexOnly.add(u);
  }
  let ops = 0;
  const touched = new Map<UOp, number>();
  for (const u of lin.uops) {
    const m = mult(lin.block.get(u) ?? null);
    if (GroupOp.ALU.has(u.op) && !indexOnly.has(u)) ops += m * (u.op === Ops.MULACC ? 2 : 1);
    if ((u.op === Ops.LOAD || u.op === Ops.STORE) && u.src[0].src[0].op === Ops.DEFINE_GLOBAL) {
      const g = u.src[0].src[0];
      touched.set(g, (touched.get(g) ?? 0) + m);
    }
  }
  let mem = 0;
  for (const [g, n] of touched) {
    mem += Math.min(n, (g.arg as [number, number])[1]) * g.dtype.itemsize;
  }
  return { ops, mem };
}
