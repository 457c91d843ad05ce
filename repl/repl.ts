// `tg repl`: the interactive prompt (node:readline for line editing, history and completion) and
// its scripted form, which reads statements from a stdin that is not a terminal.
import process from "node:process";
import { createInterface, type Interface } from "node:readline";
import * as tg from "../mod.ts";
import { DEBUG } from "../src/engine/counters.ts";
import { type CommandContext, COMMANDS, runCommand } from "./commands.ts";
import { complete } from "./complete.ts";
import { appendHistory, historyPath, loadHistory } from "./history.ts";
import { Session } from "./session.ts";
import { show, showError } from "./show.ts";

export interface ReplOptions {
  /** the URL that `import ... from "tg"` resolves to */
  tgUrl: string;
  version: string;
  /** force the scripted (non-terminal) form even on a terminal */
  scripted?: boolean;
}

const PROMPT = "tg> ";
const MORE = "... ";

class Interrupted extends Error {
  override name = "Interrupted";
}

/** the state one REPL run shares between inputs, commands and the loop */
export class Repl implements CommandContext {
  readonly session: Session;
  debug: number = DEBUG;
  hadError = false;
  closing = false;
  #cancel: (() => void) | null = null;

  constructor(tgUrl: string, readonly interactive: boolean) {
    this.session = new Session({ ...tg, tg }, tgUrl);
  }

  print(text: string): void {
    console.log(text);
  }

  printValue(value: unknown): void {
    const s = show(value, {
      bareScalars: !this.interactive,
      colors: this.interactive && !Deno.noColor,
    });
    if (s !== null) this.print(s);
  }

  printError(e: unknown): void {
    this.hadError = true;
    console.error(showError(e, this.debug));
  }

  /** run source (relative imports from `base`), awaiting a promise it evaluates to */
  async evaluate(src: string, base = cwdUrl()): Promise<unknown> {
    const v = await this.session.run(src, base);
    return v instanceof Promise ? await v : v;
  }

  /** one complete input: a dot-command or statements; prints the result or the error */
  async handle(src: string): Promise<void> {
    const work = /^\s*\.[a-z]/i.test(src) ? runCommand(this, src.trim()) : this.evaluate(src)
      .then((v) => this.printValue(v));
    work.catch(() => {}); // if interrupted, its later failure is not unhandled
    const interrupt = new Promise<never>((_, reject) => {
      this.#cancel = () => reject(new Interrupted("interrupted (work already started goes on)"));
    });
    try {
      await Promise.race([work, interrupt]);
    } catch (e) {
      this.printError(e);
    } finally {
      this.#cancel = null;
    }
  }

  /** Ctrl-C while something runs; false when nothing was running */
  interrupt(): boolean {
    if (!this.#cancel) return false;
    this.#cancel();
    return true;
  }
}

function cwdUrl(): URL {
  return new URL(`file://${Deno.cwd().replace(/\/?$/, "/")}`);
}

/** errors that escape user code (a rejected promise nobody awaited) are reported, not fatal */
function catchStrays(repl: Repl): void {
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    repl.printError(e.reason);
  });
  globalThis.addEventListener("error", (e) => {
    e.preventDefault();
    repl.printError(e.error);
  });
}

/**
 * a line such as `  .reshape([2, 3])` that continues the statement before it: an indented
 * `.name`, or `.name(`/`.name.`/`.name[` at the margin that is not a dot-command
 */
function continuesChain(line: string): boolean {
  if (/^\s+\.[A-Za-z_$]/.test(line)) return true;
  const m = /^\.([A-Za-z_$][\w$]*)\s*[(.[]/.exec(line);
  return m !== null && !COMMANDS.includes(`.${m[1]}`);
}

async function scripted(repl: Repl): Promise<number> {
  const rl = createInterface({ input: process.stdin, terminal: false });
  let buffer: string[] = [];
  // a complete statement waits for the next line, which may continue it with `.method()`
  let pending: string | null = null;
  for await (const line of rl) {
    if (pending !== null) {
      if (continuesChain(line)) {
        buffer = [pending];
        pending = null;
      } else {
        await repl.handle(pending);
        pending = null;
        if (repl.closing) break;
      }
    }
    buffer.push(line);
    const src = buffer.join("\n");
    const command = /^\s*\.[a-z]/i.test(src);
    if (src.trim() === "" || (!command && await repl.session.incomplete(src))) continue;
    buffer = [];
    if (command) {
      await repl.handle(src);
      if (repl.closing) break;
    } else pending = src;
  }
  if (!repl.closing) {
    if (pending !== null) await repl.handle(pending);
    if (buffer.join("").trim() !== "") await repl.handle(buffer.join("\n"));
  }
  rl.close();
  return repl.hadError ? 1 : 0;
}

function interactive(repl: Repl, version: string): Promise<number> {
  const histFile = historyPath();
  const completer = (line: string): [string[], string] => {
    try {
      return complete(line, repl.session, COMMANDS);
    } catch {
      return [[], line];
    }
  };
  const rl: Interface = createInterface(
    {
      input: process.stdin,
      output: process.stdout,
      terminal: true,
      completer,
      history: loadHistory(histFile),
      historySize: 1000,
      removeHistoryDuplicates: true,
      prompt: PROMPT,
    } as Parameters<typeof createInterface>[0],
  );
  let buffer: string[] = [];
  let queue = Promise.resolve();

  let device = "";
  try {
    device = ` on ${tg.Device.DEFAULT}`;
  } catch (e) {
    repl.printError(e);
  }
  repl.print(`tg ${version}${device}. Type .help for commands, Ctrl-D to exit.`);

  const onLine = async (line: string): Promise<void> => {
    appendHistory(histFile, line);
    buffer.push(line);
    const src = buffer.join("\n");
    const command = /^\s*\.[a-z]/i.test(src);
    if (src.trim() !== "" && !command && await repl.session.incomplete(src)) {
      rl.setPrompt(MORE);
      rl.prompt();
      return;
    }
    buffer = [];
    rl.setPrompt(PROMPT);
    if (src.trim() !== "") await repl.handle(src);
    if (repl.closing) rl.close();
    else rl.prompt();
  };

  return new Promise((resolve) => {
    rl.on("line", (line: string) => {
      queue = queue.then(() => onLine(line));
    });
    rl.on("SIGINT", () => {
      if (repl.interrupt()) return;
      const typed = rl.line !== "" || buffer.length > 0;
      buffer = [];
      // cancel the line being typed: move to its end, cut it, start afresh on a new line
      process.stdout.write(typed ? "^C\n" : "^C\n(To exit, press Ctrl-D or type .exit)\n");
      rl.write(null, { ctrl: true, name: "e" });
      rl.write(null, { ctrl: true, name: "u" });
      rl.setPrompt(PROMPT);
      rl.prompt();
    });
    rl.on("close", () => {
      process.stdout.write("\n");
      resolve(0);
    });
    rl.prompt();
  });
}

/** run the REPL until Ctrl-D, `.exit` or the end of piped input; returns the exit code */
export async function startRepl(opts: ReplOptions): Promise<number> {
  const tty = !opts.scripted && Deno.stdin.isTerminal();
  const repl = new Repl(opts.tgUrl, tty);
  catchStrays(repl);
  return tty ? await interactive(repl, opts.version) : await scripted(repl);
}
