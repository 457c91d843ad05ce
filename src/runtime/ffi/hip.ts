// libamdhip64 (AMD's HIP runtime) through Deno.dlopen. Opened on first use, never at import, so a
// machine without ROCm only learns that when it asks for the AMD device. Every hipError_t other
// than hipSuccess becomes a HipError carrying hipGetErrorName's name.
import { openFirst, outInt } from "./libcuda.ts";

const SYMBOLS = {
  hipInit: { parameters: ["u32"], result: "i32" },
  hipDriverGetVersion: { parameters: ["buffer"], result: "i32" },
  hipRuntimeGetVersion: { parameters: ["buffer"], result: "i32" },
  hipGetDeviceCount: { parameters: ["buffer"], result: "i32" },
  hipSetDevice: { parameters: ["i32"], result: "i32" },
  hipDeviceGetName: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  hipDeviceGetAttribute: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  hipDeviceTotalMem: { parameters: ["buffer", "i32"], result: "i32" },
  // ROCm 6 renamed the struct's layout (R0600) and kept the old entry point for old binaries;
  // gcnArchName is found by content (hipDeviceArchName), so either layout will do
  hipGetDeviceProperties: { parameters: ["buffer", "i32"], result: "i32" },
  hipGetDevicePropertiesR0600: { parameters: ["buffer", "i32"], result: "i32", optional: true },
  hipDeviceSynchronize: { parameters: [], result: "i32" },
  hipMalloc: { parameters: ["buffer", "usize"], result: "i32" },
  hipFree: { parameters: ["u64"], result: "i32" },
  hipMemGetInfo: { parameters: ["buffer", "buffer"], result: "i32" },
  hipMemcpyHtoD: { parameters: ["u64", "buffer", "usize"], result: "i32" },
  hipMemcpyDtoH: { parameters: ["buffer", "u64", "usize"], result: "i32" },
  hipMemcpyDtoD: { parameters: ["u64", "u64", "usize"], result: "i32" },
  hipModuleLoadData: { parameters: ["buffer", "buffer"], result: "i32" },
  hipModuleGetFunction: { parameters: ["buffer", "pointer", "buffer"], result: "i32" },
  hipModuleLaunchKernel: {
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
  hipEventCreate: { parameters: ["buffer"], result: "i32" },
  hipEventRecord: { parameters: ["pointer", "pointer"], result: "i32" },
  hipEventSynchronize: { parameters: ["pointer"], result: "i32" },
  hipEventElapsedTime: { parameters: ["buffer", "pointer", "pointer"], result: "i32" },
  hipEventDestroy: { parameters: ["pointer"], result: "i32" },
  hipGetErrorName: { parameters: ["i32"], result: "pointer" },
} as const;

export type HipSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** hipError_t values the runtime reacts to */
export const hipErrorOutOfMemory = 2;

/** hipDeviceAttribute_t values used here (the numbering of ROCm 5.0 and later) */
export const HipAttr = {
  MAX_THREADS_PER_BLOCK: 56,
  MULTIPROCESSOR_COUNT: 63,
  WARP_SIZE: 87,
} as const;

export class HipError extends Error {
  constructor(readonly call: string, readonly code: number, readonly errorName: string) {
    super(`${call} failed: ${errorName} (hipError_t ${code})`);
  }
}

export function env(k: string): string | undefined {
  try {
    return Deno.env.get(k) || undefined;
  } catch {
    return undefined;
  }
}

/** the directories ROCm installs to: ROCM_PATH, /opt/rocm, then Debian's multiarch dir */
export function rocmLibDirs(): string[] {
  const rocm = env("ROCM_PATH");
  return [...(rocm ? [`${rocm}/lib`] : []), "/opt/rocm/lib", "/usr/lib/x86_64-linux-gnu"];
}

const HIP_NAMES = ["libamdhip64.so", "libamdhip64.so.6", "libamdhip64.so.5"];

/** where libamdhip64 may be: TG_HIP_PATH, the linker's search, then the usual ROCm paths */
export function libhipCandidates(): string[] {
  const own = env("TG_HIP_PATH");
  return [
    ...(own ? [own] : []),
    ...HIP_NAMES,
    ...rocmLibDirs().flatMap((d) => HIP_NAMES.map((n) => `${d}/${n}`)),
  ];
}

/** the gcnArchName field ("gfx90a:sramecc+:xnack-") of a hipDeviceProp_t of either layout */
export function hipDeviceArchName(props: Uint8Array): string | null {
  const text = new TextDecoder("latin1").decode(props);
  // the name field comes first and may itself start with "gfx": take the last match
  const all = [...text.matchAll(/(?<=\0|^)gfx[0-9a-f]{3,4}(?::[a-z-]+[+-])*(?=\0)/g)];
  return all.length ? all[all.length - 1][0] : null;
}

export class LibHip {
  readonly sym: HipSymbols;
  readonly path: string;

  private constructor() {
    const { lib, path } = openFirst("libamdhip64 (the HIP runtime)", libhipCandidates(), SYMBOLS);
    this.sym = lib.symbols;
    this.path = path;
  }

  static #instance: LibHip | null = null;
  /** the library, opened and hipInit'ed once per process */
  static get(): LibHip {
    if (LibHip.#instance) return LibHip.#instance;
    const l = new LibHip();
    l.check(l.sym.hipInit(0), "hipInit");
    return LibHip.#instance = l;
  }

  errorName(code: number): string {
    const p = this.sym.hipGetErrorName(code);
    return p === null ? `unknown hipError_t ${code}` : Deno.UnsafePointerView.getCString(p);
  }

  /** throws a HipError unless `code` is hipSuccess */
  check(code: number, call: string): void {
    if (code !== 0) throw new HipError(call, code, this.errorName(code));
  }

  /** the runtime's version number (e.g. 50221153 for ROCm 5.2) */
  version(): number {
    const v = outInt();
    this.check(this.sym.hipRuntimeGetVersion(v), "hipRuntimeGetVersion");
    return v[0];
  }

  /** the device's code-object target, e.g. "gfx1100" (feature flags after ':' dropped) */
  archName(ordinal: number): string {
    // 8 KiB: larger than hipDeviceProp_t of ROCm 5 (about 1.3 KiB) and of ROCm 6
    const props = new Uint8Array(8192);
    const get = this.sym.hipGetDevicePropertiesR0600 ?? this.sym.hipGetDeviceProperties;
    this.check(get(props, ordinal), "hipGetDeviceProperties");
    const full = hipDeviceArchName(props);
    if (!full) throw new Error(`hipGetDeviceProperties: device ${ordinal} reports no gfx target`);
    return full.split(":")[0];
  }
}
