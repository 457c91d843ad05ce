// Memory you can see: walks a schedule (the realized nodes in run order, with the step after which
// the engine frees each intermediate) and tells which buffers are alive at every step, where the
// peak is, and which buffers stay alive across much of the schedule (forward activations held for
// the backward). Nothing runs: the figures are what realize() would allocate, byte for byte.
import type { Tensor } from "../tensor.ts";
import { GroupOp, Ops, prod, type UOp } from "../uop/ops.ts";
import { bufferBase, type KernelPlan } from "../rangeify/rangeify.ts";
import { minBindingLimit, rangeifyWithin } from "../rangeify/split.ts";
import type { BufferArg } from "./buffers.ts";
import { freeAfter, planOrder } from "./memory.ts";
import { envGet } from "./counters.ts";
import { type PlannedRealize, setRealizeHook } from "./realize.ts";

export type MemBufferKind = "input" | "intermediate" | "output";

export interface MemBuffer {
  /** index into MemoryReport.buffers */
  id: number;
  /** what computes it and its type, e.g. `sum float32[8,1]` */
  label: string;
  dtype: string;
  shape: number[];
  bytes: number;
  /** input: already realized before the schedule (parameters, data); output: a root, kept after */
  kind: MemBufferKind;
  /** the step that computes it (-1 for inputs) */
  madeAt: number;
  /** the last step that reads it (-1 when no step does; an output's own step when none reads it) */
  lastUse: number;
  /** the step after which the engine frees it (intermediates); null: alive after the schedule */
  freedAfter: number | null;
  /** alive across more than a quarter of the schedule and at least LONG_MIN_STEPS steps */
  long: boolean;
}

export interface MemStep {
  index: number;
  /** the realized node's op and type: not the compiled kernel's name, which needs codegen */
  name: string;
  kind: "kernel" | "copy";
  /** the buffer this step writes */
  output: number;
  /** the buffers it reads (inputs or earlier steps' outputs) */
  reads: number[];
  /** the non-input buffers alive while it runs (its output included) */
  alive: number[];
  aliveBytes: number;
  /** freed right after it */
  freed: number[];
}

/** an edge is long when it spans more than this share of the schedule ... */
export const LONG_FRACTION = 0.25;
/** ... and at least this many steps */
export const LONG_MIN_STEPS = 4;

/** the schedule a realize runs, as the engine plans it (src/engine/realize.ts) */
export interface ScheduleWalk {
  order: readonly UOp[];
  kernels: readonly KernelPlan[];
  roots: readonly UOp[];
  freeAfter: readonly (readonly UOp[])[];
  /** roots written over an input buffer: they take no bytes of their own */
  inPlace?: ReadonlyMap<UOp, UOp>;
}

export class MemoryReport {
  readonly steps: MemStep[];
  readonly buffers: MemBuffer[];
  /** bytes of the inputs: alive before, during and after the schedule */
  readonly inputBytes: number;
  /** the most non-input bytes alive at one step */
  readonly peakBytes: number;
  /** the first step where peakBytes is alive (-1 for an empty schedule) */
  readonly peakStep: number;

  constructor(steps: MemStep[], buffers: MemBuffer[]) {
    this.steps = steps;
    this.buffers = buffers;
    this.inputBytes = buffers.filter((b) => b.kind === "input").reduce((s, b) => s + b.bytes, 0);
    let peak = 0, at = -1;
    for (const s of steps) if (at < 0 || s.aliveBytes > peak) [peak, at] = [s.aliveBytes, s.index];
    this.peakBytes = peak;
    this.peakStep = at;
  }
  /** inputs plus the peak: what the device holds at the peak for this schedule */
  get peakTotalBytes(): number {
    return this.inputBytes + this.peakBytes;
  }
  get peakName(): string {
    return this.peakStep < 0 ? "(none)" : this.steps[this.peakStep].name;
  }
  get longEdges(): MemBuffer[] {
    return this.buffers.filter((b) => b.long);
  }

