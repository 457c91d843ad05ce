// The CPU device: C kernels compiled by clang (else gcc, else cc; `CC` overrides) into shared
// libraries, cached on disk by content, loaded through src/runtime/ffi/dylib.ts. Kernels spread
// their outer loop over the cores with OpenMP where the compiler has it.

import type { Compiler, DeviceImpl, DeviceInfo, Program, ProgramSpec, RunOpts } from "./device.ts";
import { programKey } from "./program_key.ts";
import { compileStats, DiskCache, sha256Hex } from "./cache.ts";
import { callProbe, type KernelFn, openKernel } from "./ffi/dylib.ts";
import { checkLaunch, checkSpec, HostAllocator, type HostMem, hostMemory, numbered } from "./js.ts";

// no fast-math: NaN and Inf must behave as IEEE says; no contraction: a*b+c rounds twice, as the
// other devices and the reference values do
const BASE_FLAGS = ["-O2", "-march=native", "-fPIC", "-shared", "-ffp-contract=off"];
const CANDIDATES = ["clang", "gcc", "cc"];

function env(k: string): string | undefined {
  try {
    return Deno.env.get(k) || undefined;
  } catch {
    return undefined;
  }
}

function tryVersion(cmd: string[]): string | null {
  try {
    const out = new Deno.Command(cmd[0], {
      args: [...cmd.slice(1), "--version"],
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    if (!out.success) return null;
    return new TextDecoder().decode(out.stdout).split("\n")[0].trim();
  } catch {
    return null;
  }
}

/** what -march=native compiles for: a cache shared between machines must not mix them */
function hostCpu(): string {
  let cpu = `${Deno.build.target}`;
  try {
    const info = Deno.readTextFileSync("/proc/cpuinfo");
    const line = (k: string) => info.match(new RegExp(`^${k}\\s*:\\s*(.*)$`, "m"))?.[1] ?? "";
    cpu += `|${line("model name")}|${sha256Hex(line("flags"))}`;
  } catch {
    // not Linux, or no read permission: the target triple is what we know
  }
  return cpu;
}

export class CompileError extends Error {}

const OMP_PROBE = `#include <omp.h>
int tg_omp_probe(void) {
  int n = 0;
#pragma omp parallel
  {
#pragma omp atomic
    n++;
  }
  return n;
}
`;

export interface CCompilerOptions {
  /** the compiler command (default: `CC`, else clang, gcc, cc) */
  cc?: string;
  /** force OpenMP on or off (default: on when a probe compile and load succeed) */
  openmp?: boolean;
}

/** a C compiler producing shared libraries */
export class CCompiler implements Compiler {
  readonly cmd: string[];
  readonly version: string;
  #flags: string[] | null = null;
  #identity: string | null = null;
  #threads = 1;

  constructor(private readonly opts: CCompilerOptions = {}, private cache: () => DiskCache) {
    const cc = opts.cc ?? env("CC");
    if (cc !== undefined) {
      this.cmd = cc.trim().split(/\s+/);
      const v = tryVersion(this.cmd);
      if (v === null) {
        throw new Error(`CPU device: CC=${cc} cannot be run (is it installed and on PATH?)`);
      }
      this.version = v;
      return;
    }
    for (const name of CANDIDATES) {
      const v = tryVersion([name]);
      if (v !== null) {
        this.cmd = [name];
        this.version = v;
        return;
      }
    }
    throw new Error(
      `CPU device: no C compiler found (tried ${CANDIDATES.join(", ")}); install clang or gcc, ` +
        `or set CC`,
    );
  }

  /** compile flags; the first call probes for OpenMP (the result is cached on disk) */
  get flags(): string[] {
    if (this.#flags) return this.#flags;
    const omp = this.opts.openmp ?? this.probeOpenMP();
    return this.#flags = [...BASE_FLAGS, ...(omp ? ["-fopenmp"] : [])];
  }

  /** OpenMP threads seen by the probe (1 when OpenMP is off) */
  get threads(): number {
    return this.flags.includes("-fopenmp") ? this.#threads : 1;
  }

  get identity(): string {
    return this.#identity ??= JSON.stringify([this.cmd, this.version, this.flags, hostCpu()]);
  }

  private probeOpenMP(): boolean {
    const name = `probe-openmp-${sha256Hex(JSON.stringify([this.cmd, this.version]))}`;
    const cached = this.cache().readText(name)?.match(/^([01]) (\d+)\n$/);
    if (cached) {
      this.#threads = Number(cached[2]);
      return cached[1] === "1";
    }
    let ok: boolean;
    try {
      // loading the probe proves the OpenMP runtime library is found at load time too
      this.#threads = this.build(
        OMP_PROBE,
        [...BASE_FLAGS, "-fopenmp"],
        (dir) => callProbe(`${dir}/kernel.so`, "tg_omp_probe"),
      );
      ok = this.#threads >= 1;
    } catch {
      ok = false;
      this.#threads = 1;
    }
    this.cache().writeText(name, `${ok ? 1 : 0} ${this.#threads}\n`);
    return ok;
  }

  compile(src: string, name: string): Uint8Array {
    compileStats.compiled++;
    return this.build(src, this.flags, (dir) => Deno.readFileSync(`${dir}/kernel.so`), name);
  }

  /**
   * compile each source in a process of its own, `jobs` at a time, with one blocking call (a
   * shell that starts them and waits): BEAM's candidates compile in parallel on every core.
   * Each result is the library's bytes, or null where that compile failed.
   */
  compileMany(srcs: readonly string[], jobs: number): (Uint8Array | null)[] {
    if (srcs.length === 0) return [];
    const dir = Deno.makeTempDirSync({ prefix: "tg-cc-many-" });
    try {
      const quote = (a: string) => `'${a.replaceAll("'", `'\\''`)}'`;
      const lines: string[] = [];
      srcs.forEach((src, i) => {
        Deno.writeTextFileSync(`${dir}/k${i}.c`, src);
        const args = [this.cmd[0], ...this.args(this.flags, `${dir}/k${i}.so`, `${dir}/k${i}.c`)];
        lines.push(`${args.map(quote).join(" ")} 2>/dev/null &`);
        if ((i + 1) % jobs === 0) lines.push("wait");
      });
      lines.push("wait");
      new Deno.Command("sh", { args: ["-c", lines.join("\n")], stdout: "null", stderr: "null" })
        .outputSync();
      compileStats.compiled += srcs.length;
      return srcs.map((_, i) => {
        try {
          return Deno.readFileSync(`${dir}/k${i}.so`);
        } catch {
          return null;
        }
      });
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  }

  /** the compiler's arguments (after its command name) building `src` into library `out` */
  private args(flags: string[], out: string, src: string): string[] {
    return [...this.cmd.slice(1), ...flags, "-o", out, src, "-lm"];
  }

  /** compile `src` in a private temp dir and hand the dir to `take` before it is removed */
  private build<T>(src: string, flags: string[], take: (dir: string) => T, name = "probe"): T {
    const dir = Deno.makeTempDirSync({ prefix: "tg-cc-" });
    try {
      Deno.writeTextFileSync(`${dir}/kernel.c`, src);
      const args = this.args(flags, `${dir}/kernel.so`, `${dir}/kernel.c`);
      const out = new Deno.Command(this.cmd[0], { args, stderr: "piped" }).outputSync();
      if (!out.success) {
        const msg = new TextDecoder().decode(out.stderr).trim();
        throw new CompileError(
          `CPU compile of kernel '${name}' failed (${this.cmd.join(" ")} ${flags.join(" ")}):\n` +
            `${msg}\n--- source ---\n${numbered(src)}`,
        );
      }
      return take(dir);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  }
}

class CpuProgram implements Program<HostMem> {
  private args: (Deno.PointerValue | number)[];
  constructor(readonly spec: ProgramSpec, private fn: KernelFn) {
    this.args = new Array(spec.bufs.length + spec.vars.length);
  }

  run(bufs: readonly HostMem[], vars: readonly number[], opts?: RunOpts): number | undefined {
    checkLaunch(this.spec, bufs, vars);
    const args = this.args;
    for (let i = 0; i < bufs.length; i++) args[i] = bufs[i].ptr;
    for (let i = 0; i < vars.length; i++) args[bufs.length + i] = vars[i];
    if (!opts?.timing) {
      this.fn(...args);
      return undefined;
    }
    const t0 = performance.now();
    this.fn(...args);
    return (performance.now() - t0) / 1e3;
  }
}

export interface CpuDeviceOptions extends CCompilerOptions {
  /** the compile cache directory (default: CACHEDIR, else the user's cache directory) */
  cacheDir?: string;
}

function requirePermission(name: "ffi" | "run"): void {
  const state = Deno.permissions.querySync({ name }).state;
  if (state !== "granted") {
    throw new Error(`the CPU device needs --allow-${name} (permission is ${state})`);
  }
}

export class CpuDevice implements DeviceImpl<HostMem> {
  readonly name = "CPU";
  readonly lang = "c";
  readonly allocator: HostAllocator = new HostAllocator(true);
  readonly compiler: CCompiler;
  /** this device's compiles: real compiler runs, disk cache hits, in-process hits */
  readonly stats = { compiled: 0, diskHits: 0, memHits: 0 };
  #cache: DiskCache | null = null;
  private programs = new Map<string, CpuProgram>();

  constructor(private readonly opts: CpuDeviceOptions = {}) {
    requirePermission("ffi");
    requirePermission("run");
    this.compiler = new CCompiler(opts, () => this.cache);
  }

  /** opened on first use so that choosing a device writes nothing */
  get cache(): DiskCache {
    return this.#cache ??= this.opts.cacheDir !== undefined
      ? new DiskCache(this.opts.cacheDir)
      : DiskCache.forDir();
  }

  /** the disk cache key of a kernel (compiler identity + flags + host CPU + source) */
  cacheKey(src: string): string {
    return DiskCache.key([this.compiler.identity, src]);
  }

  compile(spec: ProgramSpec): Program<HostMem> {
    checkSpec(spec, "c", this.name);
    const memKey = programKey(spec);
    let p = this.programs.get(memKey);
    if (p) {
      this.stats.memHits++;
      return p;
    }
    const entry = this.cache.compiled(
      this.compiler.identity,
      spec.src,
      ".so",
      () => this.compiler.compile(spec.src, spec.name),
      this.stats,
    );
    const lib = openKernel(entry.path, spec.name, spec.bufs.length, spec.vars.length);
    p = new CpuProgram(spec, lib.fn);
    this.programs.set(memKey, p);
    return p;
  }

  precompile(specs: readonly ProgramSpec[]): void {
    const todo = new Map<string, string>();
    for (const spec of specs) {
      const key = this.cacheKey(spec.src);
      if (!todo.has(key) && !this.cache.has(key, ".so")) todo.set(key, spec.src);
    }
    const keys = [...todo.keys()];
    const jobs = Math.max(1, navigator.hardwareConcurrency || 1);
    this.compiler.compileMany([...todo.values()], jobs).forEach((bytes, i) => {
      if (bytes) {
        this.cache.store(keys[i], ".so", bytes);
        this.stats.compiled++;
      }
    });
  }

  synchronize(): Promise<void> {
    return Promise.resolve(); // kernels run synchronously
  }

  info(): DeviceInfo {
    return {
      name: this.name,
      compiler: `${this.compiler.cmd.join(" ")} (${this.compiler.version})`,
      flags: this.compiler.flags.join(" "),
      cores: navigator.hardwareConcurrency,
      threads: this.compiler.threads,
      memory: hostMemory(),
      cacheDir: this.cache.dir,
    };
  }
}
