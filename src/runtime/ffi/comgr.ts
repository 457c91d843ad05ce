// amd_comgr (ROCm's code object manager) through Deno.dlopen: the compiler library under hiprtc,
// called directly. Opened on first use; needs no GPU. Every amd_comgr_status_t other than
// AMD_COMGR_STATUS_SUCCESS becomes a ComgrError carrying amd_comgr_status_string's name and,
// for a failed action, the log the action left in its result set.
//
// Handles (amd_comgr_data_t and friends) are structs of one uint64_t passed by value, which the
// x86-64 and AArch64 calling conventions pass exactly like a uint64_t: they are bound as u64.
import { cstr, openFirst, outPtr } from "./libcuda.ts";
import { pinLoaded } from "./pin.ts";
import { env, rocmLibDirs } from "./hip.ts";

const SYMBOLS = {
  amd_comgr_get_version: { parameters: ["buffer", "buffer"], result: "void" },
  amd_comgr_status_string: { parameters: ["i32", "buffer"], result: "i32" },
  amd_comgr_get_isa_count: { parameters: ["buffer"], result: "i32" },
  amd_comgr_get_isa_name: { parameters: ["usize", "buffer"], result: "i32" },
  amd_comgr_create_data: { parameters: ["i32", "buffer"], result: "i32" },
  amd_comgr_release_data: { parameters: ["u64"], result: "i32" },
  amd_comgr_set_data: { parameters: ["u64", "usize", "buffer"], result: "i32" },
  amd_comgr_set_data_name: { parameters: ["u64", "buffer"], result: "i32" },
  amd_comgr_get_data: { parameters: ["u64", "buffer", "buffer"], result: "i32" },
  amd_comgr_create_data_set: { parameters: ["buffer"], result: "i32" },
  amd_comgr_destroy_data_set: { parameters: ["u64"], result: "i32" },
  amd_comgr_data_set_add: { parameters: ["u64", "u64"], result: "i32" },
  amd_comgr_action_data_count: { parameters: ["u64", "i32", "buffer"], result: "i32" },
  amd_comgr_action_data_get_data: {
    parameters: ["u64", "i32", "usize", "buffer"],
    result: "i32",
  },
  amd_comgr_create_action_info: { parameters: ["buffer"], result: "i32" },
  amd_comgr_destroy_action_info: { parameters: ["u64"], result: "i32" },
  amd_comgr_action_info_set_isa_name: { parameters: ["u64", "buffer"], result: "i32" },
  amd_comgr_action_info_set_language: { parameters: ["u64", "i32"], result: "i32" },
  amd_comgr_action_info_set_option_list: {
    parameters: ["u64", "buffer", "usize"],
    result: "i32",
  },
  amd_comgr_action_info_set_logging: { parameters: ["u64", "bool"], result: "i32" },
  amd_comgr_do_action: { parameters: ["i32", "u64", "u64", "u64"], result: "i32" },
} as const;

type Sym = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** amd_comgr_data_kind_t (amd_comgr.h of interface 2.x) */
export const DataKind = {
  SOURCE: 0x1,
  INCLUDE: 0x2,
  LOG: 0x5,
  BC: 0x6,
  RELOCATABLE: 0x7,
  EXECUTABLE: 0x8,
} as const;

/** amd_comgr_action_kind_t (amd_comgr.h of interface 2.x) */
export const Action = {
  COMPILE_SOURCE_TO_BC: 0x2,
  ADD_DEVICE_LIBRARIES: 0x3,
  LINK_BC_TO_BC: 0x4,
  CODEGEN_BC_TO_RELOCATABLE: 0x6,
  LINK_RELOCATABLE_TO_EXECUTABLE: 0x9,
} as const;

/** amd_comgr_status_t by value */
const STATUS: Record<number, string> = {
  1: "AMD_COMGR_STATUS_ERROR",
  2: "AMD_COMGR_STATUS_ERROR_INVALID_ARGUMENT",
  3: "AMD_COMGR_STATUS_ERROR_OUT_OF_RESOURCES",
};

/** amd_comgr_language_t */
export const LANGUAGE_HIP = 0x4;

export class ComgrError extends Error {
  constructor(
    readonly call: string,
    readonly code: number,
    readonly statusName: string,
    readonly log = "",
  ) {
    super(`${call} failed: ${statusName} (amd_comgr_status_t ${code})${log ? `\n${log}` : ""}`);
  }
}

