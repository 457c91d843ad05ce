// The CUDA device on a real GPU (TG_GPU_TESTS=1, `deno task test:gpu`): the driver and NVRTC
// load, memory round-trips and is reused, kernels time with events, errors carry sizes and
// names (tests/support/gpu_device.ts), and the whole op suite matches the numpy fixtures on CUDA.
import { gpuDeviceTests } from "../support/gpu_device.ts";

const enabled = Deno.env.get("TG_GPU_TESTS") === "1";
if (!enabled) console.log("cuda_test: SKIPPED (set TG_GPU_TESTS=1 on a machine with a GPU)");

gpuDeviceTests({
  device: "CUDA",
  lang: "cuda",
  arch: /^sm_\d+$/,
  broken: {
    src: 'extern "C" __global__ void broken(float* data0) { data0[0] = undefined_thing; }\n',
    error: /NVRTC_ERROR_COMPILATION[\s\S]*undefined_thing/,
  },
  enabled,
});

if (enabled) {
  // the op suite of tests/ops_test.ts, run on CUDA
  Deno.env.set("TG_OPS_DEVICES", "CUDA");
  await import("../ops_test.ts");
}
