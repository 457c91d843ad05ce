// The AMD device on a real GPU (TG_GPU_TESTS=1 where ROCm sees an AMD GPU, `deno task test:gpu`):
// the HIP runtime and hiprtc load, memory round-trips and is reused, kernels time with events,
// errors carry sizes and names (tests/support/gpu_device.ts), and the whole op suite matches the
// numpy fixtures on AMD. Not yet run on AMD hardware: without an AMD GPU every test is ignored.
import { Device } from "../../mod.ts";
import { gpuDeviceTests } from "../support/gpu_device.ts";

const asked = Deno.env.get("TG_GPU_TESTS") === "1";
const status = asked ? Device.status().find((s) => s.name === "AMD") : undefined;
const enabled = asked && status?.available === true;
if (!asked) console.log("amd_test: SKIPPED (set TG_GPU_TESTS=1 on a machine with an AMD GPU)");
else if (!enabled) console.log(`amd_test: SKIPPED (no AMD device here: ${status?.error})`);

gpuDeviceTests({
  device: "AMD",
  lang: "hip",
  arch: /^gfx[0-9a-f]+$/,
  broken: {
    src: 'extern "C" __global__ void broken(float* data0) { data0[0] = undefined_thing; }\n',
    error: /(HIPRTC_ERROR_COMPILATION|AMD_COMGR_STATUS_ERROR)[\s\S]*undefined_thing/,
  },
  enabled,
});

if (enabled) {
  // the op suite of tests/ops_test.ts, run on AMD
  Deno.env.set("TG_OPS_DEVICES", "AMD");
  await import("../ops_test.ts");
}
