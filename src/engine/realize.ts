// Realizing tensor graphs: rangeify into kernels, compile (cached by AST), allocate, run, free.
import type { DType, TypedArray } from "../dtype.ts";
import { Ops, prod, UOp } from "../uop/ops.ts";
import { bufferBase, type KernelPlan, type RangeifyResult } from "../rangeify/rangeify.ts";
import { bindingLimitsKey, minBindingLimit, rangeifyWithin } from "../rangeify/split.ts";
import { toProgram } from "../codegen/index.ts";
import type { ProgramSpec } from "../codegen/program.ts";
import { Device, type Program } from "../runtime/device.ts";
import { type BufferArg, bufferOf, freeBuffer, newBuffer } from "./buffers.ts";
import { DEBUG, GlobalCounters } from "./counters.ts";
import { freeAfter } from "./memory.ts";
import { afterPending, assertFilled, copyBuffer, whenFilled } from "./pending.ts";

export interface KernelInfo {
  name: string;
  src: string;
  globalSize: number[];
  localSize: number[] | null;
}

export interface ScheduleItem {
  ast: UOp;
  /** tensor-graph nodes bound to the kernel's buffer slots (slot 0 is the output) */
  bufs: UOp[];
  device: string;
}

/** the default device name (DEV or the first that works), upper case */
export function defaultDevice(): string {
  return Device.DEFAULT;
}
/** a device name normalized to upper case; throws naming the available devices if absent */
export function canonicalDevice(name: string): string {
  return Device.get(name).name;
}

/** a new BUFFER UOp on `device` holding a copy of `data` */
export function bufferFromData(device: string, dtype: DType, data: TypedArray): UOp {
  const u = newBuffer(canonicalDevice(device), dtype, data.length);
  bufferOf(u).copyin(data);
  return u;
}

// ---- devices of graph nodes ----

function devicesOf(roots: UOp[], rootDevices?: string[]): Map<UOp, string> {
  const dev = new Map<UOp, string>();
  for (const u of UOp.sink(...roots).toposort()) {
    if (u.op === Ops.BUFFER) dev.set(u, (u.arg as { device: string }).device);
    else if (u.op === Ops.COPY) dev.set(u, canonicalDevice(u.arg as string));
    else {
      for (const s of u.src) {
        const d = dev.get(s);
        if (d !== undefined) {
          dev.set(u, d);
          break;
        }
      }
    }
  }
  roots.forEach((r, i) => {
    if (!dev.has(r)) {
      dev.set(r, rootDevices?.[i] ? canonicalDevice(rootDevices[i]) : defaultDevice());
    }
  });
  return dev;
}

/** the device a node computes on: its own, else its first user's root device */
function deviceFor(u: UOp, dev: Map<UOp, string>, fallback: string): string {
  return dev.get(u) ?? fallback;
}

// ---- compile cache: an AST is hash-consed, so identical kernels hit ----

const programs = new Map<string, Map<UOp, { spec: ProgramSpec; prog?: Program }>>();

function programFor(
  ast: UOp,
  device: string,
  compile: boolean,
): { spec: ProgramSpec; prog?: Program } {
  const impl = Device.get(device);
  let byAst = programs.get(impl.name);
  if (!byAst) programs.set(impl.name, byAst = new Map());
  let p = byAst.get(ast);
  if (!p) {
    if (!["c", "js", "cuda", "hip", "wgsl"].includes(impl.lang)) {
      throw new Error(`${impl.name}: no renderer for ${impl.lang} yet`);
    }
    p = { spec: toProgram(ast, impl.lang) };
    byAst.set(ast, p);
  }
  if (compile && !p.prog) {
    p.prog = impl.compile(p.spec);
    if (DEBUG >= 4) console.log(p.spec.src);
  }
  return p;
}

// ---- JIT capture hook (src/engine/jit.ts): keep this small ----

/** a launch realize made: a kernel with its argument buffers (in `spec.bufs` order), or a copy */
export type Launch =
  | {
    kind: "kernel";
    prog: Program;
    spec: ProgramSpec;
    bufs: UOp[];
    vars: readonly number[];
    device: string;
  }
  | { kind: "copy"; dst: UOp; src: UOp };