  /** a text table: one row per step, then the long edges */
  format(opts: { listAlive?: boolean } = {}): string {
    const n = this.steps.length, inputs = this.buffers.filter((b) => b.kind === "input");
    const lines = [
      `memory report: ${n} step${n === 1 ? "" : "s"}, inputs ${fmtBytes(this.inputBytes)} ` +
      `(${inputs.length} buffer${inputs.length === 1 ? "" : "s"}), peak ` +
      `${fmtBytes(this.peakTotalBytes)} = inputs + ${fmtBytes(this.peakBytes)} alive at step ` +
      `${this.peakStep} (${this.peakName})`,
    ];
    if (n === 0) return lines[0];
    const w = Math.max(6, ...this.steps.map((s) => s.name.length));
    lines.push(
      `${"step".padStart(5)}  ${"kernel".padEnd(w)}  ${"output".padStart(10)}  ${
        "alive".padStart(5)
      }  ${"alive bytes".padStart(11)}  ${"freed".padStart(5)}  bytes alive (# = peak / 20)`,
    );
    for (const s of this.steps) {
      const bar = this.peakBytes > 0
        ? "#".repeat(Math.round(20 * s.aliveBytes / this.peakBytes))
        : "";
      lines.push(
        `${String(s.index).padStart(5)}  ${s.name.padEnd(w)}  ${
          fmtBytes(this.buffers[s.output].bytes).padStart(10)
        }  ${String(s.alive.length).padStart(5)}  ${fmtBytes(s.aliveBytes).padStart(11)}  ${
          String(s.freed.length).padStart(5)
        }  ${bar}${s.index === this.peakStep ? " <- peak" : ""}`,
      );
      if (opts.listAlive) {
        lines.push(
          `${"".padStart(7)}alive: ${s.alive.map((b) => this.buffers[b].label).join(", ")}`,
        );
      }
    }
    const long = this.longEdges;
    const atPeak = long.filter((b) => this.steps[this.peakStep].alive.includes(b.id));
    lines.push(
      `long edges (alive across more than ${LONG_FRACTION * 100}% of the schedule and at least ` +
        `${LONG_MIN_STEPS} steps): ${long.length}, ${
          fmtBytes(atPeak.reduce((s, b) => s + b.bytes, 0))
        } of them alive at the peak`,
    );
    if (long.length) {
      lines.push(
        `${"made".padStart(7)}  ${"last read".padStart(9)}  ${"span".padStart(5)}  ${
          "bytes".padStart(10)
        }  buffer`,
      );
      for (const b of long) {
        lines.push(
          `${String(b.madeAt).padStart(7)}  ${String(b.lastUse).padStart(9)}  ${
            String(b.lastUse - b.madeAt).padStart(5)
          }  ${fmtBytes(b.bytes).padStart(10)}  ${b.label}${
            b.kind === "output" ? " (output)" : ""
          }`,
        );
      }
    }
    return lines.join("\n");
  }

