// The IR: one immutable, hash-consed node type for every stage of the pipeline.
import { castValue, DType, dtypes } from "../dtype.ts";
import { computeBounds } from "./bounds.ts";
import { computeShape, type Pad } from "./shape.ts";

export type { Pad };

export enum Ops {
  // tensor graph: storage and structure
  SINK,
  NOOP,
  BUFFER,
  COPY,
  CONTIGUOUS,
  DETACH,
  // movement (tensor graph only; rangeify turns them into index arithmetic)
  RESHAPE,
  PERMUTE,
  EXPAND,
  PAD,
  SHRINK,
  FLIP,
  // reductions: REDUCE_AXIS(arg [op, axes]) on tensors, REDUCE(value, ...ranges; arg op) in kernels
  REDUCE_AXIS,
  REDUCE,
  // kernel definitions and control
  DEFINE_GLOBAL,
  DEFINE_VAR,
  DEFINE_LOCAL,
  DEFINE_REG,
  SPECIAL,
  RANGE,
  END,
  IF,
  ENDIF,
  BARRIER,
  // memory
  INDEX,
  LOAD,
  STORE,
  // vectors and tensor cores
  VECTORIZE,
  GEP,
  WMMA,
  // constants
  CONST,
  // unary ALU
  CAST,
  BITCAST,
  EXP2,
  LOG2,
  SIN,
  SQRT,
  RECIPROCAL,
  NEG,
  TRUNC,
  // binary ALU
  ADD,
  MUL,
  SUB,
  FDIV,
  IDIV,
  MOD,
  MAX,
  CMPLT,
  CMPNE,
  CMPEQ,
  XOR,
  OR,
  AND,
  SHL,
  SHR,
  POW,
  // ternary ALU
  WHERE,
  MULACC,
  // tensor graph: the int32 vector [0, 1, ..., n-1] (arg n); in a kernel, the index it is read at
  IOTA,
}

export const opName = (op: Ops): string => Ops[op];

/**
 * The arg of a STORE into shared memory that copies global memory and may land asynchronously
 * (CUDA cp.async, src/opt/tc.ts PIPE): it is complete once a BARRIER whose arg is a number n
 * has let at most n of the thread's later async copies stay in flight. Renderers without async
 * copies store it as any store.
 */
export const STORE_ASYNC = "async";

/**
 * The arg of an INDEX into shared memory that a tensor-core operand's first element LOAD
 * carries as an extra source: the 16-byte row this lane hands ldmatrix (src/opt/tc.ts PIPE,
 * whose swizzled layout the renderer cannot infer from the element indexes).
 */
export const INDEX_LDMATRIX = "ldmatrix";

const set = (...ops: Ops[]): ReadonlySet<Ops> => new Set(ops);
export const GroupOp = {
  Unary: set(Ops.EXP2, Ops.LOG2, Ops.SIN, Ops.SQRT, Ops.RECIPROCAL, Ops.NEG, Ops.TRUNC),
  Binary: set(
    Ops.ADD,
    Ops.MUL,
    Ops.SUB,
    Ops.FDIV,
    Ops.IDIV,
    Ops.MOD,
    Ops.MAX,
    Ops.CMPLT,
    Ops.CMPNE,
    Ops.CMPEQ,
    Ops.XOR,
    Ops.OR,
    Ops.AND,
    Ops.SHL,
    Ops.SHR,
    Ops.POW,
  ),
  Ternary: set(Ops.WHERE, Ops.MULACC),
  ALU: set(), // filled below
  Elementwise: set(), // ALU + CAST + BITCAST
  Movement: set(Ops.RESHAPE, Ops.PERMUTE, Ops.EXPAND, Ops.PAD, Ops.SHRINK, Ops.FLIP),
  Commutative: set(Ops.ADD, Ops.MUL, Ops.MAX, Ops.CMPNE, Ops.CMPEQ, Ops.XOR, Ops.OR, Ops.AND),
  Associative: set(Ops.ADD, Ops.MUL, Ops.AND, Ops.OR, Ops.MAX, Ops.XOR),
  Comparison: set(Ops.CMPLT, Ops.CMPNE, Ops.CMPEQ),
  Idempotent: set(Ops.OR, Ops.AND, Ops.MAX),
  Irreducible: set(Ops.CONST, Ops.DEFINE_VAR, Ops.SPECIAL, Ops.RANGE),
  ReduceOps: set(Ops.ADD, Ops.MUL, Ops.MAX),
};
for (const o of [...GroupOp.Unary, ...GroupOp.Binary, ...GroupOp.Ternary]) {
  (GroupOp.ALU as Set<Ops>).add(o);
  (GroupOp.Elementwise as Set<Ops>).add(o);
}
(GroupOp.Elementwise as Set<Ops>).add(Ops.CAST).add(Ops.BITCAST);

