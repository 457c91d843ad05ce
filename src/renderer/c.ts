// The C-style renderer: one walk over the linear program, with per-language tables and hooks
// (type names, op formatters, loads/stores, loops, the kernel signature). C for the CPU uses it
// as is (cpu.ts adds the prelude); CUDA/HIP/JS override the hooks they differ in.
import {
  axisLetter,
  type AxisType,
  type ConstValue,
  GroupOp,
  opName,
  Ops,
  type UOp,
} from "../uop/ops.ts";
import { type DType, dtypes } from "../dtype.ts";
import type { LinearProgram } from "../codegen/linearize.ts";
import type { ProgramBuf } from "../codegen/program.ts";

/** the state of one rendering walk: who uses each node, the names given, the emitted lines */
export class RenderWalk {
  readonly users = new Map<UOp, UOp[]>();
  readonly r = new Map<UOp, string>();
  readonly body: string[] = [];
  depth = 1;
  private readonly counts: Record<string, number> = {};
  constructor(
    uops: readonly UOp[],
    private readonly block: ReadonlyMap<UOp, UOp | null>,
    private readonly declare: (d: DType, name: string, e: string) => string,
  ) {
    for (const u of uops) {
      for (const s of u.src) {
        if (!this.users.has(s)) this.users.set(s, []);
        this.users.get(s)!.push(u);
      }
    }
  }
  fresh = (p: string): string => `${p}${this.counts[p] = (this.counts[p] ?? -1) + 1}`;
  line = (s: string): void => void this.body.push("  ".repeat(this.depth) + s);
  /** the loops each use of `u` sits in; an INDEX is rendered into its loads and stores, so look through it */
  private useBlocks(u: UOp): (UOp | null | undefined)[] {
    return (this.users.get(u) ?? []).flatMap((x) =>
      x.op === Ops.INDEX
        ? (this.users.get(x) ?? []).map((y) => this.block.get(y))
        : [this.block.get(x)]
    );
  }
  /** inline a single-use expression in its own loop, else bind it to a fresh name */
  expr = (u: UOp, e: string, prefix: string): void => {
    const us = this.users.get(u) ?? [];
    if (us.length === 1 && this.useBlocks(u).every((b) => b === this.block.get(u))) {
      this.r.set(u, e);
    } else {
      const n = this.fresh(prefix);
      this.line(this.declare(u.dtype, n, e));
      this.r.set(u, n);
    }
  };
}

export interface RenderInput {
  name: string;
  lin: LinearProgram;
  bufs: readonly ProgramBuf[];
  /** DEFINE_VARs, sorted by name */
  vars: readonly UOp[];
}

type OpFmt = (s: string[], d: DType) => string;

/** a C identifier made from a user's variable name */
export const identifier = (n: string): string => {
  const s = n.replace(/[^A-Za-z0-9_]/g, "_");
  return /^[0-9]/.test(s) ? `v_${s}` : s;
};

/** an interval that spans the whole dtype means interval arithmetic saw a possible wrap */
export const mayWrap = (u: UOp): boolean => u.vmin === u.dtype.min && u.vmax === u.dtype.max;

/** the shortest decimal that reads back as float32 `v` (v is float32-exact) */
export function floatLiteral(v: number): string {
  for (let p = 1; p <= 9; p++) {
    const s = v.toPrecision(p);
    if (Math.fround(Number(s)) === v) return cleanNum(String(Number(s)));
  }
  return cleanNum(String(v));
}
const cleanNum = (s: string): string => (/[.e]/.test(s) ? s : `${s}.0`);

/** `!x` for x != true and `a-k` for a + -k (ints that cannot wrap): easier to read */
export function prettyAlu(u: UOp, s: string[]): string | null {
  const b = u.src[1];
  if (u.op === Ops.CMPNE && b?.op === Ops.CONST && b.arg === true) return `(!${s[0]})`;
  if (
    u.op === Ops.ADD && b?.op === Ops.CONST && u.dtype.isInt && (b.arg as number) < 0 &&
    !mayWrap(u) && u.dtype.itemsize === 4
  ) return `(${s[0]}-${-(b.arg as number)})`;
  return null;
}

