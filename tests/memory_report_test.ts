// memoryReport: alive bytes per step, the peak and the long edges against hand counts and the
// engine's own allocation counter; the SVG plot's structure; `tg mem` end to end.
import assert from "node:assert/strict";
import { GlobalCounters, memoryReport, nn, Tensor } from "../mod.ts";
import { LONG_FRACTION, LONG_MIN_STEPS, type MemoryReport } from "../src/engine/memory_report.ts";

const DEVICE = "JS";

/** x [8] -> a [4,8] -> b [4,8,2] -> c = sum(b) [8] -> d = c + a [4,8]: a is read again at the end */
function chain() {
  const x = Tensor.from(new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]), { device: DEVICE }).realize();
  const a = x.reshape([1, 8]).expand([4, 8]).contiguous();
  const b = a.reshape([4, 8, 1]).expand([4, 8, 2]).mul(2).contiguous();
  const c = b.sum([0, 2]).contiguous();
  return c.reshape([1, 8]).expand([4, 8]).add(a).contiguous();
}

function aliveBytesFromBuffers(r: MemoryReport): number[] {
  return r.steps.map((s) => s.alive.reduce((t, id) => t + r.buffers[id].bytes, 0));
}

Deno.test("alive bytes per step, the peak and its step match a hand count of a float32 chain", () => {
  const r = memoryReport(chain());
  // a 128 B, b 256 B, c 32 B, d 128 B; b dies after c reads it, a and c after d reads them
  assert.deepEqual(r.steps.map((s) => s.aliveBytes), [
    128,
    128 + 256,
    128 + 256 + 32,
    128 + 32 + 128,
  ]);
  assert.deepEqual(r.steps.map((s) => s.aliveBytes), aliveBytesFromBuffers(r));
  assert.deepEqual(r.steps.map((s) => s.alive.length), [1, 2, 3, 3]);
  assert.deepEqual(r.steps.map((s) => s.freed.length), [0, 0, 1, 2]);
  assert.equal(r.inputBytes, 32);
  assert.equal(r.peakBytes, 416);
  assert.equal(r.peakStep, 2);
  assert.equal(r.peakTotalBytes, 448);
  assert.match(r.peakName, /^sum float32\[8\]$/);
  const [a, b, c, d] = r.steps.map((s) => r.buffers[s.output]);
  assert.deepEqual([a.bytes, b.bytes, c.bytes, d.bytes], [128, 256, 32, 128]);
  assert.deepEqual([a.madeAt, a.lastUse, a.freedAfter], [0, 3, 3]);
  assert.deepEqual([b.madeAt, b.lastUse, b.freedAfter], [1, 2, 2]);
  assert.deepEqual([d.kind, d.freedAfter], ["output", null]);
  assert.equal(r.buffers.filter((x) => x.kind === "input").length, 1);
  assert.equal(r.longEdges.length, 0, "4 steps: no span reaches LONG_MIN_STEPS");
  const text = r.format();
  assert.match(text, /peak 448 B = inputs \+ 416 B alive at step 2 \(sum float32\[8\]\)/);
  assert.equal(text.split("\n").filter((l) => l.includes("<- peak")).length, 1);
});

Deno.test("the report's peak is the bytes the engine allocates when it realizes the schedule", () => {
  const d = chain();
  const r = memoryReport(d);
  GlobalCounters.reset();
  const before = GlobalCounters.memUsed;
  d.realize();
  assert.equal(GlobalCounters.memPeak - before, r.peakBytes);
  assert.deepEqual(
    Array.from(d.dataSync() as Float32Array),
    // c = sum over 4 rows and 2 copies of 2x = 16x, d = c + x per row
    Array.from({ length: 32 }, (_, k) => 17 * (k % 8 + 1)),
  );
  assert.equal(memoryReport(d).steps.length, 0, "a realized tensor schedules nothing");
});

Deno.test("a buffer read again eight steps later is the one long edge of a chain", () => {
  const x = Tensor.rand([256], { device: DEVICE }).realize();
  const first = x.add(1).contiguous();
  let y = first;
  for (let i = 0; i < 6; i++) y = y.mul(2).contiguous();
  const out = y.add(first).contiguous();
  const r = memoryReport(out);
  const n = r.steps.length, bytes = 256 * 4;
  assert.equal(n, 8);
  // first stays alive; the chain holds its input and output: 3 buffers from step 2 on
  assert.deepEqual(
    r.steps.map((s) => s.aliveBytes),
    [1, 2, 3, 3, 3, 3, 3, 3].map((k) => k * bytes),
  );
  assert.equal(r.peakStep, 2);
  assert.deepEqual(r.longEdges.map((b) => [b.madeAt, b.lastUse]), [[0, 7]]);
  assert.match(r.format(), /long edges .*: 1, 1\.02 kB of them alive at the peak/);
});

