// A lexical scan of TypeScript/JavaScript that knows just enough (strings, templates, comments,
// regex literals, brackets) to tell whether input is complete and where top-level statements
// end. A full parser is not needed: Deno's own transpiler reports the real syntax errors.

export interface Scan {
  /** brackets still open at the end ("(", "[", "{", or "${" inside a template) */
  open: string[];
  /** the literal or comment the text ends inside, if any */
  unterminated: "string" | "template" | "comment" | "regex" | null;
  /** a closing bracket with no opener (the input is broken, not incomplete) */
  unbalanced: boolean;
  /** offsets just past each top-level `;` and each top-level `}` that ends its line */
  boundaries: number[];
}

const REGEX_AFTER_WORD = new Set([
  "return",
  "typeof",
  "instanceof",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "case",
  "do",
  "else",
  "yield",
  "await",
]);
const CLOSER: Record<string, string> = { ")": "(", "]": "[", "}": "{" };

export function scan(src: string): Scan {
  const open: string[] = [];
  const boundaries: number[] = [];
  let unbalanced = false;
  // whether a `/` here would be division (after a value) rather than a regex
  let afterValue = false;
  let i = 0;
  const n = src.length;

  // scans template text from i (just past "`" or a "}" closing "${"); false if unterminated
  const templateBody = (): boolean => {
    while (i < n) {
      const c = src[i];
      if (c === "\\") i += 2;
      else if (c === "`") {
        i++;
        afterValue = true;
        return true;
      } else if (c === "$" && src[i + 1] === "{") {
        i += 2;
        open.push("${");
        afterValue = false;
        return true;
      } else i++;
    }
    return false;
  };

  while (i < n) {
    const c = src[i];
    if (c === " " || c === "\t" || c === "\r" || c === "\n") {
      i++;
      continue;
    }
    if (c === "/" && src[i + 1] === "/") {
      while (i < n && src[i] !== "\n") i++;
      continue;
    }
    if (c === "/" && src[i + 1] === "*") {
      const end = src.indexOf("*/", i + 2);
      if (end < 0) return { open, unterminated: "comment", unbalanced, boundaries };
      i = end + 2;
      continue;
    }
    if (c === '"' || c === "'") {
      i++;
      while (i < n && src[i] !== c && src[i] !== "\n") i += src[i] === "\\" ? 2 : 1;
      if (i >= n || src[i] === "\n") {
        return { open, unterminated: "string", unbalanced, boundaries };
      }
      i++;
      afterValue = true;
      continue;
    }
    if (c === "`") {
      i++;
      if (!templateBody()) return { open, unterminated: "template", unbalanced, boundaries };
      continue;
    }
    if (c === "/" && !afterValue) {
      i++;
      let inClass = false;
      while (i < n && src[i] !== "\n" && (inClass || src[i] !== "/")) {
        if (src[i] === "\\") i++;
        else if (src[i] === "[") inClass = true;
        else if (src[i] === "]") inClass = false;
        i++;
      }
      if (i >= n || src[i] === "\n") return { open, unterminated: "regex", unbalanced, boundaries };
      i++;
      while (i < n && /[a-z]/i.test(src[i])) i++;
      afterValue = true;
      continue;
    }
    if (/[A-Za-z_$0-9]/.test(c)) {
      const start = i;
      while (i < n && /[\w$]/.test(src[i])) i++;
      afterValue = !REGEX_AFTER_WORD.has(src.slice(start, i));
      continue;
    }
    i++;
    if (c === "(" || c === "[" || c === "{") {
      open.push(c);
      afterValue = false;
    } else if (c === ")" || c === "]" || c === "}") {
      const top = open.pop();
      if (c === "}" && top === "${") {
        if (!templateBody()) return { open, unterminated: "template", unbalanced, boundaries };
        continue;
      }
      if (top !== CLOSER[c]) unbalanced = true;
      afterValue = c !== "}";
      if (c === "}" && open.length === 0 && /^[ \t]*(\n|$)/.test(src.slice(i, i + 200))) {
        boundaries.push(i);
      }
    } else {
      if (c === ";" && open.length === 0) boundaries.push(i);
      afterValue = false;
    }
  }
  return { open, unterminated: null, unbalanced, boundaries };
}

/** whether more lines are needed before the input can be run */
export function isIncomplete(src: string): boolean {
  const s = scan(src);
  if (s.unbalanced) return false;
  if (s.unterminated === "template" || s.unterminated === "comment") return true;
  if (s.unterminated !== null) return false; // a string or regex cannot continue on a new line
  return s.open.length > 0;
}
