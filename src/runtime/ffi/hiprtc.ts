// hiprtc (HIP's runtime compiler) through Deno.dlopen: HIP C source to an AMDGPU code object.
// Opened on first use. ROCm 6 ships it as libhiprtc; ROCm 5 exports it from libamdhip64 itself.
// It needs no GPU. Every hiprtcResult other than HIPRTC_SUCCESS becomes a HiprtcError carrying
// hiprtcGetErrorString's name; a failed compile carries the program log.
import { cstr, openFirst, outInt, outPtr } from "./libcuda.ts";
import { env, libhipCandidates, rocmLibDirs } from "./hip.ts";

const SYMBOLS = {
  hiprtcVersion: { parameters: ["buffer", "buffer"], result: "i32" },
  hiprtcGetErrorString: { parameters: ["i32"], result: "pointer" },
  hiprtcCreateProgram: {
    parameters: ["buffer", "buffer", "buffer", "i32", "pointer", "pointer"],
    result: "i32",
  },
  hiprtcCompileProgram: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
  hiprtcGetProgramLogSize: { parameters: ["pointer", "buffer"], result: "i32" },
  hiprtcGetProgramLog: { parameters: ["pointer", "buffer"], result: "i32" },
  hiprtcGetCodeSize: { parameters: ["pointer", "buffer"], result: "i32" },
  hiprtcGetCode: { parameters: ["pointer", "buffer"], result: "i32" },
  hiprtcDestroyProgram: { parameters: ["buffer"], result: "i32" },
} as const;

const HIPRTC_ERROR_COMPILATION = 6;

export class HiprtcError extends Error {
  constructor(
    readonly call: string,
    readonly code: number,
    readonly errorName: string,
    readonly log = "",
  ) {
    super(`${call} failed: ${errorName} (hiprtcResult ${code})${log ? `\n${log}` : ""}`);
  }
}

const NAMES = ["libhiprtc.so", "libhiprtc.so.6"];

/** where hiprtc may be: TG_HIPRTC_PATH, libhiprtc (ROCm 6), then libamdhip64 (ROCm 5) */
export function libhiprtcCandidates(): string[] {
  const own = env("TG_HIPRTC_PATH");
  return [
    ...(own ? [own] : []),
    ...NAMES,
    ...rocmLibDirs().flatMap((d) => NAMES.map((n) => `${d}/${n}`)),
    ...libhipCandidates(),
  ];
}

export class LibHiprtc {
  readonly sym: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
  readonly path: string;
  readonly version: string;

  private constructor() {
    const { lib, path } = openFirst(
      "hiprtc (HIP's runtime compiler)",
      libhiprtcCandidates(),
      SYMBOLS,
    );
    this.sym = lib.symbols;
    this.path = path;
    const major = outInt(), minor = outInt();
    this.check(this.sym.hiprtcVersion(major, minor), "hiprtcVersion");
    this.version = `${major[0]}.${minor[0]}`;
  }

  static #instance: LibHiprtc | null = null;
  static get(): LibHiprtc {
    return LibHiprtc.#instance ??= new LibHiprtc();
  }

  errorName(code: number): string {
    const p = this.sym.hiprtcGetErrorString(code);
    return p === null ? `unknown hiprtcResult ${code}` : Deno.UnsafePointerView.getCString(p);
  }

  check(code: number, call: string, log = ""): void {
    if (code !== 0) throw new HiprtcError(call, code, this.errorName(code), log);
  }

  /**
   * compile `src` with `options` (e.g. --offload-arch=gfx90a) to a code object. A target the
   * library's LLVM does not know aborts the process in ROCm 5.2's comgr rather than failing:
   * callers that try targets speculatively do it in a child process.
   */
  compileToCode(src: string, name: string, options: readonly string[]): Uint8Array {
    const progOut = outPtr();
    this.check(
      this.sym.hiprtcCreateProgram(progOut, cstr(src), cstr(`${name}.hip`), 0, null, null),
      "hiprtcCreateProgram",
    );
    const prog = Deno.UnsafePointer.create(progOut[0]);
    try {
      // char** of the options: keep the strings alive until the call returns
      const strs = options.map(cstr);
      const ptrs = new BigUint64Array(Math.max(1, strs.length));
      strs.forEach((s, i) => ptrs[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(s))));
      const r = this.sym.hiprtcCompileProgram(prog, strs.length, ptrs);
      if (r !== 0) {
        this.check(r, "hiprtcCompileProgram", r === HIPRTC_ERROR_COMPILATION ? this.log(prog) : "");
      }
      const size = outPtr();
      this.check(this.sym.hiprtcGetCodeSize(prog, size), "hiprtcGetCodeSize");
      const code = new Uint8Array(Number(size[0]));
      this.check(this.sym.hiprtcGetCode(prog, code), "hiprtcGetCode");
      return code;
    } finally {
      this.sym.hiprtcDestroyProgram(progOut);
    }
  }

  private log(prog: Deno.PointerValue): string {
    const size = outPtr();
    if (this.sym.hiprtcGetProgramLogSize(prog, size) !== 0) return "";
    const buf = new Uint8Array(Number(size[0]));
    if (this.sym.hiprtcGetProgramLog(prog, buf) !== 0) return "";
    return new TextDecoder().decode(buf).replace(/\0+$/, "").trim();
  }
}

const BUILTINS = ["libhiprtc-builtins.so", "libhiprtc-builtins.so.6", "libhiprtc-builtins.so.5"];

/** where hiprtc's built-in header may be: TG_HIPRTC_BUILTINS_PATH, then the usual ROCm paths */
export function libhiprtcBuiltinsCandidates(): string[] {
  const own = env("TG_HIPRTC_BUILTINS_PATH");
  return [
    ...(own ? [own] : []),
    ...BUILTINS,
    ...rocmLibDirs().flatMap((d) => BUILTINS.map((n) => `${d}/${n}`)),
  ];
}

/** hiprtc_runtime.h as hiprtc compiles against it */
export interface HiprtcHeader {
  /** the library it came from */
  path: string;
  bytes: Uint8Array;
}

let header: HiprtcHeader | null = null;

/**
 * the HIP runtime header (blockIdx, __global__, expf and the rest) that hiprtc -includes in
 * every program: libhiprtc-builtins exports it as the char array __hipRTC_header. Compiling
 * through amd_comgr directly (src/runtime/ffi/comgr.ts) needs the same header to accept the
 * same source.
 */
export function hiprtcRuntimeHeader(): HiprtcHeader {
  if (header) return header;
  const { lib, path } = openFirst(
    "libhiprtc-builtins (hiprtc's HIP runtime header)",
    libhiprtcBuiltinsCandidates(),
    {
      // a static of type pointer reads as the symbol's address: here, the array's first char
      __hipRTC_header: { type: "pointer" },
      __hipRTC_header_size: { type: "u32" },
    } as const,
  );
  try {
    const at = lib.symbols.__hipRTC_header as Deno.PointerValue;
    const size = lib.symbols.__hipRTC_header_size as number;
    if (at === null || !(size > 0)) throw new Error(`${path}: __hipRTC_header is empty`);
    const bytes = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(at, size)).slice();
    let end = bytes.length;
    while (end > 0 && bytes[end - 1] === 0) end--;
    return header = { path, bytes: bytes.subarray(0, end) };
  } finally {
    lib.close();
  }
}