  /** a standalone SVG: bytes alive (inputs included) over the steps, the peak marked */
  toSVG(): string {
    const W = 760, H = 380, L = 80, R = 24, T = 44, B = 56;
    const pw = W - L - R, ph = H - T - B, n = Math.max(1, this.steps.length);
    const top = niceCeil(Math.max(1, this.peakTotalBytes));
    const unit = byteUnit(top);
    const tickDecimals = Math.max(0, -Math.floor(Math.log10(top / 5 / unit.size) + 1e-9));
    const x = (i: number) => L + (i / n) * pw;
    const y = (v: number) => T + ph - (v / top) * ph;
    const f = (v: number) => v.toFixed(1);
    let d = "";
    this.steps.forEach((s, i) => {
      const yy = f(y(this.inputBytes + s.aliveBytes));
      d += i === 0 ? `M${f(x(0))},${yy}` : `V${yy}`;
      d += `H${f(x(i + 1))}`;
    });
    const parts: string[] = [
      `<?xml version="1.0" encoding="UTF-8"?>`,
      `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
      `<title>${xml(`bytes alive per step: peak ${fmtBytes(this.peakTotalBytes)}`)}</title>`,
      `<rect x="0" y="0" width="${W}" height="${H}" fill="white"/>`,
      `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${
        xml(
          `bytes alive over the schedule (${this.steps.length} steps, inputs ${
            fmtBytes(this.inputBytes)
          })`,
        )
      }</text>`,
    ];
    for (let k = 0; k <= 5; k++) {
      const v = (top * k) / 5, yy = f(y(v));
      parts.push(
        `<line x1="${L}" y1="${yy}" x2="${L + pw}" y2="${yy}" stroke="#e4e4e4"/>`,
        `<text x="${L - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${
          (v / unit.size).toFixed(tickDecimals)
        }</text>`,
      );
    }
    const xstep = Math.max(1, niceCeil(n / 10));
    for (let i = 0; i <= n; i += xstep) {
      parts.push(
        `<line x1="${f(x(i))}" y1="${T + ph}" x2="${f(x(i))}" y2="${T + ph + 5}" stroke="black"/>`,
        `<text x="${f(x(i))}" y="${T + ph + 18}" text-anchor="middle">${i}</text>`,
      );
    }
    parts.push(
      `<line x1="${L}" y1="${T + ph}" x2="${L + pw}" y2="${T + ph}" stroke="black"/>`,
      `<line x1="${L}" y1="${T}" x2="${L}" y2="${T + ph}" stroke="black"/>`,
      `<text x="${L + pw / 2}" y="${H - 12}" text-anchor="middle">kernel step</text>`,
      `<text x="18" y="${T + ph / 2}" text-anchor="middle" transform="rotate(-90 18 ${
        T + ph / 2
      })">bytes alive (${unit.name})</text>`,
    );
    if (this.inputBytes > 0) {
      const yi = f(y(this.inputBytes));
      parts.push(
        `<line x1="${L}" y1="${yi}" x2="${
          L + pw
        }" y2="${yi}" stroke="#888" stroke-dasharray="4 3"/>`,
        `<text x="${L + pw - 4}" y="${
          f(y(this.inputBytes) - 4)
        }" text-anchor="end" fill="#666">inputs ${xml(fmtBytes(this.inputBytes))}</text>`,
      );
    }
    if (d) parts.push(`<path d="${d}" fill="none" stroke="#1f6fb4" stroke-width="1.5"/>`);
    if (this.peakStep >= 0) {
      const px = x(this.peakStep + 0.5), py = y(this.peakTotalBytes);
      const label = `peak ${
        fmtBytes(this.peakTotalBytes)
      } at step ${this.peakStep} (${this.peakName})`;
      // about 6.6 px a character at 12 px: right of the point if it fits, else left, else centered
      const tw = label.length * 6.6;
      const [anchor, tx] = px + 8 + tw <= W - 4
        ? ["start", px + 8]
        : px - 8 - tw >= 4
        ? ["end", px - 8]
        : ["middle", Math.min(Math.max(px, tw / 2 + 4), W - tw / 2 - 4)];
      parts.push(
        `<circle cx="${f(px)}" cy="${f(py)}" r="4" fill="#d62728"/>`,
        `<text x="${f(tx)}" y="${f(Math.max(T + 12, py - 8))}" text-anchor="${anchor}" ` +
          `fill="#d62728">${xml(label)}</text>`,
      );
    }
    parts.push(`</svg>`);
    return parts.join("\n") + "\n";
  }
}

/** the memory a realize of `tensors` would use, step by step (nothing runs) */
export function memoryReport(...tensors: Tensor[]): MemoryReport {
  const todo = tensors.filter((t) => !bufferBase(t.uop));
  if (todo.length === 0) return new MemoryReport([], []);
  // as realize plans it: kernels over a device's binding limit are split first
  const limit = minBindingLimit(todo.map((t) => t.device));
  const { realized, kernels, roots } = rangeifyWithin(todo.map((t) => t.uop), limit);
  const { order } = planOrder(realized, kernels, roots);
  return reportOf({ order, kernels, roots, freeAfter: freeAfter(order, kernels, roots) });
}

