// A small GPT-style transformer trained on random tokens with AdamW: the loss falls from ln(256)
// toward what memorizing the batch allows. It is here to show a training step's memory
// (bench/memory.ts, `tg mem examples/transformer.ts`), not to learn anything useful.
//   deno run -A examples/transformer.ts [--steps N] [--batch B] [--seq T]
import { parseArgs } from "node:util";
import { nn, Tensor } from "../mod.ts";

export interface TransformerConfig {
  vocab: number;
  width: number;
  heads: number;
  layers: number;
  maxSeq: number;
}

export const SMALL: TransformerConfig = {
  vocab: 256,
  width: 256,
  heads: 4,
  layers: 2,
  maxSeq: 128,
};

class Block {
  ln1: nn.LayerNorm;
  qkv: nn.Linear;
  proj: nn.Linear;
  ln2: nn.LayerNorm;
  fc1: nn.Linear;
  fc2: nn.Linear;
  constructor(width: number, readonly heads: number) {
    this.ln1 = new nn.LayerNorm(width);
    this.qkv = new nn.Linear(width, 3 * width);
    this.proj = new nn.Linear(width, width);
    this.ln2 = new nn.LayerNorm(width);
    this.fc1 = new nn.Linear(width, 4 * width);
    this.fc2 = new nn.Linear(4 * width, width);
  }
  /** x + attention(ln1(x)) */
  attn(x: Tensor): Tensor {
    const [B, T, C] = x.shape, H = this.heads, D = C / H;
    // [B, T, 3C] -> three [B, H, T, D]
    const [q, k, v] = this.qkv.call(this.ln1.call(x)).reshape([B, T, 3, H, D])
      .permute([2, 0, 3, 1, 4]).chunk(3, 0).map((t) => t.reshape([B, H, T, D]));
    const att = q.scaledDotProductAttention(k, v, { isCausal: true })
      .permute([0, 2, 1, 3]).reshape([B, T, C]);
    return x.add(this.proj.call(att));
  }
  /** x + mlp(ln2(x)) */
  mlp(x: Tensor): Tensor {
    return x.add(this.fc2.call(this.fc1.call(this.ln2.call(x)).gelu()));
  }
  call(x: Tensor): Tensor {
    return this.mlp(this.attn(x));
  }
}

export class Transformer {
  tok: nn.Embedding;
  pos: Tensor;
  blocks: Block[];
  lnf: nn.LayerNorm;
  head: nn.Linear;
  constructor(readonly cfg: TransformerConfig = SMALL) {
    if (cfg.width % cfg.heads !== 0) {
      throw new Error(`Transformer: width ${cfg.width} must be divisible by heads ${cfg.heads}`);
    }
    this.tok = new nn.Embedding(cfg.vocab, cfg.width);
    this.pos = Tensor.randn([cfg.maxSeq, cfg.width]).mul(0.02);
    this.pos.requiresGrad = true;
    this.blocks = Array.from({ length: cfg.layers }, () => new Block(cfg.width, cfg.heads));
    this.lnf = new nn.LayerNorm(cfg.width);
    this.head = new nn.Linear(cfg.width, cfg.vocab, false);
  }
  /** int tokens [B, T] to logits [B, T, vocab] */
  call(tokens: Tensor): Tensor {
    const T = tokens.shape[1];
    if (tokens.ndim !== 2 || T > this.cfg.maxSeq) {
      throw new Error(
        `Transformer: tokens must be [batch, seq] with seq <= ${this.cfg.maxSeq}, got [${tokens.shape}]`,
      );
    }
    let x = this.embed(tokens);
    for (const b of this.blocks) x = b.call(x);
    return this.unembed(x);
  }
  /** int tokens [B, T] to the residual stream [B, T, width] */
  embed(tokens: Tensor): Tensor {
    const T = tokens.shape[1];
    if (tokens.ndim !== 2 || T > this.cfg.maxSeq) {
      throw new Error(
        `Transformer: tokens must be [batch, seq] with seq <= ${this.cfg.maxSeq}, got [${tokens.shape}]`,
      );
    }
    return this.tok.call(tokens).add(this.pos.slice([0, T]));
  }
  /** the residual stream to logits [B, T, vocab] */
  unembed(x: Tensor): Tensor {
    return this.head.call(this.lnf.call(x));
  }
  /** the residual stream's steps: each block's attention and MLP halves */
  segments(): ((x: Tensor) => Tensor)[] {
    return this.blocks.flatMap((b) => [(x: Tensor) => b.attn(x), (x: Tensor) => b.mlp(x)]);
  }
}

