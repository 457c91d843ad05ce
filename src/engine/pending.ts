// Buffers still being filled. A device that reads back only asynchronously (WEBGPU) cannot feed a
// copy inside the synchronous realize(), so such a copy starts an async readback and marks its
// destination pending; every later step that reads a pending buffer (in this schedule or a later
// one) is chained after it, and reads of a pending buffer wait (await data()) or throw (dataSync).
import type { UOp } from "../uop/ops.ts";
import { bufferOf } from "./buffers.ts";

const pending = new WeakMap<UOp, Promise<void>>();

function mark(outputs: readonly UOp[], work: Promise<void>): void {
  const done: Promise<void> = work.then(() => {
    for (const o of outputs) if (pending.get(o) === done) pending.delete(o);
  });
  done.catch(() => {}); // the failure is kept for whoever reads an output
  for (const o of outputs) pending.set(o, done);
}

/**
 * Run `step` now when no buffer of `inputs` is pending, else once they are filled; `outputs` are
 * pending until it has run. A step may itself return a promise (an async copy).
 */
export function afterPending(
  inputs: readonly UOp[],
  outputs: readonly UOp[],
  step: () => void | Promise<void>,
): void {
  const waits = inputs.flatMap((u) => pending.get(u) ?? []);
  if (waits.length) return mark(outputs, Promise.all(waits).then(step));
  const r = step();
  if (r instanceof Promise) mark(outputs, r);
}

/** copy BUFFER `src` into BUFFER `dst` (another device): synchronously where `src` can be read so */
export function copyBuffer(dst: UOp, src: UOp): void {
  afterPending([src], [dst], () => {
    const from = bufferOf(src), to = bufferOf(dst);
    if (from.impl.allocator.copyout) to.copyin(from.toTypedArraySync());
    else return from.toTypedArray().then((data) => void to.copyin(data));
  });
}

/** resolves once `u` is filled (rejects with the error that stopped it) */
export function whenFilled(u: UOp): Promise<void> {
  return pending.get(u) ?? Promise.resolve();
}

/** throws where `u` is still being filled asynchronously */
export function assertFilled(u: UOp, what: string): void {
  if (!pending.has(u)) return;
  throw new Error(
    `${what}: this ${(u.arg as { device: string }).device} buffer is still being filled by a ` +
      `copy from a device that reads back asynchronously (WEBGPU): use await t.data() ` +
      `(or await t.tolist())`,
  );
}
