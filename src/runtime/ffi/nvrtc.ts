// libnvrtc (NVIDIA's runtime compiler) through Deno.dlopen: CUDA C source to CUBIN. Opened on
// first use. Every nvrtcResult other than NVRTC_SUCCESS becomes an error carrying
// nvrtcGetErrorString's name; a failed compile carries the program log.
import { cstr, openFirst, outInt, outPtr } from "./libcuda.ts";

const SYMBOLS = {
  nvrtcVersion: { parameters: ["buffer", "buffer"], result: "i32" },
  nvrtcGetErrorString: { parameters: ["i32"], result: "pointer" },
  nvrtcCreateProgram: {
    parameters: ["buffer", "buffer", "buffer", "i32", "pointer", "pointer"],
    result: "i32",
  },
  nvrtcCompileProgram: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
  nvrtcGetProgramLogSize: { parameters: ["pointer", "buffer"], result: "i32" },
  nvrtcGetProgramLog: { parameters: ["pointer", "buffer"], result: "i32" },
  nvrtcGetCUBINSize: { parameters: ["pointer", "buffer"], result: "i32" },
  nvrtcGetCUBIN: { parameters: ["pointer", "buffer"], result: "i32" },
  nvrtcDestroyProgram: { parameters: ["buffer"], result: "i32" },
} as const;

const NVRTC_ERROR_COMPILATION = 6;

export class NvrtcError extends Error {
  constructor(
    readonly call: string,
    readonly code: number,
    readonly errorName: string,
    readonly log = "",
  ) {
    super(`${call} failed: ${errorName} (nvrtcResult ${code})${log ? `\n${log}` : ""}`);
  }
}

function env(k: string): string | undefined {
  try {
    return Deno.env.get(k) || undefined;
  } catch {
    return undefined;
  }
}

/** where libnvrtc may be: TG_LIBNVRTC, CUDA_PATH, the linker's search, then usual paths */
export function libnvrtcCandidates(): string[] {
  const own = env("TG_LIBNVRTC"), cudaPath = env("CUDA_PATH");
  const names = ["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2"];
  const dirs = [
    ...(cudaPath ? [`${cudaPath}/lib64`, `${cudaPath}/lib`] : []),
    "/usr/local/cuda/lib64",
    "/usr/local/cuda/targets/x86_64-linux/lib",
    "/usr/lib/x86_64-linux-gnu",
  ];
  return [
    ...(own ? [own] : []),
    ...names,
    ...dirs.flatMap((d) => names.map((n) => `${d}/${n}`)),
  ];
}

export class LibNvrtc {
  readonly sym: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
  readonly path: string;
  readonly version: string;

  private constructor() {
    const { lib, path } = openFirst(
      "libnvrtc (CUDA's runtime compiler)",
      libnvrtcCandidates(),
      SYMBOLS,
    );
    this.sym = lib.symbols;
    this.path = path;
    const major = outInt(), minor = outInt();
    this.check(this.sym.nvrtcVersion(major, minor), "nvrtcVersion");
    this.version = `${major[0]}.${minor[0]}`;
  }

  static #instance: LibNvrtc | null = null;
  static get(): LibNvrtc {
    return LibNvrtc.#instance ??= new LibNvrtc();
  }

  errorName(code: number): string {
    const p = this.sym.nvrtcGetErrorString(code);
    return p === null ? `unknown nvrtcResult ${code}` : Deno.UnsafePointerView.getCString(p);
  }

  check(code: number, call: string, log = ""): void {
    if (code !== 0) throw new NvrtcError(call, code, this.errorName(code), log);
  }

  /** compile `src` with `options` (e.g. --gpu-architecture=sm_90) to a CUBIN */
  compileToCubin(src: string, name: string, options: readonly string[]): Uint8Array {
    const progOut = outPtr();
    this.check(
      this.sym.nvrtcCreateProgram(progOut, cstr(src), cstr(`${name}.cu`), 0, null, null),
      "nvrtcCreateProgram",
    );
    const prog = Deno.UnsafePointer.create(progOut[0]);
    try {
      // char** of the options: keep the strings alive until the call returns
      const strs = options.map(cstr);
      const ptrs = new BigUint64Array(strs.length);
      strs.forEach((s, i) => ptrs[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(s))));
      const r = this.sym.nvrtcCompileProgram(prog, strs.length, ptrs);
      if (r !== 0) {
        this.check(r, "nvrtcCompileProgram", r === NVRTC_ERROR_COMPILATION ? this.log(prog) : "");
      }
      const size = outPtr();
      this.check(this.sym.nvrtcGetCUBINSize(prog, size), "nvrtcGetCUBINSize");
      const cubin = new Uint8Array(Number(size[0]));
      this.check(this.sym.nvrtcGetCUBIN(prog, cubin), "nvrtcGetCUBIN");
      return cubin;
    } finally {
      this.sym.nvrtcDestroyProgram(progOut);
    }
  }

  private log(prog: Deno.PointerValue): string {
    const size = outPtr();
    if (this.sym.nvrtcGetProgramLogSize(prog, size) !== 0) return "";
    const buf = new Uint8Array(Number(size[0]));
    if (this.sym.nvrtcGetProgramLog(prog, buf) !== 0) return "";
    return new TextDecoder().decode(buf).replace(/\0+$/, "").trim();
  }
}
