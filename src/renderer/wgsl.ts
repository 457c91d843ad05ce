// WGSL for the WEBGPU device, from the same linear program as C and CUDA. The ALU formatting
// reuses the C-style base; the walk is WGSL's own, because WGSL has no ternary, needs braces on
// every `if`, and has no 8- or 16-bit integers: bool, int8, uint8, int16, uint16 and bfloat16
// live packed in u32 words (loads shift and mask; stores clear and set their bytes with atomics,
// since neighbouring threads write the other bytes of a word). Values compute in bool, i32, u32
// and f32; float16 is stored as `f16` where the adapter has shader-f16. WGSL has no 64-bit
// types, so int64, uint64 and float64 are refused. NaN and Inf are made and tested through their
// bits: WGSL lets implementations assume that floats are finite.
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
import type { ProgramBuf } from "../codegen/program.ts";
import type { GpuLimits } from "../codegen/gpudims.ts";
import {
  CStyleRenderer,
  floatLiteral,
  identifier,
  mayWrap,
  prettyAlu,
  type RenderInput,
  RenderWalk,
} from "./c.ts";

/** WebGPU's guaranteed limits (every adapter has at least these), so kernels run anywhere */
export const WEBGPU_LIMITS: GpuLimits = {
  grid: [65535, 65535, 65535],
  block: [256, 256, 64],
  threads: 256,
  localMax: 256,
};

const AXES = ["x", "y", "z"];
const NO_64 = new Set(["int64", "uint64", "float64"]);
/** dtypes held as bytes or halves of a u32 word */
const packed = (d: DType): boolean => d.itemsize < 4 && d !== dtypes.float16;

const HELPERS = {
  tg_nan: "fn tg_nan() -> f32 { return bitcast<f32>(0x7fc00000u); }",
  tg_inf: "fn tg_inf() -> f32 { return bitcast<f32>(0x7f800000u); }",
  tg_isnan: "fn tg_isnan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }",
  tg_max_f32:
    "fn tg_max_f32(a: f32, b: f32) -> f32 { return select(b, a, (bitcast<u32>(a) & 0x7fffffffu) > 0x7f800000u || a > b); }",
  tg_bf16_bits:
    "fn tg_bf16_bits(f: f32) -> u32 { let u = bitcast<u32>(f); if ((u & 0x7fffffffu) > 0x7f800000u) { return (u >> 16u) | 0x40u; } return (u + 0x7fffu + ((u >> 16u) & 1u)) >> 16u; }",
  tg_bf16_round: "fn tg_bf16_round(f: f32) -> f32 { return bitcast<f32>(tg_bf16_bits(f) << 16u); }",
};

/** the error for a dtype WGSL cannot hold */
export function noWgslType(d: DType, where: string): Error {
  return new Error(
    `WEBGPU: WGSL has no ${d.name} (${where}); WEBGPU runs bool, int8..int32, uint8..uint32, ` +
      `float16 (with shader-f16), bfloat16 and float32: cast to int32/float32, or use another device`,
  );
}

export class WGSLRenderer extends CStyleRenderer {
  private kernelName = "";
  private specials: UOp[] = [];
  /** the module-scope workgroup arrays of the kernel being rendered */
  private shared: string[] = [];
  private f16 = false;

  /** `localSize`: the workgroup size the kernel is dispatched with */
  constructor(readonly localSize: readonly number[] = [1, 1, 1]) {
    super();
    this.typeNames = {
      bool: "bool",
      int8: "i32",
      uint8: "u32",
      int16: "i32",
      uint16: "u32",
      int32: "i32",
      uint32: "u32",
      float16: "f16",
      bfloat16: "f32",
      float32: "f32",
    };
    this.mathFns = {
      [Ops.EXP2]: ["exp2", "exp2"],
      [Ops.LOG2]: ["log2", "log2"],
      [Ops.SIN]: ["sin", "sin"],
      [Ops.SQRT]: ["sqrt", "sqrt"],
      [Ops.TRUNC]: ["trunc", "trunc"],
      [Ops.POW]: ["pow", "pow"],
    };
    this.codeForOp = {
      ...this.codeForOp,
      [Ops.RECIPROCAL]: ([a]) => `(1.0f/${a})`,
      [Ops.WHERE]: ([c, a, b]) => `select(${b}, ${a}, ${c})`,
      [Ops.SHL]: ([a, b]) => `(${a}<<u32(${b}))`,
      [Ops.SHR]: ([a, b]) => `(${a}>>u32(${b}))`,
    };
  }