/** shared arrays of 16-bit floats hold the 16-bit storage form; loads and stores convert */
export const sharedStored = (d: DType): boolean => d === dtypes.float16 || d === dtypes.bfloat16;

export class CStyleRenderer {
  readonly lang: "c" | "js" = "c";
  /** storage types by dtype name */
  typeNames: Record<string, string> = {
    bool: "_Bool",
    int8: "signed char",
    uint8: "unsigned char",
    int16: "short",
    uint16: "unsigned short",
    int32: "int",
    uint32: "unsigned int",
    int64: "long long",
    uint64: "unsigned long long",
    float16: "half",
    bfloat16: "unsigned short",
    float32: "float",
    float64: "double",
  };
  /** math functions by op, for float (f32 and the 16-bit floats) and double */
  mathFns: Partial<Record<Ops, [string, string]>> = {
    [Ops.EXP2]: ["__builtin_exp2f", "__builtin_exp2"],
    [Ops.LOG2]: ["__builtin_log2f", "__builtin_log2"],
    [Ops.SIN]: ["__builtin_sinf", "__builtin_sin"],
    [Ops.SQRT]: ["__builtin_sqrtf", "__builtin_sqrt"],
    [Ops.TRUNC]: ["__builtin_truncf", "__builtin_trunc"],
    [Ops.POW]: ["__builtin_powf", "__builtin_pow"],
  };
  codeForOp: Partial<Record<Ops, OpFmt>> = {
    [Ops.ADD]: ([a, b]) => `(${a}+${b})`,
    [Ops.SUB]: ([a, b]) => `(${a}-${b})`,
    [Ops.MUL]: ([a, b]) => `(${a}*${b})`,
    [Ops.FDIV]: ([a, b]) => `(${a}/${b})`,
    [Ops.IDIV]: ([a, b]) => `(${a}/${b})`,
    [Ops.MOD]: ([a, b]) => `(${a}%${b})`,
    [Ops.CMPLT]: ([a, b]) => `(${a}<${b})`,
    [Ops.CMPNE]: ([a, b]) => `(${a}!=${b})`,
    [Ops.CMPEQ]: ([a, b]) => `(${a}==${b})`,
    [Ops.XOR]: ([a, b]) => `(${a}^${b})`,
    [Ops.OR]: ([a, b]) => `(${a}|${b})`,
    [Ops.AND]: ([a, b]) => `(${a}&${b})`,
    [Ops.SHL]: ([a, b]) => `(${a}<<${b})`,
    [Ops.SHR]: ([a, b]) => `(${a}>>${b})`,
    [Ops.NEG]: ([a]) => `(-${a})`,
    [Ops.RECIPROCAL]: ([a], d) => `(${d === dtypes.float64 ? "1.0" : "1.0f"}/${a})`,
    [Ops.WHERE]: ([c, a, b]) => `(${c}?${a}:${b})`,
    [Ops.MULACC]: ([a, b, c]) => `((${a}*${b})+${c})`,
  };

  /** helper definitions this kernel needs, by name */
  protected helpers = new Map<string, string>();
  protected used = new Set<DType>();

