// libcuda (the CUDA driver API) through Deno.dlopen. Opened on first use, never at import, so a
// machine without an NVIDIA driver only learns that when it asks for the CUDA device. Every
// CUresult other than CUDA_SUCCESS becomes a CudaError carrying cuGetErrorName's name.

const SYMBOLS = {
  cuInit: { parameters: ["u32"], result: "i32" },
  cuDriverGetVersion: { parameters: ["buffer"], result: "i32" },
  cuDeviceGetCount: { parameters: ["buffer"], result: "i32" },
  cuDeviceGet: { parameters: ["buffer", "i32"], result: "i32" },
  cuDeviceGetName: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  cuDeviceGetAttribute: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  cuDeviceTotalMem_v2: { parameters: ["buffer", "i32"], result: "i32" },
  cuDevicePrimaryCtxRetain: { parameters: ["buffer", "i32"], result: "i32" },
  cuCtxSetCurrent: { parameters: ["pointer"], result: "i32" },
  cuCtxSynchronize: { parameters: [], result: "i32" },
  cuMemAlloc_v2: { parameters: ["buffer", "usize"], result: "i32" },
  cuMemFree_v2: { parameters: ["u64"], result: "i32" },
  cuMemGetInfo_v2: { parameters: ["buffer", "buffer"], result: "i32" },
  cuMemcpyHtoD_v2: { parameters: ["u64", "buffer", "usize"], result: "i32" },
  cuMemcpyDtoH_v2: { parameters: ["buffer", "u64", "usize"], result: "i32" },
  cuMemcpyDtoD_v2: { parameters: ["u64", "u64", "usize"], result: "i32" },
  cuModuleLoadData: { parameters: ["buffer", "buffer"], result: "i32" },
  cuModuleGetFunction: { parameters: ["buffer", "pointer", "buffer"], result: "i32" },
  cuFuncSetAttribute: { parameters: ["pointer", "i32", "i32"], result: "i32" },
  cuLaunchKernel: {
    // f, grid xyz, block xyz, shared bytes, stream, kernelParams (void**), extra
    parameters: [
      "pointer",
      "u32",
      "u32",
      "u32",
      "u32",
      "u32",
      "u32",
      "u32",
      "pointer",
      "buffer",
      "pointer",
    ],
    result: "i32",
  },
  cuEventCreate: { parameters: ["buffer", "u32"], result: "i32" },
  cuEventRecord: { parameters: ["pointer", "pointer"], result: "i32" },
  cuEventSynchronize: { parameters: ["pointer"], result: "i32" },
  cuEventElapsedTime: { parameters: ["buffer", "pointer", "pointer"], result: "i32" },
  cuEventDestroy_v2: { parameters: ["pointer"], result: "i32" },
  cuGetErrorName: { parameters: ["i32", "buffer"], result: "i32" },
} as const;

export type CudaSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** CUresult values the runtime reacts to */
export const CUDA_ERROR_OUT_OF_MEMORY = 2;

/** CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: a kernel's dynamic shared memory cap */
export const CU_FUNC_MAX_DYNAMIC_SHARED = 8;

/** CUdevice_attribute values used here */
export const CUattr = {
  MAX_THREADS_PER_BLOCK: 1,
  MULTIPROCESSOR_COUNT: 16,
  COMPUTE_CAPABILITY_MAJOR: 75,
  COMPUTE_CAPABILITY_MINOR: 76,
} as const;

export class CudaError extends Error {
  constructor(readonly call: string, readonly code: number, readonly errorName: string) {
    super(`${call} failed: ${errorName} (CUresult ${code})`);
  }
}

function env(k: string): string | undefined {
  try {
    return Deno.env.get(k) || undefined;
  } catch {
    return undefined;
  }
}

/** where libcuda may be: TG_LIBCUDA, then the dynamic linker's search, then usual paths */
export function libcudaCandidates(): string[] {
  const own = env("TG_LIBCUDA");
  return [
    ...(own ? [own] : []),
    "libcuda.so.1",
    "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
    "/usr/lib64/libcuda.so.1",
    "/usr/lib/wsl/lib/libcuda.so.1",
  ];
}

/** dlopen the first of `paths` that opens; the error lists every try (env overrides first) */
export function openFirst<S extends Deno.ForeignLibraryInterface>(
  what: string,
  paths: readonly string[],
  symbols: S,
): { lib: Deno.DynamicLibrary<S>; path: string } {
  let last = "";
  for (const p of paths) {
    try {
      return { lib: Deno.dlopen(p, symbols), path: p };
    } catch (e) {
      last = (e as Error).message.split("\n")[0];
    }
  }
  throw new Error(`${what} not found: tried ${paths.join(", ")} (last error: ${last})`);
}

export class LibCuda {
  readonly sym: CudaSymbols;
  readonly path: string;
  private readonly nameBuf = new BigUint64Array(1);

  private constructor() {
    const { lib, path } = openFirst("libcuda (the NVIDIA driver)", libcudaCandidates(), SYMBOLS);
    this.sym = lib.symbols;
    this.path = path;
  }

  static #instance: LibCuda | null = null;
  /** the library, opened and cuInit'ed once per process */
  static get(): LibCuda {
    if (LibCuda.#instance) return LibCuda.#instance;
    const l = new LibCuda();
    l.check(l.sym.cuInit(0), "cuInit");
    return LibCuda.#instance = l;
  }

  errorName(code: number): string {
    const r = this.sym.cuGetErrorName(code, this.nameBuf);
    const p = Deno.UnsafePointer.create(this.nameBuf[0]);
    if (r !== 0 || p === null) return `unknown CUresult ${code}`;
    return Deno.UnsafePointerView.getCString(p);
  }

  /** throws a CudaError unless `code` is CUDA_SUCCESS */
  check(code: number, call: string): void {
    if (code !== 0) throw new CudaError(call, code, this.errorName(code));
  }
}

/** an out-parameter of one pointer-sized value */
export const outPtr = (): BigUint64Array => new BigUint64Array(1);
/** an out-parameter of one int */
export const outInt = (): Int32Array => new Int32Array(1);
/** a NUL-terminated C string */
export const cstr = (s: string): Uint8Array => new TextEncoder().encode(s + "\0");