let captureSink: ((l: Launch) => void) | null = null;
/** while set, each launch is reported to the sink and no intermediate is freed (a JIT reuses them) */
export function setCaptureSink(sink: ((l: Launch) => void) | null): void {
  captureSink = sink;
}

// ---- memory report hook (src/engine/memory_report.ts, `tg mem`): keep this small ----

/** a plan as realize is about to run it: steps in order, and what is freed after each */
export interface PlannedRealize {
  order: readonly UOp[];
  kernels: readonly KernelPlan[];
  roots: readonly UOp[];
  freeAfter: readonly (readonly UOp[])[];
}
let realizeHook: ((p: PlannedRealize) => void) | null = null;
/** while a hook is set, each realize shows it the plan before running it */
export function setRealizeHook(hook: ((p: PlannedRealize) => void) | null): void {
  realizeHook = hook;
}

// ---- schedule and run ----

interface Plan extends RangeifyResult {
  dev: Map<UOp, string>;
  fallback: string;
  /** the roots in the canonical graph, whose BUFFERs are numbered placeholders */
  roots: UOp[];
  /** per step, the intermediates to free after it (computed on first run) */
  freeAfter?: UOp[][];
}

/**
 * Plans are cached by the graph's structure: BUFFERs are replaced by placeholders numbered in
 * order of appearance, so running the same computation on other buffers schedules nothing.
 */
const planCache = new Map<UOp, Map<string, Plan>>();
const MAX_PLANS = 1024;

function canonicalize(roots: UOp[]): { sink: UOp; buffers: UOp[] } {
  const buffers: UOp[] = [];
  const map = new Map<UOp, UOp>();
  for (const u of UOp.sink(...roots).toposort()) {
    if (u.op !== Ops.BUFFER) continue;
    const { size, device } = u.arg as BufferArg;
    map.set(u, UOp.make(Ops.BUFFER, u.dtype, [], { id: -1 - buffers.length, size, device }));
    buffers.push(u);
  }
  return { sink: UOp.sink(...roots).substitute(map), buffers };
}

function plan(roots: UOp[], rootDevices?: string[]): { p: Plan; buffers: UOp[] } {
  const { sink, buffers } = canonicalize(roots);
  const dkey = (rootDevices?.join(",") ?? "") + bindingLimitsKey();
  let byDev = planCache.get(sink);
  let p = byDev?.get(dkey);
  if (!p) {
    // binding limits (issue 9): kernels over a device's buffer limit are split in split.ts
    const limit = minBindingLimit(devicesOf([...sink.src], rootDevices).values());
    const { roots: croots, ...r } = rangeifyWithin([...sink.src], limit);
    const dev = devicesOf(croots, rootDevices);
    p = { ...r, dev, fallback: dev.get(croots[0]) ?? defaultDevice(), roots: croots };
    if (planCache.size >= MAX_PLANS) planCache.delete(planCache.keys().next().value!);
    if (!byDev) planCache.set(sink, byDev = new Map());
    byDev.set(dkey, p);
  }
  return { p, buffers };
}

/** the kernel ASTs realizing the roots would run */
export function schedule(roots: UOp[], rootDevices?: string[]): ScheduleItem[] {
  const { p, buffers } = plan(roots, rootDevices);
  const real = (n: UOp): UOp => (n.op === Ops.BUFFER ? buffers[-1 - (n.arg as BufferArg).id] : n);
  return p.kernels.map((k) => ({
    ast: k.ast,
    bufs: k.inputs.map(real),
    device: deviceFor(k.node, p.dev, p.fallback),
  }));
}

/** the kernels realizing the roots would run, rendered for `device` (nothing runs) */
export function kernels(roots: UOp[], device: string): KernelInfo[] {
  return schedule(roots, roots.map(() => device)).map((s) => {
    const { spec } = programFor(s.ast, device, false);
    return {
      name: spec.name,
      src: spec.src,
      globalSize: spec.globalSize,
      localSize: spec.localSize,
    };
  });
}

/**
 * run what is needed so each root is backed by a buffer; returns RESHAPE(BUFFER, shape) (or the
 * BUFFER) per root. `devices[i]` is root i's device (used when its graph holds no buffer, e.g. a
 * constant tensor); defaults to the device of the buffers it reads.
 */
