// BEAM=N: search opt lists for a kernel by timing them on the device. Each round extends every
// list of the beam by one opt (each UPCAST/UNROLL/TILE amount on each axis), compiles and times
// the candidates, and keeps the N fastest; the search stops when a round finds nothing faster or
// the kernel's time budget is spent. The chosen list is cached on disk by the kernel's canonical
// key, so a second run times nothing.
import { AxisType, Ops, type UOp } from "../uop/ops.ts";
import { type DType, dtypes } from "../dtype.ts";
import { applyOpt, kernelAxes, type Opt, OptError, OptOps } from "./opts.ts";
import type { CodegenLang } from "../codegen/index.ts";
import { toProgram } from "../codegen/index.ts";
import { Buffer, Device, type DeviceImpl, type ProgramSpec } from "../runtime/device.ts";
import { DiskCache, sha256Hex } from "../runtime/cache.ts";

function env(k: string): string | undefined {
  try {
    return Deno.env.get(k) || undefined;
  } catch {
    return undefined;
  }
}

/** the beam width BEAM asks for (0: no search) */
export function beamWidth(): number {
  const n = Number(env("BEAM") ?? 0);
  return Number.isInteger(n) && n > 0 ? n : 0;
}

/** the device that times kernels of each language (languages not listed are not searched) */
export const BEAM_DEVICES: Partial<Record<CodegenLang, string>> = {
  c: "CPU",
  js: "JS",
  cuda: "CUDA",
  hip: "AMD",
};
const GPU = new Set<CodegenLang>(["cuda", "hip", "wgsl"]);

export interface BeamOptions {
  width?: number;
  /** seconds one kernel's search may take (default BEAM_TIMEOUT, else 30) */
  timeLimit?: number;
  /** the cache directory (default: the compile cache's) */
  cacheDir?: string;
  /** the opts to start from besides none (e.g. the heuristic's) */
  seed?: readonly Opt[];
}

/** what the last search did (tests read it) */
export const beamStats = { searched: 0, cacheHits: 0, timed: 0 };

const UPCASTS = [2, 3, 4, 8, 16];
const UNROLLS = [2, 4, 8];
const TILES = [8, 16, 32, 64, 128, 256];
const LOCALS = [2, 4, 8, 16, 32];
const GROUPS = [8, 16, 32, 64, 128, 256];

/** every opt that could extend `sink`'s list (some are rejected when applied) */
export function candidateOpts(sink: UOp, lang: CodegenLang = "c"): Opt[] {
  const gpu = GPU.has(lang);
  const out: Opt[] = [];
  for (const a of kernelAxes(sink)) {
    if (a.size === null) continue;
    const loop = a.type === AxisType.LOOP && a.output && !a.reduce;
    const red = a.type === AxisType.REDUCE && a.reduce && !a.output;
    const fits = (k: number) => k < a.size! ? a.size! % k === 0 : k === a.size;
    if (loop) {
      for (const k of UPCASTS) {
        if (fits(k)) out.push({ op: OptOps.UPCAST, axis: a.id, amount: k });
      }
    }
    if (red) {
      for (const k of UNROLLS) {
        if (fits(k)) out.push({ op: OptOps.UNROLL, axis: a.id, amount: k });
        // side-by-side accumulators: what a CPU vectorizes (a GPU thread has no vector unit)
        if (!gpu && fits(k) && k > 2) out.push({ op: OptOps.LANES, axis: a.id, amount: k });
      }
    }
    if (gpu) {
      // workgroup shapes instead of cache blocks
      for (const k of loop ? LOCALS : red ? GROUPS : []) {
        if (!fits(k)) continue;
        if (loop) out.push({ op: OptOps.LOCAL, axis: a.id, amount: k });
        else {out.push({ op: OptOps.GROUP, axis: a.id, amount: k }, {
            op: OptOps.GROUPTOP,
            axis: a.id,
            amount: k,
          });}
      }
    } else if (loop || red) {
      for (const k of TILES) {
        if (k < a.size! && a.size! % k === 0) out.push({ op: OptOps.TILE, axis: a.id, amount: k });
      }
    }
  }
  return out;
}