  // ---- types and values ----
  storageType(d: DType): string {
    const t = this.typeNames[d.name];
    if (!t) throw new Error(`${this.constructor.name}: no type for dtype ${d.name}`);
    return t;
  }
  /** the type a value lives in between loads and stores (16-bit floats compute in float) */
  valueType(d: DType): string {
    return d === dtypes.float16 || d === dtypes.bfloat16 ? "float" : this.storageType(d);
  }
  constant(v: ConstValue, d: DType): string {
    if (d === dtypes.bool) return v ? "1" : "0";
    const x = Number(v);
    if (d.isFloat) {
      const dbl = d === dtypes.float64, f = dbl ? "" : "f";
      if (Number.isNaN(x)) return `__builtin_nan${f}("")`;
      if (x === Infinity) return `__builtin_inf${f}()`;
      if (x === -Infinity) return `(-__builtin_inf${f}())`;
      const s = dbl ? cleanNum(String(x)) : floatLiteral(x) + "f";
      return x < 0 || Object.is(x, -0) ? `(${Object.is(x, -0) ? "-" : ""}${s})` : s;
    }
    const suffix = { uint32: "u", int64: "ll", uint64: "ull" }[d.name as string] ?? "";
    if (x === d.min && d.isInt && !d.isUnsigned && d.itemsize >= 4) {
      return `(${x + 1}${suffix}-1${suffix})`;
    }
    return x < 0 ? `(${x}${suffix})` : `${x}${suffix}`;
  }
  /** a result of dtype d, computed in a wider type, brought back into d */
  wrap(d: DType, e: string): string {
    if (d === dtypes.float16) return `((float)(half)${e})`;
    if (d === dtypes.bfloat16) return `${this.bf16Helpers()}(${e})`;
    return e;
  }
  loadValue(d: DType, access: string): string {
    if (d === dtypes.float16) return `((float)${access})`;
    if (d === dtypes.bfloat16) return (this.bf16Helpers(), `tg_bf16_load(${access})`);
    return access;
  }
  storeValue(d: DType, v: string): string {
    if (d === dtypes.float16) return `((half)${v})`;
    if (d === dtypes.bfloat16) return (this.bf16Helpers(), `tg_bf16_bits(${v})`);
    return v;
  }
  /** registers the bfloat16 helpers; returns the rounding helper's name */
  protected bf16Helpers(): string {
    this.helpers.set(
      "tg_bf16",
      [
        "static inline float tg_bf16_load(unsigned short b) { unsigned int u = (unsigned int)b << 16; float f; __builtin_memcpy(&f, &u, 4); return f; }",
        "static inline unsigned short tg_bf16_bits(float f) { unsigned int u; __builtin_memcpy(&u, &f, 4); if (f != f) return (unsigned short)((u >> 16) | 0x40u); return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16); }",
        "static inline float tg_bf16_round(float f) { return tg_bf16_load(tg_bf16_bits(f)); }",
      ].join("\n"),
    );
    return "tg_bf16_round";
  }

