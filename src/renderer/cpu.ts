// C for the CPU device (clang, else gcc): the C-style base plus the 16-bit float typedef and
// OpenMP on loops the linearizer marked parallel.
import { dtypes } from "../dtype.ts";
import { CStyleRenderer } from "./c.ts";

export class ClangRenderer extends CStyleRenderer {
  override prelude(): string[] {
    if (!this.used.has(dtypes.float16)) return [];
    // clang before 15 has no _Float16 on x86-64, only the storage type __fp16
    return [
      "#ifdef __FLT16_MAX__",
      "typedef _Float16 half;",
      "#else",
      "typedef __fp16 half;",
      "#endif",
    ];
  }
  override loop(name: string, end: string, parallel: boolean, interleave = false): string[] {
    const l = super.loop(name, end, parallel);
    if (parallel) return ["#pragma omp parallel for", ...l];
    // gcc ignores a clang pragma
    return interleave ? ["#pragma clang loop interleave_count(4)", ...l] : l;
  }
}
