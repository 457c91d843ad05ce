// The REPL: its evaluation scope in-process, then the real program on piped stdin and on a
// pseudo-terminal (tab completion, history across sessions, Ctrl-C, Ctrl-D).
import assert from "node:assert/strict";
import * as tg from "../mod.ts";
import { complete } from "../repl/complete.ts";
import { COMMANDS } from "../repl/commands.ts";
import { isIncomplete, scan } from "../repl/scan.ts";
import { Session, splitLast } from "../repl/session.ts";
import { InputSyntaxError } from "../repl/transpile.ts";
import { hasScript, spawnPty } from "../scripts/pty.ts";

const MOD = new URL("../mod.ts", import.meta.url);
const base = new URL(`file://${Deno.cwd()}/`);
const newSession = () => new Session({ ...tg, tg }, MOD.href);

async function piped(input: string, env: Record<string, string> = {}) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MOD.pathname, "repl"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { TG_HISTORY: "", NO_COLOR: "1", ...env },
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(input));
  await w.close();
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("scan tells incomplete input (open brackets, templates, comments) from complete", () => {
  assert.equal(isIncomplete("f(1,"), true);
  assert.equal(isIncomplete("const s = `a ${b"), true);
  assert.equal(isIncomplete("/* note"), true);
  assert.equal(isIncomplete("x = { a: [1, 2"), true);
  assert.equal(isIncomplete("f(1)"), false);
  assert.equal(isIncomplete("const r = /[)]/.test(s)"), false);
  assert.equal(isIncomplete("'(' + \"{\" + `[${1}`"), false);
  assert.equal(
    isIncomplete("f())"),
    false,
    "an extra closer is an error to report, not more input",
  );
  assert.deepEqual(scan("a; b;").boundaries, [2, 5]);
});

Deno.test("splitLast returns the final expression statement and nothing for declarations", () => {
  assert.deepEqual(splitLast("const a = 1;\na + 1;\n"), {
    stmts: "const a = 1;",
    last: "\na + 1",
  });
  assert.equal(splitLast("const a = 1;\n").last, null);
  assert.equal(splitLast("function f() {\n}\n").last, null);
  assert.equal(splitLast("for (;;) {\n  break;\n}\n").last, null);
});

Deno.test("a session keeps declarations, runs TypeScript with top-level await, imports tg", async () => {
  const s = newSession();
  assert.equal(await s.run("const x: number = 20", base), undefined);
  assert.equal(await s.run("let y = await Promise.resolve(x + 1); y * 2", base), 42);
  await s.run(
    "interface P { v: number }\nfunction f<T extends P>(p: T): number { return p.v }",
    base,
  );
  assert.equal(await s.run("enum E { A = 3, B }\nf({ v: E.B } as P)", base), 4);
  assert.deepEqual(await s.run("{ a: 1, b: [x] }", base), { a: 1, b: [20] });
  assert.equal(await s.run('import { Tensor as T } from "tg"; T === Tensor', base), true);
  assert.equal(await s.run("const x = 'shadowed'; x", base), "shadowed");
  const t = await s.run("Tensor.arange(4).mul(y)", base);
  assert.ok(t instanceof tg.Tensor);
  assert.deepEqual(t.tolistSync(), [0, 21, 42, 63]);
  await assert.rejects(s.run("throw new RangeError('boom')", base), RangeError);
  assert.equal(await s.run("y", base), 21, "a failed input leaves the scope intact");
});

Deno.test("syntax errors name the position in the input; a truncated input asks for more", async () => {
  const s = newSession();
  const err = await s.run("const a = 1;\nlet b: = 2", base).catch((e) => e);
  assert.ok(err instanceof InputSyntaxError);
  assert.match(err.message, /\(line 2, column \d+\)$/);
  assert.equal(err.message.includes("\n"), false);
  assert.equal(await s.incomplete("1 +"), true);
  assert.equal(await s.incomplete("1 + 2"), false);
  assert.equal(await s.incomplete("let b: = 2"), false);
});

Deno.test("completion offers names in scope, Tensor methods and statics, and dot-commands", async () => {
  const s = newSession();
  await s.run("const myTensor = Tensor.ones([2])", base);
  assert.deepEqual(complete("myTe", s, COMMANDS), [["myTensor"], "myTe"]);
  assert.ok(complete("Tensor.ara", s, COMMANDS)[0].includes("arange"));
  const [hits, word] = complete("myTensor.resh", s, COMMANDS);
  assert.deepEqual([hits, word], [["reshape"], "resh"]);
  assert.ok(complete("myTensor.", s, COMMANDS)[0].includes("matmul"));
  assert.deepEqual(complete(".ke", s, COMMANDS), [[".kernels"], ".ke"]);
  assert.deepEqual(complete("nothingHere.x", s, COMMANDS), [[], "x"]);
});