  private helper(name: keyof typeof HELPERS): string {
    if (name === "tg_bf16_round") this.helpers.set("tg_bf16_bits", HELPERS.tg_bf16_bits);
    this.helpers.set(name, HELPERS[name]);
    return name;
  }

  // ---- types and values ----
  override storageType(d: DType): string {
    if (NO_64.has(d.name)) throw noWgslType(d, `kernel ${this.kernelName}`);
    if (d === dtypes.float16) this.f16 = true;
    return super.storageType(d);
  }
  override valueType(d: DType): string {
    return d === dtypes.float16 ? (this.storageType(d), "f32") : this.storageType(d);
  }
  /** the element type of a buffer binding */
  private bindingType(b: ProgramBuf): string {
    if (!packed(b.dtype)) return this.storageType(b.dtype);
    this.storageType(b.dtype);
    return b.mutable ? "atomic<u32>" : "u32";
  }
  override constant(v: ConstValue, d: DType): string {
    this.storageType(d);
    if (d === dtypes.bool) return v ? "true" : "false";
    const x = Number(v);
    if (d.isFloat) {
      if (Number.isNaN(x)) return `${this.helper("tg_nan")}()`;
      if (x === Infinity) return `${this.helper("tg_inf")}()`;
      if (x === -Infinity) return `(-${this.helper("tg_inf")}())`;
      const s = floatLiteral(Math.fround(x)) + "f";
      return x < 0 || Object.is(x, -0) ? `(${Object.is(x, -0) ? "-" : ""}${s})` : s;
    }
    if (d.isUnsigned) return `${x}u`;
    if (x === -(2 ** 31)) return "(-2147483647i-1i)";
    return x < 0 ? `(${x}i)` : `${x}i`;
  }
  override wrap(d: DType, e: string): string {
    if (d === dtypes.float16) return `f32(f16(${e}))`;
    if (d === dtypes.bfloat16) return `${this.helper("tg_bf16_round")}(${e})`;
    return e;
  }
  /** narrow integers compute in i32/u32: cut the result back to the dtype's bits */
  private narrow(d: DType, e: string): string {
    if (!d.isInt || d.itemsize >= 4) return e;
    const bits = d.itemsize * 8;
    return d.isUnsigned ? `(${e}&${2 ** bits - 1}u)` : `((${e}<<${32 - bits}u)>>${32 - bits}u)`;
  }
  override wrapInt(u: UOp, e: string): string {
    return mayWrap(u) ? this.narrow(u.dtype, e) : e;
  }

  /** the value's bits as a u32 (low bits for narrow dtypes) */
  private toBits(d: DType, x: string): string {
    if (d === dtypes.bool) return `select(0u, 1u, ${x})`;
    if (d === dtypes.bfloat16) return `${this.helper("tg_bf16_bits")}(${x})`;
    if (d.isFloat || d === dtypes.int32) return `bitcast<u32>(${x})`;
    if (d.isUnsigned) return x;
    return `(bitcast<u32>(${x})&${2 ** (d.itemsize * 8) - 1}u)`;
  }
  /** a value of dtype d from its bits (in the low bits of a u32) */
  private fromBits(d: DType, bits: string): string {
    if (d === dtypes.bool) return `(${bits}!=0u)`;
    if (d === dtypes.bfloat16) return `bitcast<f32>(${bits}<<16u)`;
    if (d === dtypes.float32) return `bitcast<f32>(${bits})`;
    if (d.isUnsigned) return bits;
    return this.narrow(d, `bitcast<i32>(${bits})`);
  }

