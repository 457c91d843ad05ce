// The house rule: no kernel may touch memory outside its buffers. Every INDEX's vmin/vmax,
// taken where its valid gate can be true, must lie inside the buffer.
import { Ops, UOp } from "../uop/ops.ts";
import { dtypes } from "../dtype.ts";

/** whether the check runs: CHECK_BOUNDS=0 turns it off */
export function boundsCheckEnabled(): boolean {
  try {
    return Deno.env.get("CHECK_BOUNDS") !== "0";
  } catch {
    return true; // no env permission: keep the safe default
  }
}

type Interval = [number, number];

/** the clauses of an AND chain of bools */
function clauses(v: UOp): UOp[] {
  if (v.op === Ops.AND && v.dtype === dtypes.bool) {
    return [...clauses(v.src[0]), ...clauses(v.src[1])];
  }
  return [v];
}

/**
 * Narrow an expression's interval from `x < c` (or x >= c when `negated`), peeling `+ k` and
 * `* k (k > 0)` off x. Only sound steps: anything else leaves the intervals alone.
 */
function narrow(x: UOp, lo: number, hi: number, env: Map<UOp, Interval>): void {
  // here lo <= x <= hi is what the clause promises
  for (;;) {
    if (x.op === Ops.ADD && x.src[1].op === Ops.CONST) {
      const k = Number(x.src[1].arg);
      lo -= k, hi -= k, x = x.src[0];
    } else if (x.op === Ops.ADD && x.src[0].op === Ops.CONST) {
      const k = Number(x.src[0].arg);
      lo -= k, hi -= k, x = x.src[1];
    } else if (x.op === Ops.MUL && x.src[1].op === Ops.CONST && Number(x.src[1].arg) > 0) {
      const k = Number(x.src[1].arg);
      lo = Math.ceil(lo / k), hi = Math.floor(hi / k), x = x.src[0];
    } else break;
  }
  // any other expression is narrowed as a whole: gatedBounds substitutes a variable for it
  // wherever it appears in the index (sound: when the gate holds, its value lies in the range)
  if (x.op === Ops.CONST) return;
  const cur = env.get(x) ?? [x.vmin, x.vmax];
  env.set(x, [Math.max(cur[0], lo), Math.min(cur[1], hi)]);
}

/** variable intervals implied by a gate being true */
function gateIntervals(valid: UOp): Map<UOp, Interval> {
  const env = new Map<UOp, Interval>();
  for (let c of clauses(valid)) {
    let neg = false;
    if (c.op === Ops.CMPNE && c.src[1].op === Ops.CONST && c.src[1].arg === true) {
      neg = true;
      c = c.src[0];
    }
    if (c.op !== Ops.CMPLT) continue;
    const [a, b] = c.src;
    if (b.op === Ops.CONST) {
      const k = Number(b.arg); // a < k, or a >= k
      neg ? narrow(a, k, Infinity, env) : narrow(a, -Infinity, k - 1, env);
    } else if (a.op === Ops.CONST) {
      const k = Number(a.arg); // k < b, or b <= k
      neg ? narrow(b, -Infinity, k, env) : narrow(b, k + 1, Infinity, env);
    }
  }
  return env;
}

/** [vmin, vmax] of idx where `valid` holds, or null when it never holds */
export function gatedBounds(idx: UOp, valid: UOp | undefined): Interval | null {
  if (!valid) return [idx.vmin, idx.vmax];
  const env = gateIntervals(valid);
  const sub = new Map<UOp, UOp>();
  let k = 0;
  for (const [v, [lo, hi]] of env) {
    if (lo > hi) return null;
    sub.set(v, UOp.variable(`__gate${k++}_${v.id}`, lo, hi));
  }
  const g = valid.substitute(sub);
  if (g.vmax === 0) return null;
  const i = idx.substitute(sub);
  return [i.vmin, i.vmax];
}