  // ---- ops ----
  alu(u: UOp, s: string[]): string {
    const d = u.dtype, op = u.op, sd = u.src[0].dtype;
    const pretty = prettyAlu(u, s);
    if (pretty) return pretty;
    if (d === dtypes.bool && (op === Ops.ADD || op === Ops.MAX)) return `(${s[0]}|${s[1]})`;
    if (d === dtypes.bool && op === Ops.MUL) return `(${s[0]}&${s[1]})`;
    if (op === Ops.MAX) return `${this.maxHelper(d)}(${s[0]}, ${s[1]})`;
    if ((op === Ops.IDIV || op === Ops.MOD) && this.divNeedsGuard(u)) {
      return this.wrapInt(u, `${this.divHelper(op, d)}(${s[0]}, ${s[1]})`);
    }
    const fn = this.mathFns[op];
    if (fn && d.isFloat) {
      return this.wrap(d, `${fn[d === dtypes.float64 ? 1 : 0]}(${s.join(", ")})`);
    }
    if (op === Ops.TRUNC) return s[0];
    const fmt = this.codeForOp[op];
    if (!fmt) throw new Error(`${this.constructor.name}: cannot render ${opName(op)} on ${d.name}`);
    if (
      d.isInt && !d.isUnsigned && d.itemsize >= 4 && mayWrap(u) &&
      (op === Ops.ADD || op === Ops.SUB || op === Ops.MUL || op === Ops.NEG || op === Ops.SHL)
    ) {
      // signed overflow is undefined in C: wrap through the unsigned type
      const ut = `unsigned ${this.storageType(d).replace("signed ", "")}`;
      return `((${this.storageType(d)})${fmt(s.map((x) => `(${ut})${x}`), d)})`;
    }
    if (GroupOp.Comparison.has(op) || op === Ops.WHERE || sd === dtypes.bool) return fmt(s, d);
    if (op === Ops.NEG && d.isFloat) return fmt(s, d);
    return d.isFloat ? this.wrap(d, fmt(s, d)) : this.wrapInt(u, fmt(s, d));
  }
  /** integers narrower than int compute in int (C promotion): cut the result back */
  wrapInt(u: UOp, e: string): string {
    if (!u.dtype.isInt || u.dtype.itemsize >= 4 || !mayWrap(u)) return e;
    return `((${this.storageType(u.dtype)})${e})`;
  }
  /** x/0 and INT_MIN/-1 trap on x86: give 0 and the wrapped quotient, as JS does */
  divNeedsGuard(u: UOp): boolean {
    const [lo, hi] = u.src[1].bounds;
    return (lo <= 0 && hi >= 0) || (!u.dtype.isUnsigned && lo <= -1 && hi >= -1);
  }
  divHelper(op: Ops, d: DType): string {
    const t = this.valueType(d), div = op === Ops.IDIV;
    const name = `tg_${div ? "idiv" : "mod"}_${d.name}`;
    const wide = d.itemsize < 4 ? "int" : t; // narrow ints are promoted, so no -1 trap there
    const ut = wide.startsWith("unsigned") ? wide : `unsigned ${wide}`;
    const neg = d.isUnsigned
      ? ""
      : ` if (b == -1) return ${div ? `(${wide})(0u - (${ut})a)` : "0"};`;
    this.helpers.set(
      name,
      `static inline ${wide} ${name}(${wide} a, ${wide} b) { if (b == 0) return 0;${neg} return a ${
        div ? "/" : "%"
      } b; }`,
    );
    return name;
  }
  maxHelper(d: DType): string {
    const t = this.valueType(d), name = `tg_max_${t.replace(/ /g, "_")}`;
    const nan = d.isFloat ? "a != a || " : ""; // NaN wins, as Math.max
    this.helpers.set(
      name,
      `static inline ${t} ${name}(${t} a, ${t} b) { return (${nan}a > b) ? a : b; }`,
    );
    return name;
  }
  cast(u: UOp, x: string): string {
    const d = u.dtype;
    if ((d === dtypes.float16 || d === dtypes.bfloat16) && u.src[0].dtype === dtypes.float64) {
      // double -> float -> 16 bits rounds twice; rounding to odd first makes the second exact
      this.helpers.set(
        "tg_d2f_odd",
        "static inline float tg_d2f_odd(double d) { float f = (float)d; if ((double)f != d && d == d) { unsigned int u; __builtin_memcpy(&u, &f, 4); if (__builtin_fabs((double)f) > __builtin_fabs(d)) u -= 1; u |= 1u; __builtin_memcpy(&f, &u, 4); } return f; }",
      );
      x = `tg_d2f_odd(${x})`;
    }
    if (d === dtypes.float16) return `((float)(half)(${x}))`;
    if (d === dtypes.bfloat16) return `${this.bf16Helpers()}((float)(${x}))`;
    return `((${this.valueType(d)})(${x}))`;
  }
  bitcast(u: UOp, x: string): string {
    const from = u.src[0].dtype, to = u.dtype;
    if (from.itemsize !== to.itemsize) {
      throw new Error(`BITCAST ${from.name} -> ${to.name}: item sizes differ`);
    }
    const name = `tg_bitcast_${from.name}_${to.name}`;
    this.helpers.set(
      name,
      `static inline ${this.valueType(to)} ${name}(${this.valueType(from)} x) { ${
        this.storageType(from)
      } s = ${this.storeValue(from, "x")}; ${
        this.storageType(to)
      } d; __builtin_memcpy(&d, &s, sizeof(d)); return ${this.loadValue(to, "d")}; }`,
    );
    return `${name}(${x})`;
  }