/** What kind of loop a RANGE is; the letter is used in kernel and variable names. */
export enum AxisType {
  GLOBAL,
  LOCAL,
  LOOP,
  GROUP_REDUCE,
  REDUCE,
  UPCAST,
  UNROLL,
  THREAD,
}
export const axisLetter: Record<AxisType, string> = {
  [AxisType.GLOBAL]: "g",
  [AxisType.LOCAL]: "l",
  [AxisType.LOOP]: "L",
  [AxisType.GROUP_REDUCE]: "G",
  [AxisType.REDUCE]: "R",
  [AxisType.UPCAST]: "u",
  [AxisType.UNROLL]: "r",
  [AxisType.THREAD]: "t",
};

export type ConstValue = number | boolean;

// ---- hash-consing ----

function argKey(a: unknown): string {
  switch (typeof a) {
    case "undefined":
      return "";
    case "number":
      return Object.is(a, -0) ? "-0" : String(a);
    case "boolean":
      return a ? "T" : "F";
    case "string":
      return JSON.stringify(a);
    case "bigint":
      return `${a}n`;
    case "object": {
      if (a === null) return "null";
      if (Array.isArray(a)) return `[${a.map(argKey).join(",")}]`;
      if (a instanceof DType) return `dt:${a.name}`;
      const k = (a as { key?: unknown }).key;
      if (typeof k === "string") return `{${k}}`;
      return `{${Object.entries(a).map(([n, v]) => `${n}:${argKey(v)}`).join(",")}}`;
    }
  }
  throw new Error(`UOp arg of type ${typeof a} cannot be hash-consed`);
}

// Buckets by a 32-bit hash of (op, dtype, source ids, arg): number keys hash far faster than
// string keys, and a bucket is almost always one node. Entries are weak: a graph nobody holds is
// collected and its entries leave with it.
type Bucket = WeakRef<UOp> | WeakRef<UOp>[];
const ucache = new Map<number, Bucket>();
let liveEntries = 0;
const ufinal = new FinalizationRegistry<number>((h) => {
  const b = ucache.get(h);
  if (b === undefined) return;
  if (!Array.isArray(b)) {
    if (b.deref() === undefined) ucache.delete(h), liveEntries--;
    return;
  }
  const alive = b.filter((r) => r.deref() !== undefined);
  liveEntries -= b.length - alive.length;
  if (alive.length === 0) ucache.delete(h);
  else ucache.set(h, alive.length === 1 ? alive[0] : alive);
});
let nextId = 0;

