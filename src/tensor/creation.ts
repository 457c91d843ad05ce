// Creating tensors: constants are CONST graphs (no memory until a kernel needs them); data from JS
// is uploaded into a BUFFER through the engine.
import { type DType, dtypes, toBF16Bits, type TypedArray, typedArrayFor } from "../dtype.ts";
import { Ops, prod, UOp } from "../uop/ops.ts";
import { Tensor, type TensorOpts } from "../tensor.ts";
import { backend } from "./backend.ts";
import { checkShape, constU, fmtShape, jsDType, reshapeU, toDType } from "./broadcast.ts";
import * as E from "./elementwise.ts";
import * as M from "./movement.ts";

export type NestedData = number | boolean | NestedData[];

export function deviceOf(opts?: TensorOpts): string {
  const b = backend();
  return opts?.device !== undefined ? b.canonicalDevice(opts.device) : b.defaultDevice();
}

function make(u: UOp, opts?: TensorOpts): Tensor {
  const t = new Tensor(u, deviceOf(opts));
  if (opts?.requiresGrad) t.requiresGrad = true;
  return t;
}

/** values converted to the storage TypedArray of `dtype` (bool as 0/1, bfloat16 as bits) */
export function toStorage(dtype: DType, values: ArrayLike<number | boolean | bigint>): TypedArray {
  const C = typedArrayFor(dtype);
  const out = new C(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (dtype === dtypes.int64 || dtype === dtypes.uint64) {
      const big = typeof v === "bigint" ? v : BigInt(Math.trunc(Number(v)));
      (out as BigInt64Array)[i] = dtype === dtypes.int64
        ? BigInt.asIntN(64, big)
        : BigInt.asUintN(64, big);
    } else if (dtype === dtypes.bfloat16) {
      out[i] = toBF16Bits(Number(v));
    } else if (dtype === dtypes.bool) {
      out[i] = Number(v) !== 0 ? 1 : 0;
    } else {
      (out as Float64Array)[i] = Number(v);
    }
  }
  return out;
}

/** a BUFFER holding `data` (already in `dtype`'s storage), viewed as `shape` */
export function upload(
  dtype: DType,
  data: TypedArray,
  shape: readonly number[],
  opts?: TensorOpts,
): Tensor {
  const device = deviceOf(opts);
  const buf = backend().bufferFromData(device, dtype, data);
  const t = new Tensor(reshapeU(buf, shape), device);
  if (opts?.requiresGrad) t.requiresGrad = true;
  return t;
}

const typedDTypes = new Map<unknown, DType>([
  [Float32Array, dtypes.float32],
  [Float64Array, dtypes.float64],
  [Float16Array, dtypes.float16],
  [Int8Array, dtypes.int8],
  [Uint8Array, dtypes.uint8],
  [Uint8ClampedArray, dtypes.uint8],
  [Int16Array, dtypes.int16],
  [Uint16Array, dtypes.uint16],
  [Int32Array, dtypes.int32],
  [Uint32Array, dtypes.uint32],
  [BigInt64Array, dtypes.int64],
  [BigUint64Array, dtypes.uint64],
]);

export interface FromOpts extends TensorOpts {
  /** the shape of a flat TypedArray (default: [length]) */
  shape?: number[];
}

