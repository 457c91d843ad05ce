// CUDA C for NVRTC (and nvcc): the C-style base with a __global__ signature, block/thread indices
// for SPECIAL, CUDA math functions, and header-free 16-bit floats (PTX cvt instructions for
// float16, bit shifts for bfloat16), so compiling needs no CUDA include directory.
import {
  amdMma,
  axisLetter,
  type AxisType,
  type ConstValue,
  INDEX_LDMATRIX,
  Ops,
  STORE_ASYNC,
  UOp,
} from "../uop/ops.ts";
import { type DType, dtypes } from "../dtype.ts";
import type { LinearProgram } from "../codegen/linearize.ts";
import type { ProgramBuf } from "../codegen/program.ts";
import { CStyleRenderer, type RenderInput, type RenderWalk } from "./c.ts";
import {
  type MatrixFragment,
  matrixFragment,
  type PackedStore,
  planPackedStores,
  planWideLoads,
  planWideStores,
  type WideStore,
  type WideWord,
} from "./wide_loads.ts";

const AXES = ["x", "y", "z"];

const F16 = [
  'static __device__ __forceinline__ float tg_h2f(unsigned short h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }',
  'static __device__ __forceinline__ unsigned short tg_f2h(float f) { unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }',
].join("\n");
// double -> float rounding to odd, so that the following float -> bfloat16 rounds only once
const D2F_ODD =
  "static __device__ __forceinline__ float tg_d2f_odd(double d) { float f = (float)d; if ((double)f != d && d == d) { unsigned int u = __float_as_uint(f); if (fabs((double)f) > fabs(d)) u -= 1; u |= 1u; f = __uint_as_float(u); } return f; }";
const D2H =
  'static __device__ __forceinline__ unsigned short tg_d2h(double d) { unsigned short h; asm("cvt.rn.f16.f64 %0, %1;" : "=h"(h) : "d"(d)); return h; }';

const BF16 = [
  "static __device__ __forceinline__ float tg_bf16_load(unsigned short b) { return __uint_as_float((unsigned int)b << 16); }",
  "static __device__ __forceinline__ unsigned short tg_bf16_bits(float f) { unsigned int u = __float_as_uint(f); if (f != f) return (unsigned short)((u >> 16) | 0x40u); return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16); }",
  "static __device__ __forceinline__ float tg_bf16_round(float f) { return tg_bf16_load(tg_bf16_bits(f)); }",
].join("\n");

export class CUDARenderer extends CStyleRenderer {
  override mathFns: Partial<Record<Ops, [string, string]>> = {
    [Ops.EXP2]: ["exp2f", "exp2"],
    [Ops.LOG2]: ["log2f", "log2"],
    [Ops.SIN]: ["sinf", "sin"],
    [Ops.SQRT]: ["sqrtf", "sqrt"],
    [Ops.TRUNC]: ["truncf", "trunc"],
    [Ops.POW]: ["powf", "pow"],
  };
  private specials: UOp[] = [];
  /** the mma of each group of WMMA operands rendered so far: its output variables' prefix */
  private mmas = new Map<string, string>();
  /** each group's accumulator variables, by element (WMMAs that add into an accumulator) */
  private mmaAccs = new Map<string, string[]>();
  /** mma operands read by ldmatrix, by their loads' ids, and the registers already loaded */
  private fragments = new Map<string, MatrixFragment>();
  private fragmentRegs = new Map<string, string[]>();
  /** the wide word each load is part of, and the variable of each word loaded so far */
  private words = new Map<UOp, WideWord>();
  private wordNames = new Map<WideWord, string>();
  /** the wide store each store is part of (copies of a loaded word) */
  private wideStores = new Map<UOp, WideStore>();
  /** stores of computed values packed into words, and the parts seen so far of each */
  private packed = new Map<UOp, PackedStore>();
  private packedParts = new Map<PackedStore, { access: string; bits: string }[]>();
  /** the shared arrays (by name) some wide load or store addresses */
  private wideShared = new Set<string>();
  /** a load's stored bits (its storage type), for loads read out of a wide word */
  private bits = new Map<UOp, string>();
  /** words only async copies store (cp.async reads them): their global addresses */
  private asyncWords = new Map<WideWord, string | null>();
  /** byte offsets of the shared arrays in dynamic shared memory, where they need it */
  private dynamicOffsets = new Map<string, number>();
  /**
   * bytes of dynamic shared memory the last kernel rendered needs (0: its shared arrays are
   * static): the launch's ProgramSpec.sharedMem
   */
  dynamicShared = 0;
  /** the row address each lane hands ldmatrix, by operand, where the kernel gives it */
  private rowAddrs = new Map<string, UOp>();
  /** the mmas of each straight run of a loop body, by its first WMMA (ldmatrix up front) */
  private fragmentFirst = new Map<UOp, UOp[]>();
  /** loops fully unrolled: the short k loops around mmas */
  private unrolled = new Set<string>();