/** a structural key of the kernel AST: equal for equal kernels, whatever their node ids */
export function astKey(ast: UOp): string {
  const topo = ast.toposort(), at = new Map(topo.map((u, i) => [u, i]));
  const arg = (a: unknown): string =>
    JSON.stringify(a, (_k, v) => (v instanceof Object && "itemsize" in v ? (v as DType).name : v));
  return sha256Hex(
    topo.map((u) =>
      `${Ops[u.op]}:${u.dtype.name}:${u.op === Ops.SINK ? "" : arg(u.arg)}:${
        u.src.map((s) => at.get(s)).join(",")
      }`
    ).join("\n"),
  );
}

const fmtOpts = (opts: readonly Opt[]): string =>
  opts.map((o) => `${OptOps[o.op]}(${o.axis},${o.amount})`).join(" ") || "none";

const marked = (s: UOp): UOp =>
  s.replace({ arg: { ...(s.arg as object | undefined), optimized: true } });

/**
 * buffers for timing a kernel, holding what a real input would: floats in [0, 1), other types
 * zero (an index must stay in bounds). Memory reused from the device's pool would hold whatever
 * the last kernel left, and infinities and denormals there made an exp kernel time 3x slower
 * than it runs on real data.
 */
export function timingBuffers(dev: string, ast: UOp, lang: CodegenLang): Buffer[] | null {
  const spec = toProgram(marked(ast), lang, { checkBounds: false });
  if (spec.vars.length) return null; // symbolic kernels would need a value for each variable
  let seed = 1;
  const next = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  return spec.bufs.map((b) => {
    const buf = new Buffer(dev, b.dtype, b.size);
    if (b.dtype === dtypes.float32 || b.dtype === dtypes.float64) {
      const a = b.dtype === dtypes.float32 ? new Float32Array(b.size) : new Float64Array(b.size);
      for (let i = 0; i < a.length; i++) a[i] = next();
      return buf.copyin(a);
    }
    return buf.copyin(new Uint8Array(buf.nbytes));
  });
}

/** the fastest of a few runs of `ast` with `opts`, in seconds (Infinity when it does not build) */
export function timeOpts(
  ast: UOp,
  opts: readonly Opt[],
  lang: CodegenLang,
  bufs: readonly Buffer[],
  cutoff = Infinity,
  rendered?: ProgramSpec,
): number {
  const dev = Device.get(BEAM_DEVICES[lang]);
  let prog;
  try {
    prog = dev.compile(
      rendered ?? toProgram(marked(opts.reduce(applyOpt, ast)), lang, { checkBounds: false }),
    );
  } catch (e) {
    // an opt list that does not fit the kernel, the workgroup limits or the device's resources
    // (shared memory, registers: the compiler refuses it) is no candidate
    const msg = (e as Error).message;
    if (e instanceof OptError || /^gpudims:|too much shared data|uses too many/.test(msg)) {
      return Infinity;
    }
    throw e;
  }
  beamStats.timed++;
  const handles = bufs.map((b) => b.handle);
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t = prog.run(handles, [], { timing: true }) ?? Infinity;
    best = Math.min(best, t);
    // a candidate far slower than the best so far is not worth more runs
    if (t > 3 * cutoff) break;
  }
  return best;
}

/**
 * a round's candidates rendered, and compiled side by side where the device can (timing then
 * finds them in its cache); undefined where rendering failed (timing says why)
 */
function precompile(
  dev: DeviceImpl,
  ast: UOp,
  lists: readonly Opt[][],
  lang: CodegenLang,
): (ProgramSpec | undefined)[] {
  const specs = lists.map((opts) => {
    try {
      return toProgram(marked(opts.reduce(applyOpt, ast)), lang, { checkBounds: false });
    } catch {
      return undefined;
    }
  });
  dev.precompile?.(specs.filter((s) => s !== undefined));
  return specs;
}

function progress(msg: string): void {
  try {
    Deno.stderr.writeSync(new TextEncoder().encode(`\r\x1b[Kbeam: ${msg}`));
  } catch { /* no stderr: searching quietly is fine */ }
}

