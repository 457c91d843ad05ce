// JavaScript kernels with the exact semantics of the C ones: int32 through `| 0` and Math.imul,
// uint32 through `>>> 0`, narrow ints cut back after each op, every float32/float16/bfloat16
// result rounded to its type, 64-bit ints as BigInt, int division that never throws.
import { type ConstValue, opName, Ops, type UOp } from "../uop/ops.ts";
import { type DType, dtypes } from "../dtype.ts";
import type { ProgramBuf } from "../codegen/program.ts";
import { CStyleRenderer, identifier, mayWrap, prettyAlu } from "./c.ts";

const isBig = (d: DType): boolean => d.isInt && d.itemsize === 8;

const BF16 = [
  "const tg_f32 = new Float32Array(1), tg_u32 = new Uint32Array(tg_f32.buffer);",
  "const tg_bf16 = (b) => { tg_u32[0] = b << 16; return tg_f32[0]; };",
  "const tg_bf16bits = (x) => { tg_f32[0] = x; const b = tg_u32[0]; return x !== x ? (b >>> 16) | 0x40 : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff; };",
  "const tg_bf16r = (x) => tg_bf16(tg_bf16bits(x));",
].join("\n");

export class JSRenderer extends CStyleRenderer {
  override readonly lang = "js";

