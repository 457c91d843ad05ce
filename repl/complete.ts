// Tab completion: names in scope (the library, the user's declarations, globals, keywords),
// members of a dotted name (a Tensor's methods, `Tensor.` statics, any object), dot-commands.
import type { Session } from "./session.ts";

const KEYWORDS = [
  "await",
  "async",
  "break",
  "case",
  "catch",
  "class",
  "const",
  "continue",
  "delete",
  "else",
  "false",
  "finally",
  "for",
  "function",
  "if",
  "import",
  "in",
  "instanceof",
  "let",
  "new",
  "null",
  "of",
  "return",
  "switch",
  "this",
  "throw",
  "true",
  "try",
  "typeof",
  "undefined",
  "var",
  "void",
  "while",
];

const OBJECT_NOISE = new Set(Object.getOwnPropertyNames(Object.prototype));
const FUNCTION_NOISE = new Set([
  "arguments",
  "caller",
  "length",
  "name",
  "prototype",
  "apply",
  "bind",
  "call",
]);

/** property names of a value along its prototype chain, without Object.prototype's */
export function membersOf(value: unknown): string[] {
  if (value === null || value === undefined) return [];
  const names = new Set<string>();
  let o: object | null = typeof value === "object" || typeof value === "function"
    ? value as object
    : Object(value);
  while (o !== null && o !== Object.prototype && o !== Function.prototype) {
    for (const k of Object.getOwnPropertyNames(o)) {
      if (/^[A-Za-z_$][\w$]*$/.test(k) && k !== "constructor") names.add(k);
    }
    o = Object.getPrototypeOf(o);
  }
  return [...names].filter((k) =>
    !OBJECT_NOISE.has(k) && !(typeof value === "function" && FUNCTION_NOISE.has(k))
  ).sort();
}

export function complete(
  line: string,
  session: Session,
  commands: readonly string[],
): [string[], string] {
  if (/^\s*\.\w*$/.test(line)) {
    const word = line.trim();
    return [commands.filter((c) => c.startsWith(word)), word];
  }
  const member = /([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)\.([\w$]*)$/.exec(line);
  if (member) {
    const [, path, prefix] = member;
    const hidden = (k: string) => k.startsWith("_") && !prefix.startsWith("_");
    const hits = membersOf(session.peek(path)).filter((k) => k.startsWith(prefix) && !hidden(k));
    return [hits, prefix];
  }
  const word = /[A-Za-z_$][\w$]*$/.exec(line)?.[0] ?? "";
  if (word === "") return [[], ""];
  const all = new Set([
    ...session.names,
    ...KEYWORDS,
    ...Object.getOwnPropertyNames(globalThis).filter((k) => /^[A-Za-z_$][\w$]*$/.test(k)),
  ]);
  return [[...all].filter((k) => k.startsWith(word)).sort(), word];
}
