// The `tg` command line: `deno run -A mod.ts <command>` (mod.ts runs this when it is the main
// module), the bundle `deno run -A dist/tg.js <command>`, or the compiled binary.
import { parseArgs } from "node:util";

export const VERSION = "0.1.0";

export const USAGE = `tg ${VERSION}: a tensor library and kernel compiler

Usage: tg <command> [options]
       (from the source: deno run -A mod.ts <command>; the bundle: deno run -A dist/tg.js <command>)

Commands:
  repl                  the interactive prompt (the default); with stdin not a terminal it
                        reads statements from stdin and prints their results
  run FILE.ts [ARGS]    run a script in which \`import { Tensor } from "tg"\` is this library
  mem [--svg OUT.svg] [--all] FILE.ts [ARGS]
                        run a script like \`run\` and report memory per schedule: at exit a line
                        per distinct schedule realized (runs, steps, input bytes, peak and where),
                        then the step-by-step table of the largest (every one with --all): bytes
                        alive per kernel and the long edges (buffers alive across > 1/4 of it);
                        --svg writes the largest's bytes-alive plot
  bench [NAME...]       the scripted benchmarks of bench/ (JSON lines out); NAME is one of
                        symbolic, compile, elementwise, latency, matmul, jit, memory,
                        webgpu (default: all)
  devices               each device tg knows: whether it works here, cores, memory, compiler

Options:
  -h, --help            this text (also after a command)
  -V, --version         the version

Environment:
  DEV=NAME              the default device (CPU, JS, ...; else the first that works)
  DEBUG=N               1: kernels per realize; 2: a line per kernel with time, GFLOP/s, GB/s;
                        4: kernel source
  BEAM=N                search kernel optimizations with a beam of width N
  NOOPT=1               no kernel optimizations
  CC=PATH               the C compiler of the CPU device (default: clang, else gcc/cc)
  CACHEDIR=DIR          the compile cache (default ~/.cache/tg)
  CHECK_BOUNDS=0        turn off the compile-time bounds check of loads and stores
  TG_HISTORY=FILE       the REPL's history file (default ~/.tg_history; empty: none)
  TG_MEM=1|all          what \`tg mem\` sets: report memory at exit (TG_MEM_SVG=FILE: the plot)
`;

const COMMANDS = ["repl", "run", "mem", "bench", "devices"];

/** a usage error: printed with the usage, exit status 2 */
export class UsageError extends Error {
  override name = "UsageError";
}

interface Io {
  out(text: string): void;
  err(text: string): void;
}

const stdio: Io = {
  out: (t) => console.log(t),
  err: (t) => console.error(t),
};

function parse(
  args: string[],
  options: Record<string, { type: "boolean" | "string"; short?: string }>,
) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify a positional argument.*$/s, "");
    throw new UsageError(msg.replace(/^Unknown option/, "unknown option"));
  }
}

const HELP = { help: { type: "boolean" as const, short: "h" } };

