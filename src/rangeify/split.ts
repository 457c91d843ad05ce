// Binding limits: a kernel binds one buffer per input and one for its output, and some devices
// cap how many one kernel may bind (WebGPU's maxStorageBuffersPerShaderStage, often 8 or 10).
// After rangeify decides the kernels, a kernel over the limit gets the fused subexpression that
// takes the most buffers off it realized as a kernel of its own (by wrapping it in CONTIGUOUS,
// which rangeify always realizes), and rangeify runs again, until every kernel fits.
import { GroupOp, Ops, UOp } from "../uop/ops.ts";
import {
  bufferBase,
  type KernelPlan,
  rangeify,
  type RangeifyOpts,
  type RangeifyResult,
} from "./rangeify.ts";
import { Device } from "../runtime/device.ts";

const overrides = new Map<string, number>();

/**
 * Force `device`'s binding limit to `n` (null: the device's own again); for tests of the split on
 * devices without a limit. Plans are cached per `bindingLimitsKey()`, so no stale plan is reused.
 */
export function setBindingLimit(device: string, n: number | null): void {
  const d = Device.canonicalize(device);
  if (n === null) overrides.delete(d);
  else if (!Number.isInteger(n) || n < 4) {
    // an op reads up to 3 buffers (WHERE) and writes one: below 4 some kernels cannot be split
    throw new Error(`setBindingLimit(${device}, ${n}): the limit must be an integer >= 4`);
  } else overrides.set(d, n);
}

/** buffers one kernel on `device` may bind (Infinity where the device has no limit) */
export function bindingLimit(device: string): number {
  return overrides.get(Device.canonicalize(device)) ?? Device.get(device).maxBuffers ??
    Infinity;
}

/** the smallest binding limit of `devices` */
export function minBindingLimit(devices: Iterable<string>): number {
  let m = Infinity;
  for (const d of new Set(devices)) m = Math.min(m, bindingLimit(d));
  return m;
}

/** part of the plan cache key: plans made under a forced limit are kept apart */
export function bindingLimitsKey(): string {
  const loops = loopOverrides.size ? `|loops:${[...loopOverrides].sort().join(";")}` : "";
  return (overrides.size ? `|limits:${[...overrides].sort().join(";")}` : "") + loops;
}

const loopOverrides = new Map<string, boolean>();

/**
 * Schedule `device` as a device that loops over its kernels' output (true, a CPU) or runs it as
 * threads (false, a GPU); null: as it is again. For tests that render one device's schedule for
 * another (the CUDA op suite, compile-checked without a GPU).
 */
export function setLoopsOver(device: string, v: boolean | null): void {
  const d = Device.canonicalize(device);
  if (v === null) loopOverrides.delete(d);
  else loopOverrides.set(d, v);
}

const isView = (u: UOp): boolean =>
  GroupOp.Movement.has(u.op) || u.op === Ops.DETACH || (u.op === Ops.NOOP && u.src.length === 1);
const isLeaf = (u: UOp): boolean =>
  u.op === Ops.BUFFER || u.op === Ops.CONST || u.op === Ops.DEFINE_VAR || u.op === Ops.IOTA;

/**
 * The buffers the kernel of realized node `k` binds if `cut` is realized too (counting `k`
 * itself): the walk mirrors how rangeify lowers a kernel, stopping at buffers and realized nodes.
 */
function bindings(k: UOp, realized: ReadonlySet<UOp>, cut: UOp | null): number {
  const inputs = new Set<UOp>([k]);
  const seen = new Set<UOp>();
  const stack = [...k.src];
  while (stack.length) {
    const u = stack.pop()!;
    if (seen.has(u)) continue;
    seen.add(u);
    if (u.op === Ops.BUFFER || u === cut || realized.has(u)) inputs.add(u);
    else if (bufferBase(u)) inputs.add(bufferBase(u)!);
    else if (!isLeaf(u)) stack.push(...u.src);
  }
  return inputs.size;
}

/** the nodes fused into `k`'s kernel that could be realized on their own */
function candidates(k: UOp, realized: ReadonlySet<UOp>): UOp[] {
  const out: UOp[] = [];
  // `k`'s own value (below CONTIGUOUS and views) is what the kernel computes: no cut
  const seen = new Set<UOp>();
  for (let v = k; isView(v) || v.op === Ops.CONTIGUOUS; v = v.src[0]) seen.add(v.src[0]);
  const stack = [...k.src, ...[...seen].flatMap((v) => v.src)];
  while (stack.length) {
    const u = stack.pop()!;
    if (seen.has(u) || isLeaf(u) || realized.has(u) || bufferBase(u)) continue;
    seen.add(u);
    if (!isView(u) && u.op !== Ops.CONTIGUOUS) out.push(u);
    stack.push(...u.src);
  }
  return out;
}

/**
 * The node to cut out of an over-limit kernel: among those whose own kernel would fit, the one
 * leaving `k` the fewest bindings (ties: the one with fewer bindings of its own); where none fits,
 * the one leaving `k` the fewest (its kernel is split in turn). Null when no cut helps.
 */
function chooseCut(k: KernelPlan, realized: ReadonlySet<UOp>, limit: number): UOp | null {
  const now = k.inputs.length;
  let best: { u: UOp; left: number; own: number; fits: boolean } | null = null;
  for (const u of candidates(k.node, realized)) {
    const left = bindings(k.node, realized, u);
    if (left >= now) continue;
    const own = bindings(u, realized, null);
    const fits = own <= limit;
    const better = !best || (fits && !best.fits) ||
      (fits === best.fits && (left < best.left || (left === best.left && own < best.own)));
    if (better) best = { u, left, own, fits };
  }
  return best?.u ?? null;
}

export interface SplitResult extends RangeifyResult {
  /** the roots of the graph the kernels were made from (cut nodes wrapped in CONTIGUOUS) */
  roots: UOp[];
}

/** devices whose kernels loop over their output (their renderers emit loops, not threads) */
export function loopsOver(device: string): boolean {
  const forced = loopOverrides.get(Device.canonicalize(device));
  if (forced !== undefined) return forced;
  try {
    const lang = Device.get(device).lang;
    return lang === "c" || lang === "js";
  } catch {
    return false; // a device that does not open schedules as a GPU would
  }
}

/** rangeify `roots`, splitting kernels until each binds at most `limit` buffers */
export function rangeifyWithin(
  roots: UOp[],
  limit: number,
  opts: RangeifyOpts = { loops: loopsOver },
): SplitResult {
  let r = rangeify(roots, opts);
  if (!Number.isFinite(limit)) return { ...r, roots };
  // each cut wraps a node that no later cut picks again: more cuts than nodes means no progress
  const maxCuts = UOp.sink(...roots).toposort().length;
  for (let cuts = 0;; cuts++) {
    const over = r.kernels.find((k) => k.inputs.length > limit);
    if (!over) return { ...r, roots };
    const cut = cuts < maxCuts ? chooseCut(over, new Set(r.realized), limit) : null;
    if (!cut) {
      throw new Error(
        `kernel for ${Ops[over.node.op]} ${JSON.stringify(over.node.shape)} binds ` +
          `${over.inputs.length} buffers and cannot be split to fit the device's limit of ${limit}`,
      );
    }
    const map = new Map([[cut, UOp.make(Ops.CONTIGUOUS, cut.dtype, [cut])]]);
    roots = UOp.sink(...roots).substitute(map).src.slice();
    r = rangeify(roots, opts);
  }
}
