// Tensor: a lazy handle on a tensor-graph UOp (docs/ir.md section 1) and the device it lives on.
// Building a Tensor only records UOps; realize() or reading data runs kernels through the engine.
// The ops themselves live in src/tensor/, one concept a file; this class names them.
import { type DType, dtypes, fromBF16Bits, type TypedArray } from "./dtype.ts";
import { Ops, prod, UOp } from "./uop/ops.ts";
import { backend, type KernelInfo } from "./tensor/backend.ts";
import { fmtShape, toDType } from "./tensor/broadcast.ts";
import * as C from "./tensor/creation.ts";
import * as E from "./tensor/elementwise.ts";
import { formatTensor } from "./tensor/format.ts";
import * as M from "./tensor/movement.ts";
import * as N from "./tensor/nnfunc.ts";
import * as Rnd from "./tensor/random.ts";
import * as R from "./tensor/reduce.ts";
import { tensorBackward, tensorGradient, trackGrad } from "./gradient.ts";

export type TensorLike = Tensor | number | boolean;
export interface TensorOpts {
  dtype?: DType | string;
  device?: string;
  requiresGrad?: boolean;
}
export type { AttentionOpts, ConvOpts, PoolOpts, Reduction } from "./tensor/nnfunc.ts";
export type { SliceArg } from "./tensor/movement.ts";
export type { FromOpts, NestedData } from "./tensor/creation.ts";
export type Axis = number | number[];
export type NestedList = number | boolean | NestedList[];

const isRealized = (u: UOp): boolean =>
  u.op === Ops.BUFFER || (u.op === Ops.RESHAPE && u.src[0].op === Ops.BUFFER);

/** called when an existing tensor is pointed at a new graph (a JIT records these: jit.ts) */
let rebindHook: ((t: Tensor, old: UOp, now: UOp) => void) | null = null;
export function setRebindHook(hook: ((t: Tensor, old: UOp, now: UOp) => void) | null): void {
  rebindHook = hook;
}

export class Tensor {
  private _uop!: UOp;
  private _requiresGrad = false;
  readonly device: string;
  /** d(loss)/d(this), accumulated by backward(); the optimizer's zeroGrad() sets it to null */
  grad: Tensor | null = null;
  /** dropout is active only while this is true */
  static training = false;

  /** a tensor over an existing tensor-graph UOp (the device defaults to Device.DEFAULT) */
  constructor(uop: UOp, device?: string) {
    if (!(uop instanceof UOp) || uop.shape === null) {
      throw new TypeError("Tensor: expected a tensor-graph UOp (use Tensor.from for data)");
    }
    this.uop = uop;
    this.device = device ?? backend().defaultDevice();
  }
  /** the graph this tensor is; replaced by its buffer-backed form once realized */
  get uop(): UOp {
    return this._uop;
  }
  set uop(u: UOp) {
    const old = this._uop;
    this._uop = u;
    if (old !== undefined) rebindHook?.(this, old, u);
    // autograd finds a tensor from any node it has been, since a loss built earlier holds those
    if (this._requiresGrad) trackGrad(this);
  }
  /**
   * Whether backward() fills `grad`. A graph of constants alone (zeros, ones, full, eye) is
   * realized when this is set: hash-consing makes equal constants one node, so two zero biases
   * would otherwise share a node and their gradients.
   */
  get requiresGrad(): boolean {
    return this._requiresGrad;
  }
  set requiresGrad(v: boolean) {
    this._requiresGrad = v;
    if (!v) return;
    if (!this.uop.toposort().some((u) => u.op === Ops.BUFFER)) this.realize();
    trackGrad(this);
  }
  static fromUOp(uop: UOp, device?: string): Tensor {
    return new Tensor(uop, device);
  }

  // ---- properties ----
  get shape(): number[] {
    return [...this.uop.shape!];
  }
  get dtype(): DType {
    return this.uop.dtype;
  }
  get ndim(): number {
    return this.uop.shape!.length;
  }
  numel(): number {
    return prod(this.uop.shape!);
  }

