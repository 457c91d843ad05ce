// HIP C for hiprtc: CUDA C as the CUDA renderer writes it (extern "C" __global__, blockIdx and
// threadIdx, which hiprtc's built-in headers define, __launch_bounds__, the same math names)
// with the helpers that use PTX inline assembly replaced. hiprtc is clang, so 16-bit floats are
// clang's _Float16: its conversions round to nearest even once, double -> half included.
import type { GpuLimits } from "../codegen/gpudims.ts";
import { CUDARenderer } from "./cuda.ts";

/**
 * what one AMD launch may use: 1024 threads a block; the dispatch packet counts the grid in
 * work-items as 32-bit numbers, so blocks x threads must stay below 2^32 on every dimension
 * (with blocks of at most localMax threads these grid limits keep it there)
 */
export const AMD_LIMITS: GpuLimits = {
  grid: [2 ** 25 - 1, 65535, 65535],
  block: [1024, 1024, 1024],
  threads: 1024,
  localMax: 128,
};

const D = "static __device__ __forceinline__";
/** the CUDA renderer's PTX helpers, by helper name, as HIP writes them */
const HIP_HELPERS: Record<string, string> = {
  tg_f16: [
    `${D} float tg_h2f(unsigned short h) { return (float)__builtin_bit_cast(_Float16, h); }`,
    `${D} unsigned short tg_f2h(float f) { return __builtin_bit_cast(unsigned short, (_Float16)f); }`,
  ].join("\n"),
  tg_d2h:
    `${D} unsigned short tg_d2h(double d) { return __builtin_bit_cast(unsigned short, (_Float16)d); }`,
};

export class HIPRenderer extends CUDARenderer {
  override kernel(name: string, params: string[], body: string[]): string {
    for (const [k, v] of Object.entries(HIP_HELPERS)) {
      if (this.helpers.has(k)) this.helpers.set(k, v);
    }
    const src = super.kernel(name, params, body);
    if (/\basm\s*\(/.test(src)) {
      throw new Error(`HIPRenderer: kernel '${name}' still has inline PTX:\n${src}`);
    }
    return src;
  }
}
