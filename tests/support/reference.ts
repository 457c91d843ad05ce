// A reference interpreter for tensor graphs (docs/ir.md section 1): evaluates a UOp directly,
// element by element, in row-major order with dtype-exact scalar semantics (castValue after each
// op). Slow and obviously correct on purpose: it is the oracle that Tensor tests and fused
// kernels are checked against. It also serves as a Backend, so the whole Tensor API runs on it.
import {
  castValue,
  type DType,
  dtypes,
  fromBF16Bits,
  type TypedArray,
  viewAs,
} from "../../src/dtype.ts";
import { Ops, prod, UOp } from "../../src/uop/ops.ts";
import type { Backend } from "../../src/tensor/backend.ts";
import { toStorage } from "../../src/tensor/creation.ts";

export interface RefValue {
  shape: number[];
  dtype: DType;
  /** row-major; bools as 0/1, every value exactly representable in dtype */
  values: number[];
}

const store = new Map<number, number[]>();
let nextId = 1;

/** a BUFFER UOp holding `data` (converted to `dtype` like a C cast) */
export function refBuffer(
  dtype: DType,
  data: ArrayLike<number | boolean | bigint>,
  device = "REF",
): UOp {
  const values = Array.from(data, (v) => castValue(Number(v), dtype));
  const id = nextId++;
  store.set(id, values);
  return UOp.make(Ops.BUFFER, dtype, [], { id, size: values.length, device });
}

/** the values of `dtype`'s storage array (bfloat16 bits decoded, int64 as numbers) */
export function fromStorage(dtype: DType, data: TypedArray): number[] {
  if (dtype === dtypes.bfloat16) return Array.from(data as Uint16Array, fromBF16Bits);
  return Array.from(data as ArrayLike<number | bigint>, (v) => Number(v));
}

