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

/** `src` compiled by `nvcc -cubin -arch=sm_90`: whether it built a non-empty cubin, and stderr */
export async function nvccCubin(nvcc: string, src: string): Promise<{ ok: boolean; log: string }> {
  const dir = await Deno.makeTempDir({ prefix: "tg-nvcc-" });
  try {
    await Deno.writeTextFile(`${dir}/k.cu`, src);
    const out = await new Deno.Command(nvcc, {
      args: ["-cubin", "-arch=sm_90", "-o", `${dir}/k.cubin`, `${dir}/k.cu`],
      stderr: "piped",
    }).output();
    const log = new TextDecoder().decode(out.stderr);
    return { ok: out.success && (await Deno.stat(`${dir}/k.cubin`)).size > 0, log };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
