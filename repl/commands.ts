// The REPL's dot-commands.
import { Device } from "../src/runtime/device.ts";
import { GlobalCounters } from "../src/engine/counters.ts";
import * as counters from "../src/engine/counters.ts";
import { Tensor } from "../src/tensor.ts";

export interface CommandContext {
  debug: number;
  closing: boolean;
  print(text: string): void;
  printValue(value: unknown): void;
  /** run source; relative imports resolve against `base` (default: the working directory) */
  evaluate(src: string, base?: URL): Promise<unknown>;
}

interface Command {
  args: string;
  help: string;
  run(ctx: CommandContext, arg: string): Promise<void> | void;
}

function needTensor(cmd: string, v: unknown): Tensor {
  if (v instanceof Tensor) return v;
  const got = v === null ? "null" : typeof v === "object" ? v.constructor.name : typeof v;
  throw new Error(`${cmd} needs an expression that gives a Tensor, got ${got}`);
}

function needArg(cmd: string, arg: string, what: string): string {
  if (arg === "") throw new Error(`${cmd} needs ${what}: ${cmd} ${TABLE[cmd.slice(1)].args}`);
  return arg;
}

const TABLE: Record<string, Command> = {
  help: {
    args: "",
    help: "this list",
    run(ctx) {
      const rows = Object.entries(TABLE).map(([n, c]) =>
        `  .${`${n} ${c.args}`.padEnd(16)} ${c.help}`
      );
      ctx.print(
        [
          "Type TypeScript: `const`/`let` persist, top-level await works, and the last",
          "expression's value is printed. In scope: Tensor, dtypes, Device, GlobalCounters,",
          'UOp, Variable, ... (everything mod.ts exports; `import ... from "tg"` works too).',
          "",
          ...rows,
          "",
          "Tab completes names and members; Ctrl-C cancels the line; Ctrl-D exits.",
        ].join("\n"),
      );
    },
  },
  device: {
    args: "[NAME]",
    help: "show or set the default device",
    run(ctx, arg) {
      if (arg !== "") Device.DEFAULT = arg;
      ctx.print(`default device: ${Device.DEFAULT} (available: ${Device.list().join(", ")})`);
    },
  },
  debug: {
    args: "[N]",
    help: "show or set DEBUG (N > 0 also prints error stacks)",
    run(ctx, arg) {
      if (arg !== "") {
        const n = Number(arg);
        if (!Number.isInteger(n) || n < 0) {
          throw new Error(`.debug takes a non-negative integer level, got '${arg}'`);
        }
        ctx.debug = n;
        Deno.env.set("DEBUG", String(n));
        const setDebug: unknown = Reflect.get(counters, "setDebug");
        if (typeof setDebug === "function") setDebug(n);
        else {
          ctx.print(
            `DEBUG=${n} for error stacks here; kernel logging keeps the level tg started with ` +
              `(start tg with DEBUG=${n} for that)`,
          );
          return;
        }
      }
      ctx.print(`DEBUG=${ctx.debug}`);
    },
  },
  kernels: {
    args: "EXPR",
    help: "the generated source of the kernels EXPR would run (runs none)",
    async run(ctx, arg) {
      const t = needTensor(
        ".kernels",
        await ctx.evaluate(needArg(".kernels", arg, "an expression")),
      );
      const ks = t.kernels();
      if (ks.length === 0) {
        ctx.print("no kernels: the tensor is already realized");
        return;
      }
      for (const k of ks) {
        const local = k.localSize ? ` local=[${k.localSize.join(", ")}]` : "";
        ctx.print(`// ${k.name} global=[${k.globalSize.join(", ")}]${local}\n${k.src.trimEnd()}`);
      }
    },
  },
  time: {
    args: "EXPR",
    help: "run EXPR (realizing a Tensor): wall time, kernels, GFLOP/s",
    async run(ctx, arg) {
      const src = needArg(".time", arg, "an expression");
      GlobalCounters.reset();
      const t0 = performance.now();
      const v = await ctx.evaluate(src);
      if (v instanceof Tensor) v.realize();
      await Device.synchronize();
      const s = (performance.now() - t0) / 1e3;
      ctx.printValue(v);
      const ops = GlobalCounters.globalOps;
      const rate = ops > 0 ? `${(ops / s / 1e9).toFixed(3)} GFLOP/s` : "no ops counted";
      const n = GlobalCounters.kernelCount;
      ctx.print(`time ${(s * 1e3).toFixed(2)} ms, ${n} kernel${n === 1 ? "" : "s"}, ${rate}`);
    },
  },
  load: {
    args: "FILE",
    help: "run a TypeScript file in this scope",
    async run(ctx, arg) {
      const path = needArg(".load", arg, "a file").replace(/^["']|["']$/g, "");
      const abs = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
      let text: string;
      try {
        text = Deno.readTextFileSync(abs);
      } catch (e) {
        throw new Error(`.load: cannot read ${abs}: ${(e as Error).message}`);
      }
      ctx.printValue(await ctx.evaluate(text, new URL(`file://${abs}`)));
    },
  },
  exit: {
    args: "",
    help: "leave the REPL (Ctrl-D also does)",
    run(ctx) {
      ctx.closing = true;
    },
  },
};

export const COMMANDS: readonly string[] = Object.keys(TABLE).map((n) => `.${n}`);

/** run `.name args` */
export async function runCommand(ctx: CommandContext, line: string): Promise<void> {
  const m = /^\.(\w+)\s*([\s\S]*)$/.exec(line);
  const cmd = m ? TABLE[m[1]] : undefined;
  if (!m || !cmd || !Object.hasOwn(TABLE, m[1])) {
    throw new Error(`unknown command '${line.split(/\s/)[0]}': commands are ${COMMANDS.join(" ")}`);
  }
  await cmd.run(ctx, m[2].trim());
}