  // ---- creation ----
  static from(data: C.NestedData | ArrayBufferView, opts?: C.FromOpts): Tensor {
    return C.from(data, opts);
  }
  static zeros(shape: number[], opts?: TensorOpts): Tensor {
    return C.full(shape, 0, { dtype: dtypes.default_float, ...opts });
  }
  static ones(shape: number[], opts?: TensorOpts): Tensor {
    return C.full(shape, 1, { dtype: dtypes.default_float, ...opts });
  }
  static full(shape: number[], value: number | boolean, opts?: TensorOpts): Tensor {
    return C.full(shape, value, opts);
  }
  static empty(shape: number[], opts?: TensorOpts): Tensor {
    return C.empty(shape, opts);
  }
  /** arange(stop) or arange(start, stop, step = 1) */
  static arange(start: number, stop?: number, step = 1, opts?: TensorOpts): Tensor {
    return C.arange(start, stop, step, opts);
  }
  static linspace(start: number, stop: number, steps: number, opts?: TensorOpts): Tensor {
    return C.linspace(start, stop, steps, opts);
  }
  static eye(n: number, m?: number, opts?: TensorOpts): Tensor {
    return C.eye(n, m ?? n, opts);
  }
  static manualSeed(seed: number): void {
    Rnd.manualSeed(seed);
  }
  static rand(shape: number[], opts?: TensorOpts): Tensor {
    return Rnd.rand(shape, opts);
  }
  static randn(shape: number[], opts?: TensorOpts): Tensor {
    return Rnd.randn(shape, opts);
  }
  static randint(shape: number[], low: number, high: number, opts?: TensorOpts): Tensor {
    return Rnd.randint(shape, low, high, opts);
  }
  private likeOpts(opts?: TensorOpts): TensorOpts {
    return { dtype: this.dtype, device: this.device, ...opts };
  }
  zerosLike(opts?: TensorOpts): Tensor {
    return C.full(this.shape, 0, this.likeOpts(opts));
  }
  onesLike(opts?: TensorOpts): Tensor {
    return C.full(this.shape, 1, this.likeOpts(opts));
  }
  fullLike(value: number | boolean, opts?: TensorOpts): Tensor {
    return C.full(this.shape, value, this.likeOpts(opts));
  }
  randLike(opts?: TensorOpts): Tensor {
    const o = this.likeOpts(opts);
    if (!toDType(o.dtype!).isFloat) o.dtype = dtypes.default_float;
    return Rnd.rand(this.shape, o);
  }
  randnLike(opts?: TensorOpts): Tensor {
    const o = this.likeOpts(opts);
    if (!toDType(o.dtype!).isFloat) o.dtype = dtypes.default_float;
    return Rnd.randn(this.shape, o);
  }

