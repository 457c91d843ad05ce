// `deno task bench [NAME...]`: runs the scripted benchmarks (JSON lines out).
const all = [
  "symbolic",
  "compile",
  "elementwise",
  "latency",
  "matmul",
  "jit",
  "webgpu",
  "memory",
  "gpu",
  "attention",
  "reduce",
  "conv",
];
const names = Deno.args.length ? Deno.args : all;
for (const n of names) {
  if (!all.includes(n)) throw new Error(`unknown benchmark '${n}': choose from ${all.join(", ")}`);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(`./${n}.ts`, import.meta.url).pathname],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!out.success) Deno.exit(out.code);
}