export function realize(roots: UOp[], devices?: string[]): UOp[] {
  if (roots.every((r) => bufferBase(r))) return roots;
  const { p, buffers } = plan(roots, devices);
  const out = new Map<UOp, UOp>();
  for (const x of p.realized) {
    out.set(x, newBuffer(deviceFor(x, p.dev, p.fallback), x.dtype, prod(x.shape!)));
  }
  const kernelOf = new Map<UOp, KernelPlan>(p.kernels.map((k) => [k.node, k]));
  const bufferNode = (n: UOp): UOp => {
    const b = out.get(n) ?? bufferBase(n) ?? n;
    return b.op === Ops.BUFFER && out.get(n) === undefined
      ? buffers[-1 - (b.arg as BufferArg).id]
      : b;
  };
  let ran = 0;
  p.freeAfter ??= freeAfter(p.realized, p.kernels, p.roots);
  realizeHook?.({ order: p.realized, kernels: p.kernels, roots: p.roots, freeAfter: p.freeAfter });
  for (let i = 0; i < p.realized.length; i++) {
    const x = p.realized[i];
    const dst = out.get(x)!;
    if (x.op === Ops.COPY) {
      const src = bufferNode(x.src[0]);
      copyBuffer(dst, src); // async (pending.ts) where src reads back only async
      captureSink?.({ kind: "copy", dst, src });
    }
    const k = kernelOf.get(x);
    if (k) {
      const bufs = k.inputs.map(bufferNode), device = deviceFor(x, p.dev, p.fallback);
      afterPending(bufs.slice(1), [dst], () => runKernel(k, device, bufs));
      ran++;
    }
    if (!captureSink) {
      for (const dead of p.freeAfter[i]) afterPending([dst], [], () => freeBuffer(out.get(dead)!));
    }
  }
  if (DEBUG >= 1) console.log(`realize: ${ran} kernel${ran === 1 ? "" : "s"}`);
  return roots.map((r, i) => {
    if (bufferBase(r)) return r;
    const b = out.get(p.roots[i])!;
    const shape = r.shape!;
    return shape.length === 1 ? b : UOp.make(Ops.RESHAPE, b.dtype, [b], shape.slice());
  });
}

function runKernel(k: KernelPlan, device: string, bufs: UOp[]): void {
  const { spec, prog } = programFor(k.ast, device, true);
  const handles = spec.bufs.map((b) => bufferOf(bufs[b.slot]).handle);
  const timing = DEBUG >= 2, vars: number[] = [];
  const t = prog!.run(handles, vars, {
    globalSize: spec.globalSize,
    localSize: spec.localSize,
    timing,
  });
  // arguments are evaluated only when a sink is set
  captureSink?.({
    kind: "kernel",
    prog: prog!,
    spec,
    bufs: spec.bufs.map((b) => bufs[b.slot]),
    vars,
    device,
  });
  GlobalCounters.kernelCount++;
  GlobalCounters.globalOps += spec.ops ?? 0;
  GlobalCounters.globalMem += spec.mem ?? 0;
  if (timing && t !== undefined) {
    GlobalCounters.timeSumS += t;
    const us = t * 1e6;
    const gflops = (spec.ops ?? 0) / t / 1e9, gbs = (spec.mem ?? 0) / t / 1e9;
    console.log(
      `*** ${device.padEnd(6)} ${String(GlobalCounters.kernelCount).padStart(4)} ${
        spec.name.padEnd(30)
      } ` +
        `${us.toFixed(2).padStart(10)} us  ${gflops.toFixed(2).padStart(8)} GFLOPS ${
          gbs.toFixed(2).padStart(8)
        } GB/s`,
    );
  }
}

/** the elements of a realized (buffer-backed) UOp, in row-major order */
export function readSync(realized: UOp): TypedArray {
  const b = bufferBase(realized);
  if (!b) throw new Error("readSync: the UOp is not realized; call realize first");
  assertFilled(b, "readSync");
  return bufferOf(b).toTypedArraySync();
}
export function read(realized: UOp): Promise<TypedArray> {
  const b = bufferBase(realized);
  if (!b) throw new Error("read: the UOp is not realized; call realize first");
  return whenFilled(b).then(() => bufferOf(b).toTypedArray());
}
