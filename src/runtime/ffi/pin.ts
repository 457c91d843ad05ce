// Keeping a loaded shared library loaded for the life of the process (dlopen RTLD_NODELETE):
// Deno closes the libraries a worker or the process opened when it ends, and some must outlive
// that close.
import { cstr, openFirst } from "./libcuda.ts";

const RTLD_NOW = 0x2, RTLD_NOLOAD = 0x4, RTLD_NODELETE = 0x1000;

const SIG = { dlopen: { parameters: ["buffer", "i32"], result: "pointer" } } as const;
let dl: Deno.DynamicLibrary<typeof SIG>["symbols"] | null = null;

/** mark the already loaded library `path` never to be unloaded (with what it links: libgomp) */
export function pinLoaded(path: string): void {
  if (!dl) {
    // the loader stays open: it is pinned in every process anyway (libc)
    dl = openFirst("the dynamic loader", ["libc.so.6", "libdl.so.2"], SIG).lib.symbols;
  }
  if (dl.dlopen(cstr(path), RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE) === null) {
    throw new Error(`dlopen(${path}, RTLD_NODELETE) failed`);
  }
}
