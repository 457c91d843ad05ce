// Loop structure of a rendered kernel, read from the source text: it is what the renderer emitted
// (parallel pragmas included) and it reads the same at any revision, whatever the IR looked like.

export interface Loop {
  /** the loop variable's kind: the letters before "idx" (L, R, G, ...) or the whole name */
  kind: string;
  /** the start and bound expressions as written, spaces removed */
  start: string;
  bound: string;
  /** `<`, `<=`, ... as written */
  cmp: string;
  /** the loop runs under an `omp parallel` pragma (or a renderer's equivalent marker) */
  parallel: boolean;
  children: Loop[];
}

const FOR =
  /\bfor\s*\(\s*(?:[A-Za-z_][\w\s*]*?\s+)?([A-Za-z_]\w*)\s*=\s*([^;]*);\s*\1\s*(<=?|>=?|!=)\s*([^;]*);[^)]*\)/;
const PARALLEL = /#pragma\s+omp\s+parallel|\/\*\s*parallel\s*\*\//;

const kindOf = (name: string): string => {
  const m = /^([A-Za-z]*)idx\d*$/.exec(name);
  return m ? m[1] : name;
};
const squash = (s: string): string => s.replace(/\s+/g, "");

/** the loop forest of a C-like source: nesting follows the braces that enclose each `for` */
export function parseLoops(src: string): Loop[] {
  const roots: Loop[] = [];
  // open loops with the brace depth their body opened at
  const stack: { loop: Loop; depth: number }[] = [];
  let depth = 0, pendingParallel = false;
  for (const line of src.split("\n")) {
    if (PARALLEL.test(line)) pendingParallel = true;
    const m = FOR.exec(line);
    let forEnd = -1;
    if (m) {
      const loop: Loop = {
        kind: kindOf(m[1]),
        start: squash(m[2]),
        cmp: m[3],
        bound: squash(m[4]),
        parallel: pendingParallel,
        children: [],
      };
      pendingParallel = false;
      (stack.length ? stack[stack.length - 1].loop.children : roots).push(loop);
      stack.push({ loop, depth: depth + 1 });
      forEnd = m.index + m[0].length;
    } else if (line.trim() && !PARALLEL.test(line)) pendingParallel = false;
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (c === "{") depth++;
      else if (c === "}") {
        depth--;
        while (stack.length && stack[stack.length - 1].depth > depth) stack.pop();
      }
    }
    // a braceless `for (...) stmt;` closes at the end of its line
    if (forEnd >= 0 && !line.slice(forEnd).includes("{")) stack.pop();
  }
  return roots;
}

function formatLoop(l: Loop): string {
  const range = l.start === "0" && l.cmp === "<" ? l.bound : `${l.start}${l.cmp}${l.bound}`;
  const inner = l.children.length ? `{${l.children.map(formatLoop).join(",")}}` : "";
  return `${l.parallel ? "par " : ""}${l.kind}${range}${inner}`;
}

/** one line per kernel, e.g. `par L128{R256}` or `L4{L3{R8}},L4` for sibling loops */
export function formatLoops(loops: readonly Loop[]): string {
  return loops.length ? loops.map(formatLoop).join(",") : "(no loops)";
}

/** total loops and the deepest nesting */
export function loopStats(loops: readonly Loop[]): { count: number; depth: number } {
  let count = 0, depth = 0;
  const walk = (ls: readonly Loop[], d: number) => {
    for (const l of ls) {
      count++;
      depth = Math.max(depth, d);
      walk(l.children, d + 1);
    }
  };
  walk(loops, 1);
  return { count, depth };
}
