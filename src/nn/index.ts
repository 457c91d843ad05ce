// The `nn` namespace of the public API (shared/API.md). A module namespace rather than an object,
// so that `nn.Linear` and `nn.optim.SGD` name types as well as values.
export * as nn from "./api.ts";
