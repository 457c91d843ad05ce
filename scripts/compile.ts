// `deno task compile`: dist/tg, the single binary (`deno compile`). deno compile needs the denort
// runtime, which it downloads from Deno's site unless DENORT_BIN names a local copy; that
// download is unreachable here, so without DENORT_BIN this fails with a message saying so.

export const NO_DENORT =
  "deno task compile: Deno's denort runtime download is unreachable here; set DENORT_BIN to " +
  "the path of a denort binary for this Deno version (" + Deno.version.deno + ") and run it again";

if (import.meta.main) {
  const denort = Deno.env.get("DENORT_BIN");
  if (!denort) {
    console.error(NO_DENORT);
    Deno.exit(1);
  }
  try {
    Deno.statSync(denort);
  } catch {
    console.error(`deno task compile: DENORT_BIN=${denort} does not exist`);
    Deno.exit(1);
  }
  const root = new URL("../", import.meta.url);
  const output = new URL("dist/tg", root).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["compile", "-A", "--no-lock", "--output", output, new URL("mod.ts", root).pathname],
    env: { DENORT_BIN: denort },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!out.success) Deno.exit(out.code);
  console.log(`wrote ${output}: run it as \`${output} repl\``);
}