  // ---- ops ----
  override alu(u: UOp, s: string[]): string {
    const d = u.dtype, op = u.op, [a, b] = s, sd = u.src[0].dtype;
    if (sd.isFloat && (op === Ops.CMPNE || op === Ops.CMPEQ)) {
      // x != x is NaN's test, and x == ±inf is isinf's: both through the bits
      const not = op === Ops.CMPNE ? "" : "!";
      if (u.src[0] === u.src[1]) return `(${not}${this.helper("tg_isnan")}(${a}))`;
      const k = [u.src[1], u.src[0]].findIndex((x) =>
        x.op === Ops.CONST && Math.abs(Number(x.arg)) === Infinity
      );
      if (k >= 0) {
        const inf = Number([u.src[1], u.src[0]][k].arg) > 0 ? "0x7f800000u" : "0xff800000u";
        return `(bitcast<u32>(${k === 0 ? a : b})${op === Ops.CMPNE ? "!=" : "=="}${inf})`;
      }
    }
    const pretty = prettyAlu(u, s);
    if (pretty) return pretty;
    if (sd === dtypes.bool) {
      if (op === Ops.ADD || op === Ops.MAX) return `(${a}|${b})`;
      if (op === Ops.MUL) return `(${a}&${b})`;
      if (op === Ops.CMPLT) return `(!${a}&&${b})`;
      if (op === Ops.XOR) return `(${a}!=${b})`;
    }
    if (op === Ops.MAX) {
      return d.isFloat ? `${this.helper("tg_max_f32")}(${a}, ${b})` : `max(${a}, ${b})`;
    }
    if (op === Ops.NEG && d.isUnsigned) return this.wrapInt(u, `(0u-${a})`);
    if ((op === Ops.IDIV && this.divNeedsGuard(u)) || op === Ops.MOD) {
      return this.wrapInt(u, `${this.divHelper(op, d)}(${a}, ${b})`);
    }
    const fn = this.mathFns[op];
    if (fn && d.isFloat) return this.wrap(d, `${fn[0]}(${s.join(", ")})`);
    if (op === Ops.TRUNC) return a;
    const fmt = this.codeForOp[op];
    if (!fmt) throw new Error(`WGSLRenderer: cannot render ${opName(op)} on ${d.name}`);
    // i32 and u32 arithmetic wraps in WGSL: only the narrow ints need cutting back
    if (GroupOp.Comparison.has(op) || op === Ops.WHERE) return fmt(s, d);
    if (op === Ops.NEG && d.isFloat) return fmt(s, d);
    return d.isFloat ? this.wrap(d, fmt(s, d)) : this.wrapInt(u, fmt(s, d));
  }
  /** a division whose divisor may be 0 gives 0 there, as on the other devices */
  override divNeedsGuard(u: UOp): boolean {
    const [lo, hi] = u.src[1].bounds;
    return lo <= 0 && hi >= 0;
  }
  override divHelper(op: Ops, d: DType): string {
    const t = this.valueType(d), div = op === Ops.IDIV;
    const name = `tg_${div ? "idiv" : "mod"}_${t}`;
    // `%` on negative i32 gives wrong answers on llvmpipe (naga 2x): the remainder from `/`
    this.helpers.set(
      name,
      `fn ${name}(a: ${t}, b: ${t}) -> ${t} { if (b == 0${
        t === "u32" ? "u" : "i"
      }) { return b; } return ${div ? "a / b" : "a - b * (a / b)"}; }`,
    );
    return name;
  }
  override cast(u: UOp, x: string): string {
    const d = u.dtype, f = u.src[0].dtype;
    this.storageType(f);
    if (d === dtypes.bool) return f === dtypes.bool ? x : `bool(${x})`;
    if (d.isFloat) {
      const v = f === dtypes.bool ? `select(0.0f, 1.0f, ${x})` : `f32(${x})`;
      return d === dtypes.float32 ? v : this.wrap(d, v);
    }
    if (f === dtypes.bool) {
      return `select(0${d.isUnsigned ? "u" : "i"}, 1${d.isUnsigned ? "u" : "i"}, ${x})`;
    }
    // float -> unsigned goes through i32, so negative values wrap as in C on x86 rather than clamp
    const via = f.isFloat && d.isUnsigned ? `u32(i32(${x}))` : `${this.valueType(d)}(${x})`;
    return d.itemsize < 4 ? this.narrow(d, via) : via;
  }
  override bitcast(u: UOp, x: string): string {
    const from = u.src[0].dtype, to = u.dtype;
    if (from.itemsize !== to.itemsize) {
      throw new Error(`BITCAST ${from.name} -> ${to.name}: item sizes differ`);
    }
    this.storageType(from);
    this.storageType(to);
    if (from === dtypes.float16 || to === dtypes.float16) {
      const bits = from === dtypes.float16
        ? `(pack2x16float(vec2<f32>(${x}, 0.0f))&0xffffu)`
        : this.toBits(from, x);
      return to === dtypes.float16 ? `unpack2x16float(${bits}).x` : this.fromBits(to, bits);
    }
    return this.fromBits(to, this.toBits(from, x));
  }