Deno.test("forward activations held for the backward are the long edges of a training graph", () => {
  // stored, not recomputed (the default recomputes elementwise values like these relus)
  Deno.env.set("RECOMPUTE", "0");
  try {
    trainingGraphEdges();
  } finally {
    Deno.env.delete("RECOMPUTE");
  }
});
function trainingGraphEdges(): void {
  Tensor.manualSeed(1);
  const model = { l1: new nn.Linear(16, 32), l2: new nn.Linear(32, 32), l3: new nn.Linear(32, 4) };
  const params = nn.state.getParameters(model);
  Tensor.realize(...params);
  const x = Tensor.rand([8, 16]).realize();
  const h1 = model.l1.call(x).relu(), h2 = model.l2.call(h1).relu();
  const loss = model.l3.call(h2).square().mean();
  loss.backward();
  const r = memoryReport(loss, ...params.map((p) => p.grad!));
  const n = r.steps.length;
  assert.equal(r.inputBytes, params.reduce((s, p) => s + p.numel() * 4, 0) + 8 * 16 * 4);
  const lossStep = r.buffers.find((b) => b.kind === "output" && b.shape.length === 0)!.madeAt;
  // the relu outputs (float32 [8,32], made before the loss) are read by the weight gradients
  const acts = r.buffers.filter((b) =>
    b.kind === "intermediate" && b.madeAt < lossStep && b.dtype === "float32" &&
    b.shape.join() === "8,32" && b.label.startsWith("where")
  );
  assert.equal(acts.length, 2, r.format());
  for (const b of acts) {
    assert.ok(b.lastUse > lossStep, `${b.label} made ${b.madeAt} read ${b.lastUse}`);
  }
  // the first layer's is read by the last gradient of the backward: a long edge across the loss
  const first = acts.reduce((a, b) => (b.madeAt < a.madeAt ? b : a));
  assert.ok(first.long, `${first.label} made ${first.madeAt} read ${first.lastUse}`);
  for (const b of r.buffers) {
    const span = b.lastUse - b.madeAt;
    const want = b.kind !== "input" && span >= LONG_MIN_STEPS && span > n * LONG_FRACTION;
    assert.equal(b.long, want, b.label);
  }
  assert.deepEqual(r.steps.map((s) => s.aliveBytes), aliveBytesFromBuffers(r));
  const peak = Math.max(...r.steps.map((s) => s.aliveBytes));
  assert.equal(r.peakBytes, peak);
  assert.equal(r.steps.findIndex((s) => s.aliveBytes === peak), r.peakStep);
}

/** tags balanced and nested; returns the element names in document order */
function parseTags(svg: string): string[] {
  const stack: string[] = [], names: string[] = [];
  const body = svg.replace(/^<\?xml[^>]*\?>\s*/, "");
  for (const m of body.matchAll(/<(\/?)([a-zA-Z]+)((?:\s+[a-zA-Z:-]+="[^"<]*")*)\s*(\/?)>/g)) {
    const [, close, name, , self] = m;
    if (close) assert.equal(stack.pop(), name, `</${name}> closes the open element`);
    else {
      names.push(name);
      if (!self) stack.push(name);
    }
  }
  assert.deepEqual(stack, [], "every element is closed");
  const stripped = body.replace(/<[^>]*>/g, "");
  assert.ok(!/[<>]/.test(stripped), "no stray angle brackets in text");
  assert.ok(!/&(?!amp;|lt;|gt;|quot;)/.test(stripped), "text entities are escaped");
  return names;
}

Deno.test("toSVG is a well-formed standalone SVG with a step line and the peak marked", () => {
  const r = memoryReport(chain());
  const svg = r.toSVG();
  assert.match(svg, /^<\?xml version="1.0"[^>]*\?>\n<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  const names = parseTags(svg);
  assert.equal(names[0], "svg");
  assert.equal(names.filter((x) => x === "svg").length, 1);
  assert.ok(names.includes("path") && names.includes("circle"));
  const d = svg.match(/<path d="([^"]+)"/)![1];
  // one horizontal run per step
  assert.equal(d.match(/H/g)!.length, r.steps.length);
  // the y of each run: after M's comma and after each V; the peak's circle sits on the highest
  const ys = [...d.matchAll(/(?:M[\d.]+,|V)([\d.]+)/g)].map((m) => Number(m[1]));
  assert.equal(ys.length, r.steps.length);
  const cy = Number(svg.match(/<circle cx="[\d.]+" cy="([\d.]+)"/)![1]);
  assert.equal(cy, Math.min(...ys));
  assert.equal(ys.indexOf(cy), r.peakStep);
  assert.ok(svg.includes("peak 448 B at step 2 (sum float32[8])"));
  assert.ok(svg.includes("kernel step") && svg.includes("bytes alive (B)"));
});

Deno.test("tg mem runs a script and prints the largest schedule's table; --svg writes the plot", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/script.ts`,
      [
        'import { Tensor } from "tg";',
        "const x = Tensor.rand([64]).realize(), s = Tensor.rand([16]).realize();",
        "for (let k = 0; k < 3; k++) Tensor.realize(s.add(1).contiguous().mul(2).contiguous());",
        "let y = x;",
        "for (let i = 0; i < 6; i++) y = y.mul(2).add(x).contiguous();",
        'console.log("args", Deno.args.join(","));',
        "y.realize();",
      ].join("\n"),
    );
    const root = new URL("../", import.meta.url).pathname;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${root}mod.ts`, "mem", "--svg", "plot.svg", "script.ts", "--a", "b"],
      cwd: dir,
      env: { DEV: DEVICE, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.match(text, /^args --a,b$/m);
    assert.match(text, /tg mem: 2 distinct schedules realized/);
    // the 2-step schedule ran 3 times; the 6-step one (peak 2 x 256 B) is the one printed in full
    assert.match(text, /^0 +3 +2 +64 B +128 B +192 B +1 mul float32\[16\]$/m);
    assert.match(text, /^1 +1 +6 +256 B +512 B +768 B +1 add float32\[64\]$/m);
    assert.match(text, /^schedule #1 \(ran 1x\):\nmemory report: 6 steps/m);
    const svg = await Deno.readTextFile(`${dir}/plot.svg`);
    parseTags(svg);
    assert.ok(svg.includes("peak 768 B at step 1"));
    const bad = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${root}mod.ts`, "mem", "--svg", "plot.png", "script.ts"],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(bad.code, 2);
    assert.match(new TextDecoder().decode(bad.stderr), /^tg: mem: --svg needs a file name ending/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
