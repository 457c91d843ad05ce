// BUFFER UOps and the device memory behind them.
import type { DType } from "../dtype.ts";
import { Ops, UOp } from "../uop/ops.ts";
import { Buffer } from "../runtime/device.ts";

export interface BufferArg {
  id: number;
  size: number;
  device: string;
}

let nextBufferId = 0;
const storage = new WeakMap<UOp, Buffer>();
// device memory of a BUFFER nobody can reach any more is given back
const reclaim = new FinalizationRegistry<Buffer>((b) => b.free());

/** a new BUFFER UOp (memory is allocated on first use) */
export function newBuffer(device: string, dtype: DType, size: number): UOp {
  const arg: BufferArg = { id: nextBufferId++, size, device };
  return UOp.make(Ops.BUFFER, dtype, [], arg);
}

/** the device buffer behind a BUFFER UOp */
export function bufferOf(u: UOp): Buffer {
  if (u.op !== Ops.BUFFER) throw new Error(`bufferOf: expected a BUFFER, got ${Ops[u.op]}`);
  let b = storage.get(u);
  if (!b) {
    const { device, size } = u.arg as BufferArg;
    b = new Buffer(device, u.dtype, size);
    storage.set(u, b);
    reclaim.register(u, b, b);
  }
  return b;
}

/**
 * give a user's buffer back now (Tensor.dispose): its memory returns to the device's pool for
 * the next allocation of its size, and the BUFFER stays bound to the freed Buffer so that any
 * later read of it throws instead of reading fresh memory
 */
export function disposeBuffer(u: UOp): void {
  const b = bufferOf(u);
  b.free();
  reclaim.unregister(b);
}

/** free a buffer's memory now (an intermediate of a schedule that nothing else holds) */
export function freeBuffer(u: UOp): void {
  const b = storage.get(u);
  if (b) {
    b.free();
    reclaim.unregister(b);
    storage.delete(u);
  }
}
