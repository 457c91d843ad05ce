import type { ProgramSpec } from "./device.ts";

/**
 * A kernel's identity for in-process program caches: the source alone is not enough, since JS
 * source has no types and the launch checks depend on the buffers' dtypes and sizes.
 */
export function programKey(spec: ProgramSpec): string {
  const bufs = spec.bufs.map((b) => `${b.slot}:${b.dtype.name}:${b.size}:${b.mutable ? 1 : 0}`)
    .join(",");
  return `${spec.name}\0${bufs}\0${spec.vars.join(",")}\0${spec.src}`;
}