/** the report of a planned schedule */
export function reportOf(s: ScheduleWalk): MemoryReport {
  const kernelOf = new Map(s.kernels.map((k) => [k.node, k]));
  const roots = new Set(s.roots);
  const buffers: MemBuffer[] = [];
  const idOf = new Map<UOp, number>();
  const add = (u: UOp, kind: MemBufferKind, madeAt: number, label: string, size: number) => {
    const b: MemBuffer = {
      id: buffers.length,
      label: `${label} ${u.dtype.name}[${u.shape?.join(",") ?? size}]`,
      dtype: u.dtype.name,
      shape: u.shape ? [...u.shape] : [size],
      bytes: size * u.dtype.itemsize,
      kind,
      madeAt,
      lastUse: kind === "input" ? -1 : madeAt,
      freedAfter: null,
      long: false,
    };
    buffers.push(b);
    idOf.set(u, b.id);
    return b.id;
  };
  const bufferId = (u: UOp): number => {
    const base = bufferBase(u) ?? u;
    const id = idOf.get(base);
    if (id !== undefined) return id;
    if (base.op !== Ops.BUFFER) {
      throw new Error(`memoryReport: step reads ${Ops[base.op]}, which no earlier step computes`);
    }
    return add(base, "input", -1, "input", (base.arg as BufferArg).size);
  };
  const steps: MemStep[] = s.order.map((x, i) => {
    const k = kernelOf.get(x);
    const reads = (x.op === Ops.COPY ? [x.src[0]] : k?.inputs.slice(1) ?? []).map(bufferId);
    for (const r of reads) buffers[r].lastUse = Math.max(buffers[r].lastUse, i);
    const name = stepName(x, k);
    const over = s.inPlace?.get(x);
    const output = add(x, roots.has(x) ? "output" : "intermediate", i, name, prod(x.shape!));
    // written over an input: alive before the schedule, so it adds nothing
    if (over) {
      buffers[output].bytes = 0;
      buffers[output].label += " (in place)";
    }
    return {
      index: i,
      name: `${name} ${x.dtype.name}[${x.shape!.join(",")}]`,
      kind: x.op === Ops.COPY ? "copy" : "kernel",
      output,
      reads,
      alive: [],
      aliveBytes: 0,
      freed: [],
    };
  });
  s.freeAfter.forEach((dead, i) => {
    for (const u of dead) {
      const id = idOf.get(u);
      if (id === undefined) continue;
      buffers[id].freedAfter = i;
      steps[i].freed.push(id);
    }
  });
  const n = steps.length;
  for (const b of buffers) {
    if (b.kind === "input") continue;
    const end = b.freedAfter ?? n - 1;
    for (let i = b.madeAt; i <= end; i++) {
      steps[i].alive.push(b.id);
      steps[i].aliveBytes += b.bytes;
    }
    const span = b.lastUse - b.madeAt;
    b.long = span >= LONG_MIN_STEPS && span > n * LONG_FRACTION;
  }
  return new MemoryReport(steps, buffers);
}

const REDUCE_NAMES: Partial<Record<Ops, string>> = {
  [Ops.ADD]: "sum",
  [Ops.MAX]: "max",
  [Ops.MUL]: "prod",
};

function stepName(x: UOp, k: KernelPlan | undefined): string {
  const named = (k?.ast.arg as { name?: string } | undefined)?.name;
  if (named) return named;
  if (x.op === Ops.COPY) return `copy to ${String(x.arg)}`;
  // CONTIGUOUS and movement ops say little about what was computed: name the op under them
  let u = x.op === Ops.CONTIGUOUS ? x.src[0] : x;
  while (GroupOp.Movement.has(u.op)) u = u.src[0];
  if (u.op === Ops.BUFFER || u.op === Ops.CONST) u = x;
  if (u.op === Ops.REDUCE_AXIS) {
    const op = (u.arg as [Ops, number[]])[0];
    return REDUCE_NAMES[op] ?? `reduce ${Ops[op].toLowerCase()}`;
  }
  return Ops[u.op].toLowerCase();
}

