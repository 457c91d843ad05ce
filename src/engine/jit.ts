// TinyJit: call 1 runs a function as usual, call 2 runs it while recording every kernel launch and
// copy its realizes make, calls 3+ replay that record on the new arguments' buffers without
// running the function (so no rangeify, codegen, planning or compile-cache look-ups).
//
// What a replay reuses: every buffer the record touched except the Tensor arguments', so the
// returned tensors are backed by the same buffers on every call, and intermediates are allocated
// once. State a function rebinds (an optimizer pointing a parameter at its new buffer) ping-pongs:
// the record reads the old buffer R and writes the new S; odd replays run it with R and S swapped
// and the tensor is pointed at whichever holds the newest value.
// What a replay cannot see: host values. Data uploaded inside the function is baked in as of
// call 2; a best-effort check throws when it differed between calls 1 and 2.
import { type DType, dtypes, type TypedArray } from "../dtype.ts";
import { Ops, UOp } from "../uop/ops.ts";
import { setRebindHook, Tensor } from "../tensor.ts";
import { fmtShape } from "../tensor/broadcast.ts";
import { bufferBase } from "../rangeify/rangeify.ts";
import type { Buffer, DeviceHandle, Program, RunOpts } from "../runtime/device.ts";
import { type BufferArg, bufferOf, newBuffer } from "./buffers.ts";
import { DEBUG, GlobalCounters } from "./counters.ts";
import { type Launch, setCaptureSink } from "./realize.ts";

type ArgSig =
  | { tensor: true; shape: number[]; dtype: DType; device: string }
  | { tensor: false; value: unknown };

interface KernelStep {
  prog: Program;
  vars: readonly number[];
  opts: RunOpts;
  /** argument handles, [0] as recorded and [1] with state buffers swapped */
  handles: [DeviceHandle[], DeviceHandle[]];
  /** [argument position, index of the Tensor argument whose buffer goes there] */
  patches: [number, number][];
}
interface CopyStep {
  dst: [Buffer, Buffer];
  src: [Buffer, Buffer];
  /** the Tensor argument copied from, or -1 */
  srcArg: number;
}
type Step = { kernel: KernelStep } | { copy: CopyStep };

interface Capture {
  sigs: ArgSig[];
  /** per Tensor argument: its recorded buffer (to rebuild outputs that are arguments) */
  argBufs: UOp[];
  steps: Step[];
  kernels: number;
  ops: number;
  mem: number;
  swap: Map<UOp, UOp>;
  /** rebound tensors: [tensor, form after an even replay, form after an odd replay] */
  state: [Tensor, UOp, UOp][];
  /** the value call 2 returned; its Tensors are rebuilt on each replay */
  ret: unknown;
  retForms: Map<Tensor, UOp>;
  /**
   * every BUFFER the steps touch: its memory is given back when the BUFFER node is collected
   * (engine/buffers.ts), so the capture holds the nodes, not only their handles; else a replay
   * writes into memory the pool has since handed to another tensor
   */
  keep: UOp[];
}

interface Recording {
  launches: Launch[];
  /** buffer ids at or above this were created during the call */
  mark: number;
  args: UOp[];
}

/** true while some TinyJit is recording (nesting is refused) */
let recording = false;

/** a TinyJit as a plain function, with the JIT behind it */
export type JitFunction<A extends unknown[], R> = ((...args: A) => R) & {
  readonly jit: TinyJit<A, R>;
  reset(): void;
};

/**
 * Captures the kernels `fn` runs and replays them. Tensor arguments must be realized and keep
 * their shape, dtype and device; other arguments are baked in (primitives must not change).
 * Returned Tensors are realized and, on replay, backed by the same buffers each call.
 */
export class TinyJit<A extends unknown[], R> {
  #calls = 0;
  #replays = 0;
  #first: Recording | null = null;
  #cap: Capture | null = null;

  constructor(readonly fn: (...args: A) => R) {
    if (typeof fn !== "function") {
      throw new TypeError(`TinyJit: needs a function, got ${typeof fn}`);
    }
  }

  /** `fn` under a JIT as a callable function (with `.jit` and `.reset()`) */
  static wrap<A extends unknown[], R>(fn: (...args: A) => R): JitFunction<A, R> {
    const jit = new TinyJit(fn);
    const f = (...args: A): R => jit.call(...args);
    return Object.assign(f, { jit, reset: () => jit.reset() });
  }