// interface 2 only: the enum values above are amd_comgr.h's of 2.x (ROCm 5 and 6)
const NAMES = ["libamd_comgr.so.2", "libamd_comgr.so"];

/** where amd_comgr may be: TG_COMGR_PATH, the linker's search, then the usual ROCm paths */
export function libcomgrCandidates(): string[] {
  const own = env("TG_COMGR_PATH");
  return [
    ...(own ? [own] : []),
    ...NAMES,
    ...rocmLibDirs().flatMap((d) => NAMES.map((n) => `${d}/${n}`)),
  ];
}

const decoder = new TextDecoder();

// comgr stays loaded once opened (pin.ts): a Deno worker that ends closes the libraries it
// opened; comgr unloaded and loaded again registers its LLVM command-line options a second time
// in the libLLVM that stayed loaded, and LLVM aborts the process ("Option 'disassemble'
// registered more than once!").

/** one compile: source, the headers it may include by name, and the actions to run */
export interface ComgrJob {
  src: string;
  /** the source's file name, without extension (it names the kernel in diagnostics) */
  name: string;
  /** the action info's ISA name, e.g. "amdgcn-amd-amdhsa--gfx90a" */
  isa: string;
  includes?: readonly { name: string; bytes: Uint8Array }[];
  /** run in order, each one's result set the next one's input; each with its own options */
  steps: readonly { action: number; options: readonly string[] }[];
}

export class LibComgr {
  readonly sym: Sym;
  readonly path: string;
  /** the interface version, e.g. "2.4" (ROCm 5.2) */
  readonly version: string;

  private constructor() {
    const { lib, path } = openFirst(
      "amd_comgr (ROCm's code object manager)",
      libcomgrCandidates(),
      SYMBOLS,
    );
    pinLoaded(path);
    this.sym = lib.symbols;
    this.path = path;
    const major = outPtr(), minor = outPtr();
    this.sym.amd_comgr_get_version(major, minor);
    this.version = `${major[0]}.${minor[0]}`;
    if (major[0] !== 2n) {
      throw new Error(
        `amd_comgr at ${path} has interface ${this.version}; tg speaks interface 2 (ROCm 5 and 6)`,
      );
    }
  }

  static #instance: LibComgr | null = null;
  static get(): LibComgr {
    return LibComgr.#instance ??= new LibComgr();
  }

  /** the status's enum name, with comgr's own words for it where they differ */
  statusName(code: number): string {
    const name = STATUS[code] ?? `unknown amd_comgr_status_t ${code}`;
    const out = outPtr();
    if (this.sym.amd_comgr_status_string(code, out) !== 0 || out[0] === 0n) return name;
    const text = Deno.UnsafePointerView.getCString(Deno.UnsafePointer.create(out[0])!);
    return name.endsWith(text) ? name : `${name} (${text})`;
  }

  check(code: number, call: string, log = ""): void {
    if (code !== 0) throw new ComgrError(call, code, this.statusName(code), log);
  }

  /** the ISA names this library has a table entry (and device libraries) for */
  isaNames(): string[] {
    const n = outPtr();
    this.check(this.sym.amd_comgr_get_isa_count(n), "amd_comgr_get_isa_count");
    return Array.from({ length: Number(n[0]) }, (_, i) => {
      const p = outPtr();
      this.check(this.sym.amd_comgr_get_isa_name(BigInt(i), p), "amd_comgr_get_isa_name");
      return Deno.UnsafePointerView.getCString(Deno.UnsafePointer.create(p[0])!);
    });
  }

  /** a new handle from a `create(out)` call */
  private handle(call: string, create: (out: BigUint64Array) => number): bigint {
    const out = outPtr();
    this.check(create(out), call);
    return out[0];
  }

  /** the bytes of data object `d` */
  bytes(d: bigint): Uint8Array {
    const size = outPtr();
    this.check(this.sym.amd_comgr_get_data(d, size, null), "amd_comgr_get_data");
    const buf = new Uint8Array(Number(size[0]));
    this.check(this.sym.amd_comgr_get_data(d, size, buf), "amd_comgr_get_data");
    return buf;
  }

