// Process replay: render the kernels of a fixed corpus (tools/replay/corpus.ts) and compare them
// with a baseline, so that a refactor meant to change nothing shows no kernel change.
//
//   deno task replay                   compare with HEAD if src/ or mod.ts has local changes, else
//                                      with HEAD~1 (each base is rendered in a temp git worktree)
//   deno task replay --base main       compare with a revision
//   deno task replay --against FILE    compare with a saved rendering
//   deno task replay --save FILE       save this tree's rendering (and compare nothing)
// Options: --root DIR (the tree to render, default this checkout), --no-diff (no source diffs),
// --fail-on-loop-change (exit 1 when some loop structure changed; by default changes only print).
// Exit status: 0 whatever changed, 1 on an internal error (or with --fail-on-loop-change), 2 on
// bad usage.
import { parseArgs } from "node:util";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ownRoot, renderCorpus, type Replay } from "./replay/render.ts";
import { compare, report } from "./replay/compare.ts";

function git(root: string, ...args: string[]): { ok: boolean; out: string; err: string } {
  let r: Deno.CommandOutput;
  try {
    r = new Deno.Command("git", { args: ["-C", root, ...args], stdout: "piped", stderr: "piped" })
      .outputSync();
  } catch (err) {
    return {
      ok: false,
      out: "",
      err: `cannot run git: ${err instanceof Error ? err.message : err}`,
    };
  }
  const dec = new TextDecoder();
  return { ok: r.success, out: dec.decode(r.stdout).trim(), err: dec.decode(r.stderr).trim() };
}

/** HEAD while src/ or mod.ts has uncommitted changes (the refactor in progress), else HEAD~1 */
function autoBase(root: string): string {
  const st = git(root, "status", "--porcelain", "--", "src", "mod.ts");
  return st.ok && st.out ? "HEAD" : "HEAD~1";
}

/** render the corpus at `rev` in a temporary worktree, in a subprocess running this tool */
async function renderRevision(root: string, rev: string): Promise<Replay | string> {
  const commit = git(root, "rev-parse", "--verify", "--quiet", `${rev}^{commit}`);
  if (!commit.ok) {
    return `no revision '${rev}' here${commit.err ? ` (${commit.err})` : " (a shallow clone?)"}`;
  }
  const dir = await Deno.makeTempDir({ dir: tmpdir(), prefix: "tg-replay-" });
  const wt = join(dir, "tree"), out = join(dir, "base.json");
  const add = git(root, "worktree", "add", "--detach", "--quiet", wt, commit.out);
  if (!add.ok) {
    await Deno.remove(dir, { recursive: true });
    throw new Error(`git worktree add failed: ${add.err}`);
  }
  try {
    const self = new URL(import.meta.url).pathname;
    const r = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--no-lock",
        self,
        "--save",
        out,
        "--root",
        wt,
        "--label",
        `${rev} (${commit.out.slice(0, 9)})`,
      ],
      cwd: wt,
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!r.success) {
      const err = new TextDecoder().decode(r.stderr).trim().split("\n").slice(-5).join("\n");
      return `rendering ${rev} failed:\n${err}`;
    }
    return JSON.parse(await Deno.readTextFile(out)) as Replay;
  } finally {
    if (!git(root, "worktree", "remove", "--force", wt).ok) git(root, "worktree", "prune");
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function main(argv: string[]): Promise<number> {
  const { values: o } = parseArgs({
    args: argv,
    options: {
      base: { type: "string" },
      against: { type: "string" },
      save: { type: "string" },
      root: { type: "string" },
      label: { type: "string" },
      "no-diff": { type: "boolean" },
      "fail-on-loop-change": { type: "boolean" },
    },
  });
  if (o.base && o.against) {
    console.error("replay: give --base REV or --against FILE, not both");
    return 2;
  }
  const root = o.root ?? ownRoot();
  const cur = await renderCorpus(root, o.label ?? "working tree");
  if (o.save) {
    await Deno.writeTextFile(o.save, JSON.stringify(cur));
    if (!o.base && !o.against) {
      console.log(`replay: saved ${cur.kernels.length} kernels to ${o.save}`);
      return 0;
    }
  }
  let base: Replay | string;
  if (o.against) base = JSON.parse(await Deno.readTextFile(o.against)) as Replay;
  else base = await renderRevision(root, o.base ?? autoBase(root));
  if (typeof base === "string") {
    console.log(`replay: ${cur.kernels.length} kernels, nothing to compare: ${base}`);
    return 0;
  }
  const cmp = compare(base, cur);
  console.log(`replay: ${cur.label} against ${base.label}`);
  console.log(report(cmp, { diffs: !o["no-diff"] }));
  return o["fail-on-loop-change"] && cmp.loopChanges ? 1 : 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (err) {
    console.error(`replay: internal error: ${err instanceof Error ? err.stack : err}`);
    Deno.exit(1);
  }
}
