// The REPL's evaluation scope. Each input runs as the body of an async function (so top-level
// await works) created by a direct `eval` inside the previous input's function; the body ends
// by returning a new evaluator closure, so its `const`/`let`/`function` bindings stay visible
// to every later input. A later `const x` shadows an earlier one instead of failing. An input
// that throws leaves the scope as it was.
import { isIncomplete, scan } from "./scan.ts";
import { InputSyntaxError, transpile } from "./transpile.ts";

type Evaluator = (code: string) => unknown;

const IDENT = /^[A-Za-z_$][\w$]*$/;
const NOT_EXPRESSION =
  /^(const|let|var|function|class|async\s+function|if|for|while|do|switch|try|throw|return|break|continue|debugger|import|export)\b/;
// deno-lint-ignore no-explicit-any
const AsyncFunction = (async () => {}).constructor as new (...args: string[]) => any;

function stripLeadingComments(s: string): string {
  return s.replace(/^(\s|\/\/[^\n]*\n|\/\*[\s\S]*?\*\/)*/, "");
}

function isExpression(s: string): boolean {
  const body = stripLeadingComments(s);
  if (body === "" || NOT_EXPRESSION.test(body) || /^[\w$]+\s*:(?!:)/.test(body)) return false;
  try {
    new AsyncFunction(`return (${s}\n);`);
    return true;
  } catch {
    return false;
  }
}

/** split a transpiled body into its statements and a final expression whose value is shown */
export function splitLast(js: string): { stmts: string; last: string | null } {
  const { boundaries } = scan(js);
  const tailIsEmpty = (from: number): boolean =>
    /^(\s|\/\/[^\n]*|\/\*[\s\S]*?\*\/)*$/.test(js.slice(from));
  // the last statement ends at the last boundary followed only by blanks and comments
  const end = boundaries.length - 1;
  if (end < 0 || !tailIsEmpty(boundaries[end])) {
    const start = end < 0 ? 0 : boundaries[end];
    const tail = js.slice(start);
    return isExpression(tail)
      ? { stmts: js.slice(0, start), last: tail }
      : { stmts: js, last: null };
  }
  const stop = boundaries[end];
  const start = end > 0 ? boundaries[end - 1] : 0;
  if (js[stop - 1] !== ";") return { stmts: js, last: null };
  const stmt = js.slice(start, stop - 1);
  return isExpression(stmt) ? { stmts: js.slice(0, start), last: stmt } : { stmts: js, last: null };
}

const DECL_RE = /\b(?:const|let|var|function\*?|class)\s+([A-Za-z_$][\w$]*)/g;
const DESTRUCT_RE = /\b(?:const|let|var)\s*\{([^}=]*)\}\s*=/g;

export class Session {
  #eval: Evaluator;
  /** names defined by the scope or declared by inputs (for completion) */
  readonly names = new Set<string>();

  constructor(globals: Record<string, unknown>, readonly tgUrl: string) {
    const keys = Object.keys(globals).filter((k) => IDENT.test(k));
    // a Function (not a closure here) so that bundlers cannot rename what the scope holds
    const make = new Function(...keys, "return (__tg_code) => eval(__tg_code);");
    this.#eval = make(...keys.map((k) => globals[k])) as Evaluator;
    for (const k of keys) this.names.add(k);
  }

  /** run TypeScript `src`; relative imports resolve against `base`. Returns the last value */
  async run(src: string, base: URL): Promise<unknown> {
    const js = await transpile(src, base, this.tgUrl);
    const { stmts, last } = splitLast(js);
    const ret = `return [${last === null ? "undefined" : `(${last}\n)`}, ` +
      `(__tg_code) => eval(__tg_code)];`;
    const code = `(async () => {\n${stmts}\n${ret}\n})()`;
    const out = await (this.#eval(code) as Promise<unknown>);
    if (!Array.isArray(out) || out.length !== 2 || typeof out[1] !== "function") {
      return out; // the input returned early; its bindings are gone
    }
    this.#eval = out[1] as Evaluator;
    for (const m of js.matchAll(DECL_RE)) if (!m[1].startsWith("__tg_")) this.names.add(m[1]);
    for (const m of js.matchAll(DESTRUCT_RE)) {
      for (const part of m[1].split(",")) {
        const name = part.split(":").pop()!.trim();
        if (IDENT.test(name)) this.names.add(name);
      }
    }
    return out[0];
  }

  /** whether `src` needs more lines: open brackets or literals, or the parser ran out of input */
  async incomplete(src: string): Promise<boolean> {
    if (isIncomplete(src)) return true;
    try {
      await transpile(src, new URL("file:///"), this.tgUrl);
      return false;
    } catch (e) {
      return e instanceof InputSyntaxError && e.atEnd;
    }
  }

  /** the value of a dotted name such as `x` or `Tensor.prototype` (for completion), or undefined */
  peek(path: string): unknown {
    if (!/^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$/.test(path)) return undefined;
    try {
      return this.#eval(path);
    } catch {
      return undefined;
    }
  }
}