const mix = (h: number, x: number): number => Math.imul(h ^ x, 0x01000193);
const dtypeHash = new Map<DType, number>();
function hashDType(d: DType): number {
  let h = dtypeHash.get(d);
  if (h === undefined) dtypeHash.set(d, h = hashString(d.name));
  return h;
}
function hashString(str: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < str.length; i++) h = mix(h, str.charCodeAt(i));
  return h;
}
const f64 = new Float64Array(1), f64u = new Uint32Array(f64.buffer);
function hashArg(a: unknown): number {
  if (typeof a === "number") {
    if (Number.isInteger(a) && Math.abs(a) < 2 ** 31 && !Object.is(a, -0)) return a | 0;
    f64[0] = a;
    return mix(f64u[0], f64u[1]);
  }
  if (a === undefined) return 0x5bd1e995;
  if (typeof a === "boolean") return a ? 0x27d4eb2d : 0x165667b1;
  if (Array.isArray(a)) {
    let h = mix(0x9e3779b9, a.length);
    for (let i = 0; i < a.length; i++) h = mix(h, hashArg(a[i]));
    return h;
  }
  if (typeof a === "object" && a !== null && !(a instanceof DType)) {
    let h = 0x85ebca6b;
    for (const k in a) h = mix(mix(h, hashString(k)), hashArg((a as Record<string, unknown>)[k]));
    return h;
  }
  return hashString(argKey(a));
}
function argEqual(a: unknown, b: unknown): boolean {
  if (a === b) return typeof a !== "number" || !Object.is(a, -0) === !Object.is(b, -0);
  if (typeof a === "number" && typeof b === "number") return Number.isNaN(a) && Number.isNaN(b);
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!argEqual(a[i], b[i])) return false;
    return true;
  }
  if (a instanceof DType || b instanceof DType || Array.isArray(b)) return false;
  const ka = Object.keys(a), kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    if (!argEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) {
      return false;
    }
  }
  return true;
}

/** number of live entries in the hash-cons cache (for tests of memory behaviour) */
export const uopCacheSize = (): number => liveEntries;

export type Bounds = readonly [number, number];

export class UOp {
  /** a process-unique number, stable for the node's life (used in cache keys) */
  readonly id: number;
  private _topo?: UOp[];
  private _bounds?: Bounds;
  private _shape?: readonly number[] | null;

  private constructor(
    readonly op: Ops,
    readonly dtype: DType,
    readonly src: readonly UOp[],
    readonly arg: unknown,
  ) {
    this.id = nextId++;
  }

  /** The one way to make a UOp: equal (op, dtype, src, arg) give the same object. */
  static make(op: Ops, dtype: DType, src: readonly UOp[] = [], arg?: unknown): UOp {
    let h = mix(mix(0x811c9dc5, op), hashDType(dtype));
    for (let i = 0; i < src.length; i++) h = mix(h, src[i].id);
    h = mix(h, hashArg(arg));
    const b = ucache.get(h);
    if (b !== undefined) {
      if (!Array.isArray(b)) {
        const u = b.deref();
        if (
          u !== undefined && u.op === op && u.dtype === dtype && sameSrc(u.src, src) &&
          argEqual(u.arg, arg)
        ) return u;
      } else {
        for (const r of b) {
          const u = r.deref();
          if (
            u !== undefined && u.op === op && u.dtype === dtype && sameSrc(u.src, src) &&
            argEqual(u.arg, arg)
          ) return u;
        }
      }
    }
    verifyUOp(op, dtype, src, arg);
    const u = new UOp(op, dtype, Object.freeze(src.slice()), arg);
    const ref = new WeakRef(u);
    if (b === undefined) ucache.set(h, ref);
    else if (Array.isArray(b)) b.push(ref);
    else ucache.set(h, [b, ref]);
    liveEntries++;
    ufinal.register(u, h);
    return u;
  }

  replace(p: { op?: Ops; dtype?: DType; src?: readonly UOp[]; arg?: unknown }): UOp {
    const op = p.op ?? this.op, dtype = p.dtype ?? this.dtype, src = p.src ?? this.src;
    const arg = "arg" in p ? p.arg : this.arg;
    if (op === this.op && dtype === this.dtype && arg === this.arg && sameSrc(src, this.src)) {
      return this;
    }
    return UOp.make(op, dtype, src, arg);
  }

  // ---- constructors ----
  static const(dtype: DType, value: ConstValue): UOp {
    if (typeof value === "boolean" || dtype !== dtypes.bool) {
      value = castValue(value, dtype.scalar());
    }
    if (dtype === dtypes.bool) value = !!value;
    return UOp.make(Ops.CONST, dtype, [], value);
  }
  /** an integer variable of kernels and index expressions, bounded to [min, max] */
  static variable(name: string, min: number, max: number, dtype: DType = dtypes.int32): UOp {
    if (!Number.isInteger(min) || !Number.isInteger(max)) {
      throw new Error(`Variable '${name}': bounds must be integers, got [${min}, ${max}]`);
    }
    if (min > max) throw new Error(`Variable '${name}': min ${min} is greater than max ${max}`);
    return UOp.make(Ops.DEFINE_VAR, dtype, [], [name, min, max]);
  }
  static range(end: number | UOp, axisId: number, axisType: AxisType = AxisType.LOOP): UOp {
    const e = typeof end === "number" ? UOp.const(dtypes.int32, end) : end;
    return UOp.make(Ops.RANGE, dtypes.int32, [e], [axisId, axisType]);
  }
  static sink(...srcs: UOp[]): UOp {
    return UOp.make(Ops.SINK, dtypes.void, srcs);
  }