  /** `localSize`: the block the kernel is launched with (threads per dimension) */
  constructor(readonly localSize: readonly number[] = [1, 1, 1]) {
    super();
    this.typeNames = { ...this.typeNames, bool: "bool", float16: "unsigned short" };
  }

  override constant(v: ConstValue, d: DType): string {
    const x = Number(v);
    if (d.isFloat && !Number.isFinite(x)) {
      // NVRTC has no __builtin_nan/inf: build them from their bits
      const dbl = d === dtypes.float64;
      const bits = Number.isNaN(x)
        ? (dbl ? "0x7ff8000000000000LL" : "0x7fc00000")
        : (dbl ? "0x7ff0000000000000LL" : "0x7f800000");
      const s = dbl ? `__longlong_as_double(${bits})` : `__int_as_float(${bits})`;
      return x === -Infinity ? `(-${s})` : s;
    }
    return super.constant(v, d);
  }
  override wrap(d: DType, e: string): string {
    if (d === dtypes.float16) return (this.f16(), `tg_h2f(tg_f2h(${e}))`);
    return super.wrap(d, e);
  }
  override loadValue(d: DType, access: string): string {
    if (d === dtypes.float16) return (this.f16(), `tg_h2f(${access})`);
    return super.loadValue(d, access);
  }
  override storeValue(d: DType, v: string): string {
    if (d === dtypes.float16) return (this.f16(), `tg_f2h(${v})`);
    return super.storeValue(d, v);
  }
  override cast(u: UOp, x: string): string {
    if (u.dtype === dtypes.float16) {
      this.f16();
      // PTX converts double to half in one rounding
      if (u.src[0].dtype === dtypes.float64) this.helpers.set("tg_d2h", D2H);
      return u.src[0].dtype === dtypes.float64
        ? `tg_h2f(tg_d2h(${x}))`
        : `tg_h2f(tg_f2h((float)(${x})))`;
    }
    const out = super.cast(u, x);
    if (this.helpers.has("tg_d2f_odd")) this.helpers.set("tg_d2f_odd", D2F_ODD);
    return out;
  }
  override bitcast(u: UOp, x: string): string {
    const from = u.src[0].dtype, to = u.dtype;
    if (from.itemsize !== to.itemsize) {
      throw new Error(`BITCAST ${from.name} -> ${to.name}: item sizes differ`);
    }
    // NVRTC has no __builtin_memcpy; a union reinterprets the bits
    const name = `tg_bitcast_${from.name}_${to.name}`, st = this.storageType.bind(this);
    this.helpers.set(
      name,
      `static __device__ __forceinline__ ${this.valueType(to)} ${name}(${
        this.valueType(from)
      } x) { union { ${st(from)} s; ${st(to)} d; } u; u.s = ${this.storeValue(from, "x")}; return ${
        this.loadValue(to, "u.d")
      }; }`,
    );
    return `${name}(${x})`;
  }
  protected override bf16Helpers(): string {
    this.helpers.set("tg_bf16", BF16);
    return "tg_bf16_round";
  }
  private f16(): void {
    this.helpers.set("tg_f16", F16);
  }

