// The contract between codegen/renderers and runtimes: one compiled-to-source kernel.
import type { DType } from "../dtype.ts";

export interface ProgramBuf {
  /** parameter position among the buffers (DEFINE_GLOBAL slot) */
  slot: number;
  dtype: DType;
  /** elements */
  size: number;
  /** the kernel stores to it */
  mutable: boolean;
}

export interface ProgramSpec {
  name: string;
  src: string;
  lang: "c" | "js" | "cuda" | "hip" | "wgsl";
  globalSize: number[];
  localSize: number[] | null;
  bufs: ProgramBuf[];
  /** DEFINE_VAR names, in parameter order (after the buffers) */
  vars: string[];
  /** floating/integer ALU ops one run executes (index arithmetic excluded) */
  ops?: number;
  /** bytes one run reads and writes in global buffers */
  mem?: number;
  /** loop iterations one thread runs, all loops together (some devices cap them) */
  loopIterations?: number;
  /** bytes of dynamic shared memory (CUDA `extern __shared__`) each block is launched with */
  sharedMem?: number;
}