  /** a constant of this UOp's dtype */
  constLike(v: ConstValue): UOp {
    return UOp.const(this.dtype, v);
  }
  private toUOp(v: UOp | ConstValue): UOp {
    return v instanceof UOp ? v : this.constLike(v);
  }

  // ---- arithmetic (kernel semantics: idiv truncates, mod takes the dividend's sign) ----
  alu(op: Ops, ...srcs: (UOp | ConstValue)[]): UOp {
    const s = [this, ...srcs.map((x) => this.toUOp(x))];
    return UOp.make(
      op,
      GroupOp.Comparison.has(op) ? dtypes.bool.vec(this.dtype.count) : this.dtype,
      s,
    );
  }
  add(x: UOp | ConstValue): UOp {
    return this.alu(Ops.ADD, x);
  }
  sub(x: UOp | ConstValue): UOp {
    return this.alu(Ops.SUB, x);
  }
  mul(x: UOp | ConstValue): UOp {
    return this.alu(Ops.MUL, x);
  }
  idiv(x: UOp | ConstValue): UOp {
    return this.alu(Ops.IDIV, x);
  }
  mod(x: UOp | ConstValue): UOp {
    return this.alu(Ops.MOD, x);
  }
  fdiv(x: UOp | ConstValue): UOp {
    return this.alu(Ops.FDIV, x);
  }
  neg(): UOp {
    return this.alu(Ops.NEG);
  }
  maximum(x: UOp | ConstValue): UOp {
    return this.alu(Ops.MAX, x);
  }
  minimum(x: UOp | ConstValue): UOp {
    return this.neg().maximum(this.toUOp(x).neg()).neg();
  }
  lt(x: UOp | ConstValue): UOp {
    return this.alu(Ops.CMPLT, x);
  }
  /** x <= y, as !(y < x) */
  le(x: UOp | ConstValue): UOp {
    return this.toUOp(x).lt(this).logicalNot();
  }
  gt(x: UOp | ConstValue): UOp {
    return this.toUOp(x).lt(this);
  }
  ge(x: UOp | ConstValue): UOp {
    return this.lt(x).logicalNot();
  }
  eq(x: UOp | ConstValue): UOp {
    return this.alu(Ops.CMPEQ, x);
  }
  ne(x: UOp | ConstValue): UOp {
    return this.alu(Ops.CMPNE, x);
  }
  and(x: UOp | ConstValue): UOp {
    return this.alu(Ops.AND, x);
  }
  or(x: UOp | ConstValue): UOp {
    return this.alu(Ops.OR, x);
  }
  xor(x: UOp | ConstValue): UOp {
    return this.alu(Ops.XOR, x);
  }
  logicalNot(): UOp {
    return this.alu(Ops.CMPNE, true);
  }
  shl(x: UOp | ConstValue): UOp {
    return this.alu(Ops.SHL, x);
  }
  shr(x: UOp | ConstValue): UOp {
    return this.alu(Ops.SHR, x);
  }
  /** this ? a : b (this must be bool) */
  where(a: UOp | ConstValue, b: UOp | ConstValue): UOp {
    const ua = a instanceof UOp ? a : b instanceof UOp ? b.constLike(a) : null;
    if (!ua) throw new Error("UOp.where: at least one branch must be a UOp (to give the dtype)");
    const ub = b instanceof UOp ? b : ua.constLike(b);
    return UOp.make(Ops.WHERE, ua.dtype, [this, ua, ub]);
  }
  cast(dtype: DType): UOp {
    return this.dtype === dtype ? this : UOp.make(Ops.CAST, dtype, [this]);
  }
  bitcast(dtype: DType): UOp {
    return UOp.make(Ops.BITCAST, dtype, [this]);
  }

