// How the REPL prints a value: tensors numpy-style (values, then shape, dtype and device),
// everything else as Deno prints it.
import { Tensor } from "../src/tensor.ts";
import { formatValues } from "../src/tensor/format.ts";

export interface ShowOpts {
  /** print a 0-d tensor as its bare value (`45`), for scripted use */
  bareScalars: boolean;
  colors: boolean;
}

/** the text for a result, or null when there is nothing to print (undefined) */
export function show(value: unknown, opts: ShowOpts): string | null {
  if (value === undefined) return null;
  if (value instanceof Tensor) {
    if (opts.bareScalars && value.shape.length === 0) {
      try {
        return formatValues(value.dataSync(), [], value.dtype);
      } catch {
        return value.toString();
      }
    }
    return value.toString();
  }
  if (typeof value === "string") return opts.colors ? Deno.inspect(value, { colors: true }) : value;
  return Deno.inspect(value, { colors: opts.colors, depth: 4, strAbbreviateSize: 2000 });
}

/** an error as one line (with its stack when `debug` > 0) */
export function showError(e: unknown, debug: number): string {
  if (!(e instanceof Error)) return `Uncaught ${Deno.inspect(e)}`;
  if (debug > 0 && e.stack) return e.stack;
  const first = e.message.split("\n")[0];
  return `${e.name}: ${first}`;
}