const stridesOf = (shape: readonly number[]): number[] => {
  const s = Array(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
};

/** out[o] = src[f(o)] for each multi-index o of `outShape`; f returns -1 for "zero" (padding) */
function gather(
  outShape: readonly number[],
  inShape: readonly number[],
  src: number[],
  f: (o: number[]) => number[] | null,
): number[] {
  const n = prod(outShape), inStrides = stridesOf(inShape);
  const out = new Array<number>(n);
  const o = Array(outShape.length).fill(0);
  for (let flat = 0; flat < n; flat++) {
    const idx = f(o);
    out[flat] = idx === null ? 0 : src[idx.reduce((acc, v, k) => acc + v * inStrides[k], 0)];
    for (let k = o.length - 1; k >= 0; k--) {
      if (++o[k] < outShape[k]) break;
      o[k] = 0;
    }
  }
  return out;
}

const big = (d: DType): boolean => d.itemsize === 8 && d.isInt;
const toBig = (v: number): bigint => BigInt(Math.trunc(v));

/** one scalar ALU op in dtype `dt` (sources in `sdt`) */
export function evalAlu(op: Ops, dt: DType, sdt: DType, a: number, b = 0, c = 0): number {
  const r = (v: number): number => castValue(v, dt);
  const rb = (v: bigint): number => castValue(Number(v), dt);
  switch (op) {
    case Ops.ADD:
      return big(dt) ? rb(toBig(a) + toBig(b)) : r(a + b);
    case Ops.SUB:
      return big(dt) ? rb(toBig(a) - toBig(b)) : r(a - b);
    case Ops.MUL:
      if (big(dt)) return rb(toBig(a) * toBig(b));
      return dt.isInt ? r(Math.imul(a, b)) : r(a * b);
    case Ops.FDIV:
      return r(a / b);
    case Ops.IDIV:
      if (b === 0) return 0;
      return big(dt) ? rb(toBig(a) / toBig(b)) : r(Math.trunc(a / b));
    case Ops.MOD:
      if (b === 0) return 0;
      return big(dt) ? rb(toBig(a) % toBig(b)) : r(a % b);
    case Ops.MAX:
      return r(Math.max(a, b));
    case Ops.CMPLT:
      return a < b ? 1 : 0;
    case Ops.CMPNE:
      return a !== b ? 1 : 0;
    case Ops.CMPEQ:
      return a === b ? 1 : 0;
    case Ops.AND:
      return big(dt) ? rb(toBig(a) & toBig(b)) : r(a & b);
    case Ops.OR:
      return big(dt) ? rb(toBig(a) | toBig(b)) : r(a | b);
    case Ops.XOR:
      return big(dt) ? rb(toBig(a) ^ toBig(b)) : r(a ^ b);
    case Ops.SHL:
      return big(dt) ? rb(toBig(a) << toBig(b)) : r(a * 2 ** b);
    case Ops.SHR:
      return big(dt) ? rb(toBig(a) >> toBig(b)) : r(Math.floor(a / 2 ** b));
    case Ops.POW:
      return r(a ** b);
    case Ops.WHERE:
      return a ? b : c;
    case Ops.MULACC:
      return r(r(a * b) + c);
    case Ops.EXP2:
      return r(2 ** a);
    case Ops.LOG2:
      return r(Math.log2(a));
    case Ops.SIN:
      return r(Math.sin(a));
    case Ops.SQRT:
      return r(Math.sqrt(a));
    case Ops.RECIPROCAL:
      return r(1 / a);
    case Ops.NEG:
      return big(dt) ? rb(-toBig(a)) : r(-a);
    case Ops.TRUNC:
      return r(Math.trunc(a));
    case Ops.CAST:
      return castValue(a, dt);
  }
  throw new Error(`reference: no scalar semantics for ${Ops[op]} on ${sdt.name}`);
}

function bitcast(from: DType, to: DType, values: number[]): number[] {
  const bytes = toStorage(from, values);
  return fromStorage(
    to,
    viewAs(to, bytes.buffer, bytes.byteOffset, bytes.byteLength / to.itemsize),
  );
}

function reduce(op: Ops, dt: DType, inShape: readonly number[], axes: number[], src: number[]) {
  const outShape = inShape.map((d, i) => (axes.includes(i) ? 1 : d));
  const init = op === Ops.ADD ? 0 : op === Ops.MUL ? 1 : dt.isFloat ? -Infinity : dt.min;
  const out = new Array<number>(prod(outShape)).fill(init);
  const outStrides = stridesOf(outShape);
  const o = Array(inShape.length).fill(0);
  for (let flat = 0; flat < src.length; flat++) {
    let dst = 0;
    for (let k = 0; k < o.length; k++) if (!axes.includes(k)) dst += o[k] * outStrides[k];
    out[dst] = evalAlu(op, dt, dt, out[dst], src[flat]);
    for (let k = o.length - 1; k >= 0; k--) {
      if (++o[k] < inShape[k]) break;
      o[k] = 0;
    }
  }
  return out;
}

function evalNode(u: UOp, srcs: number[][], vars: Map<string, number>): number[] {
  const inShape = u.src[0]?.shape ?? [];
  const shape = u.shape!;
  const s0 = srcs[0];
  switch (u.op) {
    case Ops.BUFFER: {
      const v = store.get((u.arg as { id: number }).id);
      if (!v) throw new Error("reference: BUFFER not made by refBuffer (its data is unknown)");
      return v;
    }
    case Ops.CONST:
      return [castValue(u.arg as number | boolean, u.dtype)];
    case Ops.IOTA:
      return Array.from({ length: u.arg as number }, (_, i) => i);
    case Ops.DEFINE_VAR: {
      const name = (u.arg as [string])[0];
      if (!vars.has(name)) throw new Error(`reference: no value for variable ${name}`);
      return [vars.get(name)!];
    }
    case Ops.RESHAPE:
    case Ops.CONTIGUOUS:
    case Ops.DETACH:
    case Ops.COPY:
      return s0.slice();
    case Ops.PERMUTE: {
      const p = u.arg as number[];
      return gather(shape, inShape, s0, (o) => {
        const i = Array(p.length);
        p.forEach((src, k) => (i[src] = o[k]));
        return i;
      });
    }
    case Ops.EXPAND:
      return gather(shape, inShape, s0, (o) => o.map((v, k) => (inShape[k] === 1 ? 0 : v)));
    case Ops.PAD: {
      const p = u.arg as [number, number][];
      return gather(shape, inShape, s0, (o) => {
        const i = o.map((v, k) => v - p[k][0]);
        return i.every((v, k) => v >= 0 && v < inShape[k]) ? i : null;
      });
    }
    case Ops.SHRINK: {
      const r = u.arg as [number, number][];
      return gather(shape, inShape, s0, (o) => o.map((v, k) => v + r[k][0]));
    }
    case Ops.FLIP: {
      const f = u.arg as boolean[];
      return gather(shape, inShape, s0, (o) => o.map((v, k) => (f[k] ? inShape[k] - 1 - v : v)));
    }
    case Ops.REDUCE_AXIS: {
      const [op, axes] = u.arg as [Ops, number[]];
      return reduce(op, u.dtype, inShape, axes, s0);
    }
    case Ops.BITCAST:
      return bitcast(u.src[0].dtype, u.dtype, s0);
  }
  if (u.op === Ops.CAST || u.src.length >= 1) {
    const sdt = u.src[0].dtype;
    return s0.map((a, i) => evalAlu(u.op, u.dtype, sdt, a, srcs[1]?.[i], srcs[2]?.[i]));
  }
  throw new Error(`reference: cannot evaluate ${Ops[u.op]}`);
}

/** the value of a tensor-graph UOp (variables bound by `vars`) */
export function evaluate(root: UOp, vars: Map<string, number> = new Map()): RefValue {
  const memo = new Map<UOp, number[]>();
  for (const u of root.toposort()) memo.set(u, evalNode(u, u.src.map((s) => memo.get(s)!), vars));
  return { shape: [...root.shape!], dtype: root.dtype, values: memo.get(root)! };
}

export const refStats = { realizeCalls: 0 };

/** the reference interpreter as a Tensor backend: devices REF and REF:1 */
export const refBackend: Backend = {
  defaultDevice: () => "REF",
  canonicalDevice(name: string): string {
    const d = name.toUpperCase();
    if (d !== "REF" && d !== "REF:1") {
      throw new Error(`device ${name} is not available; the reference backend has REF and REF:1`);
    }
    return d;
  },
  bufferFromData: (device, dtype, data) => refBuffer(dtype, fromStorage(dtype, data), device),
  realize(roots: UOp[]): UOp[] {
    refStats.realizeCalls++;
    return roots.map((r) => {
      const v = evaluate(r);
      const b = refBuffer(r.dtype, v.values);
      return v.shape.length === 1 ? b : UOp.make(Ops.RESHAPE, r.dtype, [b], v.shape);
    });
  },
  readSync: (u) => toStorage(u.dtype, evaluate(u).values),
  read: (u) => Promise.resolve(toStorage(u.dtype, evaluate(u).values)),
  kernels(): never {
    throw new Error("the reference backend runs no kernels");
  },
  schedule(): never {
    throw new Error("the reference backend runs no kernels");
  },
  dispose: () => {}, // values are JS arrays: the garbage collector takes them
};

/** the reference value of a Tensor's graph, checked against its claimed shape and dtype */
export function refOf(t: { uop: UOp; shape: number[]; dtype: DType }): number[] {
  const v = evaluate(t.uop);
  if (v.shape.join() !== t.shape.join() || v.dtype !== t.dtype) {
    throw new Error(`reference: tensor claims ${t.shape}/${t.dtype.name}, graph is ${v.shape}`);
  }
  return v.values;
}

/** each |actual - expected| <= atol + rtol*|expected| (NaN matches NaN, infinities must be equal) */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol = 1e-5,
  atol = 1e-6,
  what = "",
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${what} length ${actual.length} != expected ${expected.length}`);
  }
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i], e = expected[i];
    if (
      Number.isNaN(e)
        ? Number.isNaN(a)
        : !Number.isFinite(e)
        ? a === e
        : Math.abs(a - e) <= atol + rtol * Math.abs(e)
    ) continue;
    throw new Error(
      `${what} element ${i}: got ${a}, expected ${e}\n  actual   [${
        Array.from(actual).slice(0, 20)
      }]\n  expected [${Array.from(expected).slice(0, 20)}]`,
    );
  }
}