  /**
   * a load the renderer reads as part of a wider one (its value's name, after lines loading the
   * wide word where this is the first of its loads), or undefined for a plain load
   */
  wideLoad(_u: UOp, _access: string, _w: RenderWalk): string | undefined {
    return undefined;
  }

  /** an element of a tensor-core product (src/opt/tc.ts): its name, after lines computing it */
  wmma(_u: UOp, _s: string[], _w: RenderWalk): string {
    throw new Error(`${this.constructor.name}: tensor cores (WMMA) render only for CUDA and HIP`);
  }

  // ---- statements ----
  declare(d: DType, name: string, expr: string, _mutable: boolean): string {
    return `${this.valueType(d)} ${name} = ${expr};`;
  }
  /** `interleave`: a short innermost loop of long dependency chains (see chainLoops) */
  loop(name: string, end: string, _parallel: boolean, _interleave = false): string[] {
    return [`for (int ${name} = 0; ${name} < ${end}; ${name}++) {`];
  }
  /** the loops to render with `interleave` set (none here) */
  interleaved(_uops: readonly UOp[]): ReadonlySet<UOp> {
    return NONE;
  }
  /** the declaration of a workgroup's shared array (on a CPU: an array of the kernel run) */
  sharedArray(d: DType, name: string, size: number): string {
    return `${this.sharedType(d)} ${name}[${size}];`;
  }
  /**
   * the element type of a shared array: 16-bit floats keep their 16-bit storage form (half the
   * memory, and copies of global data need no conversion), other types their value type
   */
  sharedType(d: DType): string {
    return sharedStored(d) ? this.storageType(d) : this.valueType(d);
  }
  /**
   * a store the renderer writes as part of a wider one (true: handled, its lines emitted where
   * this is the first of its stores), or false for a plain store
   */
  wideStore(_u: UOp, _access: string, _w: RenderWalk): boolean {
    return false;
  }
  /**
   * every thread of the workgroup waits here (a CPU runs the workgroup's threads in order); a
   * number arg: after its async copies but that many landed (ops.ts STORE_ASYNC)
   */
  barrier(_u: UOp): string | null {
    return null;
  }
  bufParam(b: ProgramBuf): string {
    return `${b.mutable ? "" : "const "}${this.storageType(b.dtype)}* restrict data${b.slot}`;
  }
  varParam(v: UOp): string {
    return `const ${this.valueType(v.dtype)} ${identifier((v.arg as [string])[0])}`;
  }
  prelude(): string[] {
    return [];
  }
  kernel(name: string, params: string[], body: string[]): string {
    return [
      ...this.prelude(),
      ...this.helpers.values(),
      `void ${name}(${params.join(", ")}) {`,
      ...body,
      "}",
    ]
      .join("\n") + "\n";
  }

