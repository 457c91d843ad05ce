// Whether amd_comgr (and the HIP runtime header its compiles include) can be used here, for the
// tests that compile HIP through it (tests/hip_render_test.ts, tests/tc_amd_test.ts).
import { LibComgr } from "../../src/runtime/ffi/comgr.ts";
import { hiprtcRuntimeHeader } from "../../src/runtime/ffi/hiprtc.ts";

/** why amd_comgr cannot be used, logged as `<test>: ... SKIPPING <what>`; "" where it can */
export function comgrUnusable(test: string, what: string): string {
  try {
    LibComgr.get();
    hiprtcRuntimeHeader();
    return "";
  } catch (e) {
    console.log(`${test}: amd_comgr not usable: SKIPPING ${what} (${e})`);
    return String(e);
  }
}
