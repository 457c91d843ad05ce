// TypeScript to JavaScript for REPL input, offline. Deno has no public transpile API, but it
// does transpile a `data:application/typescript` module on dynamic import; wrapping the input as
// the body of an exported async function and reading that function's source back
// (Function.prototype.toString) yields the transpiled JavaScript without running the input.
// Limits: top-level `import` is rewritten to `await import()` first (a function body cannot hold
// it); helpers a transpiler would hoist to module scope (legacy decorators) are lost.

/** a SyntaxError in the user's input, with its position in that input */
export class InputSyntaxError extends SyntaxError {
  override name = "SyntaxError";
  /** the input ended where more was expected (`1 +`): more lines could complete it */
  atEnd = false;
}

let transpilerWorks: boolean | null = null;

const IMPORT_RE =
  /^[ \t]*import\s+(type\s+)?(?:([\w$]+\s*,?\s*)?(\*\s+as\s+[\w$]+|\{[^}]*\})?\s*from\s+)?(["'])([^"']+)\4[ \t]*;?/gm;

/** a specifier as the REPL resolves it: "tg" is the library, relative paths are from `base` */
function resolveSpecifier(spec: string, base: URL, tgUrl: string): string {
  if (spec === "tg") return tgUrl;
  if (spec.startsWith("./") || spec.startsWith("../") || spec.startsWith("/")) {
    return new URL(spec, base).href;
  }
  return spec;
}

/** rewrite top-level static imports into `await import()` so they can run inside a function */
export function rewriteImports(src: string, base: URL, tgUrl: string): string {
  return src.replace(IMPORT_RE, (_m, isType, def, rest, _q, spec) => {
    if (isType) return "";
    const url = JSON.stringify(resolveSpecifier(spec, base, tgUrl));
    const d = (def ?? "").replace(/[\s,]/g, "");
    if (!d && !rest) return `await import(${url});`;
    const parts: string[] = [];
    if (d) parts.push(`default: ${d}`);
    let ns = "";
    if (rest?.startsWith("*")) ns = rest.replace(/^\*\s+as\s+/, "").trim();
    else if (rest) {
      for (const raw of rest.slice(1, -1).split(",")) {
        const item = raw.trim();
        if (!item || item.startsWith("type ")) continue;
        const [name, alias] = item.split(/\s+as\s+/);
        parts.push(alias ? `${name}: ${alias}` : name);
      }
    }
    const tmp = `__tg_m${Math.random().toString(36).slice(2, 8)}`;
    const lines = [`const ${tmp} = await import(${url});`];
    if (parts.length) lines.push(`const { ${parts.join(", ")} } = ${tmp};`);
    if (ns) lines.push(`const ${ns} = ${tmp};`);
    return lines.join(" ");
  });
}

/** `export` in front of a declaration means nothing in the REPL (`.load` of a module file) */
function dropExports(src: string): string {
  return src.replace(
    /^([ \t]*)export\s+(?=(const|let|var|function|class|async|interface|type|enum|abstract|declare)\b)/gm,
    "$1",
  );
}

function toDataUrl(src: string): string {
  const bytes = new TextEncoder().encode(src);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return `data:application/typescript;base64,${btoa(bin)}`;
}

/** Deno's message carries a code frame and the data: URL; keep the reason and a position */
function cleanSyntaxError(e: Error, src: string): InputSyntaxError {
  const first = e.message.split("\n")[0].replace(/^SyntaxError:\s*/, "");
  const at = /:(\d+):(\d+)\s*$/.exec(e.message.trim());
  const line = at ? Number(at[1]) - 1 : 0;
  const where = at ? ` (line ${line}, column ${at[2]})` : "";
  const err = new InputSyntaxError(`${first}${where}`);
  // line n+1 is the wrapper's closing brace: the parser ran out of input
  err.atEnd = line > src.split("\n").length || /^Unterminated/.test(first);
  return err;
}

async function transpileBody(ts: string): Promise<string> {
  const mod = await import(toDataUrl(`export default async () => {\n${ts}\n};`));
  const fn = String(mod.default);
  return fn.slice(fn.indexOf("{") + 1, fn.lastIndexOf("}"));
}

/**
 * JavaScript for the body of an async function that runs `ts`. Where the runtime cannot
 * transpile (a build without the transpiler), the input is taken as JavaScript.
 */
export async function transpile(ts: string, base: URL, tgUrl: string): Promise<string> {
  const src = dropExports(rewriteImports(ts, base, tgUrl));
  // `{a: 1}` on its own is an object, as in other REPLs, not a block with a label
  const t = src.trim();
  if (t.startsWith("{") && t.endsWith("}")) {
    try {
      return await transpileOnce(`(${t})`);
    } catch {
      // a block after all
    }
  }
  return await transpileOnce(src);
}

async function transpileOnce(src: string): Promise<string> {
  if (transpilerWorks === false) return src;
  try {
    const js = await transpileBody(src);
    transpilerWorks = true;
    return js;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (e instanceof SyntaxError || msg.startsWith("SyntaxError")) {
      throw cleanSyntaxError(e as Error, src);
    }
    if (transpilerWorks === null) {
      transpilerWorks = false; // no transpiler in this runtime: run the input as JavaScript
      return src;
    }
    throw e;
  }
}
