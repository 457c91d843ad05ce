// Printing tensor values numpy-style: one format for every shown element so columns line up,
// and "..." in place of the middle of long axes.
import { bf16round, type DType, dtypes, f16round } from "../dtype.ts";

export interface FormatOpts {
  /** past this many elements, long axes show only `edgeItems` at each end */
  threshold?: number;
  edgeItems?: number;
  lineWidth?: number;
}

type Cell = number | bigint | boolean;

/** the row-major indices of the elements that are shown, per axis (null marks the "...") */
function shownIndices(shape: readonly number[], elide: boolean, edge: number): (number | null)[][] {
  return shape.map((n) => {
    if (!elide || n <= 2 * edge) return [...Array(n).keys()];
    return [...Array(edge).keys(), null, ...Array.from({ length: edge }, (_, i) => n - edge + i)];
  });
}

/** how a value of the dtype is rounded, so that printing shows its shortest round-trip digits */
function rounderFor(d: DType): (v: number) => number {
  if (d === dtypes.float32) return Math.fround;
  if (d === dtypes.float16) return f16round;
  if (d === dtypes.bfloat16) return bf16round;
  return (v) => v;
}

/** the fewest significant digits that read back as `v` in the dtype */
function sigDigits(v: number, round: (v: number) => number): number {
  if (v === 0) return 1;
  for (let p = 1; p < 17; p++) if (round(Number(v.toPrecision(p))) === v) return p;
  return 17;
}

function floatFormatter(vals: number[], round: (v: number) => number): (v: number) => string {
  const MAXPREC = 8;
  const finite = vals.filter((v) => Number.isFinite(v));
  const abs = finite.map(Math.abs).filter((v) => v !== 0);
  const maxAbs = abs.length ? Math.max(...abs) : 0, minAbs = abs.length ? Math.min(...abs) : 0;
  const special = (v: number): string | null =>
    Number.isNaN(v) ? "nan" : v === Infinity ? "inf" : v === -Infinity ? "-inf" : null;
  if (maxAbs >= 1e8 || (minAbs > 0 && minAbs < 1e-4) || (minAbs > 0 && maxAbs / minAbs > 1e3)) {
    // scientific, with the fewest mantissa digits (at most 8) that show every value
    const digits = Math.min(MAXPREC, Math.max(0, ...finite.map((v) => sigDigits(v, round) - 1)));
    return (v) =>
      special(v) ??
        v.toExponential(digits).replace(/^(-?\d)e/, "$1.e").replace(/e([+-])(\d)$/, "e$10$2");
  }
  const fracOf = (v: number): number =>
    v === 0 ? 0 : Math.max(0, sigDigits(v, round) - 1 - Math.floor(Math.log10(Math.abs(v))));
  const width = Math.min(MAXPREC, Math.max(0, ...finite.map(fracOf)));
  return (v) => {
    const s = special(v);
    if (s !== null) return s;
    const t = trimZeros(v.toFixed(width));
    return t.padEnd(t.length + width - (t.split(".")[1]?.length ?? 0), " ");
  };
}

const trimZeros = (s: string): string => (s.includes(".") ? s.replace(/0+$/, "") : s);

/** the values, nested in brackets; `indent` is the column the first bracket is printed at */
export function formatValues(
  data: ArrayLike<Cell>,
  shape: readonly number[],
  dtype: DType,
  indent = 0,
  opts: FormatOpts = {},
): string {
  const { threshold = 1000, edgeItems = 3, lineWidth = 75 } = opts;
  const n = data.length;
  const shown = shownIndices(shape, n > threshold, edgeItems);
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  // collect the shown values first so that one formatter fits them all
  const picked: Cell[] = [];
  const collect = (axis: number, off: number): void => {
    if (axis === shape.length) {
      picked.push(data[off]);
      return;
    }
    for (const i of shown[axis]) if (i !== null) collect(axis + 1, off + i * strides[axis]);
  };
  collect(0, 0);
  let fmt: (v: Cell) => string;
  if (dtype.isBool) fmt = (v) => (v ? "true" : "false");
  else if (dtype.isFloat) {
    const f = floatFormatter(picked.map(Number), rounderFor(dtype));
    fmt = (v) => f(Number(v));
  } else fmt = (v) => String(v);
  const width = Math.max(0, ...picked.map((v) => fmt(v).length));
  const cell = (v: Cell): string => fmt(v).padStart(width, " ");
  const render = (axis: number, off: number): string => {
    if (axis === shape.length) return cell(data[off]);
    const pad = " ".repeat(indent + axis + 1);
    if (axis === shape.length - 1) {
      const items = shown[axis].map((
        i,
      ) => (i === null ? "..." : cell(data[off + i * strides[axis]])));
      const lines: string[] = [];
      let line = "";
      for (const it of items) {
        const next = line ? `${line}, ${it}` : it;
        if (line && pad.length + next.length + 2 > lineWidth) {
          lines.push(line + ",");
          line = it;
        } else line = next;
      }
      lines.push(line);
      return `[${lines.join(`\n${pad}`)}]`;
    }
    const sep = `,${"\n".repeat(shape.length - axis - 1)}${pad}`;
    return `[${
      shown[axis].map((i) => (i === null ? "..." : render(axis + 1, off + i * strides[axis]))).join(
        sep,
      )
    }]`;
  };
  return render(0, 0);
}

/** `Tensor(values, shape=[..], dtype=.., device=..)` */
export function formatTensor(
  data: ArrayLike<Cell>,
  shape: readonly number[],
  dtype: DType,
  device: string,
  opts?: FormatOpts,
): string {
  const head = "Tensor(";
  return `${head}${formatValues(data, shape, dtype, head.length, opts)}, shape=[${
    shape.join(", ")
  }], dtype=${dtype.name}, device=${device})`;
}
