// tg: the public API (see README.md). Everything a user imports comes from here.
import "./src/uop/symbolic.ts";
export { Tensor } from "./src/tensor.ts";
export { DType, dtypes } from "./src/dtype.ts";
export { Device } from "./src/runtime/device.ts";
export { GlobalCounters } from "./src/engine/counters.ts";
export { Ops, UOp, Variable } from "./src/uop/ops.ts";
export { graphRewrite, PatternMatcher, UPat } from "./src/uop/upat.ts";
export { nn } from "./src/nn/index.ts";
