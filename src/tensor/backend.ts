// The engine as the Tensor layer sees it. One indirection so that tests can run the whole Tensor
// API on the reference interpreter (tests/support/reference.ts) without generated kernels.
import type { DType, TypedArray } from "../dtype.ts";
import type { UOp } from "../uop/ops.ts";
import * as engine from "../engine/realize.ts";
import type { KernelInfo } from "../engine/realize.ts";

export type { KernelInfo };

export interface Backend {
  defaultDevice(): string;
  canonicalDevice(name: string): string;
  bufferFromData(device: string, dtype: DType, data: TypedArray): UOp;
  realize(roots: UOp[]): UOp[];
  readSync(realized: UOp): TypedArray;
  read(realized: UOp): Promise<TypedArray>;
  kernels(roots: UOp[], device: string): KernelInfo[];
  schedule(roots: UOp[]): { ast: UOp; bufs: UOp[] }[];
  /** give the memory behind a realized UOp back now */
  dispose(realized: UOp): void;
}

const engineBackend: Backend = {
  defaultDevice: () => engine.defaultDevice(),
  canonicalDevice: (n) => engine.canonicalDevice(n),
  bufferFromData: (d, dt, data) => engine.bufferFromData(d, dt, data),
  realize: (r) => engine.realize(r),
  readSync: (u) => engine.readSync(u),
  read: (u) => engine.read(u),
  kernels: (r, d) => engine.kernels(r, d),
  schedule: (r) => engine.schedule(r),
  dispose: (u) => engine.dispose(u),
};

let current: Backend = engineBackend;

export function backend(): Backend {
  return current;
}

/** run Tensors on `b` instead of the engine (null restores the engine); returns the previous one */
export function setBackend(b: Backend | null): Backend {
  const prev = current;
  current = b ?? engineBackend;
  return prev;
}