Deno.test("piped: `Tensor.arange(10).sum()` prints 45", async () => {
  const r = await piped("Tensor.arange(10).sum()\n");
  assert.equal(r.stdout, "45\n");
  assert.equal(r.stderr, "");
  assert.equal(r.code, 0);
});

Deno.test("piped: multi-line input, persistence, an error then a good line, dot-commands", async () => {
  const input = [
    "const a = Tensor.arange(6)",
    "  .reshape([2, 3]);",
    "function double(x: Tensor): Tensor {",
    "  return x.mul(2);",
    "}",
    "let n: number = 1 +",
    "  2;",
    "double(a).sum().item() + n",
    "undefinedName + 1",
    "a.shape",
    ".kernels a.add(1)",
    ".device JS",
    "Tensor.ones([2]).device",
    ".frob",
    "a",
  ].join("\n");
  const r = await piped(input, { DEV: "CPU" });
  const lines = r.stdout.split("\n");
  assert.equal(lines[0], "33");
  assert.equal(lines[1], "[ 2, 3 ]");
  assert.match(lines[2], /^\/\/ \S+ global=\[/, "a kernel header");
  assert.ok(r.stdout.includes("default device: JS"));
  assert.ok(lines.includes("JS"), "the device switch is seen by the next line");
  assert.ok(r.stdout.trimEnd().endsWith("shape=[2, 3], dtype=int32, device=CPU)"));
  assert.deepEqual(r.stderr.trimEnd().split("\n"), [
    "ReferenceError: undefinedName is not defined",
    "Error: unknown command '.frob': commands are " + COMMANDS.join(" "),
  ]);
  assert.equal(r.code, 1, "an error makes the exit status 1");
});

Deno.test("piped: DEBUG=1 prints the stack; .time reports kernels; .load runs a file", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/lib.ts`, "export const k: number = 7;\nk * 6\n");
  const r = await piped(
    `.load ${dir}/lib.ts\nk\n.time Tensor.ones([8]).add(k).sum()\nnull.x\n.exit\n1234\n`,
    { DEV: "JS", DEBUG: "1" },
  );
  const out = r.stdout.split("\n").filter((l) => !l.startsWith("realize:"));
  assert.deepEqual(out.slice(0, 3), ["42", "7", "64"]);
  assert.match(out[3], /^time [\d.]+ ms, 1 kernel, ([\d.]+ GFLOP\/s|no ops counted)$/);
  assert.ok(!r.stdout.includes("1234"), ".exit stops reading");
  assert.match(r.stderr, /TypeError: Cannot read properties of null[^\n]*\n\s+at /);
  await Deno.remove(dir, { recursive: true });
});

Deno.test({
  name: "terminal: tab completion, continuation, Ctrl-C, history kept across sessions, Ctrl-D",
  ignore: !hasScript(),
  async fn() {
    const dir = await Deno.makeTempDir();
    const hist = `${dir}/history`;
    const argv = [Deno.execPath(), "run", "-A", MOD.pathname, "repl"];
    const env = { TG_HISTORY: hist, DEV: "JS" };
    const p = spawnPty(argv, { env, cwd: dir });
    try {
      await p.expect("tg> ");
      await p.send("const vals = Tensor.ara\t");
      await p.expect("arange");
      await p.send("(5)\r");
      await p.expect("tg> ");
      await p.send("vals.resh\t");
      await p.expect("reshape");
      await p.send("([5, 1]).sum().item() * 1000\r");
      await p.expect("10000");
      await p.expect("tg> ");
      await p.send("this is garbage\x03");
      await p.expect("^C");
      await p.expect("tg> ");
      await p.send("[1,\r");
      await p.expect("... ");
      await p.send("2].length + 40\r");
      const seen = await p.expect("tg> ");
      assert.ok(seen.includes("42"), seen);
      assert.ok(!p.output().includes("garbage is not defined"), "Ctrl-C dropped the line");
      await p.send("\x04");
      assert.equal(await p.status, 0);
    } finally {
      p.kill();
    }
    const saved = (await Deno.readTextFile(hist)).trim().split("\n");
    assert.deepEqual(saved, [
      "const vals = Tensor.arange(5)",
      "vals.reshape([5, 1]).sum().item() * 1000",
      "[1,",
      "2].length + 40",
    ]);
    // a new session recalls the previous one's lines with the Up arrow
    const q = spawnPty(argv, { env, cwd: dir });
    try {
      await q.expect("tg> ");
      await q.send("const vals = Tensor.arange(5).add(1)\r");
      await q.expect("tg> ");
      // newest first: this session's line, then "2].length + 40", "[1,", then the reshape line
      await q.send("\x1b[A\x1b[A\x1b[A\x1b[A\r");
      await q.expect("15000");
      await q.send(".exit\r");
      assert.equal(await q.status, 0);
    } finally {
      q.kill();
    }
    await Deno.remove(dir, { recursive: true });
  },
});
