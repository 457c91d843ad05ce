// dtypes: interned singletons, so `a === b` is dtype equality everywhere.

export type DTypeKind = "bool" | "int" | "uint" | "float" | "void";

export type TypedArray =
  | Uint8Array
  | Int8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | Float16Array
  | Float32Array
  | Float64Array;

type TypedArrayCtor = {
  new (n: number | ArrayBufferLike, offset?: number, length?: number): TypedArray;
  BYTES_PER_ELEMENT: number;
};

export class DType {
  private static vecCache = new Map<string, DType>();
  private constructor(
    /** tinygrad's priority: the order in the promotion lattice, ties broken by itemsize */
    readonly priority: number,
    /** bytes of one scalar element */
    readonly itemsize: number,
    readonly name: string,
    readonly kind: DTypeKind,
    /** lanes; 1 for scalars */
    readonly count = 1,
    private readonly scalarOf: DType | null = null,
  ) {}

  /** @internal */
  static make(priority: number, itemsize: number, name: string, kind: DTypeKind): DType {
    return new DType(priority, itemsize, name, kind);
  }

  /** the vector type of `n` lanes of this scalar type (codegen only) */
  vec(n: number): DType {
    if (this.count !== 1) throw new Error(`vec: ${this.name} is already a vector`);
    if (n === 1) return this;
    const key = `${this.name}${n}`;
    let d = DType.vecCache.get(key);
    if (!d) {
      d = new DType(this.priority, this.itemsize, key, this.kind, n, this);
      DType.vecCache.set(key, d);
    }
    return d;
  }
  scalar(): DType {
    return this.scalarOf ?? this;
  }
  get bitsize(): number {
    return this.itemsize * 8;
  }
  get isFloat(): boolean {
    return this.kind === "float";
  }
  get isInt(): boolean {
    return this.kind === "int" || this.kind === "uint";
  }
  get isUnsigned(): boolean {
    return this.kind === "uint";
  }
  get isBool(): boolean {
    return this.kind === "bool";
  }
  /** smallest representable value (finite for ints, -Infinity for floats) */
  get min(): number {
    if (this.kind === "bool") return 0;
    if (this.kind === "uint") return 0;
    if (this.kind === "int") return -(2 ** (this.bitsize - 1));
    return -Infinity;
  }
  get max(): number {
    if (this.kind === "bool") return 1;
    if (this.kind === "uint") return 2 ** this.bitsize - 1;
    if (this.kind === "int") return 2 ** (this.bitsize - 1) - 1;
    return Infinity;
  }
  toString(): string {
    return `dtypes.${this.name}`;
  }
}

export const dtypes = {
  void: DType.make(-1, 0, "void", "void"),
  bool: DType.make(0, 1, "bool", "bool"),
  int8: DType.make(1, 1, "int8", "int"),
  uint8: DType.make(2, 1, "uint8", "uint"),
  int16: DType.make(3, 2, "int16", "int"),
  uint16: DType.make(4, 2, "uint16", "uint"),
  int32: DType.make(5, 4, "int32", "int"),
  uint32: DType.make(6, 4, "uint32", "uint"),
  int64: DType.make(7, 8, "int64", "int"),
  uint64: DType.make(8, 8, "uint64", "uint"),
  float16: DType.make(11, 2, "float16", "float"),
  bfloat16: DType.make(12, 2, "bfloat16", "float"),
  float32: DType.make(13, 4, "float32", "float"),
  float64: DType.make(14, 8, "float64", "float"),
  /** float32, as in tinygrad */
  default_float: null as unknown as DType,
  /** int32, as in tinygrad */
  default_int: null as unknown as DType,
};
dtypes.default_float = dtypes.float32;
dtypes.default_int = dtypes.int32;

/** every storable dtype, in priority order */
export const allDTypes: readonly DType[] = [
  dtypes.bool,
  dtypes.int8,
  dtypes.uint8,
  dtypes.int16,
  dtypes.uint16,
  dtypes.int32,
  dtypes.uint32,
  dtypes.int64,
  dtypes.uint64,
  dtypes.float16,
  dtypes.bfloat16,
  dtypes.float32,
  dtypes.float64,
];

export function dtypeFromName(name: string): DType {
  const d = allDTypes.find((x) => x.name === name) ??
    ({
      half: dtypes.float16,
      float: dtypes.float32,
      double: dtypes.float64,
      int: dtypes.int32,
      long: dtypes.int64,
    } as Record<string, DType>)[name];
  if (!d) {
    throw new Error(
      `unknown dtype '${name}': use one of ${allDTypes.map((x) => x.name).join(", ")}`,
    );
  }
  return d;
}

// ---- promotion (tinygrad's lattice) ----

const promoLattice = new Map<DType, DType[]>([
  [dtypes.bool, [dtypes.int8, dtypes.uint8]],
  [dtypes.int8, [dtypes.int16]],
  [dtypes.int16, [dtypes.int32]],
  [dtypes.int32, [dtypes.int64]],
  [dtypes.int64, [dtypes.float16, dtypes.bfloat16]],
  [dtypes.uint8, [dtypes.int16, dtypes.uint16]],
  [dtypes.uint16, [dtypes.int32, dtypes.uint32]],
  [dtypes.uint32, [dtypes.int64, dtypes.uint64]],
  [dtypes.uint64, [dtypes.float16, dtypes.bfloat16]],
  [dtypes.float16, [dtypes.float32]],
  [dtypes.bfloat16, [dtypes.float32]],
  [dtypes.float32, [dtypes.float64]],
  [dtypes.float64, []],
]);