  // ---- memory ----
  private load(g: ProgramBuf, buf: string, idx: string): string {
    if (!packed(g.dtype)) return this.loadValue(g.dtype, `${buf}[${idx}]`);
    const per = 4 / g.dtype.itemsize, sh = Math.log2(per), w = 8 * g.dtype.itemsize;
    const word = g.mutable ? `atomicLoad(&${buf}[${idx}>>${sh}u])` : `${buf}[${idx}>>${sh}u]`;
    return this.fromBits(g.dtype, `((${word}>>(u32(${idx}&${per - 1}i)*${w}u))&${2 ** w - 1}u)`);
  }
  /** the statements of a store (a packed one in a block of its own) */
  private store(g: ProgramBuf, buf: string, idx: string, v: string): string[] {
    if (!packed(g.dtype)) return [`${buf}[${idx}] = ${this.storeValue(g.dtype, v)};`];
    const per = 4 / g.dtype.itemsize, sh = Math.log2(per), w = 8 * g.dtype.itemsize;
    const mask = `${2 ** w - 1}u`;
    return [
      `let tg_i = ${idx};`,
      `let tg_sh = u32(tg_i&${per - 1}i)*${w}u;`,
      `atomicAnd(&${buf}[tg_i>>${sh}u], ~(${mask}<<tg_sh));`,
      `atomicOr(&${buf}[tg_i>>${sh}u], (${this.toBits(g.dtype, v)}&${mask})<<tg_sh);`,
    ];
  }
  override loadValue(d: DType, access: string): string {
    return d === dtypes.float16 ? `f32(${access})` : access;
  }
  override storeValue(d: DType, v: string): string {
    return d === dtypes.float16 ? `f16(${v})` : v;
  }

  // ---- statements ----
  override declare(d: DType, name: string, expr: string, mutable: boolean): string {
    return mutable ? `var ${name}: ${this.valueType(d)} = ${expr};` : `let ${name} = ${expr};`;
  }
  override loop(name: string, end: string, _parallel: boolean): string[] {
    return [`for (var ${name}: i32 = 0i; ${name} < ${end}; ${name}++) {`];
  }

  // ---- the walk ----
  override render(inp: RenderInput): string {
    this.helpers = new Map();
    this.kernelName = inp.name;
    this.f16 = false;
    this.specials = [];
    this.shared = [];
    const { uops, block } = inp.lin;
    const bufBySlot = new Map(inp.bufs.map((b) => [b.slot, b]));
    const w = new RenderWalk(uops, block, (d, n, e) => this.declare(d, n, e, false));
    const { r, body, fresh, line, expr } = w;
    const declared = new Set<UOp>();
    const names = new Set<string>();
    // a global access: its buffer, and its index bound to a name when used more than once
    const access = (idx: UOp): { g: ProgramBuf; buf: string; i: string } => {
      const slot = (idx.src[0].arg as [number])[0];
      const i = r.get(idx.src[1])!;
      return { g: bufBySlot.get(slot)!, buf: `data${slot}`, i };
    };
    for (const u of uops) {
      const s = u.src.map((x) => r.get(x)!);
      switch (u.op) {
        case Ops.DEFINE_GLOBAL:
          r.set(u, `data${(u.arg as [number])[0]}`);
          break;
        case Ops.DEFINE_VAR:
          r.set(u, `tg_vars.${identifier((u.arg as [string])[0])}`);
          break;
        case Ops.DEFINE_REG:
          r.set(u, `acc${(u.arg as [number])[0]}`);
          break;
        case Ops.DEFINE_LOCAL: {
          // workgroup memory is declared at module scope
          const [id, size] = u.arg as [number, number];
          this.shared.push(`var<workgroup> smem${id}: array<${this.valueType(u.dtype)}, ${size}>;`);
          r.set(u, `smem${id}`);
          break;
        }
        case Ops.BARRIER:
          line("workgroupBarrier();");
          break;
        case Ops.SPECIAL:
          this.specials.push(u);
          r.set(u, u.arg as string);
          break;
        case Ops.CONST:
          r.set(u, this.constant(u.arg as ConstValue, u.dtype));
          break;
        case Ops.RANGE: {
          const [id, t] = u.arg as [number, AxisType];
          let n = `${axisLetter[t]}idx${id}`;
          while (names.has(n)) n += "_";
          names.add(n);
          r.set(u, n);
          for (const l of this.loop(n, s[0], false)) line(l);
          w.depth++;
          break;
        }
        case Ops.END:
          w.depth--;
          line("}");
          break;
        case Ops.INDEX:
          if (u.src[0].op === Ops.DEFINE_REG) r.set(u, s[0]);
          else if (u.src[0].op === Ops.DEFINE_LOCAL) r.set(u, `${s[0]}[${s[1]}]`);
          break;
        case Ops.LOAD: {
          const idx = u.src[0];
          if (idx.src[0].op === Ops.DEFINE_REG) {
            r.set(u, s[0]);
            break;
          }
          if (idx.src[0].op === Ops.DEFINE_LOCAL) {
            if (idx.src[2]) throw new Error("WGSLRenderer: gated shared-memory load");
            const n = fresh("val");
            line(this.declare(u.dtype, n, s[0], false));
            r.set(u, n);
            break;
          }
          const { g, buf } = access(idx);
          let { i } = access(idx);
          if (packed(g.dtype) && !/^(\w+|\d+i)$/.test(i)) {
            // a packed load uses its index twice: name it once
            line(`let ${i = fresh("idx")} = ${r.get(idx.src[1])};`);
          }
          const e = this.load(g, buf, i);
          const n = fresh("val");
          if (idx.src[2]) {
            line(
              `var ${n}: ${this.valueType(u.dtype)} = ${
                this.constant(u.dtype === dtypes.bool ? false : 0, u.dtype)
              };`,
            );
            line(`if (${r.get(idx.src[2])}) { ${n} = ${e}; }`);
          } else line(this.declare(u.dtype, n, e, false));
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
          if (idx.src[0].op === Ops.DEFINE_LOCAL) {
            line(`${s[0]} = ${s[1]};`);
            break;
          }
          const { g, buf, i } = access(idx);
          const st = this.store(g, buf, i, s[1]);
          if (idx.src[2] || st.length > 1) {
            line(`${idx.src[2] ? `if (${r.get(idx.src[2])}) ` : ""}{`);
            for (const l of st) line(`  ${l}`);
            line("}");
          } else line(st[0]);
          break;
        }
        case Ops.CAST:
          expr(u, u.dtype === u.src[0].dtype ? s[0] : this.cast(u, s[0]), "cast");
          break;
        case Ops.BITCAST:
          expr(u, this.bitcast(u, s[0]), "cast");
          break;
        default:
          if (!GroupOp.ALU.has(u.op)) {
            throw new Error(`WGSLRenderer: cannot render ${opName(u.op)}`);
          }
          for (const x of [u, ...u.src]) this.storageType(x.dtype);
          expr(u, this.alu(u, s), "alu");
      }
    }
    return this.module(inp, body);
  }