  /** every data object of `kind` in `set`, as bytes */
  dataOf(set: bigint, kind: number): Uint8Array[] {
    const n = outPtr();
    this.check(
      this.sym.amd_comgr_action_data_count(set, kind, n),
      "amd_comgr_action_data_count",
    );
    return Array.from({ length: Number(n[0]) }, (_, i) => {
      const d = this.handle(
        "amd_comgr_action_data_get_data",
        (out) => this.sym.amd_comgr_action_data_get_data(set, kind, BigInt(i), out),
      );
      try {
        return this.bytes(d);
      } finally {
        this.sym.amd_comgr_release_data(d);
      }
    });
  }

  /** the text of the logs in `set`, never throwing (it runs while reporting another error) */
  private logOf(set: bigint): string {
    try {
      return this.dataOf(set, DataKind.LOG).map((b) => decoder.decode(b)).join("\n")
        .replace(/\0+$/, "").trim();
    } catch {
      return "";
    }
  }

  /** run `job` on its HIP source, returning the executable code object (an ELF file) */
  compile(job: ComgrJob): Uint8Array {
    const { src, name, isa, includes = [], steps } = job;
    const s = this.sym;
    const owned: { sets: bigint[]; datas: bigint[]; info: bigint | null } = {
      sets: [],
      datas: [],
      info: null,
    };
    const newSet = () => {
      const set = this.handle("amd_comgr_create_data_set", (o) => s.amd_comgr_create_data_set(o));
      owned.sets.push(set);
      return set;
    };
    try {
      let input = newSet();
      const add = (kind: number, dataName: string, bytes: Uint8Array) => {
        const d = this.handle("amd_comgr_create_data", (o) => s.amd_comgr_create_data(kind, o));
        owned.datas.push(d);
        this.check(s.amd_comgr_set_data(d, BigInt(bytes.length), bytes), "amd_comgr_set_data");
        this.check(s.amd_comgr_set_data_name(d, cstr(dataName)), "amd_comgr_set_data_name");
        this.check(s.amd_comgr_data_set_add(input, d), "amd_comgr_data_set_add");
      };
      add(DataKind.SOURCE, `${name}.hip`, new TextEncoder().encode(src));
      for (const inc of includes) add(DataKind.INCLUDE, inc.name, inc.bytes);
      const info = owned.info = this.handle(
        "amd_comgr_create_action_info",
        (o) => s.amd_comgr_create_action_info(o),
      );
      this.check(
        s.amd_comgr_action_info_set_isa_name(info, cstr(isa)),
        `amd_comgr_action_info_set_isa_name(${isa})`,
      );
      this.check(
        s.amd_comgr_action_info_set_language(info, LANGUAGE_HIP),
        "amd_comgr_action_info_set_language",
      );
      this.check(
        s.amd_comgr_action_info_set_logging(info, true),
        "amd_comgr_action_info_set_logging",
      );
      for (const step of steps) {
        // const char** of the options: the strings stay referenced until the call returns
        const strs = step.options.map(cstr);
        const ptrs = new BigUint64Array(Math.max(1, strs.length));
        strs.forEach((b, i) =>
          ptrs[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b)))
        );
        this.check(
          s.amd_comgr_action_info_set_option_list(info, ptrs, BigInt(strs.length)),
          "amd_comgr_action_info_set_option_list",
        );
        const out = newSet();
        const r = s.amd_comgr_do_action(step.action, info, input, out);
        if (r !== 0) {
          this.check(r, `amd_comgr_do_action(${actionName(step.action)})`, this.logOf(out));
        }
        input = out;
      }
      const [exe] = this.dataOf(input, DataKind.EXECUTABLE);
      if (!exe) {
        throw new ComgrError(
          "amd_comgr_do_action",
          1,
          `${STATUS[1]}: the last step left no executable in its result set`,
        );
      }
      return exe;
    } finally {
      if (owned.info !== null) s.amd_comgr_destroy_action_info(owned.info);
      for (const set of owned.sets) s.amd_comgr_destroy_data_set(set);
      for (const d of owned.datas) s.amd_comgr_release_data(d);
    }
  }
}

function actionName(a: number): string {
  const e = Object.entries(Action).find(([, v]) => v === a);
  return e ? `AMD_COMGR_ACTION_${e[0]}` : `action ${a}`;
}