  // ---- elementwise ----
  add(x: TensorLike): Tensor {
    return E.add(this, x);
  }
  sub(x: TensorLike): Tensor {
    return E.sub(this, x);
  }
  mul(x: TensorLike): Tensor {
    return E.mul(this, x);
  }
  div(x: TensorLike): Tensor {
    return E.div(this, x);
  }
  pow(x: TensorLike): Tensor {
    return E.pow(this, x);
  }
  neg(): Tensor {
    return E.neg(this);
  }
  maximum(x: TensorLike): Tensor {
    return E.maximum(this, x);
  }
  minimum(x: TensorLike): Tensor {
    return E.minimum(this, x);
  }
  /** remainder with the divisor's sign (Python's %) */
  mod(x: TensorLike): Tensor {
    return E.mod(this, x);
  }
  /** floor division (Python's //) */
  idiv(x: TensorLike): Tensor {
    return E.idiv(this, x);
  }
  exp(): Tensor {
    return E.exp(this);
  }
  exp2(): Tensor {
    return E.exp2(this);
  }
  log(): Tensor {
    return E.log(this);
  }
  log2(): Tensor {
    return E.log2(this);
  }
  sqrt(): Tensor {
    return E.sqrt(this);
  }
  rsqrt(): Tensor {
    return E.rsqrt(this);
  }
  reciprocal(): Tensor {
    return E.reciprocal(this);
  }
  square(): Tensor {
    return E.square(this);
  }
  abs(): Tensor {
    return E.abs(this);
  }
  sign(): Tensor {
    return E.sign(this);
  }
  sin(): Tensor {
    return E.sin(this);
  }
  cos(): Tensor {
    return E.cos(this);
  }
  tan(): Tensor {
    return E.tan(this);
  }
  tanh(): Tensor {
    return E.tanh(this);
  }
  sigmoid(): Tensor {
    return E.sigmoid(this);
  }
  logsigmoid(): Tensor {
    return E.logsigmoid(this);
  }
  relu(): Tensor {
    return E.relu(this);
  }
  leakyRelu(negSlope = 0.01): Tensor {
    return E.leakyRelu(this, negSlope);
  }
  gelu(): Tensor {
    return E.gelu(this);
  }
  quickGelu(): Tensor {
    return E.quickGelu(this);
  }
  silu(): Tensor {
    return E.silu(this);
  }
  swish(): Tensor {
    return E.silu(this);
  }
  softplus(beta = 1): Tensor {
    return E.softplus(this, beta);
  }
  elu(alpha = 1): Tensor {
    return E.elu(this, alpha);
  }
  erf(): Tensor {
    return E.erf(this);
  }
  floor(): Tensor {
    return E.floor(this);
  }
  ceil(): Tensor {
    return E.ceil(this);
  }
  /** half to even */
  round(): Tensor {
    return E.round(this);
  }
  trunc(): Tensor {
    return E.trunc(this);
  }
  clamp(min?: TensorLike, max?: TensorLike): Tensor {
    return E.clamp(this, min, max);
  }
  /** this (a condition, cast to bool) ? a : b */
  where(a: TensorLike, b: TensorLike): Tensor {
    return E.where(this, a, b);
  }
  lt(x: TensorLike): Tensor {
    return E.lt(this, x);
  }
  le(x: TensorLike): Tensor {
    return E.le(this, x);
  }
  gt(x: TensorLike): Tensor {
    return E.gt(this, x);
  }
  ge(x: TensorLike): Tensor {
    return E.ge(this, x);
  }
  eq(x: TensorLike): Tensor {
    return E.eq(this, x);
  }
  ne(x: TensorLike): Tensor {
    return E.ne(this, x);
  }
  logicalNot(): Tensor {
    return E.logicalNot(this);
  }
  bitwiseAnd(x: TensorLike): Tensor {
    return E.bitwiseAnd(this, x);
  }
  bitwiseOr(x: TensorLike): Tensor {
    return E.bitwiseOr(this, x);
  }
  bitwiseXor(x: TensorLike): Tensor {
    return E.bitwiseXor(this, x);
  }
  bitwiseNot(): Tensor {
    return E.bitwiseNot(this);
  }
  lshift(x: TensorLike): Tensor {
    return E.lshift(this, x);
  }
  rshift(x: TensorLike): Tensor {
    return E.rshift(this, x);
  }
  isnan(): Tensor {
    return E.isnan(this);
  }
  isinf(detectPositive = true, detectNegative = true): Tensor {
    return E.isinf(this, detectPositive, detectNegative);
  }
  lerp(end: TensorLike, weight: TensorLike): Tensor {
    return E.lerp(this, end, weight);
  }