  private module(inp: RenderInput, body: string[]): string {
    const decls = inp.bufs.map((b, i) =>
      `@group(0) @binding(${i}) var<storage, ${
        b.mutable ? "read_write" : "read"
      }> data${b.slot}: array<${this.bindingType(b)}>;`
    );
    const vars = inp.vars.map((v) => `  ${identifier((v.arg as [string])[0])}: i32,`);
    if (vars.length) {
      decls.push(
        `struct TgVars {\n${vars.join("\n")}\n}`,
        `@group(0) @binding(${inp.bufs.length}) var<uniform> tg_vars: TgVars;`,
      );
    }
    const specials = [...new Map(this.specials.map((s) => [s.arg as string, s])).values()]
      .sort((a, b) => (a.arg as string).localeCompare(b.arg as string))
      .flatMap((s) => this.specialLines(s).map((l) => `  ${l}`));
    const [lx, ly, lz] = [0, 1, 2].map((k) => this.localSize[k] ?? 1);
    return [
      ...(this.f16 ? ["enable f16;"] : []),
      ...decls,
      ...this.shared,
      ...this.helpers.values(),
      `@compute @workgroup_size(${lx}, ${ly}, ${lz})`,
      `fn ${inp.name}(@builtin(workgroup_id) tg_gid: vec3<u32>, @builtin(local_invocation_id) tg_lid: vec3<u32>, @builtin(global_invocation_id) tg_id: vec3<u32>) {`,
      ...specials,
      ...body,
      "}",
    ].join("\n") + "\n";
  }

  /** declarations of a workgroup/invocation index; invocations past a guarded end leave */
  private specialLines(s: UOp): string[] {
    const name = s.arg as string, n = s.src[0].arg as number;
    if (!/^(g|l)?idx[0-2]$/.test(name)) {
      throw new Error(`WGSLRenderer: unknown SPECIAL '${name}' (gidxK, lidxK or idxK)`);
    }
    const ax = AXES[Number(name.slice(-1))];
    if (name.startsWith("gidx")) return [`let ${name} = i32(tg_gid.${ax});`];
    if (name.startsWith("lidx")) return [`let ${name} = i32(tg_lid.${ax});`];
    return [`if (tg_id.${ax} >= ${n}u) { return; }`, `let ${name} = i32(tg_id.${ax});`];
  }
}
