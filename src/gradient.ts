// Reverse-mode autodiff on the tensor graph (docs/ir.md section 1). Each op has one derivative
// rule in `pmGradient`: given the node and the gradient flowing into it, the rule returns the
// gradients of its sources as tensor-graph UOps. The backward graph is an ordinary lazy graph, so
// it is scheduled and fused like the forward one.
import { dtypes } from "./dtype.ts";
import { GroupOp, opName, Ops, type Pad, UOp } from "./uop/ops.ts";
import { PatternMatcher, type RuleFn, UPat } from "./uop/upat.ts";
import { Tensor } from "./tensor.ts";

// ---- building blocks (every operand already has the node's shape: the graph is broadcast) ----

/** a rule's result: SINK(one gradient per source), NOOP where a source gets none */
const NONE = UOp.make(Ops.NOOP, dtypes.void);
const grads = (...gs: (UOp | null)[]): UOp =>
  UOp.make(Ops.SINK, dtypes.void, gs.map((g) => g ?? NONE));

function full(like: UOp, v: number): UOp {
  const c = UOp.const(like.dtype, v), sh = like.shape!;
  if (sh.length === 0) return c;
  const r = UOp.make(Ops.RESHAPE, like.dtype, [c], sh.map(() => 1));
  return sh.every((d) => d === 1) ? r : UOp.make(Ops.EXPAND, like.dtype, [r], [...sh]);
}
/** a / b as the tensor graph spells it */
const div = (a: UOp, b: UOp): UOp => a.mul(UOp.make(Ops.RECIPROCAL, b.dtype, [b]));
const cmp = (op: Ops, a: UOp, b: UOp): UOp => UOp.make(op, dtypes.bool, [a, b]);
const expandTo = (u: UOp, shape: readonly number[]): UOp =>
  u.shape!.every((d, i) => d === shape[i]) ? u : UOp.make(Ops.EXPAND, u.dtype, [u], [...shape]);
const sumAxes = (u: UOp, axes: number[]): UOp =>
  axes.length === 0 ? u : UOp.make(Ops.REDUCE_AXIS, u.dtype, [u], [Ops.ADD, axes]);

// half floats accumulate the broadcast sum in float32, as the forward sum does
function sumTo(g: UOp, shape: readonly number[]): UOp {
  const axes = g.shape!.flatMap((d, i) => (d !== shape[i] ? [i] : []));
  if (axes.length === 0) return g;
  const wide = g.dtype.itemsize < 4 ? dtypes.float32 : g.dtype;
  return sumAxes(g.cast(wide), axes).cast(g.dtype);
}

/** d(reduce)/d(x) times the incoming gradient, for each REDUCE_AXIS op */
function reduceGrad(g: UOp, u: UOp): UOp {
  const [op, axes] = u.arg as [Ops, number[]];
  const x = u.src[0], shape = x.shape!;
  const ge = expandTo(g, shape);
  if (op === Ops.ADD) return ge;
  const ret = expandTo(u, shape);
  if (op === Ops.MAX) {
    // ties share the gradient equally
    const isMax = cmp(Ops.CMPEQ, x, ret).cast(x.dtype);
    const count = expandTo(sumAxes(isMax, axes), shape);
    return isMax.mul(div(ge, count));
  }
  // MUL: the product of the others, exact when x has zeros (ret / x would be 0/0)
  const isZero = cmp(Ops.CMPEQ, x, full(x, 0));
  const z = isZero.cast(x.dtype);
  const nonzero = isZero.where(full(x, 1), x);
  const pnz = expandTo(UOp.make(Ops.REDUCE_AXIS, x.dtype, [nonzero], [Ops.MUL, axes]), shape);
  const otherZeros = expandTo(sumAxes(z, axes), shape).add(z.neg());
  const others = isZero.where(pnz, pnz.mul(UOp.make(Ops.RECIPROCAL, x.dtype, [nonzero])));
  return cmp(Ops.CMPEQ, otherZeros, full(x, 0)).where(others, full(x, 0)).mul(ge);
}