  override wideLoad(u: UOp, access: string, w: RenderWalk): string | undefined {
    const word = this.words.get(u);
    if (!word) return undefined;
    if (this.asyncWords.has(word)) {
      // cp.async reads the word itself (wideStore): here only its address
      if (this.asyncWords.get(word) === null) {
        this.asyncWords.set(word, word.first ? `(&${access} - ${word.first})` : `&${access}`);
      }
      return "0";
    }
    let name = this.wordNames.get(word);
    if (name === undefined) {
      name = w.fresh("wide");
      this.wordNames.set(word, name);
      const ty = wordType(word.bytes);
      const at = word.first ? `(&${access} - ${word.first})` : `&${access}`;
      w.line(`const ${ty} ${name} = *((const ${ty}*)${at});`);
    }
    const i = word.loads.indexOf(u), size = u.dtype.itemsize;
    const at = (i * size) >> 2, shift = ((i * size) & 3) * 8;
    const part = word.bytes === 4 ? name : `${name}.${"xyzw"[at]}`;
    const raw = size === 2
      ? `((unsigned short)(${shift ? `${part} >> ${shift}` : part}))`
      : u.dtype === dtypes.float32
      ? `__uint_as_float(${part})`
      : `((${this.storageType(u.dtype)})${part})`;
    this.bits.set(u, raw);
    const v = w.fresh("val");
    w.line(this.declare(u.dtype, v, this.loadValue(u.dtype, raw), false));
    return v;
  }

  /**
   * The WMMAs of one mma share their 12 operands and differ in the element read: the first one
   * met emits the mma (inline PTX, zero accumulator) into 4 floats, each names its own.
   */
  override wmma(u: UOp, s: string[], w: RenderWalk): string {
    // HIP renders through this class too; AMD's matrix cores take other shapes and builtins
    if (Object.getPrototypeOf(this) !== CUDARenderer.prototype) return super.wmma(u, s, w);
    const amd = amdMma(u.arg);
    if (amd) throw new Error(`CUDARenderer: ${amd} is an AMD matrix instruction (HIP only)`);
    const elem = u.src[12];
    if (elem.op !== Ops.CONST) {
      throw new Error("CUDARenderer: a WMMA's element is not a constant (UPCAST not expanded)");
    }
    const key = wmmaKey(u);
    let d = this.mmas.get(key);
    if (d === undefined) {
      d = w.fresh("mma");
      this.mmas.set(key, d);
      const bf = u.src[0].dtype === dtypes.bfloat16, ty = bf ? "bf16" : "f16";
      // the values live as floats; the mma takes their 16-bit patterns two to a register
      const bits = bf ? (this.bf16Helpers(), "tg_bf16_bits") : (this.f16(), "tg_f2h");
      // an operand loaded straight from a 16-bit buffer is its stored bits: no round trip
      // through float
      const half = (i: number): string => {
        const x = u.src[i], idx = x.src[0];
        // (shared arrays of 16-bit floats hold their bits too: sharedStored)
        const raw = x.op === Ops.LOAD && idx?.op === Ops.INDEX && idx.src.length === 2 &&
          (idx.src[0].op === Ops.DEFINE_GLOBAL || idx.src[0].op === Ops.DEFINE_LOCAL) &&
          idx.src[0].dtype === x.dtype;
        const e = this.bits.get(x) ?? (raw ? w.r.get(idx) : undefined);
        return e !== undefined ? `(unsigned)${e}` : `(unsigned)${bits}(${s[i]})`;
      };
      // the fragments of every mma of this loop body first: their loads' latencies overlap
      for (const x of this.fragmentFirst.get(u) ?? []) {
        this.fragment(x, 0, 8, w), this.fragment(x, 8, 4, w);
      }
      const ldm = (from: number, n: number) => this.fragment(u, from, n, w);
      const fa = ldm(0, 8), fb = ldm(8, 4);
      const pair = (i: number) =>
        i < 8 && fa
          ? fa[i >> 1]
          : i >= 8 && fb
          ? fb[(i - 8) >> 1]
          : `(${half(i)} | (${half(i + 1)} << 16))`;
      const outs = [0, 1, 2, 3].map((i) => `${d}_${i}`);
      // the mma adds into the accumulators its WMMAs carry (src/codegen/lower.ts), else into 0
      const accs = this.mmaAccs.get(key);
      w.line(`float ${outs.map((o, i) => `${o} = ${accs?.[i] ?? "0.0f"}`).join(", ")};`);
      w.line(
        `asm("mma.sync.aligned.m16n8k16.row.col.f32.${ty}.${ty}.f32 {%0, %1, %2, %3}, ` +
          `{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};" : ${
            outs.map((o) => `"+f"(${o})`).join(", ")
          } : ${[0, 2, 4, 6, 8, 10].map((i) => `"r"(${pair(i)})`).join(", ")});`,
      );
    }
    return `${d}_${elem.arg as number}`;
  }