  // ---- reductions ----
  sum(axis?: Axis, keepdim = false): Tensor {
    return R.sum(this, axis, keepdim);
  }
  prod(axis?: Axis, keepdim = false): Tensor {
    return R.prodReduce(this, axis, keepdim);
  }
  max(axis?: Axis, keepdim = false): Tensor {
    return R.max(this, axis, keepdim);
  }
  min(axis?: Axis, keepdim = false): Tensor {
    return R.min(this, axis, keepdim);
  }
  mean(axis?: Axis, keepdim = false): Tensor {
    return R.mean(this, axis, keepdim);
  }
  var(axis?: Axis, keepdim = false, correction = 1): Tensor {
    return R.variance(this, axis, keepdim, correction);
  }
  std(axis?: Axis, keepdim = false, correction = 1): Tensor {
    return R.std(this, axis, keepdim, correction);
  }
  any(axis?: Axis, keepdim = false): Tensor {
    return R.any(this, axis, keepdim);
  }
  all(axis?: Axis, keepdim = false): Tensor {
    return R.all(this, axis, keepdim);
  }
  argmax(axis?: number, keepdim = false): Tensor {
    return R.argmax(this, axis, keepdim);
  }
  argmin(axis?: number, keepdim = false): Tensor {
    return R.argmin(this, axis, keepdim);
  }
  logsumexp(axis?: Axis, keepdim = false): Tensor {
    return R.logsumexp(this, axis, keepdim);
  }
  softmax(axis = -1): Tensor {
    return R.softmax(this, axis);
  }
  logSoftmax(axis = -1): Tensor {
    return R.logSoftmax(this, axis);
  }
  cumsum(axis = 0): Tensor {
    return R.cumsum(this, axis);
  }
  cumprod(axis = 0): Tensor {
    return R.cumprod(this, axis);
  }
  cummax(axis = 0): Tensor {
    return R.cummax(this, axis);
  }

  // ---- movement (views) ----
  reshape(shape: number[]): Tensor {
    return M.reshape(this, shape);
  }
  permute(order: number[]): Tensor {
    return M.permute(this, order);
  }
  transpose(a = 1, b = 0): Tensor {
    return M.transpose(this, a, b);
  }
  get T(): Tensor {
    return M.transpose(this, 1, 0);
  }
  expand(shape: number[]): Tensor {
    return M.expand(this, shape);
  }
  pad(pads: ([number, number] | null)[], value = 0): Tensor {
    return M.pad(this, pads, value);
  }
  shrink(ranges: ([number, number] | null)[]): Tensor {
    return M.shrink(this, ranges);
  }
  flip(axis: Axis): Tensor {
    return M.flip(this, axis);
  }
  flatten(start = 0, end = -1): Tensor {
    return M.flatten(this, start, end);
  }
  unflatten(axis: number, sizes: number[]): Tensor {
    return M.unflatten(this, axis, sizes);
  }
  squeeze(axis?: Axis): Tensor {
    return M.squeeze(this, axis);
  }
  unsqueeze(axis: number): Tensor {
    return M.unsqueeze(this, axis);
  }
  repeat(reps: number[]): Tensor {
    return M.repeat(this, reps);
  }
  static cat(tensors: Tensor[], axis = 0): Tensor {
    return M.cat(tensors, axis);
  }
  cat(...args: [...Tensor[]] | [...Tensor[], number]): Tensor {
    const axis = typeof args[args.length - 1] === "number" ? (args.pop() as number) : 0;
    return M.cat([this, ...(args as Tensor[])], axis);
  }
  static stack(tensors: Tensor[], axis = 0): Tensor {
    return M.stack(tensors, axis);
  }
  split(sizes: number | number[], axis = 0): Tensor[] {
    return M.split(this, sizes, axis);
  }
  chunk(n: number, axis = 0): Tensor[] {
    return M.chunk(this, n, axis);
  }
  /** each index: a number (drops the axis), [start, end, step?] (Python-style, negatives too), null */
  slice(...idx: M.SliceArg[]): Tensor {
    return M.slice(this, idx);
  }