/** the device a node lives on: its nearest COPY or BUFFER (pure constants have none) */
function deviceOf(u: UOp): string | undefined {
  for (const x of u.toposort().toReversed()) {
    if (x.op === Ops.COPY) return x.arg as string;
    if (x.op === Ops.BUFFER) return (x.arg as { device: string }).device;
  }
  return undefined;
}

const rule = (ops: Ops | Ops[], fn: RuleFn<UOp>): [UPat, RuleFn<UOp>] => [
  UPat.op(Array.isArray(ops) ? new Set(ops) : ops),
  fn,
];
const LN2 = Math.LN2;

/** one derivative rule per op: ctx is the gradient of the node, the result SINKs its sources' */
export const pmGradient = new PatternMatcher<UOp>([
  // ---- ALU ----
  rule(Ops.ADD, (_, g) => grads(g, g)),
  rule(Ops.SUB, (_, g) => grads(g, g.neg())),
  rule(Ops.NEG, (_, g) => grads(g.neg())),
  rule(Ops.MUL, (_, g, u) => grads(u.src[1].mul(g), u.src[0].mul(g))),
  rule(Ops.FDIV, (_, g, u) => {
    const [a, b] = u.src;
    return grads(div(g, b), div(g.neg().mul(a), b.mul(b)));
  }),
  rule(Ops.RECIPROCAL, (_, g, u) => grads(g.neg().mul(u).mul(u))),
  rule(Ops.SQRT, (_, g, u) => grads(div(g, u.mul(full(u, 2))))),
  rule(Ops.EXP2, (_, g, u) => grads(g.mul(u).mul(full(u, LN2)))),
  rule(Ops.LOG2, (_, g, u) => grads(div(g, u.src[0].mul(full(u, LN2))))),
  // d sin(x) = cos(x) = sin(pi/2 - x)
  rule(Ops.SIN, (_, g, u) => {
    const x = u.src[0];
    return grads(g.mul(UOp.make(Ops.SIN, x.dtype, [full(x, Math.PI / 2).add(x.neg())])));
  }),
  // ties share the gradient equally
  rule(Ops.MAX, (_, g, u) => {
    const [a, b] = u.src;
    const half = cmp(Ops.CMPNE, a, b).where(full(g, 0), g.mul(full(g, 0.5)));
    return grads(cmp(Ops.CMPLT, b, a).where(g, half), cmp(Ops.CMPLT, a, b).where(g, half));
  }),
  rule(Ops.WHERE, (_, g, u) => {
    const c = u.src[0], zero = full(g, 0);
    return grads(null, c.where(g, zero), c.where(zero, g));
  }),
  rule(Ops.CAST, (_, g, u) => grads(u.src[0].dtype.isFloat ? g.cast(u.src[0].dtype) : null)),
  // piecewise constant or not differentiable: no gradient flows
  rule(
    [
      Ops.TRUNC,
      Ops.BITCAST,
      ...GroupOp.Comparison,
      Ops.IDIV,
      Ops.MOD,
      Ops.AND,
      Ops.OR,
      Ops.XOR,
      Ops.SHL,
      Ops.SHR,
    ],
    (_, __, u) => grads(...u.src.map(() => null)),
  ),
  // ---- reductions ----
  rule(Ops.REDUCE_AXIS, (_, g, u) => grads(reduceGrad(g, u))),
  // ---- movement: the inverse movement ----
  rule(Ops.RESHAPE, (_, g, u) => grads(UOp.make(Ops.RESHAPE, g.dtype, [g], [...u.src[0].shape!]))),
  rule(Ops.PERMUTE, (_, g, u) => {
    const p = u.arg as number[], inv = new Array<number>(p.length);
    p.forEach((a, i) => (inv[a] = i));
    return grads(UOp.make(Ops.PERMUTE, g.dtype, [g], inv));
  }),
  rule(Ops.EXPAND, (_, g, u) => grads(sumTo(g, u.src[0].shape!))),
  rule(Ops.PAD, (_, g, u) => {
    const sh = u.src[0].shape!;
    const r = (u.arg as Pad[]).map(([b], i) => [b, b + sh[i]]);
    return grads(UOp.make(Ops.SHRINK, g.dtype, [g], r));
  }),
  rule(Ops.SHRINK, (_, g, u) => {
    const sh = u.src[0].shape!;
    const p = (u.arg as Pad[]).map(([s, e], i) => [s, sh[i] - e]);
    return grads(UOp.make(Ops.PAD, g.dtype, [g], p));
  }),
  rule(Ops.FLIP, (_, g, u) => grads(UOp.make(Ops.FLIP, g.dtype, [g], u.arg))),
  // ---- structure ----
  rule(Ops.CONTIGUOUS, (_, g) => grads(g)),
  rule(Ops.NOOP, (_, g) => grads(g)),
  rule(Ops.DETACH, () => grads(null)),
  rule(Ops.COPY, (_, g, u) => {
    const dev = deviceOf(u.src[0]);
    return grads(dev === undefined ? null : UOp.make(Ops.COPY, g.dtype, [g], dev));
  }),
]);

