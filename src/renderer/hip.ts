// HIP C for hiprtc: CUDA C as the CUDA renderer writes it (extern "C" __global__, blockIdx and
// threadIdx, which hiprtc's built-in headers define, __launch_bounds__, the same math names)
// with the helpers that use PTX inline assembly replaced. hiprtc is clang, so 16-bit floats are
// clang's _Float16: its conversions round to nearest even once, double -> half included.
import type { GpuLimits } from "../codegen/gpudims.ts";
import { CUDARenderer } from "./cuda.ts";
import { AMD_MMA, amdMma, type AmdMmaKind, Ops, type UOp } from "../uop/ops.ts";
import { dtypes } from "../dtype.ts";
import type { RenderWalk } from "./c.ts";

/**
 * what one AMD launch may use: 1024 threads a block; the dispatch packet counts the grid in
 * work-items as 32-bit numbers, so blocks x threads must stay below 2^32 on every dimension
 * (with blocks of at most localMax threads these grid limits keep it there)
 */
export const AMD_LIMITS: GpuLimits = {
  grid: [2 ** 25 - 1, 65535, 65535],
  block: [1024, 1024, 1024],
  threads: 1024,
  localMax: 128,
};

const D = "static __device__ __forceinline__";
/** the CUDA renderer's PTX helpers, by helper name, as HIP writes them */
const HIP_HELPERS: Record<string, string> = {
  tg_f16: [
    `${D} float tg_h2f(unsigned short h) { return (float)__builtin_bit_cast(_Float16, h); }`,
    `${D} unsigned short tg_f2h(float f) { return __builtin_bit_cast(unsigned short, (_Float16)f); }`,
  ].join("\n"),
  tg_d2h:
    `${D} unsigned short tg_d2h(double d) { return __builtin_bit_cast(unsigned short, (_Float16)d); }`,
};

/**
 * The clang builtins of the AMD matrix instructions (src/opt/tc_amd.ts), by WMMA kind and operand
 * dtype: the builtin, its operand vector types and the trailing arguments. RDNA3's _w32 forms
 * take a and b as 16 halves (bfloat16: 16 shorts of bits) and c as 8 floats; CDNA's MFMA takes 4
 * of each and c as 4 floats, then cbsz, abid, blgp (0: no broadcast). (clang's
 * BuiltinsAMDGPU.def; bf16 MFMA is the _1k form of gfx90a and later.)
 */
const AMD_BUILTINS: Record<AmdMmaKind, { f16: string; bf16: string; tail: string }> = {
  wmma_gfx11: {
    f16: "__builtin_amdgcn_wmma_f32_16x16x16_f16_w32",
    bf16: "__builtin_amdgcn_wmma_f32_16x16x16_bf16_w32",
    tail: "",
  },
  mfma_gfx9: {
    f16: "__builtin_amdgcn_mfma_f32_16x16x16f16",
    bf16: "__builtin_amdgcn_mfma_f32_16x16x16bf16_1k",
    tail: ", 0, 0, 0",
  },
};

/** clang vector types (ext_vector_type, as HIP's own headers build theirs) */
const vecType = (scalar: string, n: number): [string, string] => {
  const name = `tg_${scalar.replace(/^_/, "").toLowerCase()}x${n}`;
  return [name, `typedef ${scalar} ${name} __attribute__((ext_vector_type(${n})));`];
};

export class HIPRenderer extends CUDARenderer {
  /** the result vector of each group of AMD WMMA operands rendered so far */
  private amdMmas = new Map<string, string>();

  /**
   * An element of an AMD matrix instruction's result: the first WMMA of a group (same a and b
   * operands) met emits the builtin into a vector on a zero accumulator; each names its element.
   */
  override wmma(u: UOp, s: string[], w: RenderWalk): string {
    const kind = amdMma(u.arg);
    if (!kind) return super.wmma(u, s, w);
    const { a, b, c } = AMD_MMA[kind];
    const elem = u.src[a + b];
    if (elem.op !== Ops.CONST) {
      throw new Error("HIPRenderer: a WMMA's element is not a constant (UPCAST not expanded)");
    }
    if (u.src.length > a + b + 1) {
      throw new Error("HIPRenderer: AMD WMMAs add into a zero accumulator (src/codegen/lower.ts)");
    }
    const key = `${kind}:${u.src.slice(0, a + b).map((x) => x.id).join(",")}`;
    let d = this.amdMmas.get(key);
    if (d === undefined) {
      d = w.fresh("mma");
      this.amdMmas.set(key, d);
      const bf = u.src[0].dtype === dtypes.bfloat16;
      // the values live as floats holding 16-bit values exactly: converting back is exact
      if (bf) this.bf16Helpers(); // tg_bf16_bits
      const el = (x: string) => (bf ? `(short)tg_bf16_bits(${x})` : `(_Float16)(${x})`);
      const [inT, inDef] = vecType(bf ? "short" : "_Float16", a);
      const [outT, outDef] = vecType("float", c);
      this.helpers.set(inT, inDef);
      this.helpers.set(outT, outDef);
      const vec = (from: number, n: number) =>
        `(${inT}){${s.slice(from, from + n).map(el).join(", ")}}`;
      const fn = AMD_BUILTINS[kind];
      w.line(
        `${outT} ${d} = ${bf ? fn.bf16 : fn.f16}(${vec(0, a)}, ${
          vec(a, b)
        }, (${outT}){}${fn.tail});`,
      );
    }
    return `${d}[${elem.arg as number}]`;
  }

  override kernel(name: string, params: string[], body: string[]): string {
    for (const [k, v] of Object.entries(HIP_HELPERS)) {
      if (this.helpers.has(k)) this.helpers.set(k, v);
    }
    const src = super.kernel(name, params, body);
    if (/\basm\s*\(/.test(src)) {
      throw new Error(`HIPRenderer: kernel '${name}' still has inline PTX:\n${src}`);
    }
    return src;
  }
}