  // ---- linear algebra and nn functional ----
  matmul(w: Tensor): Tensor {
    return N.matmul(this, w);
  }
  dot(w: Tensor): Tensor {
    return N.matmul(this, w);
  }
  /** this @ weight + bias, weight [in, out] */
  linear(weight: Tensor, bias?: Tensor): Tensor {
    return N.linear(this, weight, bias);
  }
  conv2d(weight: Tensor, bias?: Tensor, opts?: N.ConvOpts): Tensor {
    return N.conv2d(this, weight, bias, opts);
  }
  maxPool2d(kernel: number | number[] = 2, opts?: N.PoolOpts): Tensor {
    return N.maxPool2d(this, kernel, opts);
  }
  avgPool2d(kernel: number | number[] = 2, opts?: N.PoolOpts): Tensor {
    return N.avgPool2d(this, kernel, opts);
  }
  layernorm(axis: Axis = -1, eps = 1e-5): Tensor {
    return N.layernorm(this, axis, eps);
  }
  rmsnorm(axis: Axis = -1, eps = 1e-6): Tensor {
    return N.rmsnorm(this, axis, eps);
  }
  batchnorm(
    weight: Tensor | undefined,
    bias: Tensor | undefined,
    mean: Tensor,
    invstd: Tensor,
    axis = 1,
  ): Tensor {
    return N.batchnorm(this, weight, bias, mean, invstd, axis);
  }
  dropout(p = 0.5): Tensor {
    return N.dropout(this, p);
  }
  oneHot(numClasses: number): Tensor {
    return N.oneHot(this, numClasses);
  }
  triu(diagonal = 0): Tensor {
    return N.triu(this, diagonal);
  }
  tril(diagonal = 0): Tensor {
    return N.tril(this, diagonal);
  }
  scaledDotProductAttention(k: Tensor, v: Tensor, opts?: N.AttentionOpts): Tensor {
    return N.scaledDotProductAttention(this, k, v, opts);
  }
  sparseCategoricalCrossentropy(
    labels: Tensor,
    opts?: { ignoreIndex?: number; labelSmoothing?: number; reduction?: N.Reduction },
  ): Tensor {
    return N.sparseCategoricalCrossentropy(this, labels, opts);
  }
  crossEntropy(
    target: Tensor,
    opts?: { reduction?: N.Reduction; labelSmoothing?: number },
  ): Tensor {
    return N.crossEntropy(this, target, opts);
  }
  binaryCrossentropy(target: Tensor, reduction?: N.Reduction): Tensor {
    return N.binaryCrossentropy(this, target, reduction);
  }
  binaryCrossentropyLogits(target: Tensor, reduction?: N.Reduction, posWeight?: Tensor): Tensor {
    return N.binaryCrossentropyLogits(this, target, reduction, posWeight);
  }

  // ---- types and placement ----
  cast(dtype: DType | string): Tensor {
    const d = toDType(dtype);
    if (d === this.dtype) return this;
    return new Tensor(this.uop.cast(d), this.device);
  }
  /** reinterpret the bits; a different item size scales the last axis */
  bitcast(dtype: DType | string): Tensor {
    const d = toDType(dtype);
    if (d === this.dtype) return this;
    if (d === dtypes.bool || this.dtype === dtypes.bool) {
      throw new Error(`bitcast: cannot bitcast ${this.dtype.name} to ${d.name}; use cast for bool`);
    }
    if (d.itemsize !== this.dtype.itemsize) {
      const last = this.shape[this.ndim - 1];
      if (this.ndim === 0 || !Number.isInteger((last * this.dtype.itemsize) / d.itemsize)) {
        throw new Error(
          `bitcast: ${this.dtype.name} ${
            fmtShape(this.shape)
          } to ${d.name} needs a last axis whose byte size ${
            (last ?? 1) * this.dtype.itemsize
          } is a multiple of ${d.itemsize}`,
        );
      }
    }
    return new Tensor(this.uop.bitcast(d), this.device);
  }
  to(device: string): Tensor {
    const d = backend().canonicalDevice(device);
    if (d === this.device) return this;
    return new Tensor(UOp.make(Ops.COPY, this.dtype, [this.uop], d), d);
  }
  contiguous(): Tensor {
    return new Tensor(UOp.make(Ops.CONTIGUOUS, this.dtype, [this.uop]), this.device);
  }
  detach(): Tensor {
    return new Tensor(UOp.make(Ops.DETACH, this.dtype, [this.uop]), this.device);
  }
  /**
   * The same values, marked so that the elementwise work producing them is recomputed where it
   * is read (in the backward pass, say) instead of kept in a buffer: less memory, more compute.
   * By default every elementwise value read only a few times per element is recomputed; with
   * RECOMPUTE=0 values are stored unless marked.
   */
  recompute(): Tensor {
    return new Tensor(UOp.make(Ops.NOOP, this.dtype, [this.uop]), this.device);
  }

