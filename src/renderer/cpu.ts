// C for the CPU device (clang, else gcc): the C-style base plus the 16-bit float typedef and
// OpenMP on loops the linearizer marked parallel.
import { dtypes } from "../dtype.ts";
import { GroupOp, Ops, type UOp } from "../uop/ops.ts";
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
  override interleaved(uops: readonly UOp[]): ReadonlySet<UOp> {
    return chainLoops(uops);
  }
  override loop(name: string, end: string, parallel: boolean, interleave = false): string[] {
    const l = super.loop(name, end, parallel);
    if (parallel) return ["#pragma omp parallel for", ...l];
    // gcc ignores a clang pragma
    return interleave ? ["#pragma clang loop interleave_count(4)", ...l] : l;
  }
}

/** ALU ops in a loop body from which its iterations are long chains (an exp is about 30) */
const CHAIN_MIN = 16;
/** and up to which 4 iterations side by side still fit the registers (attention's row: 300) */
const CHAIN_MAX = 64;

/**
 * Innermost loops with no accumulator whose body is CHAIN_MIN..CHAIN_MAX ALU ops: a loop a C
 * compiler vectorizes, one long dependency chain per vector (a row of exps). Clang's cost model
 * runs one vector per iteration there; four side by side keep the FP units busy (softmax's exps
 * on [4096,4096] 24.5 -> 22.1 ms). Bigger bodies spill registers instead (attention's row of
 * scores 190 -> 218 ms), so they are left alone.
 */
export function chainLoops(uops: readonly UOp[]): Set<UOp> {
  const out = new Set<UOp>();
  const frames: { range: UOp; nested: boolean; acc: boolean; ops: number }[] = [];
  for (const u of uops) {
    const top = frames.at(-1);
    if (u.op === Ops.RANGE) {
      if (top) top.nested = true;
      frames.push({ range: u, nested: false, acc: false, ops: 0 });
    } else if (u.op === Ops.END) {
      const f = frames.pop();
      if (f && !f.nested && !f.acc && f.ops >= CHAIN_MIN && f.ops <= CHAIN_MAX) out.add(f.range);
    } else if (top) {
      if (GroupOp.ALU.has(u.op)) top.ops++;
      if (u.op === Ops.STORE && u.src[0].src[0].op === Ops.DEFINE_REG) top.acc = true;
    }
  }
  return out;
}