export function from(data: unknown, opts?: FromOpts): Tensor {
  const want = opts?.dtype !== undefined ? toDType(opts.dtype) : undefined;
  if (typeof data === "number" || typeof data === "boolean") {
    return make(UOp.const(want ?? jsDType(data), data), opts);
  }
  if (ArrayBuffer.isView(data) && !(data instanceof DataView)) {
    const src = typedDTypes.get(data.constructor);
    if (!src) throw new Error(`Tensor.from: unsupported TypedArray ${data.constructor.name}`);
    const arr = data as unknown as TypedArray;
    const shape = opts?.shape !== undefined ? checkShape("Tensor.from", opts.shape) : [arr.length];
    if (prod(shape) !== arr.length) {
      throw new Error(
        `Tensor.from: shape ${fmtShape(shape)} needs ${
          prod(shape)
        } elements, the ${data.constructor.name} has ${arr.length}`,
      );
    }
    const dt = want ?? src;
    const store = dt === src ? arr.slice() : toStorage(dt, arr as ArrayLike<number>);
    return upload(dt, store, shape, opts);
  }
  if (!Array.isArray(data)) {
    throw new TypeError(
      `Tensor.from: expected a number, boolean, nested array or TypedArray, got ${
        data === null ? "null" : typeof data
      }`,
    );
  }
  const shape: number[] = [];
  for (let d: unknown = data; Array.isArray(d); d = d[0]) shape.push(d.length);
  const flat: (number | boolean)[] = [];
  const walk = (d: unknown, depth: number, path: number[]): void => {
    if (depth === shape.length) {
      if (typeof d !== "number" && typeof d !== "boolean") {
        throw new TypeError(
          `Tensor.from: element at [${path}] is ${typeof d}; expected a number or boolean`,
        );
      }
      flat.push(d);
      return;
    }
    if (!Array.isArray(d) || d.length !== shape[depth]) {
      throw new Error(
        `Tensor.from: ragged nested array: at [${path}] expected an array of length ${
          shape[depth]
        }, got ${Array.isArray(d) ? `length ${d.length}` : typeof d}`,
      );
    }
    d.forEach((x, i) => walk(x, depth + 1, [...path, i]));
  };
  walk(data, 0, []);
  let dt = want;
  if (!dt) {
    dt = flat.length === 0 ? dtypes.default_float : dtypes.bool;
    for (const v of flat) {
      const d = jsDType(v);
      if (d.priority > dt.priority) dt = d;
    }
  }
  return upload(dt, toStorage(dt, flat), shape, opts);
}

export function full(shape: readonly number[], value: number | boolean, opts?: TensorOpts): Tensor {
  const s = checkShape("full", shape);
  const dt = opts?.dtype !== undefined ? toDType(opts.dtype) : jsDType(value);
  return make(constU(dt, value, s), opts);
}

/** a tensor with storage but unspecified contents (zeros here) */
export function empty(shape: readonly number[], opts?: TensorOpts): Tensor {
  const s = checkShape("empty", shape);
  const dt = opts?.dtype !== undefined ? toDType(opts.dtype) : dtypes.default_float;
  return upload(dt, new (typedArrayFor(dt))(prod(s)), s, opts);
}

/** start, start+step, ... < stop: int when every argument is an integer, else default_float */
export function arange(start: number, stop?: number, step = 1, opts?: TensorOpts): Tensor {
  if (stop === undefined) [start, stop] = [0, start];
  for (const v of [start, stop, step]) {
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new Error(
        `arange: start, stop and step must be finite numbers, got ${start}, ${stop}, ${step}`,
      );
    }
  }
  if (step === 0) throw new Error("arange: step must not be 0");
  const n = Math.max(0, Math.ceil((stop - start) / step));
  const allInt = [start, stop, step].every(Number.isInteger);
  const dt = opts?.dtype !== undefined
    ? toDType(opts.dtype)
    : allInt
    ? dtypes.default_int
    : dtypes.default_float;
  // 0..n-1 is the index itself: no memory, and fused into whatever reads it
  const idx = make(UOp.make(Ops.IOTA, dtypes.int32, [], n), opts);
  if (dt.isFloat || !allInt) return E.add(E.mul(idx.cast(dt), step), start).cast(dt);
  return E.add(E.mul(idx, step), start).cast(dt);
}

export function linspace(start: number, stop: number, steps: number, opts?: TensorOpts): Tensor {
  if (!Number.isInteger(steps) || steps < 0) {
    throw new Error(`linspace: steps must be a non-negative integer, got ${steps}`);
  }
  const dt = opts?.dtype !== undefined ? toDType(opts.dtype) : dtypes.default_float;
  if (steps === 1) return full([1], start, { ...opts, dtype: dt });
  const idx = arange(steps, undefined, 1, { ...opts, dtype: dtypes.float32 });
  return E.add(E.mul(idx, (stop - start) / (steps - 1)), start).cast(dt);
}

export function eye(n: number, m = n, opts?: TensorOpts): Tensor {
  for (const v of [n, m]) {
    if (!Number.isInteger(v) || v < 0) {
      throw new Error(`eye: sizes must be non-negative integers, got ${n}, ${m}`);
    }
  }
  const dt = opts?.dtype !== undefined ? toDType(opts.dtype) : dtypes.default_float;
  const o = { ...opts, dtype: undefined };
  const r = M.reshape(arange(n, undefined, 1, o), [n, 1]);
  const c = M.reshape(arange(m, undefined, 1, o), [1, m]);
  return E.eq(r, c).cast(dt);
}
