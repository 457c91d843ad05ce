// The integer value of a kernel's index expression under an assignment of its SPECIALs and
// ranges: how GPU tests check that a launch maps threads to outputs one to one.
import { Ops, type UOp } from "../../src/uop/ops.ts";

export function evalInt(u: UOp, env: Map<UOp, number>): number {
  const v = env.get(u);
  if (v !== undefined) return v;
  const s = u.src.map((x) => evalInt(x, env));
  switch (u.op) {
    case Ops.CONST:
      return Number(u.arg);
    case Ops.ADD:
      return s[0] + s[1];
    case Ops.MUL:
      return s[0] * s[1];
    case Ops.IDIV:
      return Math.trunc(s[0] / s[1]);
    case Ops.MOD:
      return s[0] % s[1];
  }
  throw new Error(`evalInt: ${Ops[u.op]} in an index`);
}