  override constant(v: ConstValue, d: DType): string {
    if (d === dtypes.bool) return v ? "true" : "false";
    const x = Number(v);
    if (isBig(d)) return x < 0 ? `(${BigInt(x)}n)` : `${BigInt(x)}n`;
    if (Number.isNaN(x)) return "NaN";
    if (x === Infinity) return "Infinity";
    if (x < 0 || Object.is(x, -0)) return `(-${String(-x)})`;
    return String(x);
  }
  override wrap(d: DType, e: string): string {
    if (d === dtypes.float32) return `Math.fround(${e})`;
    if (d === dtypes.float16) return `Math.f16round(${e})`;
    if (d === dtypes.bfloat16) return (this.helpers.set("bf16", BF16), `tg_bf16r(${e})`);
    return e;
  }
  /** `e` brought into the integer dtype d (always, where `force`; else only if it may wrap) */
  intWrap(d: DType, e: string, force = true): string {
    if (!force) return e;
    switch (d) {
      case dtypes.int32:
        return `(${e}|0)`;
      case dtypes.uint32:
        return `(${e}>>>0)`;
      case dtypes.int16:
        return `(${e}<<16>>16)`;
      case dtypes.uint16:
        return `(${e}&65535)`;
      case dtypes.int8:
        return `(${e}<<24>>24)`;
      case dtypes.uint8:
        return `(${e}&255)`;
      case dtypes.int64:
        return `BigInt.asIntN(64, ${e})`;
      case dtypes.uint64:
        return `BigInt.asUintN(64, ${e})`;
    }
    return e;
  }
  override wrapInt(u: UOp, e: string): string {
    return this.intWrap(u.dtype, e, mayWrap(u));
  }
  override alu(u: UOp, s: string[]): string {
    const d = u.dtype, op = u.op, [a, b, c] = s;
    const od = u.src[op === Ops.WHERE ? 1 : 0].dtype;
    const pretty = prettyAlu(u, s);
    if (pretty) return pretty;
    if (op === Ops.WHERE) return `(${a}?${b}:${c})`;
    if (op === Ops.CMPLT) return `(${a}<${b})`;
    if (op === Ops.CMPNE) return `(${a}!==${b})`;
    if (op === Ops.CMPEQ) return `(${a}===${b})`;
    if (od === dtypes.bool) {
      if (op === Ops.ADD || op === Ops.OR || op === Ops.MAX) return `(${a}||${b})`;
      if (op === Ops.MUL || op === Ops.AND) return `(${a}&&${b})`;
      if (op === Ops.XOR) return `(${a}!==${b})`;
    }
    if (d.isFloat) return this.floatAlu(u, s);
    if (isBig(d)) return this.bigAlu(u, s);
    const uns = d === dtypes.uint32;
    const cut = (e: string) => this.intWrap(d, e, mayWrap(u));
    switch (op) {
      case Ops.ADD:
        return cut(`(${a}+${b})`);
      case Ops.SUB:
        return cut(`(${a}-${b})`);
      case Ops.NEG:
        return cut(`(-${a})`);
      case Ops.MUL:
        if (d.itemsize === 4 && mayWrap(u)) {
          return uns ? `(Math.imul(${a}, ${b})>>>0)` : `Math.imul(${a}, ${b})`;
        }
        return cut(`(${a}*${b})`);
      case Ops.IDIV: // x/0 is ±Infinity or NaN, which `| 0` turns into 0, as the C helpers do
        return this.intWrap(d, `((${a}/${b})${uns ? ">>>0" : "|0"})`, d.itemsize < 4 && mayWrap(u));
      case Ops.MOD:
        return `((${a}%${b})${uns ? ">>>0" : "|0"})`;
      case Ops.MAX:
        return `Math.max(${a}, ${b})`;
      case Ops.XOR:
        return uns ? `((${a}^${b})>>>0)` : `(${a}^${b})`;
      case Ops.OR:
        return uns ? `((${a}|${b})>>>0)` : `(${a}|${b})`;
      case Ops.AND:
        return uns ? `((${a}&${b})>>>0)` : `(${a}&${b})`;
      case Ops.SHL:
        return cut(`(${a}<<${b})`);
      case Ops.SHR:
        return d.isUnsigned ? `(${a}>>>${b})` : `(${a}>>${b})`;
      case Ops.MULACC:
        return cut(`(${this.alu(u.src[0].alu(Ops.MUL, u.src[1]), [a, b])}+${c})`);
      case Ops.TRUNC:
        return a;
    }
    throw new Error(`JSRenderer: cannot render ${opName(op)} on ${d.name}`);
  }
  private floatAlu(u: UOp, [a, b, c]: string[]): string {
    const d = u.dtype, w = (e: string) => this.wrap(d, e);
    switch (u.op) {
      case Ops.ADD:
        return w(`(${a}+${b})`);
      case Ops.SUB:
        return w(`(${a}-${b})`);
      case Ops.MUL:
        return w(`(${a}*${b})`);
      case Ops.FDIV:
        return w(`(${a}/${b})`);
      case Ops.MULACC:
        return w(`(${w(`(${a}*${b})`)}+${c})`);
      case Ops.NEG:
        return `(-${a})`;
      case Ops.MAX:
        return `Math.max(${a}, ${b})`;
      case Ops.TRUNC:
        return `Math.trunc(${a})`;
      case Ops.EXP2:
        return w(`(2**${a})`);
      case Ops.LOG2:
        return w(`Math.log2(${a})`);
      case Ops.SIN:
        return w(`Math.sin(${a})`);
      case Ops.SQRT:
        return w(`Math.sqrt(${a})`);
      case Ops.RECIPROCAL:
        return w(`(1/${a})`);
      case Ops.POW:
        return w(`(${a}**${b})`);
    }
    throw new Error(`JSRenderer: cannot render ${opName(u.op)} on ${d.name}`);
  }
  private bigAlu(u: UOp, [a, b, c]: string[]): string {
    const d = u.dtype, cut = (e: string) => this.intWrap(d, e);
    const op = u.op;
    if (op === Ops.IDIV || op === Ops.MOD) {
      const name = `tg_${op === Ops.IDIV ? "idiv" : "mod"}_${d.name}`;
      const q = op === Ops.IDIV ? cut("(a/b)") : "(a%b)";
      this.helpers.set(name, `const ${name} = (a, b) => b === 0n ? 0n : ${q};`);
      return `${name}(${a}, ${b})`;
    }
    if (op === Ops.MAX) {
      this.helpers.set("tg_maxn", "const tg_maxn = (a, b) => a > b ? a : b;");
      return `tg_maxn(${a}, ${b})`;
    }
    const fmt = {
      [Ops.ADD]: `(${a}+${b})`,
      [Ops.SUB]: `(${a}-${b})`,
      [Ops.MUL]: `(${a}*${b})`,
      [Ops.NEG]: `(-${a})`,
      [Ops.SHL]: `(${a}<<${b})`,
      [Ops.MULACC]: `((${a}*${b})+${c})`,
    }[op as number];
    if (fmt) return cut(fmt);
    const plain = { [Ops.XOR]: "^", [Ops.OR]: "|", [Ops.AND]: "&", [Ops.SHR]: ">>" }[op as number];
    if (plain) return `(${a}${plain}${b})`;
    if (op === Ops.TRUNC) return a;
    throw new Error(`JSRenderer: cannot render ${opName(op)} on ${d.name}`);
  }
  override cast(u: UOp, x: string): string {
    const d = u.dtype, f = u.src[0].dtype;
    if (d === dtypes.bool) return isBig(f) ? `(${x}!==0n)` : f === dtypes.bool ? x : `(${x}!==0)`;
    if (f === dtypes.bool) return isBig(d) ? `(${x}?1n:0n)` : `(${x}?1:0)`;
    if (d.isFloat) {
      const n = isBig(f) ? `Number(${x})` : x;
      return d === dtypes.float64 ? n : this.wrap(d, n);
    }
    if (isBig(d)) {
      if (isBig(f)) return this.intWrap(d, x);
      if (f.isInt) return `BigInt(${x})`;
      this.helpers.set(
        `tg_big_${d.name}`,
        `const tg_big_${d.name} = (x) => Number.isFinite(x) ? BigInt.as${
          d.isUnsigned ? "Uint" : "Int"
        }N(64, BigInt(Math.trunc(x))) : 0n;`,
      );
      return `tg_big_${d.name}(${x})`;
    }
    if (isBig(f)) return `Number(BigInt.as${d.isUnsigned ? "Uint" : "Int"}N(${d.bitsize}, ${x}))`;
    // ToInt32 truncates toward zero and wraps; NaN and ±Infinity give 0
    const i32 = f.isFloat || f === dtypes.uint32 ? `(${x}|0)` : x;
    if (d === dtypes.int32) return i32;
    if (d === dtypes.uint32) return `(${x}>>>0)`;
    return this.intWrap(d, i32);
  }
  override bitcast(u: UOp, x: string): string {
    const from = u.src[0].dtype, to = u.dtype;
    if (from.itemsize !== to.itemsize) {
      throw new Error(`BITCAST ${from.name} -> ${to.name}: item sizes differ`);
    }
    const arr = (d: DType) =>
      d === dtypes.bool ? "Uint8Array" : d === dtypes.bfloat16 ? "Uint16Array" : {
        int8: "Int8Array",
        uint8: "Uint8Array",
        int16: "Int16Array",
        uint16: "Uint16Array",
        int32: "Int32Array",
        uint32: "Uint32Array",
        int64: "BigInt64Array",
        uint64: "BigUint64Array",
        float16: "Float16Array",
        float32: "Float32Array",
        float64: "Float64Array",
      }[d.name as string]!;
    const name = `tg_bitcast_${from.name}_${to.name}`;
    this.helpers.set(
      name,
      `const ${name} = (() => { const b = new ArrayBuffer(8), s = new ${arr(from)}(b), d = new ${
        arr(to)
      }(b); return (x) => { s[0] = ${this.storeValue(from, "x")}; return ${
        this.loadValue(to, "d[0]")
      }; }; })();`,
    );
    return `${name}(${x})`;
  }
  override loadValue(d: DType, access: string): string {
    if (d === dtypes.bool) return `(${access}!==0)`;
    if (d === dtypes.bfloat16) return (this.helpers.set("bf16", BF16), `tg_bf16(${access})`);
    return access;
  }
  override storeValue(d: DType, v: string): string {
    if (d === dtypes.bfloat16) return (this.helpers.set("bf16", BF16), `tg_bf16bits(${v})`);
    return v;
  }
  override declare(_d: DType, name: string, expr: string, mutable: boolean): string {
    return `${mutable ? "let" : "const"} ${name} = ${expr};`;
  }
  override loop(name: string, end: string, _parallel: boolean): string[] {
    return [`for (let ${name} = 0; ${name} < ${end}; ${name}++) {`];
  }
  override sharedArray(_d: DType, name: string, size: number): string {
    return `const ${name} = new Array(${size});`;
  }
  override bufParam(b: ProgramBuf): string {
    return `data${b.slot}`;
  }
  override varParam(v: UOp): string {
    return identifier((v.arg as [string])[0]);
  }
  override kernel(name: string, params: string[], body: string[]): string {
    const helpers = [...this.helpers.values()].flatMap((h) => h.split("\n")).map((h) => `  ${h}`);
    return [`function ${name}(${params.join(", ")}) {`, ...helpers, ...body, "}"].join("\n") + "\n";
  }
}
