// Checkpointed against plain backward (tests/checkpoint_test.ts, tests/memory_checkpoint_test.ts):
// the same loss and gradients bit for bit, and the planned peak of each.
import assert from "node:assert/strict";
import { memoryReport, Tensor } from "../../mod.ts";

/**
 * run `plain` (a loss, backward() done) and then `checkpointed` (a loss with its gradients set),
 * each from cleared gradients of `params`; assert equal loss and gradients; return both peaks
 */
export async function checkpointedAgainstPlain(
  params: Tensor[],
  plain: () => Tensor,
  checkpointed: () => Tensor,
): Promise<{ plainPeak: number; ckPeak: number }> {
  const run = (loss: () => Tensor) => {
    for (const p of params) p.grad = null;
    const l = loss();
    const grads = params.map((p) => p.grad!);
    const peak = memoryReport(l, ...grads).peakBytes;
    Tensor.realize(l, ...grads);
    return { loss: l, grads, peak };
  };
  const p = run(plain), ck = run(checkpointed);
  assert.equal(await ck.loss.item(), await p.loss.item());
  for (let i = 0; i < p.grads.length; i++) {
    assert.deepEqual(await ck.grads[i].data(), await p.grads[i].data(), `gradient ${i}`);
  }
  return { plainPeak: p.peak, ckPeak: ck.peak };
}