  /** whether calls replay a capture */
  get captured(): boolean {
    return this.#cap !== null;
  }
  /** kernels one replay launches (0 before the capture) */
  get kernelCount(): number {
    return this.#cap?.kernels ?? 0;
  }
  /** replays since the capture */
  get replays(): number {
    return this.#replays;
  }

  /** forget the capture: the next two calls run the function again and capture anew */
  reset(): void {
    this.#calls = 0;
    this.#replays = 0;
    this.#first = null;
    this.#cap = null;
  }

  call(...args: A): R {
    if (recording) {
      throw new Error(
        "TinyJit: a jitted function was called while another TinyJit was capturing; " +
          "put the JIT on the outer function only",
      );
    }
    if (this.#cap) return this.#replay(this.#cap, args);
    const second = this.#calls === 1;
    const rebinds = new Map<Tensor, { old: UOp; now: UOp }>();
    const argBufs = args.map((a, i) => (a instanceof Tensor ? realizedBuffer(a, i) : null));
    const launches: Launch[] = [];
    const mark = bufferMark();
    let ret: R;
    recording = true;
    setCaptureSink((l) => launches.push(l));
    try {
      ret = second ? logRebinds(rebinds, () => this.#run(args)) : this.#run(args);
    } finally {
      setCaptureSink(null);
      recording = false;
    }
    const rec = { launches, mark, args: argBufs.filter((b) => b !== null) };
    this.#calls++;
    if (!second) {
      this.#first = rec;
      return ret;
    }
    const first = this.#first;
    this.#first = null;
    try {
      if (first) checkUploads(first, rec);
      this.#cap = build(args, rec, rebinds, ret);
    } catch (e) {
      this.reset();
      throw e;
    }
    if (DEBUG >= 1) console.log(`jit: captured ${this.#cap.kernels} kernels`);
    return ret;
  }

  #run(args: A): R {
    const ret = this.fn(...args);
    if (ret instanceof Promise) {
      throw new Error("TinyJit: the function returned a Promise; TinyJit captures sync functions");
    }
    const outs = tensorsIn(ret);
    if (outs.length) Tensor.realize(...outs);
    return ret;
  }

  #replay(cap: Capture, args: A): R {
    if (args.length !== cap.sigs.length) {
      throw new Error(
        `TinyJit: captured with ${cap.sigs.length} arguments, called with ${args.length}`,
      );
    }
    const inBufs: UOp[] = [];
    cap.sigs.forEach((s, i) => {
      const a = args[i];
      if (!s.tensor) {
        if (isPrimitive(s.value) && !Object.is(a, s.value)) {
          throw new Error(
            `TinyJit: argument ${i} was ${String(s.value)} at capture, got ${String(a)}; ` +
              `non-Tensor arguments are baked into the capture (call reset() to capture anew)`,
          );
        }
        return;
      }
      if (!(a instanceof Tensor)) {
        throw new Error(
          `TinyJit: argument ${i} was a Tensor (${describe(s)}) at capture, got ${typeof a}`,
        );
      }
      if (
        a.dtype !== s.dtype || a.device !== s.device || a.shape.join() !== s.shape.join()
      ) {
        throw new Error(
          `TinyJit: argument ${i} was ${describe(s)} at capture, got ${describe(sigOf(a))}; ` +
            `a capture replays fixed shapes, dtypes and devices (call reset() to capture anew)`,
        );
      }
      inBufs.push(realizedBuffer(a, i));
    });
    const inHandles = inBufs.map((b) => bufferOf(b).handle);
    const odd = (++this.#replays & 1) as 0 | 1;
    for (const step of cap.steps) {
      if ("kernel" in step) {
        const k = step.kernel, h = k.handles[odd];
        for (const [pos, a] of k.patches) h[pos] = inHandles[a];
        k.prog.run(h, k.vars, k.opts);
      } else {
        const c = step.copy;
        const src = c.srcArg >= 0 ? bufferOf(inBufs[c.srcArg]) : c.src[odd];
        c.dst[odd].copyin(src.toTypedArraySync());
      }
    }
    GlobalCounters.kernelCount += cap.kernels;
    GlobalCounters.globalOps += cap.ops;
    GlobalCounters.globalMem += cap.mem;
    for (const [t, even, oddForm] of cap.state) t.uop = odd ? oddForm : even;
    if (DEBUG >= 1) console.log(`jit: replayed ${cap.kernels} kernels`);
    const form = (u: UOp): UOp => {
      const b = bufferBase(u)!;
      const a = cap.argBufs.indexOf(b);
      const nb = a >= 0 ? inBufs[a] : odd ? cap.swap.get(b) ?? b : b;
      return nb === b ? u : u.op === Ops.BUFFER ? nb : UOp.make(u.op, nb.dtype, [nb], u.arg);
    };
    return mapTensors(cap.ret, (t) => new Tensor(form(cap.retForms.get(t)!), t.device)) as R;
  }
}

// ---- capture ----

function build(
  args: unknown[],
  rec: Recording,
  rebinds: Map<Tensor, { old: UOp; now: UOp }>,
  ret: unknown,
): Capture {
  const sigs: ArgSig[] = args.map((a) =>
    a instanceof Tensor ? sigOf(a) : { tensor: false, value: a }
  );
  const argPos = args.flatMap((a, i) => (a instanceof Tensor ? [i] : []));
  const argOf = new Map<UOp, number>();
  rec.args.forEach((b, i) => {
    if (argOf.has(b)) {
      throw new Error(
        `TinyJit: arguments ${argPos[argOf.get(b)!]} and ${argPos[i]} share one buffer; ` +
          `pass distinct tensors (a replay substitutes each argument's buffer separately)`,
      );
    }
    argOf.set(b, i);
  });
  const { reads, written } = readsAndWrites(rec.launches);

  // state: a tensor rebound from a buffer the record reads to one it writes
  const swap = new Map<UOp, UOp>();
  const state: [Tensor, UOp, UOp][] = [];
  for (const [t, { old, now }] of rebinds) {
    const r = bufferBase(old), s = bufferBase(now);
    if (!r || !s || r === s || !reads.has(r) || !written.has(s) || written.has(r)) continue;
    if (argOf.has(r) || argOf.has(s)) continue;
    if (swap.has(r) || swap.has(s)) {
      throw new Error(
        `TinyJit: two tensors were rebound from or to one buffer (${
          (r.arg as BufferArg).size
        } ${r.dtype.name}) during the capture; a replay cannot tell which one holds the state`,
      );
    }
    swap.set(r, s).set(s, r);
    state.push([t, now, old]);
  }

  const steps: Step[] = [];
  let kernels = 0, ops = 0, mem = 0;
  const handleOf = (u: UOp, odd: boolean): DeviceHandle =>
    bufferOf(odd ? swap.get(u) ?? u : u).handle;
  for (const l of rec.launches) {
    if (l.kind === "copy") {
      const buf = (u: UOp): [Buffer, Buffer] => [bufferOf(u), bufferOf(swap.get(u) ?? u)];
      steps.push({ copy: { dst: buf(l.dst), src: buf(l.src), srcArg: argOf.get(l.src) ?? -1 } });
      continue;
    }
    const even = l.bufs.map((u) => handleOf(u, false));
    const odd = swap.size ? l.bufs.map((u) => handleOf(u, true)) : even;
    const patches: [number, number][] = [];
    l.bufs.forEach((u, pos) => {
      const a = argOf.get(u);
      if (a !== undefined) patches.push([pos, a]);
    });
    steps.push({
      kernel: {
        prog: l.prog,
        vars: l.vars,
        opts: { globalSize: l.spec.globalSize, localSize: l.spec.localSize },
        handles: [even, odd],
        patches,
      },
    });
    kernels++;
    ops += l.spec.ops ?? 0;
    mem += l.spec.mem ?? 0;
  }
  const retForms = new Map(tensorsIn(ret).map((t) => [t, t.uop]));
  const keep = new Set<UOp>(swap.keys());
  for (const l of rec.launches) {
    for (const u of l.kind === "copy" ? [l.dst, l.src] : l.bufs) keep.add(u);
  }
  return {
    keep: [...keep],
    sigs,
    argBufs: rec.args,
    steps,
    kernels,
    ops,
    mem,
    swap,
    state,
    ret,
    retForms,
  };
}

function readsAndWrites(launches: Launch[]): { reads: Set<UOp>; written: Set<UOp> } {
  const reads = new Set<UOp>(), written = new Set<UOp>();
  for (const l of launches) {
    if (l.kind === "copy") {
      reads.add(l.src);
      written.add(l.dst);
      continue;
    }
    l.bufs.forEach((u, i) => (l.spec.bufs[i].mutable ? written : reads).add(u));
  }
  return { reads, written };
}

/** buffers a call uploaded from the host and its kernels read, in the order first read */
function uploads(rec: Recording): { buf: UOp; reader: string }[] {
  const { written } = readsAndWrites(rec.launches);
  const args = new Set(rec.args), seen = new Set<UOp>();
  const out: { buf: UOp; reader: string }[] = [];
  const visit = (u: UOp, reader: string): void => {
    if ((u.arg as BufferArg).id < rec.mark || written.has(u) || args.has(u) || seen.has(u)) return;
    seen.add(u);
    out.push({ buf: u, reader });
  };
  for (const l of rec.launches) {
    if (l.kind === "copy") visit(l.src, "a copy");
    else l.bufs.forEach((u, i) => l.spec.bufs[i].mutable || visit(u, `kernel '${l.spec.name}'`));
  }
  return out;
}

/**
 * Host data the function uploads is baked into the capture, so one that differs between calls 1
 * and 2 would be replayed stale. Matched from the last upload back (uploads only call 1 makes,
 * such as a lazy initialization, come first), while dtype and size agree.
 */
function checkUploads(first: Recording, second: Recording): void {
  const a = uploads(first), b = uploads(second);
  for (let i = a.length - 1, j = b.length - 1; i >= 0 && j >= 0; i--, j--) {
    const x = a[i].buf, y = b[j].buf;
    if (x.dtype !== y.dtype || (x.arg as BufferArg).size !== (y.arg as BufferArg).size) return;
    let xs: TypedArray, ys: TypedArray;
    try {
      xs = bufferOf(x).toTypedArraySync();
      ys = bufferOf(y).toTypedArraySync();
    } catch {
      return; // a device without synchronous reads: nothing checked
    }
    if (xs.every((v, k) => Object.is(v, ys[k]))) continue;
    const show = (t: TypedArray): string =>
      Array.from(t.slice(0, 4), String).join(", ") + (t.length > 4 ? ", ..." : "");
    throw new Error(
      `TinyJit: ${b[j].reader} reads ${(y.arg as BufferArg).size} ${y.dtype.name} uploaded ` +
        `from the host inside the function, and it changed between call 1 [${show(xs)}] and ` +
        `call 2 [${show(ys)}]; a replay would reuse call 2's values. Keep values that change per ` +
        `call in Tensors the function updates or passes in (host-computed step scalars such as ` +
        `Adam's bias corrections, or Tensor.rand inside the function, cannot be replayed)`,
    );
  }
}

/** records, for each existing tensor pointed at a new graph during fn, its first and last uop */
function logRebinds<T>(log: Map<Tensor, { old: UOp; now: UOp }>, fn: () => T): T {
  setRebindHook((t, old, now) => {
    const e = log.get(t);
    if (e) e.now = now;
    else log.set(t, { old, now });
  });
  try {
    return fn();
  } finally {
    setRebindHook(null);
  }
}

// ---- helpers ----

/** the id the next buffer will get: buffers at or above it were made after this point */
function bufferMark(): number {
  return (newBuffer("JS", dtypes.uint8, 0).arg as BufferArg).id + 1;
}

function realizedBuffer(t: Tensor, i: number): UOp {
  const b = bufferBase(t.uop);
  if (!b) {
    throw new Error(
      `TinyJit: argument ${i} (${describe(sigOf(t))}) is not realized; ` +
        `call .realize() on Tensor arguments before passing them`,
    );
  }
  return b;
}

function sigOf(t: Tensor): ArgSig {
  return { tensor: true, shape: t.shape, dtype: t.dtype, device: t.device };
}
function describe(s: ArgSig): string {
  return s.tensor ? `${s.dtype.name} ${fmtShape(s.shape)} on ${s.device}` : String(s.value);
}
function isPrimitive(v: unknown): boolean {
  return v === null || (typeof v !== "object" && typeof v !== "function");
}

function isPlain(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}
/** the Tensors in a returned value (a Tensor, or arrays and plain objects holding them) */
function tensorsIn(v: unknown): Tensor[] {
  const out: Tensor[] = [];
  mapTensors(v, (t) => (out.push(t), t));
  return out;
}
function mapTensors(v: unknown, f: (t: Tensor) => Tensor): unknown {
  if (v instanceof Tensor) return f(v);
  if (Array.isArray(v)) return v.map((x) => mapTensors(x, f));
  if (isPlain(v)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, mapTensors(x, f)]));
  }
  return v;
}