/**
 * The gradients of `root` (seeded with `rootGrad`) with respect to each of `targets` that root
 * depends on. A target reached only through ops without a gradient (comparisons, TRUNC) gets
 * zeros; one root does not depend on, or only through a DETACH, is absent from the result.
 */
export function computeGradient(
  root: UOp,
  rootGrad: UOp,
  targets: Iterable<UOp>,
): Map<UOp, UOp> {
  const want = new Set(targets);
  const topo = root.toposort();
  // the nodes with a path to a target; DETACH cuts the path
  const onPath = new Set<UOp>();
  for (const u of topo) {
    if (want.has(u) || (u.op !== Ops.DETACH && u.src.some((s) => onPath.has(s)))) onPath.add(u);
  }
  // ...and of those, the ones root reaches without crossing a DETACH
  const reached = new Set<UOp>(onPath.has(root) ? [root] : []);
  const acc = new Map<UOp, UOp>();
  if (onPath.has(root)) acc.set(root, rootGrad);
  for (let i = topo.length - 1; i >= 0; i--) {
    const u = topo[i];
    if (!reached.has(u) || u.op === Ops.DETACH) continue;
    for (const s of u.src) if (onPath.has(s)) reached.add(s);
    const g = acc.get(u);
    if (g === undefined || !u.src.some((s) => onPath.has(s))) continue;
    const r = pmGradient.rewrite(u, g);
    if (r === undefined) {
      throw new Error(
        `gradient: no derivative rule for ${opName(u.op)} (${u.dtype.name} [${u.shape}]); ` +
          `detach() the input of this op or compute it from differentiable ops`,
      );
    }
    u.src.forEach((s, j) => {
      const gs = r.src[j];
      if (gs.op === Ops.NOOP || !onPath.has(s) || !s.dtype.isFloat) return;
      const prev = acc.get(s);
      acc.set(s, prev === undefined ? gs : prev.add(gs));
    });
  }
  const out = new Map<UOp, UOp>();
  for (const t of want) {
    if (!reached.has(t)) continue;
    out.set(t, acc.get(t) ?? full(t, 0));
  }
  return out;
}

// ---- the Tensor side: which Tensor objects a node of the loss graph belongs to ----

// A Tensor holds only its current uop, and realize() swaps that for a buffer; a loss built before
// the swap still refers to the old node. So every uop a requiresGrad tensor has had maps back to
// it. Keys are weak: an entry lives exactly as long as some graph can still refer to that node.
const owners = new WeakMap<UOp, WeakRef<Tensor>[]>();

/** @internal Tensor calls this whenever a requiresGrad tensor gets a uop */
export function trackGrad(t: Tensor): void {
  const list = (owners.get(t.uop) ?? []).filter((r) => r.deref() !== undefined);
  if (!list.some((r) => r.deref() === t)) list.push(new WeakRef(t));
  owners.set(t.uop, list);
}

/** the nodes of `root`'s graph that belong to each live tensor tracked there */
function ownedNodes(root: UOp, keep: (t: Tensor) => boolean): Map<Tensor, UOp[]> {
  const found = new Map<Tensor, UOp[]>();
  for (const u of root.toposort()) {
    for (const r of owners.get(u) ?? []) {
      const t = r.deref();
      if (t === undefined || !keep(t)) continue;
      const l = found.get(t);
      if (l) l.push(u);
      else found.set(t, [u]);
    }
  }
  return found;
}