  override loop(name: string, end: string, parallel: boolean): string[] {
    const lines = super.loop(name, end, parallel);
    // nvcc leaves the k loop of a stage (4 large iterations) rolled. Unrolled, the swizzled
    // pipelined kernel (src/opt/tc.ts PIPE) ran at 379 against 361 TFLOP/s (float16 4096^3, an
    // H100); the padded one had run slower (252 against 286), so only loops of mmas whose
    // ldmatrix rows the kernel gives are unrolled
    return this.unrolled.has(name) ? ["#pragma unroll", ...lines] : lines;
  }
  /** the registers of an mma operand read by ldmatrix (emitted the first time), or undefined */
  private fragment(u: UOp, from: number, n: number, w: RenderWalk): string[] | undefined {
    const key = fragmentKey(u.src.slice(from, from + n));
    let regs = this.fragmentRegs.get(key);
    if (regs) return regs;
    const row = this.rowAddrs.get(key);
    if (row) {
      // the row address is given (a swizzled layout): a is x4, b is x2 .trans
      const access = w.r.get(row);
      if (access === undefined) return undefined;
      regs = this.ldmatrix(w, n / 2, n === 4, `&${access}`);
      this.fragmentRegs.set(key, regs);
      return regs;
    }
    const f = this.fragments.get(key);
    if (!f) return undefined;
    const lane = w.r.get(f.lane), access = w.r.get(u.src[from].src[0]);
    if (lane === undefined || access === undefined) return undefined;
    const L = `(${lane})`;
    const at = `-(${L}>>2)*${f.cg} - (${L}&3)*${f.ct} + (${L}&7)*${f.row}` +
      (f.offs[1] ? ` + ((${L}>>3)&1)*${f.offs[1]}` : "") +
      (f.offs[2] ? ` + (${L}>>4)*${f.offs[2]}` : "");
    regs = this.ldmatrix(w, n / 2, f.trans, `&${access} ${at}`);
    this.fragmentRegs.set(key, regs);
    return regs;
  }

  /** `count` registers loaded by one ldmatrix from the row at `addr` (a shared address) */
  private ldmatrix(w: RenderWalk, count: number, trans: boolean, addr: string): string[] {
    const p = w.fresh("frag");
    const regs = Array.from({ length: count }, (_, i) => `${p}_${i}`);
    w.line(`unsigned ${regs.join(", ")};`);
    w.line(
      `asm volatile("ldmatrix.sync.aligned.m8n8.x${count}${trans ? ".trans" : ""}.shared.b16 {${
        regs.map((_, i) => `%${i}`).join(", ")
      }}, [%${count}];" : ${
        regs.map((r) => `"=r"(${r})`).join(", ")
      } : "r"((unsigned)__cvta_generic_to_shared(${addr})));`,
    );
    return regs;
  }

