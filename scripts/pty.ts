// A command on a real pseudo-terminal (util-linux `script`), driven like `expect`: used by the
// REPL's terminal tests and by scripts/startup.ts to time the first prompt.

export interface PtySession {
  /** type text (use "\t" for Tab, "\r" for Enter, "\x03" for Ctrl-C, "\x04" for Ctrl-D) */
  send(text: string): Promise<void>;
  /** wait until `what` appears after the last match; returns everything seen since then */
  expect(what: string | RegExp, timeoutMs?: number): Promise<string>;
  /** everything the terminal showed so far */
  output(): string;
  /** resolves with the exit code */
  status: Promise<number>;
  kill(): void;
}

export function hasScript(): boolean {
  try {
    return new Deno.Command("script", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export function spawnPty(
  argv: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): PtySession {
  const child = new Deno.Command("script", {
    args: ["-qfec", argv.map(shellQuote).join(" "), "/dev/null"],
    cwd: opts.cwd,
    env: { TERM: "xterm", NO_COLOR: "1", ...opts.env },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  const dec = new TextDecoder();
  let out = "";
  let pos = 0;
  const pump = (async () => {
    for await (const chunk of child.stdout) out += dec.decode(chunk, { stream: true });
  })();
  child.stderr.pipeTo(new WritableStream({ write: (c) => void (out += dec.decode(c)) }));
  const status = (async () => {
    const s = await child.status;
    await pump;
    await writer.close().catch(() => {});
    return s.code;
  })();
  return {
    async send(text) {
      await writer.write(new TextEncoder().encode(text));
    },
    async expect(what, timeoutMs = 20000) {
      const t0 = Date.now();
      while (true) {
        const rest = out.slice(pos);
        const m = typeof what === "string"
          ? (rest.includes(what) ? { index: rest.indexOf(what), len: what.length } : null)
          : (() => {
            const r = what.exec(rest);
            return r ? { index: r.index, len: r[0].length } : null;
          })();
        if (m) {
          pos += m.index + m.len;
          return rest.slice(0, m.index + m.len);
        }
        if (Date.now() - t0 > timeoutMs) {
          throw new Error(
            `pty: no ${String(what)} within ${timeoutMs} ms; saw ${JSON.stringify(rest)}`,
          );
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    output: () => out,
    status,
    kill() {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    },
  };
}
