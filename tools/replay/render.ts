// Render the corpus's kernels with the tree at `root` (its mod.ts, loaded at run time) for the JS
// and CPU renderers. Nothing runs: t.kernels() renders without compiling.
import { fileURLToPath, pathToFileURL } from "node:url";
import { corpus, type Lib } from "./corpus.ts";
import { formatLoops, parseLoops } from "./loops.ts";

export interface KernelRecord {
  /** `<program>#<index>` (index in schedule order) */
  key: string;
  renderer: string;
  name: string;
  src: string;
  /** formatLoops of the source */
  loops: string;
  /** uops of the linearized program by op name (null where the tree has no lowerKernel) */
  ops: Record<string, number> | null;
}

export interface Replay {
  version: 1;
  /** what was rendered (a git revision, or "working tree") */
  label: string;
  renderers: string[];
  kernels: KernelRecord[];
  /** programs that threw, with the message */
  errors: Record<string, string>;
}

/** the renderers replay covers, by device name */
export const devices: Record<string, string> = { JS: "js", CPU: "c" };

interface Codegen {
  lowerKernel?: (ast: unknown) => { lin: { uops: { op: number }[] } };
}
interface Ops {
  [op: number]: string;
}

function opCounts(
  codegen: Codegen,
  ops: Ops | undefined,
  ast: unknown,
): Record<string, number> | null {
  if (!codegen.lowerKernel || !ops) return null;
  const counts: Record<string, number> = {};
  for (const u of codegen.lowerKernel(ast).lin.uops) {
    const k = ops[u.op] ?? String(u.op);
    counts[k] = (counts[k] ?? 0) + 1;
  }
  return counts;
}

async function tryImport<T>(url: URL): Promise<T | null> {
  try {
    return await import(url.href) as T;
  } catch {
    return null;
  }
}

/** the directory holding this checkout's mod.ts */
export const ownRoot = (): string => fileURLToPath(new URL("../..", import.meta.url));

export async function renderCorpus(root: string, label: string): Promise<Replay> {
  const base = pathToFileURL(root.endsWith("/") ? root : root + "/");
  const mod = await import(new URL("mod.ts", base).href) as Lib & {
    Device: { list(): string[] };
    Ops?: Ops;
  };
  const codegen = await tryImport<Codegen>(new URL("src/codegen/index.ts", base)) ?? {};
  const available = new Set(mod.Device.list().map((d) => d.toUpperCase()));
  const out: Replay = { version: 1, label, renderers: [], kernels: [], errors: {} };
  for (const [dev, renderer] of Object.entries(devices)) {
    if (!available.has(dev)) continue;
    out.renderers.push(renderer);
    for (const [name, program] of corpus) {
      try {
        const t = program(mod, dev);
        const ks = t.kernels() as { name: string; src: string }[];
        const asts = (t.schedule() as { ast: unknown }[]).map((s) => s.ast);
        ks.forEach((k, i) => {
          out.kernels.push({
            key: `${name}#${i}`,
            renderer,
            name: k.name,
            src: k.src,
            loops: formatLoops(parseLoops(k.src)),
            ops: asts.length === ks.length ? opCounts(codegen, mod.Ops, asts[i]) : null,
          });
        });
      } catch (err) {
        out.errors[`${name}/${renderer}`] = err instanceof Error ? err.message : String(err);
      }
    }
  }
  return out;
}