  override sharedArray(d: DType, name: string, size: number): string {
    const off = this.dynamicOffsets.get(name);
    if (off !== undefined) {
      const ty = this.sharedType(d);
      return `${ty}* ${name} = (${ty}*)(tg_smem + ${off});`;
    }
    // wide (up to uint4) loads and stores need the array 16-byte aligned
    const align = this.wideShared.has(name) ? "__align__(16) " : "";
    return `__shared__ ${align}${this.sharedType(d)} ${name}[${size}];`;
  }
  override wideStore(u: UOp, access: string, w: RenderWalk): boolean {
    const pack = this.packed.get(u);
    if (pack) return this.packedStore(u, pack, access, w);
    const wide = this.wideStores.get(u);
    if (!wide) {
      if (u.arg === STORE_ASYNC && u.src[0].src[0].op === Ops.DEFINE_LOCAL) {
        // a barrier's wait counts whole async copies: an element stored apart would miscount
        throw new Error("CUDARenderer: an async copy (STORE_ASYNC) that is not a whole word");
      }
      return false;
    }
    const from = this.asyncWords.get(wide.word);
    if (from !== undefined) {
      if (wide.stores.indexOf(u) === wide.first) {
        if (from === null) throw new Error("CUDARenderer: an async copy before its load");
        const at = wide.first ? `(&${access} - ${wide.first})` : `&${access}`;
        const n = wide.word.bytes;
        // one commit group per copy: a barrier's wait_group counts copies
        w.line(
          `asm volatile("cp.async.${n === 16 ? "cg" : "ca"}.shared.global [%0], [%1], ${n};\\n` +
            `cp.async.commit_group;" :: "r"((unsigned)__cvta_generic_to_shared(${at})), ` +
            `"l"(${from}) : "memory");`,
        );
      }
      return true;
    }
    if (wide.stores.indexOf(u) === wide.first) {
      const name = this.wordNames.get(wide.word);
      if (name === undefined) throw new Error("CUDARenderer: a wide store before its load");
      const ty = wordType(wide.word.bytes);
      const at = wide.first ? `(&${access} - ${wide.first})` : `&${access}`;
      w.line(`*((${ty}*)${at}) = ${name};`);
    }
    return true;
  }
  /** a part of a packed store: the last one in program order writes the word */
  private packedStore(u: UOp, p: PackedStore, access: string, w: RenderWalk): boolean {
    const i = p.stores.indexOf(u), v = u.src[1];
    const stored = this.storeValue(v.dtype, w.r.get(v)!);
    const bits = v.dtype.itemsize === 2
      ? `(unsigned)${stored}`
      : v.dtype === dtypes.float32
      ? `__float_as_uint(${stored})`
      : `(unsigned)(${stored})`;
    const parts = this.packedParts.get(p) ?? [];
    this.packedParts.set(p, parts);
    parts[i] = { access, bits };
    if (i !== p.last) return true;
    const per = 4 / v.dtype.itemsize, words: string[] = [];
    for (let k = 0; k < p.stores.length; k += per) {
      const halves = parts.slice(k, k + per).map((x) => x.bits);
      words.push(halves.length === 2 ? `(${halves[0]} | (${halves[1]} << 16))` : halves[0]);
    }
    const ty = wordType(p.bytes);
    const at = i ? `(&${access} - ${i})` : `&${access}`;
    const word = words.length === 1 ? words[0] : `make_${ty}(${words.join(", ")})`;
    w.line(`*((${ty}*)${at}) = ${word};`);
    return true;
  }
  override barrier(u: UOp): string {
    if (typeof u.arg !== "number") return "__syncthreads();";
    return `asm volatile("cp.async.wait_group ${u.arg};" ::: "memory"); __syncthreads();`;
  }

  override bufParam(b: ProgramBuf): string {
    return `${b.mutable ? "" : "const "}${this.storageType(b.dtype)}* __restrict__ data${b.slot}`;
  }
  override kernel(name: string, params: string[], body: string[]): string {
    // the base's helpers are host C: make them device functions
    const helpers = [...this.helpers.values()].map((h) =>
      h.replace(/^static inline /gm, "static __device__ __forceinline__ ")
    );
    const threads = this.localSize.reduce((a, b) => a * b, 1);
    return [
      ...helpers,
      `extern "C" __global__ void __launch_bounds__(${threads}) ${name}(${params.join(", ")}) {`,
      ...(this.dynamicShared ? ["  extern __shared__ __align__(16) unsigned char tg_smem[];"] : []),
      ...this.specials.flatMap((s) => this.specialLines(s).map((l) => `  ${l}`)),
      ...body,
      "}",
    ].join("\n") + "\n";
  }

  /** declarations of a block/thread index; threads past a guarded dimension's end leave */
  private specialLines(s: UOp): string[] {
    const name = s.arg as string, n = s.src[0].arg as number;
    const k = Number(name.slice(-1)), ax = AXES[k];
    if (name.startsWith("gidx")) return [`const int ${name} = blockIdx.${ax};`];
    if (name.startsWith("lidx")) return [`const int ${name} = threadIdx.${ax};`];
    const flat = `blockIdx.${ax}*${this.localSize[k]}u+threadIdx.${ax}`;
    return [`if (${flat} >= ${n}u) return;`, `const int ${name} = (int)(${flat});`];
  }

  /** where the shared arrays exceed the static limit: their offsets in dynamic shared memory */
  private planShared(uops: readonly UOp[]): void {
    this.dynamicOffsets = new Map();
    this.dynamicShared = 0;
    const locals = uops.filter((u) => u.op === Ops.DEFINE_LOCAL);
    const bytes = (u: UOp) => (u.arg as [number, number])[1] * u.dtype.itemsize;
    const align = (n: number) => Math.ceil(n / 16) * 16;
    const total = locals.reduce((p, u) => p + align(bytes(u)), 0);
    if (total <= STATIC_SHARED) return;
    let off = 0;
    for (const u of locals) {
      this.dynamicOffsets.set(`smem${(u.arg as [number])[0]}`, off);
      off += align(bytes(u));
    }
    this.dynamicShared = total;
  }