  // ---- autograd (src/gradient.ts) ----
  /**
   * Adds d(this)/d(t) to `t.grad` for every tensor t with requiresGrad that this depends on.
   * Needs a one-element loss unless `gradient` (the loss's shape) is given; call it before the
   * loss is realized or read, since realizing replaces the loss's graph with its buffer.
   */
  backward(gradient?: Tensor): this {
    tensorBackward(this, gradient);
    return this;
  }
  /** d(this)/d(target) for each target, without storing anything */
  gradient(...targets: Tensor[]): Tensor[] {
    return tensorGradient(this, targets);
  }

  // ---- execution and data ----
  realize(): this {
    Tensor.realize(this);
    return this;
  }
  /**
   * Give this tensor's device memory back now instead of when the garbage collector finds it
   * unreachable: JS has no reference counts, so a loop that makes a large tensor per iteration
   * otherwise holds every old one until a collection, and each new one is fresh memory (on the
   * CPU a page fault per 4 KiB). The memory returns to the device's pool, where the next
   * allocation of the same size reuses it. Afterwards reading this tensor, or any view of the
   * same buffer, throws. A tensor that is not realized holds no memory: nothing happens.
   */
  dispose(): void {
    if (isRealized(this.uop)) backend().dispose(this.uop);
  }
  /** realize several tensors in one schedule */
  static realize(...tensors: Tensor[]): void {
    const todo = tensors.filter((t) => !isRealized(t.uop));
    if (todo.length === 0) return;
    const out = backend().realize(todo.map((t) => t.uop));
    todo.forEach((t, i) => (t.uop = out[i]));
  }
  /** the kernels realizing this tensor would run, without running them */
  schedule(): { ast: UOp; bufs: UOp[] }[] {
    return backend().schedule([this.uop]);
  }
  /** each kernel realizing this tensor would run, rendered for its device (nothing runs) */
  kernels(): KernelInfo[] {
    return backend().kernels([this.uop], this.device);
  }
  /** the elements in row-major order as the dtype's TypedArray (bfloat16: a Float32Array) */
  async data(): Promise<TypedArray> {
    this.realize();
    return toUserArray(this.dtype, await backend().read(this.uop));
  }
  dataSync(): TypedArray {
    this.realize();
    return toUserArray(this.dtype, backend().readSync(this.uop));
  }
  async tolist(): Promise<NestedList> {
    return nest(await this.data(), this.shape, this.dtype);
  }
  tolistSync(): NestedList {
    return nest(this.dataSync(), this.shape, this.dtype);
  }
  /** the one element of a tensor of size 1 */
  item(): number | boolean {
    if (this.numel() !== 1) {
      throw new Error(
        `item: needs a tensor of exactly 1 element, got shape ${fmtShape(this.shape)}`,
      );
    }
    return nest(this.dataSync(), [], this.dtype) as number | boolean;
  }
  toString(): string {
    try {
      return formatTensor(this.dataSync(), this.shape, this.dtype, this.device);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      return `Tensor(<not readable: ${why}>, shape=${
        fmtShape(this.shape)
      }, dtype=${this.dtype.name}, device=${this.device})`;
    }
  }
  [Symbol.for("Deno.customInspect")](): string {
    return this.toString();
  }
}

/** storage as the user sees it: bfloat16 bits become a Float32Array of the values */
function toUserArray(dtype: DType, raw: TypedArray): TypedArray {
  if (dtype === dtypes.bfloat16 && raw instanceof Uint16Array) {
    return Float32Array.from(raw, fromBF16Bits);
  }
  return raw;
}

function nest(data: TypedArray, shape: readonly number[], dtype: DType): NestedList {
  const conv = (v: number | bigint): number | boolean =>
    dtype === dtypes.bool ? v !== 0 : Number(v);
  const build = (axis: number, off: number): NestedList => {
    if (axis === shape.length) return conv(data[off]);
    const stride = prod(shape.slice(axis + 1));
    return Array.from({ length: shape[axis] }, (_, i) => build(axis + 1, off + i * stride));
  };
  return build(0, 0);
}
