// nvcc, where the machine has it (CUDA source is compile-checked for sm_90 without a GPU): NVCC,
// else on PATH, else the usual CUDA path; null when there is none.
export function findNvcc(): string | null {
  for (const c of [Deno.env.get("NVCC"), "nvcc", "/usr/local/cuda/bin/nvcc"]) {
    if (!c) continue;
    try {
      const r = new Deno.Command(c, { args: ["--version"], stdout: "null", stderr: "null" });
      if (r.outputSync().success) return c;
    } catch { /* not this one */ }
  }
  return null;
}
