// Gradient checkpointing of a chain of segments (PyTorch's checkpoint_sequential): the forward
// keeps only each segment's input, and the backward recomputes a segment's activations from it
// right before they are needed. A model's activations (a transformer block's queries, keys,
// values, attention weights, MLP hidden layer) are then alive one segment at a time instead of
// all at once when the backward starts, for one more forward of the segments.
import type { Tensor } from "../tensor.ts";
import { needsGrad } from "../gradient.ts";

/**
 * `head(segments[n-1](...segments[0](x)))`, a scalar loss, with the gradients of everything the
 * functions read set (lazily, accumulated into `.grad`) as `loss.backward()` would set them.
 * Returns the loss. The segments must be pure functions of their input and the parameters.
 */
export function checkpointSequential(
  x: Tensor,
  segments: readonly ((x: Tensor) => Tensor)[],
  head: (x: Tensor) => Tensor,
): Tensor {
  // the forward: values only; each segment starts from its input without a graph behind it
  const xs = [x.detach()];
  for (const f of segments) xs.push(f(xs[xs.length - 1]).detach());
  const last = xs[xs.length - 1].detach();
  last.requiresGrad = true;
  const loss = head(last);
  if (loss.numel() !== 1) {
    throw new Error(
      `checkpointSequential: head must return a scalar loss, got shape [${loss.shape}]`,
    );
  }
  loss.backward();
  // the backward, segment by segment: recompute() makes the segment's input a node of its own,
  // so its activations are new nodes computed for the backward, not the forward's kept alive
  let dy = last.grad!;
  for (let i = segments.length - 1; i >= 0; i--) {
    const xi = xs[i].recompute();
    xi.requiresGrad = true;
    segments[i](xi).backward(dy);
    dy = xi.grad!;
  }
  // the input's own graph (an embedding, say) gets the rest
  if (needsGrad(x)) x.backward(dy);
  return loss;
}