const parentsCache = new Map<DType, Set<DType>>();
function recursiveParents(d: DType): Set<DType> {
  let s = parentsCache.get(d);
  if (s) return s;
  s = new Set([d]);
  for (const p of promoLattice.get(d) ?? []) for (const q of recursiveParents(p)) s.add(q);
  parentsCache.set(d, s);
  return s;
}

/** the smallest dtype every argument promotes to (tinygrad's least_upper_dtype) */
export function leastUpperDType(...ds: DType[]): DType {
  if (ds.length === 0) throw new Error("leastUpperDType needs at least one dtype");
  let common = new Set(recursiveParents(ds[0].scalar()));
  for (const d of ds.slice(1)) {
    const p = recursiveParents(d.scalar());
    common = new Set([...common].filter((x) => p.has(x)));
  }
  let best: DType | null = null;
  for (const d of common) {
    if (
      !best || d.priority < best.priority ||
      (d.priority === best.priority && d.itemsize < best.itemsize)
    ) best = d;
  }
  return best!;
}

/** the float dtype an op like exp or division gives for `d` (ints and bools become default_float) */
export function toFloat(d: DType): DType {
  return d.isFloat ? d : dtypes.default_float;
}

// ---- storage ----

const typedArrayCtors = new Map<DType, TypedArrayCtor>([
  [dtypes.bool, Uint8Array],
  [dtypes.int8, Int8Array],
  [dtypes.uint8, Uint8Array],
  [dtypes.int16, Int16Array],
  [dtypes.uint16, Uint16Array],
  [dtypes.int32, Int32Array],
  [dtypes.uint32, Uint32Array],
  [dtypes.int64, BigInt64Array],
  [dtypes.uint64, BigUint64Array],
  [dtypes.float16, Float16Array],
  [dtypes.bfloat16, Uint16Array], // raw bits: no native bfloat16 array
  [dtypes.float32, Float32Array],
  [dtypes.float64, Float64Array],
] as [DType, TypedArrayCtor][]);

/** the TypedArray constructor holding `d`'s raw storage */
export function typedArrayFor(d: DType): TypedArrayCtor {
  const c = typedArrayCtors.get(d.scalar());
  if (!c) throw new Error(`dtype ${d.name} has no storage`);
  return c;
}

/** a typed view of raw bytes as dtype `d` */
export function viewAs(
  d: DType,
  buf: ArrayBufferLike,
  byteOffset = 0,
  length?: number,
): TypedArray {
  const C = typedArrayFor(d);
  return new C(buf, byteOffset, length ?? (buf.byteLength - byteOffset) / d.itemsize);
}

// ---- float16 / bfloat16 ----

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** round a number to the nearest float16 value (round to nearest even) */
export const f16round: (x: number) => number = Math.f16round;

/** the bfloat16 bit pattern of `x`, rounded to nearest even; NaN stays NaN */
export function toBF16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if (Number.isNaN(x)) return (b >>> 16) | 0x40;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}
export function fromBF16Bits(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0];
}
/** round a number to the nearest bfloat16 value */
export function bf16round(x: number): number {
  return fromBF16Bits(toBF16Bits(x));
}

// ---- exact scalar semantics (used by constant folding and the JS device) ----

/** `x` converted to dtype `d` the way a C cast does (ints wrap, floats round to the dtype) */
export function castValue(x: number | boolean, d: DType): number {
  const v = typeof x === "boolean" ? (x ? 1 : 0) : x;
  const s = d.scalar();
  switch (s) {
    case dtypes.bool:
      return v !== 0 ? 1 : 0; // NaN is truthy in C
    case dtypes.float64:
      return v;
    case dtypes.float32:
      return Math.fround(v);
    case dtypes.float16:
      return Math.f16round(v);
    case dtypes.bfloat16:
      return bf16round(v);
  }
  if (!Number.isFinite(v)) return 0; // undefined behaviour in C; pick 0 deterministically
  const t = Math.trunc(v);
  switch (s) {
    case dtypes.int8:
      return (t << 24) >> 24;
    case dtypes.uint8:
      return t & 0xff;
    case dtypes.int16:
      return (t << 16) >> 16;
    case dtypes.uint16:
      return t & 0xffff;
    case dtypes.int32:
      return wrapInt32(t);
    case dtypes.uint32:
      return wrapInt32(t) >>> 0;
    case dtypes.int64:
      return Number(BigInt.asIntN(64, BigInt(t)));
    case dtypes.uint64:
      return Number(BigInt.asUintN(64, BigInt(t)));
  }
  throw new Error(`castValue: no scalar semantics for ${d.name}`);
}

function wrapInt32(t: number): number {
  // `| 0` is exact only for |t| < 2^53; beyond that go through BigInt
  return Math.abs(t) < 2 ** 53 ? (t % 2 ** 32) | 0 : Number(BigInt.asIntN(32, BigInt(t)));
}

/** whether every value of `from` is exactly representable in `to` */
export function canLosslessCast(from: DType, to: DType): boolean {
  if (from === to) return true;
  if (from === dtypes.bool) return true;
  if (to === dtypes.float64) return from.isFloat || from.itemsize <= 4;
  if (to === dtypes.float32) {
    return from === dtypes.float16 || from === dtypes.bfloat16 ||
      (from.isInt && from.itemsize <= 2);
  }
  if (to === dtypes.float16) return from.isInt && from.itemsize === 1;
  if (to === dtypes.bfloat16) return from.isInt && from.itemsize === 1;
  if (to.isInt && from.isInt) {
    if (to.isUnsigned) return from.isUnsigned && from.itemsize <= to.itemsize;
    return from.isUnsigned ? from.itemsize < to.itemsize : from.itemsize <= to.itemsize;
  }
  return false;
}
