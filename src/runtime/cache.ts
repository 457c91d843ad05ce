// The on-disk compile cache shared by every compiled device. What it holds is code we execute,
// so it lives in a directory only this user can write, and an entry is used only when the
// binary's content hash matches the hash stored beside it: a planted or truncated file is
// recompiled, never loaded.

import { createHash } from "node:crypto";

export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** process-wide counters (tests and DEBUG read them) */
export const compileStats = {
  /** real compiler invocations */
  compiled: 0,
  /** binaries taken from the disk cache */
  diskHits: 0,
  /** cache entries refused because their content hash did not match */
  rejected: 0,
};

/** `CACHEDIR`, else `$XDG_CACHE_HOME/tg`, else `~/.cache/tg` */
export function defaultCacheDir(): string | null {
  const env = (k: string) => {
    try {
      return Deno.env.get(k) || undefined;
    } catch {
      return undefined; // no env permission: behave as if unset
    }
  };
  const explicit = env("CACHEDIR");
  if (explicit) return explicit;
  const xdg = env("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/tg`;
  const home = env("HOME") ?? env("USERPROFILE");
  return home ? `${home}/.cache/tg` : null;
}

function currentUid(): number | null {
  try {
    return Deno.uid();
  } catch {
    return null;
  }
}

/** why `dir` must not hold code we load, or null when it is private to this user */
function insecurity(dir: string): string | null {
  const st = Deno.statSync(dir);
  if (!st.isDirectory) return "it is not a directory";
  if (st.mode !== null && (st.mode & 0o022) !== 0) {
    return `it is writable by others (mode ${(st.mode & 0o777).toString(8)})`;
  }
  const uid = currentUid();
  if (uid !== null && st.uid !== null && st.uid !== uid) return `it is owned by uid ${st.uid}`;
  return null;
}

const warned = new Set<string>();
function warnOnce(msg: string): void {
  if (warned.has(msg)) return;
  warned.add(msg);
  console.warn(`tg: ${msg}`);
}

function privateTempDir(): string {
  const dir = Deno.makeTempDirSync({ prefix: "tg-cache-" }); // mkdtemp: mode 0700
  // it serves this process only, so it goes when the process does (loaded libraries stay mapped)
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch { /* already gone */ }
  });
  return dir;
}

export interface CacheEntry {
  path: string;
  bytes: Uint8Array;
}

export class DiskCache {
  private static instances = new Map<string, DiskCache>();
  /** the directory in use (a private temp dir when the configured one is unsafe or unusable) */
  dir: string;

  constructor(dir: string | null = defaultCacheDir()) {
    this.dir = DiskCache.secure(dir);
  }

  /** one cache per directory per process */
  static forDir(dir: string | null = defaultCacheDir()): DiskCache {
    const k = dir ?? "";
    let c = DiskCache.instances.get(k);
    if (!c) DiskCache.instances.set(k, c = new DiskCache(dir));
    return c;
  }

  private static secure(dir: string | null): string {
    if (dir === null) {
      warnOnce("no HOME or CACHEDIR: compiled kernels are cached for this process only");
      return privateTempDir();
    }
    let why: string | null;
    try {
      Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
      why = insecurity(dir);
    } catch (e) {
      why = `it cannot be used (${(e as Error).message})`;
    }
    if (why === null) return dir;
    const tmp = privateTempDir();
    warnOnce(`compile cache ${dir} is not safe to load code from: ${why}; using ${tmp} instead`);
    return tmp;
  }

  /** the cache key of a compile: every part that can change the binary must be in `parts` */
  static key(parts: readonly string[]): string {
    return sha256Hex(JSON.stringify(parts));
  }

  pathFor(key: string, ext: string): string {
    return `${this.dir}/${key}${ext}`;
  }

  /** whether an entry for `key` exists (its content is checked when it is loaded) */
  has(key: string, ext: string): boolean {
    try {
      Deno.statSync(`${this.pathFor(key, ext)}.sha256`);
      return true;
    } catch {
      return false;
    }
  }

  /** the cached binary for `key`, or null when absent or when its content hash does not match */
  load(key: string, ext: string): CacheEntry | null {
    const path = this.pathFor(key, ext);
    let expected: string;
    let bytes: Uint8Array;
    try {
      expected = Deno.readTextFileSync(`${path}.sha256`).trim();
      bytes = Deno.readFileSync(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
    if (sha256Hex(bytes) !== expected) {
      compileStats.rejected++;
      return null;
    }
    compileStats.diskHits++;
    return { path, bytes };
  }

  /**
   * the binary a compiler with `identity` makes of `src`: from disk, else compiled and stored;
   * `stats` counts which
   */
  compiled(
    identity: string,
    src: string,
    ext: string,
    compile: () => Uint8Array,
    stats: { diskHits: number; compiled: number },
  ): CacheEntry {
    const key = DiskCache.key([identity, src]);
    const hit = this.load(key, ext);
    if (hit) {
      stats.diskHits++;
      return hit;
    }
    stats.compiled++;
    return this.store(key, ext, compile());
  }

  /** store `bytes` under `key` (atomically: readers see the old entry or the whole new one) */
  store(key: string, ext: string, bytes: Uint8Array): CacheEntry {
    try {
      return this.write(key, ext, bytes);
    } catch (e) {
      const tmp = privateTempDir();
      warnOnce(
        `cannot write the compile cache ${this.dir} (${(e as Error).message}); using ${tmp}`,
      );
      this.dir = tmp;
      return this.write(key, ext, bytes);
    }
  }

  private write(key: string, ext: string, bytes: Uint8Array): CacheEntry {
    const path = this.pathFor(key, ext);
    // binary first, hash second: a reader that sees a new hash also sees the new binary
    atomicWrite(path, bytes);
    atomicWrite(`${path}.sha256`, new TextEncoder().encode(sha256Hex(bytes) + "\n"));
    return { path, bytes };
  }

  /** small metadata (e.g. compiler probe results): not code, so no content hash */
  readText(name: string): string | null {
    try {
      return Deno.readTextFileSync(`${this.dir}/${name}`);
    } catch {
      return null;
    }
  }

  writeText(name: string, text: string): void {
    try {
      atomicWrite(`${this.dir}/${name}`, new TextEncoder().encode(text));
    } catch {
      // metadata is an optimization; losing it only costs a re-probe
    }
  }
}

function atomicWrite(path: string, bytes: Uint8Array): void {
  const slash = path.lastIndexOf("/");
  const tmp = `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.${crypto.randomUUID()}.tmp`;
  try {
    Deno.writeFileSync(tmp, bytes, { mode: 0o600, createNew: true });
    Deno.renameSync(tmp, path);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* it may never have been created */ }
    throw e;
  }
}
