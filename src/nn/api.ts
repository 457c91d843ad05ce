// What `nn` holds: the layers, and the state, optim and datasets namespaces.
export { BatchNorm, Conv2d, Embedding, LayerNorm, Linear, replace, RMSNorm } from "./layers.ts";
export type { BatchNormOpts, Conv2dOpts } from "./layers.ts";
export * as state from "./state.ts";
export * as optim from "./optim.ts";
export * as datasets from "./datasets.ts";
export { checkpointSequential } from "./checkpoint.ts";
