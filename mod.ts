// tg: the public API (see README.md). Everything a user imports comes from here.
import "./src/uop/symbolic.ts";
export { Tensor } from "./src/tensor.ts";
export { DType, dtypes } from "./src/dtype.ts";
export { Device } from "./src/runtime/device.ts";
export { GlobalCounters } from "./src/engine/counters.ts";
export { type JitFunction, TinyJit } from "./src/engine/jit.ts";
export { memoryReport } from "./src/engine/memory_report.ts";
export { webgpuReady } from "./src/runtime/device.ts";
export { Ops, UOp, Variable } from "./src/uop/ops.ts";
export { graphRewrite, PatternMatcher, UPat } from "./src/uop/upat.ts";

// `deno run -A mod.ts <command>`: the tg command line (src/cli.ts). Not awaited: the REPL
// imports this module, which must finish evaluating first.
if (import.meta.main) {
  import("./src/cli.ts").then((cli) => cli.main(Deno.args, import.meta.url));
}
export { nn } from "./src/nn/index.ts";
