// History kept across sessions: one entered line per line of ~/.tg_history (or $TG_HISTORY).

const KEEP = 1000;

export function historyPath(): string | null {
  const env = (k: string): string | undefined => {
    try {
      return Deno.env.get(k);
    } catch {
      return undefined;
    }
  };
  const set = env("TG_HISTORY");
  if (set !== undefined) return set === "" ? null : set;
  const home = env("HOME") ?? env("USERPROFILE");
  return home ? `${home}/.tg_history` : null;
}

/** the newest KEEP lines, newest first (the order node:readline's `history` wants) */
export function loadHistory(path: string | null): string[] {
  if (path === null) return [];
  try {
    const lines = Deno.readTextFileSync(path).split("\n").filter((l) => l.trim() !== "");
    return lines.slice(-KEEP).reverse();
  } catch {
    return [];
  }
}

export function appendHistory(path: string | null, line: string): void {
  if (path === null || line.trim() === "") return;
  try {
    Deno.writeTextFileSync(path, `${line.replace(/\n/g, " ")}\n`, { append: true, mode: 0o600 });
  } catch {
    // an unwritable history file must not stop the REPL
  }
}
