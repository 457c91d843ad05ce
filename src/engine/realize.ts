// Realizing tensor graphs: rangeify into kernels, compile (cached by AST), allocate, run, free.
import type { DType, TypedArray } from "../dtype.ts";
import { Ops, prod, UOp } from "../uop/ops.ts";
import { bufferBase, type KernelPlan, type RangeifyResult } from "../rangeify/rangeify.ts";
import { bindingLimitsKey, minBindingLimit, rangeifyWithin } from "../rangeify/split.ts";
import { toProgram } from "../codegen/index.ts";
import type { ProgramSpec } from "../codegen/program.ts";
import { Device, type Program } from "../runtime/device.ts";
import { type BufferArg, bufferOf, disposeBuffer, freeBuffer, newBuffer } from "./buffers.ts";
import { DEBUG, GlobalCounters } from "./counters.ts";
import { freeAfter, planOrder } from "./memory.ts";
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
  /** roots written over an input buffer (see withInPlace): they allocate nothing */
  inPlace?: ReadonlyMap<UOp, UOp>;
}
let realizeHook: ((p: PlannedRealize) => void) | null = null;
/** while a hook is set, each realize shows it the plan before running it */
export function setRealizeHook(hook: ((p: PlannedRealize) => void) | null): void {
  realizeHook = hook;
}

// ---- in-place writes (an optimizer's new parameters and state over the old ones) ----

let inPlaceTargets: ReadonlyMap<UOp, UOp> | null = null;
/**
 * While `fn` runs, realizing a root `r` may write its value over the buffer of
 * `targets.get(r)` (a realized UOp of the same dtype and size) instead of a new buffer. The
 * caller promises that nothing needs the old value afterwards: every step of the schedule that
 * reads it runs first, and the write happens only where the root's kernel reads the old value at
 * the element it writes (elementwise), else the root gets a buffer of its own.
 */
export function withInPlace<T>(targets: ReadonlyMap<UOp, UOp>, fn: () => T): T {
  const prev = inPlaceTargets;
  inPlaceTargets = targets;
  try {
    return fn();
  } finally {
    inPlaceTargets = prev;
  }
}

/** devices whose kernels may read and write one buffer: WebGPU refuses such bindings */
const IN_PLACE_LANGS = new Set(["c", "js", "cuda", "hip"]);

/** for each root, the index in `buffers` of the input it may overwrite, or -1 */
function inPlaceSlots(roots: UOp[], buffers: UOp[]): number[] {
  return roots.map((r) => {
    const t = inPlaceTargets?.get(r);
    const b = t && bufferBase(t);
    if (!b || captureSink || b.dtype !== r.dtype || !r.shape) return -1;
    const { size, device } = b.arg as BufferArg;
    if (size !== prod(r.shape) || !IN_PLACE_LANGS.has(Device.get(device).lang)) return -1;
    return buffers.indexOf(b);
  });
}

/** whether kernel `k` reads input `buf` only at the element it writes (so it may write over it) */
function elementwiseOver(k: KernelPlan, buf: UOp): boolean {
  const slot = k.inputs.indexOf(buf);
  if (slot < 1 || k.inputs.indexOf(buf, slot + 1) >= 0) return false;
  const nodes = k.ast.toposort();
  // a reduce's threads may share one output (GPU GROUP): its reads are not its writer's alone
  if (nodes.some((u) => u.op === Ops.REDUCE)) return false;
  const indexes = nodes.filter((u) => u.op === Ops.INDEX);
  const at = (n: number) =>
    indexes.filter((u) =>
      (u.src[0].arg as [number, number])[0] === n && u.src[0].op === Ops.DEFINE_GLOBAL
    );
  const stores = at(0), loads = at(slot);
  return stores.length === 1 && stores[0].src.length === 2 &&
    loads.every((l) => l.src.length === 2 && l.src[1] === stores[0].src[1]);
}

// ---- schedule and run ----

interface Plan extends RangeifyResult {
  dev: Map<UOp, string>;
  fallback: string;
  /** the roots in the canonical graph, whose BUFFERs are numbered placeholders */
  roots: UOp[];
  /** per step, the intermediates to free after it (computed on first run) */
  freeAfter?: UOp[][];
  /** roots written over an input: root -> its placeholder BUFFER */
  inPlace: Map<UOp, UOp>;
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
  const into = inPlaceSlots(roots, buffers);
  const dkey = (rootDevices?.join(",") ?? "") + bindingLimitsKey() +
    (into.some((i) => i >= 0) ? `|in place:${into.join(",")}` : "");
  let byDev = planCache.get(sink);
  let p = byDev?.get(dkey);
  if (!p) {
    // binding limits (issue 9): kernels over a device's buffer limit are split in split.ts
    const limit = minBindingLimit(devicesOf([...sink.src], rootDevices).values());
    const { roots: croots, ...r } = rangeifyWithin([...sink.src], limit);
    const dev = devicesOf(croots, rootDevices);
    const fallback = dev.get(croots[0]) ?? defaultDevice();
    // the placeholder each root may overwrite, where its kernel reads that input elementwise
    const placeholders = new Map(
      sink.toposort().filter((u) => u.op === Ops.BUFFER).map((u) => [
        -1 - (u.arg as BufferArg).id,
        u,
      ]),
    );
    const kernelOf = new Map(r.kernels.map((k) => [k.node, k]));
    const wanted = new Map<UOp, UOp>();
    croots.forEach((x, i) => {
      const buf = placeholders.get(into[i]), k = kernelOf.get(x);
      const sameDevice = buf &&
        (buf.arg as BufferArg).device === deviceFor(x, dev, fallback);
      if (buf && k && sameDevice && !wanted.has(x) && elementwiseOver(k, buf)) wanted.set(x, buf);
    });
    const { order, inPlace } = planOrder(r.realized, r.kernels, croots, wanted);
    const step = new Map(order.map((x, i) => [x, i]));
    const kernels = [...r.kernels].sort((a, b) => step.get(a.node)! - step.get(b.node)!);
    p = {
      realized: order,
      kernels,
      dev,
      fallback,
      roots: croots,
      inPlace,
    };
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
  const real = (n: UOp): UOp => buffers[-1 - (n.arg as BufferArg).id];
  // a buffer still being filled asynchronously might be read after the write: no in-place then
  const inPlace = !captureSink && [...p.inPlace.values()].every((b) => !isPending(real(b)))
    ? p.inPlace
    : new Map<UOp, UOp>();
  for (const x of p.realized) {
    const over = inPlace.get(x);
    out.set(
      x,
      over ? real(over) : newBuffer(deviceFor(x, p.dev, p.fallback), x.dtype, prod(x.shape!)),
    );
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
  realizeHook?.({
    order: p.realized,
    kernels: p.kernels,
    roots: p.roots,
    freeAfter: p.freeAfter,
    inPlace,
  });
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

function isPending(b: UOp): boolean {
  try {
    assertFilled(b, "realize");
    return false;
  } catch {
    return true;
  }
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

/** give the memory behind a realized UOp back now, after the work queued on it (pending copies) */
export function dispose(realized: UOp): void {
  const b = bufferBase(realized);
  if (!b) return;
  afterPending([b], [], () => disposeBuffer(b));
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
