// Process replay (tools/replay.ts): loop structure read from rendered source, the comparison, and
// the CLI round trip through a saved rendering.
import assert from "node:assert/strict";
import { join } from "node:path";
import { axisLetter, type AxisType, Ops, type UOp } from "../src/uop/ops.ts";
import { lowerKernel } from "../src/codegen/index.ts";
import { formatLoops, loopStats, parseLoops } from "../tools/replay/loops.ts";
import { compare, report, unifiedDiff } from "../tools/replay/compare.ts";
import { corpus } from "../tools/replay/corpus.ts";
import { devices, type KernelRecord, renderCorpus, type Replay } from "../tools/replay/render.ts";
import * as mod from "../mod.ts";

Deno.test("parseLoops reads nesting, siblings, bounds and parallel pragmas from C source", () => {
  const src = [
    "static inline float f(float a) { return a; }",
    "void k(float* data0) {",
    "  #pragma omp parallel for",
    "  for (int Lidx0 = 0; Lidx0 < 128; Lidx0++) {",
    "    float acc0 = 0.0f;",
    "    for (int Ridx1 = 0; Ridx1 < 6; Ridx1++) { acc0 += 1.0f; }",
    "    for (int Ridx2 = 2; Ridx2 <= n; Ridx2 += 2)",
    "      acc0 += 2.0f;",
    "    for (int Ridx3 = 0; Ridx3 < 4; Ridx3++) {",
    "      for (int Lidx4 = 0; Lidx4 < 3; Lidx4++) {",
    "      }",
    "    }",
    "  }",
    "  for (int Lidx5 = 0; Lidx5 < 9; Lidx5++) {",
    "  }",
    "}",
  ].join("\n");
  const loops = parseLoops(src);
  assert.equal(formatLoops(loops), "par L128{R6,R2<=n,R4{L3}},L9");
  assert.deepEqual(loopStats(loops), { count: 6, depth: 3 });
  assert.equal(formatLoops(parseLoops("function k(a) {\n  a[0] = 1;\n}")), "(no loops)");
  const js = "function k(d) {\n  for (let Gidx0 = 0; Gidx0 < 5; Gidx0++) {\n" +
    "    for (let Uidx1 = 0; Uidx1 < 4; Uidx1++) {\n    }\n  }\n}";
  assert.equal(formatLoops(parseLoops(js)), "G5{U4}");
});

/** the loop forest of the linearized kernel, in formatLoops notation */
function linLoops(ast: UOp, parallel: boolean): string {
  const { lin } = lowerKernel(ast);
  const kids = new Map<UOp | null, UOp[]>();
  for (const u of lin.uops) {
    if (u.op !== Ops.RANGE) continue;
    const p = lin.parent.get(u) ?? null;
    kids.set(p, [...(kids.get(p) ?? []), u]);
  }
  const fmt = (r: UOp): string => {
    const inner = kids.get(r) ?? [];
    const par = parallel && lin.parallel.has(r) ? "par " : "";
    const letter = axisLetter[(r.arg as [number, AxisType])[1]];
    return `${par}${letter}${r.src[0].render()}${
      inner.length ? `{${inner.map(fmt).join(",")}}` : ""
    }`;
  };
  const top = kids.get(null) ?? [];
  return top.length ? top.map(fmt).join(",") : "(no loops)";
}

Deno.test("the loops read from every corpus kernel's source are the linearized program's loops", () => {
  let checked = 0;
  for (const [dev, renderer] of Object.entries(devices)) {
    if (!mod.Device.list().includes(dev)) continue;
    for (const [name, program] of corpus) {
      let t;
      try {
        t = program(mod, dev);
        t.kernels();
      } catch {
        continue; // a program this tree cannot build yet (the replay reports it)
      }
      const ks = t.kernels() as { src: string }[],
        asts = t.schedule().map((s: { ast: UOp }) => s.ast);
      assert.equal(ks.length, asts.length, name);
      ks.forEach((k, i) => {
        const fromSrc = formatLoops(parseLoops(k.src));
        assert.equal(fromSrc, linLoops(asts[i], renderer === "c"), `${name}#${i}/${renderer}`);
        checked++;
      });
    }
  }
  assert.ok(checked >= 100, `only ${checked} kernels checked`);
});