/** whether backward() from `t` would reach a tensor with requiresGrad */
export function needsGrad(t: Tensor): boolean {
  return ownedNodes(t.uop, (x) => x.requiresGrad && x.dtype.isFloat).size > 0;
}

const shapeStr = (s: readonly number[]): string => `[${s.join(", ")}]`;

function seed(op: string, loss: Tensor, gradient?: Tensor): UOp {
  if (!loss.dtype.isFloat) {
    throw new Error(`${op}: the loss is ${loss.dtype.name}; gradients need a float loss`);
  }
  if (gradient === undefined) {
    if (loss.numel() !== 1) {
      throw new Error(
        `${op}: the loss has shape ${
          shapeStr(loss.shape)
        }; without a gradient argument it must have one element (reduce it with sum() or ` +
          `mean(), or pass a gradient of shape ${shapeStr(loss.shape)})`,
      );
    }
    return full(loss.uop, 1);
  }
  if (gradient.shape.join() !== loss.shape.join() || gradient.ndim !== loss.ndim) {
    throw new Error(
      `${op}: the gradient has shape ${shapeStr(gradient.shape)}, the loss ${
        shapeStr(loss.shape)
      }; they must match`,
    );
  }
  return gradient.uop.cast(loss.dtype);
}

function sumOf(gs: Map<UOp, UOp>, us: readonly UOp[]): UOp | undefined {
  let acc: UOp | undefined;
  for (const u of new Set(us)) {
    const g = gs.get(u);
    if (g !== undefined) acc = acc === undefined ? g : acc.add(g);
  }
  return acc;
}

/**
 * d(loss)/d(target) for each target, as new lazy tensors (nothing is stored). A target the loss
 * does not depend on is an error, as in tinygrad; one it depends on only through ops without a
 * gradient gets zeros.
 */
export function tensorGradient(loss: Tensor, targets: Tensor[], gradient?: Tensor): Tensor[] {
  const rootGrad = seed("gradient", loss, gradient);
  targets.forEach((t, i) => {
    if (!(t instanceof Tensor)) throw new TypeError(`gradient: target ${i} is not a Tensor`);
    if (!t.dtype.isFloat) {
      throw new Error(
        `gradient: target ${i} is ${t.dtype.name}; only float tensors have gradients`,
      );
    }
  });
  const set = new Set(targets);
  const owned = ownedNodes(loss.uop, (t) => set.has(t));
  const uopsOf = (t: Tensor): UOp[] => [t.uop, ...(owned.get(t) ?? [])];
  const gs = computeGradient(loss.uop, rootGrad, targets.flatMap(uopsOf));
  return targets.map((t, i) => {
    const g = sumOf(gs, uopsOf(t));
    if (g === undefined) {
      throw new Error(
        `gradient: the loss does not depend on target ${i} (shape ${
          shapeStr(t.shape)
        }), or only through detach()`,
      );
    }
    return new Tensor(g, t.device);
  });
}

/**
 * Adds d(loss)/d(t) to `t.grad` for every live tensor with requiresGrad that the loss depends on
 * (accumulating, so micro-batches sum until the optimizer zeroes the grads).
 */
export function tensorBackward(loss: Tensor, gradient?: Tensor): void {
  const rootGrad = seed("backward", loss, gradient);
  const owned = ownedNodes(loss.uop, (t) => t.requiresGrad && t.dtype.isFloat);
  const gs = computeGradient(loss.uop, rootGrad, [...owned.values()].flat());
  let set = 0;
  for (const [t, us] of owned) {
    const g = sumOf(gs, us);
    if (g === undefined) continue;
    const gt = new Tensor(g, t.device);
    t.grad = t.grad === null ? gt : t.grad.add(gt);
    set++;
  }
  if (set === 0) {
    throw new Error(
      "backward: the loss does not depend on any tensor with requiresGrad (a loss that was " +
        "realized or read before backward() no longer holds its graph: call backward() first)",
    );
  }
}