/** throws naming kernel, buffer, index and bounds if any access could leave its buffer */
export function checkBounds(sink: UOp, kernel: string): void {
  for (const u of sink.toposort()) {
    if (u.op !== Ops.INDEX) continue;
    const buf = u.src[0];
    if (![Ops.DEFINE_GLOBAL, Ops.DEFINE_REG, Ops.DEFINE_LOCAL].includes(buf.op)) continue;
    const [slot, size] = buf.arg as [number, number];
    const b = gatedBounds(u.src[1], u.src[2]);
    if (b === null || (b[0] >= 0 && b[1] < size)) continue;
    // interval reasoning could not prove a gated access safe: decide it exactly where that is cheap
    if (u.src[2] && exhaustivelyInBounds(u.src[1], u.src[2], size)) continue;
    const what = buf.op === Ops.DEFINE_GLOBAL
      ? `buffer data${slot}`
      : buf.op === Ops.DEFINE_LOCAL
      ? `shared memory smem${slot}`
      : `register acc${slot}`;
    const gate = u.src[2] ? ` where ${u.src[2].render()}` : "";
    throw new Error(
      `kernel ${kernel}: ${what} (${size} elements) indexed by ${u.src[1].render()}${gate}, ` +
        `which can reach [${b[0]}, ${b[1]}]; valid is [0, ${size - 1}]`,
    );
  }
}

/** the most index evaluations an exhaustive proof may take */
const MAX_ENUMERATION = 1 << 24;

/**
 * Whether `idx` lies in [0, size) for every assignment of its loop variables where `valid` holds,
 * by trying them all (compiled to a JS loop nest). Returns false when the space is too large to
 * try, so the caller still fails loudly.
 */
export function exhaustivelyInBounds(idx: UOp, valid: UOp, size: number): boolean {
  const root = UOp.sink(idx, valid);
  const vars = root.toposort().filter((u) =>
    u.op === Ops.RANGE || u.op === Ops.DEFINE_VAR || u.op === Ops.SPECIAL
  );
  let space = 1;
  for (const v of vars) space *= v.vmax - v.vmin + 1;
  if (space > MAX_ENUMERATION) return false;
  const names = new Map<UOp, string>(vars.map((v, i) => [v, `v${i}`]));
  const body: string[] = [];
  for (const u of root.toposort()) {
    if (names.has(u) || u.op === Ops.SINK) continue;
    const n = `t${body.length}`;
    const s = u.src.map((x) => names.get(x)!);
    let e: string;
    switch (u.op) {
      case Ops.CONST:
        e = typeof u.arg === "boolean" ? (u.arg ? "1" : "0") : String(u.arg);
        break;
      case Ops.ADD:
        e = `(${s[0]} + ${s[1]}) | 0`;
        break;
      case Ops.SUB:
        e = `(${s[0]} - ${s[1]}) | 0`;
        break;
      case Ops.MUL:
        e = `Math.imul(${s[0]}, ${s[1]})`;
        break;
      case Ops.NEG:
        e = `(-${s[0]}) | 0`;
        break;
      case Ops.IDIV:
        e = `${s[1]} === 0 ? 0 : (${s[0]} / ${s[1]}) | 0`;
        break;
      case Ops.MOD:
        e = `${s[1]} === 0 ? 0 : (${s[0]} % ${s[1]}) | 0`;
        break;
      case Ops.MAX:
        e = `Math.max(${s[0]}, ${s[1]})`;
        break;
      case Ops.CMPLT:
        e = `${s[0]} < ${s[1]} ? 1 : 0`;
        break;
      case Ops.CMPNE:
        e = `${s[0]} !== ${s[1]} ? 1 : 0`;
        break;
      case Ops.CMPEQ:
        e = `${s[0]} === ${s[1]} ? 1 : 0`;
        break;
      case Ops.AND:
        e = `${s[0]} & ${s[1]}`;
        break;
      case Ops.OR:
        e = `${s[0]} | ${s[1]}`;
        break;
      case Ops.XOR:
        e = `${s[0]} ^ ${s[1]}`;
        break;
      case Ops.WHERE:
        e = `${s[0]} ? ${s[1]} : ${s[2]}`;
        break;
      case Ops.CAST:
        if (u.dtype !== dtypes.int32 && u.dtype !== dtypes.bool) return false;
        e = u.dtype === dtypes.bool ? `${s[0]} !== 0 ? 1 : 0` : `${s[0]} | 0`;
        break;
      default:
        return false; // an op this checker does not model: no proof
    }
    names.set(u, n);
    body.push(`const ${n} = ${e};`);
  }
  const loops = vars.map((v, i) => `for (let v${i} = ${v.vmin}; v${i} <= ${v.vmax}; v${i}++) {`);
  const src = `${loops.join("\n")}\n${body.join("\n")}\nif (${names.get(valid)} && (${
    names.get(idx)
  } < 0 || ${names.get(idx)} >= ${size})) return false;\n${"}".repeat(vars.length)}\nreturn true;`;
  return new Function(src)() as boolean;
}
