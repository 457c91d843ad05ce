// `deno task bundle`: dist/tg.js, one self-contained ES module (esbuild) of the library and
// its command line: `deno run -A dist/tg.js repl` works from any directory, offline.
//   deno task bundle [OUTFILE]   (default dist/tg.js)
// Tooling only: the library itself imports no npm package. Inline rather than in deno.json's
// "imports": an npm entry there makes every `deno task` resolve it and write a deno.lock.
// deno-lint-ignore no-import-prefix
import * as esbuild from "npm:esbuild@^0.25.12";

const root = new URL("../", import.meta.url);
const outfile = Deno.args[0] ?? new URL("dist/tg.js", root).pathname;
try {
  const result = await esbuild.build({
    entryPoints: [new URL("mod.ts", root).pathname],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "esnext",
    outfile,
    // Deno provides node: built-ins; everything else is inlined
    external: ["node:*"],
    logLevel: "warning",
    metafile: true,
  });
  const bytes = Object.values(result.metafile.outputs).reduce((a, o) => a + o.bytes, 0);
  console.log(`wrote ${outfile} (${(bytes / 1024).toFixed(0)} KiB)`);
} finally {
  await esbuild.stop();
}