  // ---- graph helpers ----
  /** every node reachable from this one, sources before users; cached */
  toposort(): UOp[] {
    if (this._topo) return this._topo;
    const out: UOp[] = [];
    const seen = new Set<UOp>();
    const stack: [UOp, boolean][] = [[this, false]];
    while (stack.length) {
      const [u, done] = stack.pop()!;
      if (done) {
        out.push(u);
        continue;
      }
      if (seen.has(u)) continue;
      seen.add(u);
      stack.push([u, true]);
      for (let i = u.src.length - 1; i >= 0; i--) {
        if (!seen.has(u.src[i])) stack.push([u.src[i], false]);
      }
    }
    this._topo = out;
    return out;
  }

  /** this graph with each key of `map` replaced by its value */
  substitute(map: Map<UOp, UOp>): UOp {
    const done = new Map(map);
    for (const u of this.toposort()) {
      if (done.has(u)) continue;
      let changed = false;
      const src = u.src.map((s) => {
        const r = done.get(s)!;
        if (r !== s) changed = true;
        return r;
      });
      done.set(u, changed ? u.replace({ src }) : u);
    }
    return done.get(this)!;
  }

  /** the simplified form of this expression (the symbolic rules of src/uop/symbolic.ts) */
  simplify(): UOp {
    if (!simplifier) {
      throw new Error("UOp.simplify: import src/uop/symbolic.ts (mod.ts does) first");
    }
    return simplifier(this);
  }

  // ---- bounds ----
  get vmin(): number {
    return this.bounds[0];
  }
  get vmax(): number {
    return this.bounds[1];
  }
  /** [vmin, vmax] under interval arithmetic; floats are unbounded */
  get bounds(): Bounds {
    if (this._bounds === undefined) {
      if (this.src.every((x) => x._bounds !== undefined)) this._bounds = computeBounds(this);
      else {for (const u of uncached(this, (x) => x._bounds !== undefined)) {
          u._bounds = computeBounds(u);
        }}
    }
    return this._bounds!;
  }

  // ---- tensor-graph shapes ----
  /** the shape of a tensor-graph node; null for kernel-level nodes */
  get shape(): readonly number[] | null {
    if (this._shape === undefined) {
      if (this.src.every((x) => x._shape !== undefined)) this._shape = computeShape(this);
      else {for (const u of uncached(this, (x) => x._shape !== undefined)) {
          u._shape = computeShape(u);
        }}
    }
    return this._shape!;
  }

  /** a readable expression: `((x*4)+3)` */
  render(): string {
    return renderExpr(this);
  }
  toString(): string {
    return printGraph(this);
  }
}

/**
 * The nodes below `root` (root last) whose cached property is missing, sources first: computing a
 * property walks only the new part of the graph, without recursion and without keeping a list.
 */
function uncached(root: UOp, done: (u: UOp) => boolean): UOp[] {
  const out: UOp[] = [];
  const seen = new Set<UOp>();
  const stack: [UOp, boolean][] = [[root, false]];
  while (stack.length) {
    const [u, ready] = stack.pop()!;
    if (ready) {
      out.push(u);
      continue;
    }
    if (seen.has(u) || done(u)) continue;
    seen.add(u);
    stack.push([u, true]);
    for (const x of u.src) if (!seen.has(x) && !done(x)) stack.push([x, false]);
  }
  return out;
}

