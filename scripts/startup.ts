// Time from launch to the REPL's first prompt on a real terminal:
//   deno run -A scripts/startup.ts [RUNS]   (builds nothing: run `deno task bundle` first)
import { spawnPty } from "./pty.ts";

const runs = Number(Deno.args[0] ?? 5);
const root = new URL("../", import.meta.url).pathname;
const bundle = `${root}dist/tg.js`;
const tmp = Deno.makeTempDirSync();
const forms: [string, string[]][] = [["deno run -A mod.ts repl", [
  Deno.execPath(),
  "run",
  "-A",
  `${root}mod.ts`,
  "repl",
]]];
try {
  Deno.statSync(bundle);
  forms.push(["deno run -A dist/tg.js repl", [Deno.execPath(), "run", "-A", bundle, "repl"]]);
} catch {
  console.error(`no ${bundle}: run \`deno task bundle\` to time it too`);
}
for (const [label, argv] of forms) {
  const ms: number[] = [];
  for (let i = 0; i < runs + 1; i++) {
    const t0 = performance.now();
    const p = spawnPty(argv, { cwd: tmp, env: { TG_HISTORY: "" } });
    await p.expect("tg> ");
    const dt = performance.now() - t0;
    if (i > 0) ms.push(dt); // the first run warms Deno's caches
    await p.send("\x04");
    await p.status;
  }
  ms.sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      form: label,
      runs,
      medianMs: Math.round(ms[ms.length >> 1]),
      minMs: Math.round(ms[0]),
    }),
  );
}
Deno.removeSync(tmp, { recursive: true });
