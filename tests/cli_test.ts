// The `tg` command line, the bundle (built here and run from outside the checkout) and the
// compile task's message.
import assert from "node:assert/strict";
import { USAGE, VERSION } from "../src/cli.ts";
import { NO_DENORT } from "../scripts/compile.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const dec = new TextDecoder();

async function deno(
  args: string[],
  opts: { cwd?: string; env?: Record<string, string>; input?: string } = {},
) {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: opts.cwd,
    env: { TG_HISTORY: "", NO_COLOR: "1", ...opts.env },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  if (opts.input) await w.write(new TextEncoder().encode(opts.input));
  await w.close();
  const out = await child.output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
const tg = (...args: string[]) => deno(["run", "-A", `${ROOT}mod.ts`, ...args]);

Deno.test("--help names every command and environment variable; --version the version", async () => {
  const h = await tg("--help");
  assert.equal(h.code, 0);
  assert.equal(h.stdout, `${USAGE}\n`);
  for (const word of ["repl", "run FILE.ts", "bench", "devices", "--version"]) {
    assert.ok(h.stdout.includes(word), word);
  }
  for (
    const v of ["DEV", "DEBUG", "BEAM", "NOOPT", "CC", "CACHEDIR", "CHECK_BOUNDS", "TG_HISTORY"]
  ) {
    assert.match(h.stdout, new RegExp(`^  ${v}=`, "m"), v);
  }
  assert.equal((await tg("bench", "-h")).stdout, `${USAGE}\n`);
  const v = await tg("--version");
  assert.deepEqual([v.code, v.stdout], [0, `tg ${VERSION}\n`]);
});

Deno.test("unknown commands, flags and arguments fail with status 2, the reason and the usage", async () => {
  const c = await tg("frobnicate");
  assert.equal(c.code, 2);
  assert.ok(
    c.stderr.startsWith(
      "tg: unknown command 'frobnicate' (commands: repl, run, mem, bench, devices)",
    ),
  );
  assert.ok(c.stderr.includes("Usage: tg <command>"));
  const f = await tg("--frob");
  assert.equal(f.code, 2);
  assert.ok(f.stderr.startsWith("tg: unknown option '--frob'"), f.stderr);
  const d = await tg("devices", "--json");
  assert.equal(d.code, 2);
  assert.ok(d.stderr.startsWith("tg: unknown option '--json'"), d.stderr);
  const a = await tg("devices", "extra");
  assert.equal(a.code, 2);
  assert.ok(a.stderr.startsWith("tg: devices takes no arguments, got 'extra'"));
  const r = await tg("run");
  assert.equal(r.code, 2);
  assert.ok(r.stderr.startsWith("tg: run needs a script"));
  const m = await tg("run", "/nonexistent/x.ts");
  assert.equal(m.code, 2);
  assert.ok(m.stderr.startsWith("tg: run: cannot find the script '/nonexistent/x.ts'"));
});

Deno.test("devices lists each registered device with its status, cores, memory and compiler", async () => {
  const r = await tg("devices");
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split("\n");
  assert.match(lines[0], /^DEVICE\s+STATUS\s+HARDWARE\s+CORES\s+MEMORY\s+COMPILER$/);
  const js = lines.find((l) => /^JS\*?\s/.test(l));
  assert.ok(js, r.stdout);
  assert.match(js, /^JS\*?\s+ok\s+host\s+1\s+[\d.]+ GiB\s+V8/);
  assert.ok(lines.some((l) => l.startsWith("CPU")), "CPU is always listed, working or not");
});

Deno.test("run: a script imports the library as `tg` and gets its arguments", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(
    `${dir}/script.ts`,
    'import { Tensor } from "tg";\nconsole.log(Tensor.arange(5).sum().item(), Deno.args.join(","));\n',
  );
  const r = await deno(["run", "-A", `${ROOT}mod.ts`, "run", "script.ts", "--flag", "x"], {
    cwd: dir,
    env: { DEV: "JS" },
  });
  assert.equal(r.stderr, "");
  assert.deepEqual([r.code, r.stdout], [0, "10 --flag,x\n"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("bench passes names to bench/run.ts, which rejects unknown ones", async () => {
  const r = await tg("bench", "nosuchbench");
  assert.notEqual(r.code, 0);
  assert.ok(r.stderr.includes("unknown benchmark 'nosuchbench'"), r.stderr);
});

Deno.test("bundle: dist/tg.js built with esbuild runs the REPL and scripts from another directory", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tg-bundle-" });
  const out = `${dir}/tg.js`;
  const b = await deno(["run", "-A", "--no-lock", `${ROOT}scripts/bundle.ts`, out], { cwd: ROOT });
  if (
    b.code !== 0 &&
    /Error getting response|Could not find npm package|failed to (fetch|download)|tarball/i.test(
      b.stderr,
    )
  ) {
    console.log(
      `SKIPPED: esbuild cannot be installed here, the bundle was not tested:\n${b.stderr}`,
    );
    await Deno.remove(dir, { recursive: true });
    return;
  }
  assert.equal(b.code, 0, b.stderr);
  assert.ok(!dir.startsWith(ROOT));
  // --cached-only: running the bundle fetches nothing
  const r = await deno(["run", "-A", "--cached-only", "tg.js", "repl"], {
    cwd: dir,
    input: "const t = Tensor.arange(10)\nt.sum()\n",
  });
  assert.deepEqual([r.code, r.stdout, r.stderr], [0, "45\n", ""]);
  await Deno.writeTextFile(
    `${dir}/s.ts`,
    'import { Tensor } from "tg";\nconsole.log(Tensor.ones([3]).sum().item());\n',
  );
  const s = await deno(["run", "-A", "--cached-only", "tg.js", "run", "s.ts"], {
    cwd: dir,
    env: { DEV: "JS" },
  });
  assert.deepEqual([s.code, s.stdout], [0, "3\n"], s.stderr);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("compile: without DENORT_BIN the task fails saying the denort download is unreachable", async () => {
  const denort = Deno.env.get("DENORT_BIN");
  if (denort) {
    const c = await deno(["run", "-A", "--no-lock", `${ROOT}scripts/compile.ts`], { cwd: ROOT });
    assert.equal(c.code, 0, c.stderr);
    const run = new Deno.Command(`${ROOT}dist/tg`, {
      args: ["repl"],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const w = run.stdin.getWriter();
    await w.write(new TextEncoder().encode("Tensor.arange(10).sum()\n"));
    await w.close();
    assert.equal(dec.decode((await run.output()).stdout), "45\n");
    return;
  }
  const r = await deno(["run", "-A", "--no-lock", `${ROOT}scripts/compile.ts`], {
    cwd: ROOT,
    env: { DENORT_BIN: "" },
  });
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim(), NO_DENORT);
  assert.match(NO_DENORT, /denort runtime download is unreachable here; set DENORT_BIN/);
});