function sameSrc(a: readonly UOp[], b: readonly UOp[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

let simplifier: ((u: UOp) => UOp) | null = null;
/** @internal symbolic.ts registers the simplifier so ops.ts need not import it */
export function registerSimplifier(f: (u: UOp) => UOp): void {
  simplifier = f;
}

/** an int32 variable for symbolic index expressions (API: `Variable(name, min, max)`) */
export function Variable(name: string, min: number, max: number): UOp {
  return UOp.variable(name, min, max);
}

/**
 * AMD matrix instructions a WMMA may stand for (src/opt/tc_amd.ts), by the kind its arg
 * [m, n, k, kind] names: a and b elements per lane, c elements per lane, lanes (the wave)
 */
export const AMD_MMA = {
  /** RDNA3 (gfx11) v_wmma_f32_16x16x16_{f16,bf16}, wave32 */
  wmma_gfx11: { a: 16, b: 16, c: 8, lanes: 32 },
  /** CDNA (gfx908/gfx90a/gfx94x) v_mfma_f32_16x16x16{f16,bf16_1k}, wave64 */
  mfma_gfx9: { a: 4, b: 4, c: 4, lanes: 64 },
} as const;
export type AmdMmaKind = keyof typeof AMD_MMA;

/** the AMD instruction a WMMA's arg names, or null (a CUDA mma.sync WMMA) */
export function amdMma(arg: unknown): AmdMmaKind | null {
  const k = Array.isArray(arg) ? arg[3] : undefined;
  return typeof k === "string" && Object.hasOwn(AMD_MMA, k) ? k as AmdMmaKind : null;
}

// ---- construction checks: a malformed UOp throws where it is made ----

const arity = (op: Ops): number =>
  GroupOp.Unary.has(op) ? 1 : GroupOp.Binary.has(op) ? 2 : GroupOp.Ternary.has(op) ? 3 : -1;

function verifyUOp(op: Ops, dtype: DType, src: readonly UOp[], arg: unknown): void {
  const bad = (why: string): never => {
    throw new Error(
      `invalid UOp ${opName(op)}(${
        src.map((s) => `${opName(s.op)}:${s.dtype.name}`).join(", ")
      }) -> ${dtype.name}: ${why}`,
    );
  };
  const n = arity(op);
  if (n !== -1 && src.length !== n) bad(`takes ${n} sources, got ${src.length}`);
  if (op === Ops.CONST) {
    if (src.length) bad("CONST has no sources");
    if (typeof arg !== "number" && typeof arg !== "boolean") {
      bad(`CONST value must be a number or boolean, got ${typeof arg}`);
    }
    return;
  }
  if (GroupOp.Comparison.has(op)) {
    if (dtype.scalar() !== dtypes.bool) bad("comparisons produce bool");
    if (src[0].dtype !== src[1].dtype) bad("both sides of a comparison need the same dtype");
  } else if (op === Ops.WHERE) {
    if (src[0].dtype.scalar() !== dtypes.bool) bad("the condition of WHERE must be bool");
    if (src[1].dtype !== src[2].dtype || dtype !== src[1].dtype) {
      bad("WHERE branches and result need one dtype");
    }
  } else if (op === Ops.SHL || op === Ops.SHR) {
    if (!dtype.isInt || src[0].dtype !== dtype) {
      bad("shifts need an integer value of the result dtype");
    }
  } else if (GroupOp.Binary.has(op) || op === Ops.MULACC) {
    for (const s of src) if (s.dtype !== dtype) bad("every source must have the result's dtype");
    if ((op === Ops.IDIV || op === Ops.MOD) && !dtype.isInt) {
      bad("IDIV and MOD are integer ops (use FDIV for floats)");
    }
    if ((op === Ops.XOR || op === Ops.OR || op === Ops.AND) && dtype.isFloat) {
      bad("bitwise ops need int or bool");
    }
  } else if (GroupOp.Unary.has(op)) {
    if (src[0].dtype !== dtype) bad("the source must have the result's dtype");
    if (op !== Ops.NEG && op !== Ops.TRUNC && !dtype.isFloat) {
      bad(`${opName(op)} needs a float dtype`);
    }
  } else if (op === Ops.BITCAST) {
    if (src[0].dtype.itemsize !== dtype.itemsize && src[0].shape === null) {
      bad("BITCAST in a kernel needs equal item sizes");
    }
  } else if (op === Ops.WMMA && amdMma(arg)) {
    // src/opt/tc_amd.ts: an AMD matrix instruction's a and b elements per lane, then the element
    // read; arg [m, n, k, kind] names the instruction (AMD_MMA)
    const { a, b } = AMD_MMA[amdMma(arg)!];
    if (src.length !== a + b + 1 && src.length !== a + b + 2) {
      bad(
        `WMMA ${amdMma(arg)} takes ${a} a values, ${b} b values, an element index and ` +
          "optionally an accumulator",
      );
    }
    const d = src[0].dtype;
    if (
      (d !== dtypes.float16 && d !== dtypes.bfloat16) ||
      src.slice(0, a + b).some((s) => s.dtype !== d)
    ) {
      bad("WMMA's a and b values are all float16 or all bfloat16");
    }
    if (dtype !== dtypes.float32 || src[a + b].dtype !== dtypes.int32) {
      bad("WMMA is a float32 element chosen by an int32 index");
    }
    if (src[a + b + 1] && src[a + b + 1].dtype !== dtypes.float32) {
      bad("WMMA's accumulator is float32");
    }
  } else if (op === Ops.WMMA) {
    // src/opt/tc.ts: 8 a and 4 b elements of one 16-bit float dtype, then the element read;
    // after reduce lowering, the accumulator element the product adds to (src/codegen/lower.ts)
    if (src.length !== 13 && src.length !== 14) {
      bad("WMMA takes 8 a values, 4 b values, an element index and optionally an accumulator");
    }
    const d = src[0].dtype;
    if (
      (d !== dtypes.float16 && d !== dtypes.bfloat16) || src.slice(0, 12).some((s) => s.dtype !== d)
    ) {
      bad("WMMA's a and b values are all float16 or all bfloat16");
    }
    if (dtype !== dtypes.float32 || src[12].dtype !== dtypes.int32) {
      bad("WMMA is a float32 element chosen by an int32 index");
    }
    if (src[13] && src[13].dtype !== dtypes.float32) bad("WMMA's accumulator is float32");
  }
}

export const prod = (xs: readonly number[]): number => {
  let p = 1;
  for (const x of xs) p *= x;
  return p;
};

// ---- printing ----

const infix: Partial<Record<Ops, string>> = {
  [Ops.ADD]: "+",
  [Ops.SUB]: "-",
  [Ops.MUL]: "*",
  [Ops.IDIV]: "//",
  [Ops.FDIV]: "/",
  [Ops.MOD]: "%",
  [Ops.CMPLT]: "<",
  [Ops.CMPNE]: "!=",
  [Ops.CMPEQ]: "==",
  [Ops.AND]: "&",
  [Ops.OR]: "|",
  [Ops.XOR]: "^",
  [Ops.SHL]: "<<",
  [Ops.SHR]: ">>",
};

function renderExpr(u: UOp): string {
  const memo = new Map<UOp, string>();
  for (const x of u.toposort()) {
    const s = x.src.map((y) => memo.get(y)!);
    let r: string;
    if (x.op === Ops.CONST) {
      r = typeof x.arg === "boolean" ? (x.arg ? "True" : "False") : String(x.arg);
    } else if (x.op === Ops.DEFINE_VAR) r = (x.arg as [string])[0];
    else if (x.op === Ops.RANGE) r = `r${(x.arg as [number])[0]}`;
    else if (x.op === Ops.SPECIAL) r = String(x.arg);
    else if (infix[x.op]) r = `(${s[0]}${infix[x.op]}${s[1]})`;
    else if (x.op === Ops.NEG) r = `(-${s[0]})`;
    else if (x.op === Ops.MAX) r = `max(${s[0]}, ${s[1]})`;
    else if (x.op === Ops.WHERE) r = `(${s[1]} if ${s[0]} else ${s[2]})`;
    else if (x.op === Ops.CAST) r = `${x.dtype.name}(${s[0]})`;
    else r = `${opName(x.op).toLowerCase()}(${s.join(", ")})`;
    memo.set(x, r);
  }
  return memo.get(u)!;
}

/** one line per node, sources first, shared nodes printed once */
function printGraph(root: UOp): string {
  const topo = root.toposort();
  const num = new Map(topo.map((u, i) => [u, i]));
  return topo.map((u) => {
    const arg = u.arg === undefined ? "" : ` ${argKey(u.arg)}`;
    return `%${num.get(u)} = ${opName(u.op)}:${u.dtype.name}(${
      u.src.map((s) => `%${num.get(s)}`).join(", ")
    })${arg}`;
  }).join("\n");
}