// ---- formatting ----

interface ByteUnit {
  name: string;
  size: number;
}
const UNITS: ByteUnit[] = [
  { name: "B", size: 1 },
  { name: "kB", size: 1e3 },
  { name: "MB", size: 1e6 },
  { name: "GB", size: 1e9 },
];
function byteUnit(v: number): ByteUnit {
  let u = UNITS[0];
  for (const c of UNITS) if (v >= c.size) u = c;
  return u;
}
function fmtUnit(v: number, u: ByteUnit): string {
  const x = v / u.size;
  return u.size === 1 ? String(Math.round(x)) : x.toFixed(x >= 100 ? 0 : x >= 10 ? 1 : 2);
}
/** decimal units: 1 MB = 1e6 bytes */
export function fmtBytes(v: number): string {
  const u = byteUnit(v);
  return `${fmtUnit(v, u)} ${u.name}`;
}
/** the smallest of 1, 2, 2.5, 5 times a power of ten that is >= v */
function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
function xml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  );
}

// ---- `tg mem`: report every schedule realize runs, printed when the program ends ----

interface Seen {
  report: MemoryReport;
  runs: number;
}

/**
 * Report each distinct schedule realize() runs (plans are cached, so a training loop's step is one
 * schedule run many times); at exit print a summary, the full table of the largest (or of all),
 * and write the largest's SVG to `svg`.
 */
export function enableMemReports(
  opts: { svg?: string; all?: boolean; out?: (text: string) => void } = {},
): void {
  const seen = new Map<readonly KernelPlan[], Seen>();
  setRealizeHook((p: PlannedRealize) => {
    const s = seen.get(p.kernels);
    if (s) s.runs++;
    else seen.set(p.kernels, { report: reportOf(p), runs: 1 });
  });
  const out = opts.out ?? ((t: string) => console.log(t));
  globalThis.addEventListener("unload", () => {
    setRealizeHook(null);
    const all = [...seen.values()];
    if (all.length === 0) return out("tg mem: no schedule ran (nothing was realized)");
    out(memSummary(all));
    const largest = all.reduce((a, b) => b.report.peakTotalBytes > a.report.peakTotalBytes ? b : a);
    for (const s of opts.all ? all : [largest]) {
      out(`\nschedule #${all.indexOf(s)} (ran ${s.runs}x):\n${s.report.format()}`);
    }
    if (opts.svg) {
      Deno.writeTextFileSync(opts.svg, largest.report.toSVG());
      out(`\nwrote ${opts.svg} (schedule #${all.indexOf(largest)})`);
    }
  });
}

function memSummary(all: Seen[]): string {
  const rows = [["#", "runs", "steps", "inputs", "peak alive", "peak total", "peak at"]];
  all.forEach((s, i) => {
    const r = s.report;
    rows.push([
      String(i),
      String(s.runs),
      String(r.steps.length),
      fmtBytes(r.inputBytes),
      fmtBytes(r.peakBytes),
      fmtBytes(r.peakTotalBytes),
      `${r.peakStep} ${r.peakName}`,
    ]);
  });
  const w = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const text = rows.map((r) =>
    r.map((v, c) => (c === r.length - 1 ? v : v.padStart(w[c]))).join("  ")
  );
  return `tg mem: ${all.length} distinct schedule${all.length === 1 ? "" : "s"} realized\n${
    text.join("\n")
  }`;
}

// `tg mem` runs the script with TG_MEM=1 (or "all") and TG_MEM_SVG=FILE
const memEnv = envGet("TG_MEM");
if (memEnv && memEnv !== "0") {
  enableMemReports({ svg: envGet("TG_MEM_SVG") || undefined, all: memEnv === "all" });
}