const rec = (key: string, src: string, ops: Record<string, number> = { ADD: 1 }): KernelRecord => ({
  key,
  renderer: "c",
  name: "k",
  src,
  loops: formatLoops(parseLoops(src)),
  ops,
});
const run = (kernels: KernelRecord[], errors: Record<string, string> = {}): Replay => ({
  version: 1,
  label: "t",
  renderers: ["c"],
  kernels,
  errors,
});
const loop = (n: number, body = "x;") =>
  `for (int Lidx0 = 0; Lidx0 < ${n}; Lidx0++) {\n  ${body}\n}`;

Deno.test("compare separates loop-structure changes from other source changes", () => {
  const base = run([rec("a#0", loop(4)), rec("b#0", loop(8)), rec("c#0", loop(2)), rec("d#0", "")]);
  assert.equal(compare(base, base).changes.length, 0);
  const cur = run([
    rec("a#0", loop(4)),
    rec("b#0", loop(16)),
    rec("c#0", loop(2, "y;"), { ADD: 1, MUL: 2 }),
    rec("e#0", loop(3)),
  ], { "p/c": "boom" });
  const cmp = compare(base, cur);
  assert.equal(cmp.total, 4);
  const byId = new Map(cmp.changes.map((c) => [c.id, c]));
  assert.deepEqual([...byId.keys()].sort(), ["b#0/c", "c#0/c", "d#0/c", "e#0/c"]);
  assert.deepEqual(byId.get("b#0/c")!.loops, { base: "L8", cur: "L16" });
  assert.equal(byId.get("c#0/c")!.loops, undefined);
  assert.equal(byId.get("c#0/c")!.sameLoops, "L2");
  assert.deepEqual(byId.get("c#0/c")!.ops, { MUL: [0, 2] });
  assert.equal(byId.get("d#0/c")!.kind, "removed");
  assert.equal(byId.get("e#0/c")!.kind, "added");
  assert.equal(cmp.loopChanges, 3);
  assert.deepEqual(cmp.newErrors, { "p/c": "boom" });
  const text = report(cmp);
  assert.match(text, /replay: 4 kernels, 4 changed \(3 loop-structure changes\)/);
  assert.match(text, /loops: L8 {2}-> {2}L16/);
  assert.match(text, /ops: MUL 0->2/);
});

Deno.test("unifiedDiff shows removed then added lines with context and hunk positions", () => {
  const a = "1\n2\n3\n4\n5\n6\n7\n8\n9", b = "1\n2\n3\nfour\n5\n6\n7\n8\n9\n10";
  assert.deepEqual(unifiedDiff(a, b, "a", "b", 1).split("\n"), [
    "--- a",
    "+++ b",
    "@@ -3,3 +3,3 @@",
    " 3",
    "-4",
    "+four",
    " 5",
    "@@ -9,1 +9,2 @@",
    " 9",
    "+10",
  ]);
  assert.equal(unifiedDiff(a, a, "a", "b").split("\n").length, 2);
});

async function replay(...args: string[]): Promise<{ code: number; out: string }> {
  const tool = new URL("../tools/replay.ts", import.meta.url).pathname;
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-lock", tool, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

Deno.test("replay CLI: two renderings agree, and a changed loop in the baseline is reported", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tg-replay-test-" });
  try {
    const a = join(dir, "a.json"), b = join(dir, "b.json");
    assert.equal((await replay("--save", a)).code, 0);
    const inProcess = await renderCorpus(new URL("..", import.meta.url).pathname, "working tree");
    const saved = JSON.parse(await Deno.readTextFile(a)) as Replay;
    assert.deepEqual(saved, inProcess, "rendering is deterministic across processes");

    const same = await replay("--against", a);
    assert.equal(same.code, 0, same.out);
    assert.match(same.out, new RegExp(`replay: ${saved.kernels.length} kernels, 0 changed \\(0 `));

    // the baseline's matmul ran its first loop one iteration longer
    const k = saved.kernels.find((x) => x.key === "matmul#0")!;
    const loopsNow = formatLoops(parseLoops(k.src));
    k.src = k.src.replace(/(for \([^;]*;[^<;]*< *)(\d+)/, (_, pre, n) => `${pre}${Number(n) + 1}`);
    const loopsThen = formatLoops(parseLoops(k.src));
    assert.notEqual(loopsThen, loopsNow);
    await Deno.writeTextFile(b, JSON.stringify(saved));
    const changed = await replay("--against", b);
    assert.equal(changed.code, 0, changed.out);
    assert.match(changed.out, /1 changed \(1 loop-structure changes\)/);
    assert.ok(changed.out.includes(`loops: ${loopsThen}  ->  ${loopsNow}`), changed.out);
    assert.equal((await replay("--against", b, "--fail-on-loop-change")).code, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