  // ---- the walk ----
  render(inp: RenderInput): string {
    this.helpers = new Map();
    this.used = new Set(inp.bufs.map((b) => b.dtype));
    const { uops, block } = inp.lin;
    const w = new RenderWalk(uops, block, (d, n, e) => this.declare(d, n, e, false));
    const { r, body, fresh, line, expr } = w;
    const declared = new Set<UOp>();
    const names = new Set<string>();
    const chains = this.interleaved(uops);
    for (const u of uops) {
      for (const s of u.src) this.used.add(s.dtype.scalar());
      const s = u.src.map((x) => r.get(x)!);
      switch (u.op) {
        case Ops.DEFINE_GLOBAL:
          r.set(u, `data${(u.arg as [number])[0]}`);
          break;
        case Ops.DEFINE_VAR:
          r.set(u, identifier((u.arg as [string])[0]));
          break;
        case Ops.DEFINE_REG:
          r.set(u, `acc${(u.arg as [number])[0]}`);
          break;
        case Ops.DEFINE_LOCAL: {
          const [id, size] = u.arg as [number, number];
          r.set(u, `smem${id}`);
          line(this.sharedArray(u.dtype, `smem${id}`, size));
          break;
        }
        case Ops.BARRIER: {
          const b = this.barrier(u);
          if (b) line(b);
          break;
        }
        case Ops.CONST:
          r.set(u, this.constant(u.arg as ConstValue, u.dtype));
          break;
        case Ops.RANGE: {
          const [id, t] = u.arg as [number, AxisType];
          let n = `${axisLetter[t]}idx${id}`;
          while (names.has(n)) n += "_";
          names.add(n);
          r.set(u, n);
          for (const l of this.loop(n, s[0], inp.lin.parallel.has(u), chains.has(u))) line(l);
          w.depth++;
          break;
        }
        case Ops.END:
          w.depth--;
          line("}");
          break;
        case Ops.INDEX:
          r.set(u, u.src[0].op === Ops.DEFINE_REG ? s[0] : `${s[0]}[${s[1]}]`);
          break;
        case Ops.LOAD: {
          const idx = u.src[0];
          if (idx.src[0].op === Ops.DEFINE_REG) {
            r.set(u, s[0]);
            break;
          }
          const wide = this.wideLoad(u, s[0], w);
          if (wide !== undefined) {
            r.set(u, wide);
            break;
          }
          // shared memory holds values (16-bit floats: their storage form, as global buffers)
          let e = idx.src[0].op === Ops.DEFINE_LOCAL && !sharedStored(u.dtype)
            ? s[0]
            : this.loadValue(u.dtype, s[0]);
          if (idx.src[2]) {
            e = `(${r.get(idx.src[2])}?${e}:${
              this.constant(u.dtype === dtypes.bool ? false : 0, u.dtype)
            })`;
          }
          const n = fresh("val");
          line(this.declare(u.dtype, n, e, false));
          r.set(u, n);
          break;
        }
        case Ops.STORE: {
          const idx = u.src[0], v = u.src[1];
          if (idx.src[0].op === Ops.DEFINE_REG) {
            const reg = idx.src[0];
            if (declared.has(reg)) line(`${s[0]} = ${s[1]};`);
            else {
              declared.add(reg);
              line(this.declare(v.dtype, s[0], s[1], true));
            }
            break;
          }
          if (this.wideStore(u, s[0], w)) break;
          const st = idx.src[0].op === Ops.DEFINE_LOCAL && !sharedStored(v.dtype)
            ? `${s[0]} = ${s[1]};`
            : `${s[0]} = ${this.storeValue(v.dtype, s[1])};`;
          line(idx.src[2] ? `if (${r.get(idx.src[2])}) ${st}` : st);
          break;
        }
        case Ops.CAST:
          expr(u, u.dtype === u.src[0].dtype ? s[0] : this.cast(u, s[0]), "cast");
          break;
        case Ops.BITCAST:
          expr(u, this.bitcast(u, s[0]), "cast");
          break;
        case Ops.WMMA:
          r.set(u, this.wmma(u, s, w));
          break;
        default:
          if (!GroupOp.ALU.has(u.op)) {
            throw new Error(`${this.constructor.name}: cannot render ${opName(u.op)}`);
          }
          expr(u, this.alu(u, s), "alu");
      }
    }
    const params = [
      ...inp.bufs.map((b) => this.bufParam(b)),
      ...inp.vars.map((v) => this.varParam(v)),
    ];
    return this.kernel(inp.name, params, body);
  }
}

const NONE: ReadonlySet<UOp> = new Set();
