// Compiling HIP source for an AMD gfx target without a GPU: amd_comgr (src/runtime/ffi/comgr.ts)
// with hiprtc's runtime header, or hiprtc itself where comgr cannot be opened. Every code object
// built is checked to be for the card's target (codeObjectTarget).
import { numbered } from "./js.ts";
import { HiprtcError, hiprtcRuntimeHeader, LibHiprtc } from "./ffi/hiprtc.ts";
import { Action, ComgrError, LibComgr } from "./ffi/comgr.ts";

export interface AmdCompiler {
  readonly arch: string;
  /** everything that decides the bytes besides the source: the disk cache's key */
  readonly identity: string;
  compile(src: string, name: string): Uint8Array;
}

/** hiprtc to an AMDGPU code object for one gfx target */
export class HiprtcCompiler implements AmdCompiler {
  readonly options: string[];
  constructor(private readonly rtc: LibHiprtc, readonly arch: string) {
    // -ffp-contract=off: a*b+c rounds twice, as on the CPU device and in the reference values
    this.options = [`--offload-arch=${arch}`, "-O3", "-ffp-contract=off"];
  }
  get identity(): string {
    return JSON.stringify(["hiprtc", this.rtc.path, this.rtc.version, this.options]);
  }
  compile(src: string, name: string): Uint8Array {
    try {
      return this.rtc.compileToCode(src, name, this.options);
    } catch (e) {
      if (!(e instanceof HiprtcError)) throw e;
      throw new Error(
        `HIP compile of kernel '${name}' failed (hiprtc ${this.rtc.version}, ` +
          `${this.options.join(" ")}): ${e.message}\n--- source ---\n${numbered(src)}`,
        { cause: e },
      );
    }
  }
}

/** what comgr is asked for to compile for `arch` */
export interface ComgrTarget {
  /** the action info's ISA name: comgr picks the device libraries by it */
  isa: string;
  /** the table ISA standing in for `arch`, whose code clang retargets; null if comgr knows arch */
  standIn: string | null;
}

const ISA_PREFIX = "amdgcn-amd-amdhsa--";
/** for a family comgr's table lacks, the member whose device libraries serve it (same wave size) */
const STAND_INS: [RegExp, string][] = [[/^gfx1[01]\d/, "gfx1030"], [/^gfx9/, "gfx90a"]];

/**
 * the ISA to give comgr for `arch`, given the ISA names its table has. ROCm 5.2's comgr refuses
 * a name outside its table (gfx1100, gfx942) with AMD_COMGR_STATUS_ERROR_INVALID_ARGUMENT while
 * its LLVM 15 generates code for gfx1100: such a target compiles as its family's stand-in with
 * clang told the real target, so the code object is the real target's (its ELF header and
 * metadata say so) linked against the stand-in's device libraries, which differ only in the ISA
 * version constant ocml/ockl test for features. A target LLVM does not know fails in clang.
 */
export function comgrTarget(arch: string, known: readonly string[]): ComgrTarget {
  if (known.includes(ISA_PREFIX + arch)) return { isa: ISA_PREFIX + arch, standIn: null };
  const standIn = STAND_INS.find(([re]) => re.test(arch))?.[1];
  if (!standIn || !known.includes(ISA_PREFIX + standIn)) {
    throw new Error(
      `amd_comgr knows no ISA ${arch} nor a stand-in of its family; it knows ` +
        known.map((k) => k.slice(ISA_PREFIX.length)).join(", "),
    );
  }
  return { isa: ISA_PREFIX + standIn, standIn };
}

/**
 * amd_comgr to an AMDGPU code object for one gfx target, by the actions ROCm 5's hiprtc runs
 * inside it: HIP source (against hiprtc's runtime header) to bitcode, the device libraries added
 * and linked, code generated, linked to an executable. (comgr 2.4's one-step
 * COMPILE_SOURCE_WITH_DEVICE_LIBS_TO_BC links no device library for HIP: lld then misses
 * __ocml_exp_f32.) Unlike hiprtc it fails with an error, never an abort, on a target its table
 * lacks. One difference from Debian's hiprtc: sqrtf is correctly rounded, as in hipcc and on the
 * CPU device, where that hiprtc emits the bare v_sqrt_f32.
 */