/**
 * The loss of next-token prediction with gradient checkpointing: sets every parameter's `.grad`
 * (lazily) like `loss.backward()` would, but the forward keeps only the residual stream between
 * segments (each block's attention and MLP halves), and the backward recomputes a segment's
 * activations from its input right before it needs them. One more forward of the blocks (about a
 * third more work) for a fraction of the activation memory: without it every block's activations
 * (queries, keys, values, attention weights, the MLP's hidden layer) are alive when the backward
 * starts.
 */
export function checkpointedLoss(model: Transformer, tokens: Tensor, targets: Tensor): Tensor {
  return nn.checkpointSequential(
    model.embed(tokens),
    model.segments(),
    (x) => model.unembed(x).sparseCategoricalCrossentropy(targets),
  );
}

/**
 * a model, its AdamW and a step on a batch of tokens [B, T + 1] (next-token targets); with
 * `checkpoint` (the default) the backward recomputes activations (checkpointedLoss)
 */
export function transformerTrainer(cfg: TransformerConfig = SMALL, lr = 3e-4, checkpoint = true) {
  const model = new Transformer(cfg);
  const params = nn.state.getParameters(model);
  Tensor.realize(...params);
  const opt = new nn.optim.AdamW(params, { lr });
  const paramBytes = params.reduce((s, p) => s + p.numel() * p.dtype.itemsize, 0);
  /** the lazy loss of one step: forward, backward and the optimizer's updates are all pending */
  const step = (batch: Tensor): Tensor => {
    const T = batch.shape[1] - 1;
    opt.zeroGrad();
    const tokens = batch.slice(null, [0, T]), targets = batch.slice(null, [1, T + 1]);
    let loss: Tensor;
    if (checkpoint) loss = checkpointedLoss(model, tokens, targets);
    else {
      loss = model.call(tokens).sparseCategoricalCrossentropy(targets);
      loss.backward();
    }
    // the loss, the backward and the update in one schedule: each gradient is freed once its
    // parameter is updated (in place) instead of all of them living until the update
    opt.step(loss);
    return loss;
  };
  return { model, params, opt, paramBytes, step };
}

/** random tokens [batch, seq + 1] from a fixed-seed generator on the host */
export function randomTokens(batch: number, seq: number, vocab: number, seed = 1): Tensor {
  const data = new Int32Array(batch * (seq + 1));
  let s = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    data[i] = (s >>> 8) % vocab;
  }
  return Tensor.from(data, { shape: [batch, seq + 1] });
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      steps: { type: "string", default: "3" },
      batch: { type: "string", default: "8" },
      seq: { type: "string", default: "128" },
    },
  });
  const steps = Number(values.steps), batch = Number(values.batch), seq = Number(values.seq);
  Tensor.manualSeed(0);
  const t = transformerTrainer({ ...SMALL, maxSeq: Math.max(seq, SMALL.maxSeq) });
  console.log(
    `${t.params.length} parameter tensors, ${(t.paramBytes / 1e6).toFixed(2)} MB; batch ${batch}` +
      `, sequence ${seq}`,
  );
  // one batch, seen every step: the loss must fall as the model memorizes it
  const data = randomTokens(batch, seq, SMALL.vocab);
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    const loss = Number(await t.step(data).item());
    console.log(
      `step ${i}  loss ${loss.toFixed(4)}  ${((performance.now() - t0) / 1e3).toFixed(2)} s`,
    );
  }
}