  override render(inp: RenderInput): string {
    // the base walk knows no SPECIAL: stand in a variable of the same name and bounds, whose
    // declaration kernel() puts at the top of the body
    const sub = new Map<UOp, UOp>();
    this.specials = [];
    this.mmas = new Map();
    for (const u of inp.lin.uops) {
      if (u.op !== Ops.SPECIAL) continue;
      const name = u.arg as string;
      if (!/^(g|l)?idx[0-2]$/.test(name)) {
        throw new Error(`CUDARenderer: unknown SPECIAL '${name}' (gidxK, lidxK or idxK)`);
      }
      if (inp.vars.some((v) => (v.arg as [string])[0] === name)) {
        throw new Error(`CUDARenderer: variable '${name}' collides with a thread index name`);
      }
      this.specials.push(u);
      sub.set(u, UOp.variable(name, 0, u.vmax));
    }
    this.specials.sort((a, b) => (a.arg as string).localeCompare(b.arg as string));
    let lin = sub.size ? substituteLinear(inp.lin, sub) : inp.lin;
    const plainCuda = Object.getPrototypeOf(this) === CUDARenderer.prototype;
    this.mmaAccs = accumulatorsOf(lin.uops);
    this.fragments = new Map();
    this.fragmentRegs = new Map();
    for (const u of lin.uops) {
      if (u.op !== Ops.WMMA) continue;
      for (const [from, n] of [[0, 8], [8, 4]]) {
        const f = matrixFragment(u.src.slice(from, from + n));
        if (f) this.fragments.set(fragmentKey(u.src.slice(from, from + n)), f);
      }
    }
    this.rowAddrs = new Map();
    for (const u of plainCuda ? lin.uops : []) {
      if (u.op !== Ops.WMMA) continue;
      for (const [from, n] of [[0, 8], [8, 4]]) {
        const row = u.src[from].src.slice(1).find((x) =>
          x.op === Ops.INDEX && x.arg === INDEX_LDMATRIX
        );
        if (row) this.rowAddrs.set(fragmentKey(u.src.slice(from, from + n)), row);
      }
    }
    const ldmOf = (u: UOp) =>
      [this.fragments, this.rowAddrs].some((m) => m.has(fragmentKey(u.src.slice(0, 8))));
    lin = { ...lin, uops: mmasLast(lin.uops, ldmOf) };
    this.fragmentFirst = new Map();
    let run: UOp[] = [];
    for (const u of [...lin.uops, null]) {
      if (u && u.op === Ops.WMMA && ldmOf(u)) run.push(u);
      if (!u || u.op === Ops.RANGE || u.op === Ops.END) {
        if (run.length) this.fragmentFirst.set(run[0], run);
        run = [];
      }
    }
    // HIP renders through this class too; its vector types need hip headers
    const plain = Object.getPrototypeOf(this) === CUDARenderer.prototype;
    this.words = plain ? planWideLoads(lin) : new Map();
    this.wideStores = planWideStores(lin, this.words);
    this.packed = plain ? planPackedStores(lin, (u) => this.wideStores.has(u)) : new Map();
    this.packedParts = new Map();
    // ldmatrix reads 16-byte rows: its arrays are aligned as for wide accesses
    const ldmLoads = plain
      ? lin.uops.filter((u) =>
        u.op === Ops.WMMA &&
        [[0, 8], [8, 4]].some(([f, n]) => this.fragments.has(fragmentKey(u.src.slice(f, f + n))))
      ).flatMap((u) => [u.src[0], u.src[8]])
      : [];
    if (!plain) this.fragments = new Map();
    // the element loads an ldmatrix replaces stay in the source, unused (nvcc drops them):
    // without them ptxas allocated 183 registers instead of 166 on sm_90 and the 4096^3 kernel
    // ran at 187 instead of 202 TFLOP/s on an H100 (2 blocks per SM instead of 3)
    this.wideShared = new Set(
      [...this.words.keys(), ...this.wideStores.keys(), ...ldmLoads].map((u) => u.src[0].src[0])
        .filter((b) => b.op === Ops.DEFINE_LOCAL).map((b) => `smem${(b.arg as [number])[0]}`),
    );
    this.wordNames = new Map();
    this.bits = new Map();
    this.asyncWords = new Map();
    for (const [u, wide] of this.wideStores) {
      if (u.arg === STORE_ASYNC && u.src[1].src[0].src[0].op === Ops.DEFINE_GLOBAL) {
        this.asyncWords.set(wide.word, null);
      }
    }
    this.planShared(lin.uops);
    this.unrolled = new Set();
    for (const u of lin.uops) {
      const r = u.op === Ops.WMMA && this.rowAddrs.has(fragmentKey(u.src.slice(0, 8)))
        ? lin.block.get(u)
        : null;
      if (r && r.src[0].op === Ops.CONST && (r.src[0].arg as number) <= MAX_UNROLL) {
        const [id, t] = r.arg as [number, AxisType];
        this.unrolled.add(`${axisLetter[t]}idx${id}`);
      }
    }
    return super.render({ ...inp, lin });
  }
}

