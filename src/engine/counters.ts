// What ran: counters a user reads after running (API: GlobalCounters).
import { memStats } from "../runtime/device.ts";

export const GlobalCounters = {
  kernelCount: 0,
  /** floating/int ops executed by kernels since the last reset */
  globalOps: 0,
  /** bytes read and written by kernels since the last reset */
  globalMem: 0,
  /** seconds spent in kernels (measured when DEBUG >= 2, else 0) */
  timeSumS: 0,
  /** bytes of device buffers alive now */
  get memUsed(): number {
    return memStats.used;
  },
  /** the most bytes alive at once since the last reset */
  get memPeak(): number {
    return memStats.peak;
  },
  reset(): void {
    this.kernelCount = 0;
    this.globalOps = 0;
    this.globalMem = 0;
    this.timeSumS = 0;
    memStats.peak = memStats.used;
  },
};

/** DEBUG level: from the environment at start, changed by setDebug (the REPL's .debug) */
export let DEBUG: number = Number(envGet("DEBUG") ?? 0) || 0;
export function setDebug(n: number): void {
  DEBUG = n;
}

export function envGet(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env: use defaults
  }
}