function gib(bytes: number | undefined): string {
  return bytes === undefined ? "?" : `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}

async function devices(io: Io): Promise<number> {
  const { Device } = await import("./runtime/device.ts");
  let def = "";
  try {
    def = Device.DEFAULT;
  } catch {
    def = "";
  }
  const rows = [["DEVICE", "STATUS", "HARDWARE", "CORES", "MEMORY", "COMPILER"]];
  const why: string[] = [];
  for (const s of Device.status()) {
    const name = s.name === def ? `${s.name}*` : s.name;
    if (!s.available) {
      rows.push([name, "unavailable", "", "", "", ""]);
      why.push(`${s.name}: ${s.error ?? "unknown reason"}`);
      continue;
    }
    const i = s.info!;
    const hw = [i.name === s.name ? "" : i.name, i.arch === undefined ? "" : String(i.arch)]
      .filter((x) => x !== "").join(" ") || "host";
    rows.push([name, "ok", hw, String(i.cores ?? "?"), gib(i.memory), i.compiler ?? "?"]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) io.out(r.map((v, c) => v.padEnd(widths[c])).join("  ").trimEnd());
  for (const w of why) io.out(w);
  io.out("(* the default: DEV, else the first that works)");
  return 0;
}

/** the deno executable to run scripts with (the compiled binary is not one) */
function denoExe(): string {
  const exe = Deno.execPath();
  return /(^|\/)deno(\.exe)?$/.test(exe) ? exe : "deno";
}

async function spawn(args: string[], env?: Record<string, string>): Promise<number> {
  const out = await new Deno.Command(denoExe(), {
    args,
    env,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  return out.code;
}

async function runScript(
  file: string,
  rest: string[],
  tgUrl: string,
  env?: Record<string, string>,
  cmd = "run",
): Promise<number> {
  try {
    Deno.statSync(file);
  } catch {
    throw new UsageError(`${cmd}: cannot find the script '${file}'`);
  }
  // `import ... from "tg"` in the script resolves to this library through an import map
  const map = await Deno.makeTempFile({ prefix: "tg-importmap-", suffix: ".json" });
  try {
    await Deno.writeTextFile(map, JSON.stringify({ imports: { tg: tgUrl } }));
    return await spawn(["run", "-A", `--import-map=${map}`, file, ...rest], env);
  } finally {
    await Deno.remove(map).catch(() => {});
  }
}

async function bench(names: string[], tgUrl: string): Promise<number> {
  const runner = new URL("./bench/run.ts", tgUrl);
  if (runner.protocol !== "file:" || !(await Deno.stat(runner).catch(() => null))) {
    throw new Error(`bench: the benchmarks live in the source tree (bench/run.ts beside mod.ts)`);
  }
  return await spawn(["run", "-A", runner.pathname, ...names]);
}

/** `tg mem`: src/engine/memory_report.ts reports at exit when the script runs with TG_MEM set */
async function mem(rest: string[], tgUrl: string, io: Io): Promise<number> {
  // options end at the script: what follows it are the script's own arguments
  let i = 0;
  while (i < rest.length && rest[i].startsWith("-")) i += rest[i] === "--svg" ? 2 : 1;
  const opts = parse(rest.slice(0, i), {
    ...HELP,
    svg: { type: "string" },
    all: { type: "boolean" },
  }).values;
  if (opts.help) return (io.out(USAGE), 0);
  if (i >= rest.length) throw new UsageError("mem needs a script: tg mem [--svg OUT.svg] FILE.ts");
  const env: Record<string, string> = { TG_MEM: opts.all ? "all" : "1" };
  const svg = opts.svg;
  if (typeof svg === "string") {
    if (!svg.endsWith(".svg")) {
      throw new UsageError(`mem: --svg needs a file name ending in .svg, got '${svg}'`);
    }
    env.TG_MEM_SVG = svg;
  }
  return await runScript(rest[i], rest.slice(i + 1), tgUrl, env, "mem");
}

/** run the command line; returns the exit status */
export async function run(args: string[], tgUrl: string, io: Io = stdio): Promise<number> {
  try {
    const at = args.findIndex((a) => !a.startsWith("-"));
    const global = parse(at < 0 ? args : args.slice(0, at), {
      ...HELP,
      version: { type: "boolean", short: "V" },
    }).values;
    if (global.version) {
      io.out(`tg ${VERSION}`);
      return 0;
    }
    if (global.help) {
      io.out(USAGE);
      return 0;
    }
    const cmd = at < 0 ? "repl" : args[at];
    const rest = at < 0 ? [] : args.slice(at + 1);
    if (cmd === "mem") return await mem(rest, tgUrl, io);
    if (!COMMANDS.includes(cmd)) {
      throw new UsageError(`unknown command '${cmd}' (commands: ${COMMANDS.join(", ")})`);
    }
    if (cmd === "run") {
      const file = rest.findIndex((a) => !a.startsWith("-"));
      const opts = parse(file < 0 ? rest : rest.slice(0, file), HELP).values;
      if (opts.help) return (io.out(USAGE), 0);
      if (file < 0) throw new UsageError("run needs a script: tg run FILE.ts [ARGS]");
      return await runScript(rest[file], rest.slice(file + 1), tgUrl);
    }
    const { values, positionals } = parse(rest, HELP);
    if (values.help) return (io.out(USAGE), 0);
    if (cmd === "bench") return await bench(positionals, tgUrl);
    if (positionals.length) {
      throw new UsageError(`${cmd} takes no arguments, got '${positionals.join(" ")}'`);
    }
    if (cmd === "devices") return await devices(io);
    const { startRepl } = await import("../repl/repl.ts");
    return await startRepl({ tgUrl, version: VERSION });
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`tg: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    io.err(`tg: ${(e as Error).message}`);
    return 1;
  }
}

/** the entry point mod.ts calls: runs the command and exits with its status */
export async function main(args: string[], tgUrl?: string): Promise<void> {
  const code = await run(args, tgUrl ?? new URL("../mod.ts", import.meta.url).href);
  Deno.exit(code);
}