export class ComgrCompiler implements AmdCompiler {
  readonly target: ComgrTarget;
  readonly steps: readonly { action: number; options: readonly string[] }[];
  constructor(
    private readonly comgr: LibComgr,
    private readonly header: { path: string; bytes: Uint8Array },
    readonly arch: string,
  ) {
    const t = this.target = comgrTarget(arch, comgr.isaNames());
    const retarget = t.standIn ? [`--no-offload-arch=${t.standIn}`, `--offload-arch=${arch}`] : [];
    // -ffp-contract=off in codegen too: the backend would otherwise fuse a*b+c on its own
    const fp = "-ffp-contract=off";
    this.steps = [
      {
        action: Action.COMPILE_SOURCE_TO_BC,
        options: [
          "-O3",
          fp,
          "-std=c++14",
          "-nogpuinc",
          "-D__HIPCC_RTC__",
          "-Wno-gnu-line-marker",
          "-include",
          "hiprtc_runtime.h",
          ...retarget,
        ],
      },
      {
        // HIP's defaults: IEEE sqrt, denormals kept; gfx9 runs 64-wide waves, gfx10+ 32
        action: Action.ADD_DEVICE_LIBRARIES,
        options: ["correctly_rounded_sqrt", ...(/^gfx9/.test(arch) ? ["wavefrontsize64"] : [])],
      },
      { action: Action.LINK_BC_TO_BC, options: [] },
      {
        action: Action.CODEGEN_BC_TO_RELOCATABLE,
        // internalized, the device libraries' functions inline and the unused ones go
        options: [
          "-O3",
          fp,
          "-mllvm",
          "-amdgpu-internalize-symbols",
          ...(t.standIn ? [`-mcpu=${arch}`] : []),
        ],
      },
      { action: Action.LINK_RELOCATABLE_TO_EXECUTABLE, options: [] },
    ];
  }
  get identity(): string {
    return JSON.stringify([
      "comgr",
      this.comgr.path,
      this.comgr.version,
      this.header.path,
      this.header.bytes.length,
      this.target.isa,
      this.steps,
    ]);
  }
  compile(src: string, name: string): Uint8Array {
    let code: Uint8Array;
    try {
      code = this.comgr.compile({
        src,
        name,
        isa: this.target.isa,
        includes: [{ name: "hiprtc_runtime.h", bytes: this.header.bytes }],
        steps: this.steps,
      });
    } catch (e) {
      if (!(e instanceof ComgrError)) throw e;
      throw new Error(
        `HIP compile of kernel '${name}' for ${this.arch} failed (amd_comgr ${this.comgr.version}` +
          `${this.target.standIn ? ` via ${this.target.standIn}'s device libraries` : ""}): ` +
          `${e.message}\n--- source ---\n${numbered(src)}`,
        { cause: e },
      );
    }
    // a stand-in's target left in the code object would load on no card of `arch`
    const built = codeObjectTarget(code);
    if (built !== this.arch.split(":")[0]) {
      throw new Error(
        `amd_comgr ${this.comgr.version} built kernel '${name}' for ${built}, not ${this.arch}`,
      );
    }
    return code;
  }
}

/** e_machine of an AMDGPU ELF file */
export const EM_AMDGPU = 224;

/**
 * the target an AMDGPU code object was built for ("gfx1100"), from its ELF header and its
 * metadata's amdhsa.target; throws if the bytes are not a 64-bit AMDGPU ELF file naming one
 */
export function codeObjectTarget(code: Uint8Array): string {
  const elf = code.length > 64 && code[0] === 0x7f && code[1] === 0x45 && code[2] === 0x4c &&
    code[3] === 0x46 && code[4] === 2;
  const machine = elf ? new DataView(code.buffer, code.byteOffset).getUint16(18, true) : -1;
  if (machine !== EM_AMDGPU) {
    throw new Error(
      `not an AMDGPU code object (${elf ? `e_machine ${machine}` : "no 64-bit ELF header"})`,
    );
  }
  const m = new TextDecoder("latin1").decode(code).match(/amdgcn-amd-amdhsa--(gfx[0-9a-f]+)/);
  if (!m) throw new Error("the AMDGPU code object names no amdgcn-amd-amdhsa target");
  return m[1];
}

/**
 * the compiler for `arch`: amd_comgr where it and hiprtc's header open (one path for every target,
 * and failures are errors), else hiprtc itself
 */
export function amdCompiler(arch: string): AmdCompiler {
  let comgr: LibComgr;
  let header: { path: string; bytes: Uint8Array };
  try {
    comgr = LibComgr.get();
    header = hiprtcRuntimeHeader();
  } catch (e) {
    try {
      return new HiprtcCompiler(LibHiprtc.get(), arch);
    } catch (e2) {
      throw new Error(
        `no HIP compiler: ${(e as Error).message}; and ${(e2 as Error).message}`,
      );
    }
  }
  return new ComgrCompiler(comgr, header, arch);
}
