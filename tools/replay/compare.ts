// Compare two renderings of the corpus kernel by kernel: loop structure, op counts, source diff.
import type { KernelRecord, Replay } from "./render.ts";
import { formatLoops, parseLoops } from "./loops.ts";

export interface KernelChange {
  id: string;
  /** "changed", "added" (only in the current run) or "removed" (only in the base) */
  kind: "changed" | "added" | "removed";
  loops?: { base: string; cur: string };
  /** the loop structure where it did not change */
  sameLoops?: string;
  /** op -> [base count, current count], only ops whose count differs */
  ops?: Record<string, [number, number]>;
  diff?: string;
}

export interface Comparison {
  /** kernels in the current run, over the renderers both runs cover */
  total: number;
  changes: KernelChange[];
  /** changes whose loop structure differs (added and removed kernels count too) */
  loopChanges: number;
  /** program errors that are new or differ from the base's */
  newErrors: Record<string, string>;
  /** program renders that fail the same way in both runs (e.g. a feature not built yet) */
  oldErrors: number;
}

const loopsOf = (src: string): string => formatLoops(parseLoops(src));
const idOf = (k: KernelRecord): string => `${k.key}/${k.renderer}`;

function opDiff(
  a: Record<string, number> | null,
  b: Record<string, number> | null,
): Record<string, [number, number]> | undefined {
  if (!a || !b) return undefined;
  const out: Record<string, [number, number]> = {};
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if ((a[k] ?? 0) !== (b[k] ?? 0)) out[k] = [a[k] ?? 0, b[k] ?? 0];
  }
  return Object.keys(out).length ? out : undefined;
}

export function compare(base: Replay, cur: Replay): Comparison {
  const shared = new Set(base.renderers.filter((r) => cur.renderers.includes(r)));
  const pick = (r: Replay) =>
    new Map(r.kernels.filter((k) => shared.has(k.renderer)).map((k) => [idOf(k), k]));
  const b = pick(base), c = pick(cur);
  const changes: KernelChange[] = [];
  for (const [id, k] of c) {
    const old = b.get(id);
    if (!old) {
      changes.push({ id, kind: "added", loops: { base: "", cur: loopsOf(k.src) } });
      continue;
    }
    if (old.src === k.src && old.name === k.name) continue;
    // loops re-read from both sources, so that both sides go through the same parser
    const lb = loopsOf(old.src), lc = loopsOf(k.src);
    changes.push({
      id,
      kind: "changed",
      loops: lb === lc ? undefined : { base: lb, cur: lc },
      sameLoops: lb === lc ? lc : undefined,
      ops: opDiff(old.ops, k.ops),
      diff: unifiedDiff(old.src, k.src, `${id} ${old.name}`, `${id} ${k.name}`),
    });
  }
  for (const [id, k] of b) {
    if (!c.has(id)) changes.push({ id, kind: "removed", loops: { base: loopsOf(k.src), cur: "" } });
  }
  const newErrors: Record<string, string> = {};
  for (const [p, msg] of Object.entries(cur.errors)) {
    if (base.errors[p] !== msg) newErrors[p] = msg;
  }
  return {
    total: c.size,
    changes,
    loopChanges: changes.filter((x) => x.loops).length,
    newErrors,
    oldErrors: Object.keys(cur.errors).length - Object.keys(newErrors).length,
  };
}

/** a line diff with `context` lines around each change, in unified-diff form */
export function unifiedDiff(
  a: string,
  b: string,
  nameA: string,
  nameB: string,
  context = 2,
): string {
  const x = a.split("\n"), y = b.split("\n");
  // LCS table from the ends: kernels are short, O(n*m) is fine
  const n = x.length, m = y.length;
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const ops: { t: " " | "-" | "+"; s: string; i: number; j: number }[] = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] === y[j]) ops.push({ t: " ", s: x[i], i: i++, j: j++ });
    else if (i < n && (j === m || lcs[i + 1][j] >= lcs[i][j + 1])) {
      ops.push({ t: "-", s: x[i], i: i++, j });
    } else ops.push({ t: "+", s: y[j], i, j: j++ });
  }
  const out = [`--- ${nameA}`, `+++ ${nameB}`];
  for (let k = 0; k < ops.length;) {
    if (ops[k].t === " ") {
      k++;
      continue;
    }
    // a hunk: from `context` lines before this change to `context` lines after the last change
    // that is no more than 2*context lines further
    let end = k;
    for (let q = k; q < ops.length && q - end <= 2 * context; q++) if (ops[q].t !== " ") end = q;
    const from = Math.max(0, k - context), to = Math.min(ops.length, end + context + 1);
    const hunk = ops.slice(from, to);
    const la = hunk.filter((o) => o.t !== "+").length, lb = hunk.filter((o) => o.t !== "-").length;
    out.push(`@@ -${hunk[0].i + 1},${la} +${hunk[0].j + 1},${lb} @@`);
    for (const o of hunk) out.push(`${o.t}${o.s}`);
    k = to;
  }
  return out.join("\n");
}

/** the report: one block per changed kernel, then the summary line */
export function report(cmp: Comparison, opts: { diffs?: boolean } = {}): string {
  const lines: string[] = [];
  for (const ch of cmp.changes) {
    lines.push(`${ch.kind === "changed" ? "~" : ch.kind === "added" ? "+" : "-"} ${ch.id}`);
    if (ch.loops) lines.push(`    loops: ${ch.loops.base || "-"}  ->  ${ch.loops.cur || "-"}`);
    if (ch.sameLoops) lines.push(`    loops: ${ch.sameLoops} (unchanged)`);
    if (ch.ops) {
      const s = Object.entries(ch.ops).map(([k, [a, b]]) => `${k} ${a}->${b}`).join(", ");
      lines.push(`    ops: ${s}`);
    }
    if (opts.diffs !== false && ch.diff) {
      for (const l of ch.diff.split("\n")) lines.push(`    ${l}`);
    }
  }
  for (const [p, msg] of Object.entries(cmp.newErrors)) lines.push(`! ${p}: ${msg}`);
  if (cmp.oldErrors) lines.push(`(${cmp.oldErrors} program renders fail in both runs)`);
  lines.push(summary(cmp));
  return lines.join("\n");
}

export const summary = (cmp: Comparison): string =>
  `replay: ${cmp.total} kernels, ${cmp.changes.length} changed (${cmp.loopChanges} loop-structure changes)` +
  (Object.keys(cmp.newErrors).length
    ? `, ${Object.keys(cmp.newErrors).length} programs newly failing`
    : "");