/** the best opt list for `ast` on `lang`'s device (from the disk cache when searched before) */
export function beamSearch(ast: UOp, lang: CodegenLang, o: BeamOptions = {}): Opt[] {
  const width = o.width ?? (beamWidth() || 2);
  const limit = o.timeLimit ?? Number(env("BEAM_TIMEOUT") ?? 30);
  const devName = BEAM_DEVICES[lang];
  if (!devName) throw new Error(`BEAM: no device times ${lang} kernels`);
  const dev = Device.get(devName), info = dev.info();
  const cache = o.cacheDir !== undefined ? DiskCache.forDir(o.cacheDir) : DiskCache.forDir();
  // the kernel's source without opts stands for how tg lowers it today (a pick searched before
  // a change to the lowering, exp2's polynomial say, was timed on other code), the seed for
  // where the search starts
  const name = `beam-${
    DiskCache.key([
      "beam-v2",
      lang,
      dev.name,
      String(info.compiler ?? ""),
      String(info.flags ?? ""),
      String(width),
      astKey(ast),
      sha256Hex(toProgram(marked(ast), lang, { checkBounds: false }).src),
      fmtOpts(o.seed ?? []),
    ])
  }.json`;
  const hit = cache.readText(name);
  if (hit !== null) {
    try {
      const opts = JSON.parse(hit) as Opt[];
      opts.reduce(applyOpt, ast); // a stale or damaged entry is searched again
      beamStats.cacheHits++;
      return opts;
    } catch { /* search */ }
  }
  beamStats.searched++;
  const t0 = performance.now();
  const kname = (ast.arg as { name?: string } | undefined)?.name ?? "kernel";
  const bufs = timingBuffers(devName, ast, lang);
  if (!bufs) return [...(o.seed ?? [])];
  try {
    type Cand = { opts: Opt[]; t: number };
    const seen = new Set<string>();
    const timed = (opts: Opt[], cutoff: number, rendered?: ProgramSpec): Cand => {
      seen.add(JSON.stringify(opts));
      return { opts, t: timeOpts(ast, opts, lang, bufs, cutoff, rendered) };
    };
    let beam: Cand[] = [timed([], Infinity)];
    if (o.seed?.length) beam.push(timed([...o.seed], beam[0].t));
    beam.sort((a, b) => a.t - b.t);
    let best = beam[0], round = 0;
    const over = () => (performance.now() - t0) / 1e3 > limit;
    while (!over()) {
      round++;
      const next: Cand[] = [...beam];
      const lists: Opt[][] = [];
      for (const c of beam) {
        let cur: UOp;
        try {
          cur = c.opts.reduce(applyOpt, ast);
        } catch {
          continue;
        }
        for (const opt of candidateOpts(cur, lang)) {
          const opts = [...c.opts, opt];
          if (seen.has(JSON.stringify(opts))) continue;
          try {
            applyOpt(cur, opt);
          } catch (e) {
            if (e instanceof OptError) continue;
            throw e;
          }
          seen.add(JSON.stringify(opts));
          lists.push(opts);
        }
      }
      // in chunks of a few per core, so that the time limit still cuts a round short
      const chunk = 2 * Math.max(1, navigator.hardwareConcurrency || 1);
      for (let c = 0; c < lists.length && !over(); c += chunk) {
        const part = lists.slice(c, c + chunk);
        const specs = precompile(dev, ast, part, lang);
        for (const [i, opts] of part.entries()) {
          if (over()) break;
          next.push(timed(opts, best.t, specs[i]));
          progress(
            `${kname} round ${round}: ${next.length} timed, best ${(best.t * 1e6).toFixed(0)} us ` +
              `(${fmtOpts(best.opts)})`,
          );
        }
      }
      next.sort((a, b) => a.t - b.t);
      beam = next.slice(0, width);
      if (!(beam[0].t < best.t)) break;
      best = beam[0];
    }
    // one noisy timing (another process on a core, a page fault) can crown a slower kernel:
    // the pick must beat the heuristic's again, timed alternately, by a margin
    if (o.seed && fmtOpts(best.opts) !== fmtOpts(o.seed)) {
      let tBest = Infinity, tSeed = Infinity;
      for (let i = 0; i < 3; i++) {
        tBest = Math.min(tBest, timeOpts(ast, best.opts, lang, bufs));
        tSeed = Math.min(tSeed, timeOpts(ast, o.seed, lang, bufs));
      }
      if (!(tBest < 0.97 * tSeed)) best = { opts: [...o.seed], t: tSeed };
    }
    progress(
      `${kname}: ${fmtOpts(best.opts)} in ${(best.t * 1e6).toFixed(0)} us (${
        ((performance.now() - t0) / 1e3).toFixed(1)
      } s search)\n`,
    );
    cache.writeText(name, JSON.stringify(best.opts));
    return best.opts;
  } finally {
    for (const b of bufs) b.free();
  }
}