/** the longest loop around mmas that is unrolled */
const MAX_UNROLL = 8;

/** static shared memory a block may declare; more is dynamic (sm_70 and newer allow it) */
const STATIC_SHARED = 48 * 1024;

const wordType = (bytes: number): string =>
  bytes === 16 ? "uint4" : bytes === 8 ? "uint2" : "unsigned";

/** an mma operand's element loads */
const fragmentKey = (us: readonly UOp[]): string => us.map((x) => x.id).join(",");

/** the WMMAs of one mma share their 12 operands */
const wmmaKey = (u: UOp): string => u.src.slice(0, 12).map((x) => x.id).join(",");

/**
 * the accumulator (a DEFINE_REG, rendered acc<id>) of each element of each mma, where every
 * element of it adds into one: read before the mma, so all four are known when the first
 * element is met
 */
function accumulatorsOf(uops: readonly UOp[]): Map<string, string[]> {
  const groups = new Map<string, (string | undefined)[]>();
  for (const u of uops) {
    if (u.op !== Ops.WMMA) continue;
    const key = wmmaKey(u), accs = groups.get(key) ?? [undefined, undefined, undefined, undefined];
    groups.set(key, accs);
    const reg = u.src[13]?.src[0]?.src[0];
    if (reg?.op === Ops.DEFINE_REG && u.src[12].op === Ops.CONST) {
      accs[u.src[12].arg as number] = `acc${(reg.arg as [number])[0]}`;
    }
  }
  const out = new Map<string, string[]>();
  for (const [k, accs] of groups) {
    if (accs.every((a) => a !== undefined)) out.set(k, accs as string[]);
  }
  return out;
}

/**
 * `uops` with each straight run of a loop body that holds mmas on ldmatrix fragments reordered:
 * what does not depend on an mma of the run first, then the mmas and their users (a stable
 * partition: dependencies keep their order). The fragments are all loaded before the first mma
 * (wmma: fragmentFirst) instead of each right before its own, where the mma would wait for it.
 */
function mmasLast(uops: readonly UOp[], ldm: (u: UOp) => boolean): UOp[] {
  const out: UOp[] = [];
  let run: UOp[] = [];
  const flush = () => {
    if (run.some((u) => u.op === Ops.WMMA && ldm(u))) {
      const late = new Set<UOp>();
      for (const u of run) if (u.op === Ops.WMMA || u.src.some((x) => late.has(x))) late.add(u);
      out.push(...run.filter((u) => !late.has(u)), ...run.filter((u) => late.has(u)));
    } else out.push(...run);
    run = [];
  };
  for (const u of uops) {
    if (u.op === Ops.RANGE || u.op === Ops.END) {
      flush();
      out.push(u);
    } else run.push(u);
  }
  flush();
  return out;
}

/** the linear program with nodes replaced by `sub` and every user rebuilt on the new nodes */
function substituteLinear(lin: LinearProgram, sub: Map<UOp, UOp>): LinearProgram {
  const m = new Map(sub);
  const get = (u: UOp) => m.get(u) ?? u;
  const uops = lin.uops.map((u) => {
    if (m.has(u)) return m.get(u)!;
    const nu = u.src.some((s) => m.has(s)) ? u.replace({ src: u.src.map(get) }) : u;
    if (nu !== u) m.set(u, nu);
    return nu;
  });
  const block = new Map<UOp, UOp | null>();
  for (const [u, b] of lin.block) block.set(get(u), b && get(b));
  return { ...lin, uops, block };
}
