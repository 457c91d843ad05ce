// Binds compiled kernel libraries (shared objects we built ourselves). The only place the CPU
// runtime calls Deno.dlopen, so every FFI signature it uses is visible here.
import { pinLoaded } from "./pin.ts";

/** a kernel entry point: buffer pointers in slot order, then int32 variables */
export type KernelFn = (...args: (Deno.PointerValue | number)[]) => void;

export interface KernelLibrary {
  readonly path: string;
  readonly fn: KernelFn;
}

/** open `path` and bind `name(void* x nbufs, int32 x nvars) -> void` */
export function openKernel(
  path: string,
  name: string,
  nbufs: number,
  nvars: number,
): KernelLibrary {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    throw new Error(`openKernel: '${name}' is not a C identifier; kernel names must be`);
  }
  const parameters: Deno.NativeType[] = [
    ...new Array<Deno.NativeType>(nbufs).fill("pointer"),
    ...new Array<Deno.NativeType>(nvars).fill("i32"),
  ];
  const symbols = { [name]: { parameters, result: "void" } } as const;
  let lib: Deno.DynamicLibrary<Record<string, Deno.ForeignFunction>>;
  try {
    lib = Deno.dlopen(path, symbols as Record<string, Deno.ForeignFunction>);
  } catch (e) {
    throw new Error(`loading kernel '${name}' from ${path} failed: ${(e as Error).message}`);
  }
  const fn = lib.symbols[name] as unknown as KernelFn;
  // libraries stay loaded for the life of the process: a Program may be run at any time, and
  // Deno closes every library at exit, which unloaded the OpenMP runtime (libgomp, linked by
  // each kernel) under its idle worker threads: a segfault at exit with gcc's kernels
  pinLoaded(path);
  return { path, fn };
}

/** open a probe library exporting `int name(void)` and call it once */
export function callProbe(path: string, name: string): number {
  // never closed: the probe may have started OpenMP worker threads, and unloading their runtime
  // under them would crash the process
  const lib = Deno.dlopen(path, { [name]: { parameters: [], result: "i32" } } as const);
  pinLoaded(path);
  return (lib.symbols[name] as () => number)();
}
