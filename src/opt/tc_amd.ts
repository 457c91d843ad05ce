// TC on AMD matrix cores: the float16/bfloat16 matmul src/opt/tc.ts recognizes, rebuilt around
// one wave per 16x16 output tile for RDNA3's WMMA (gfx11, wave32) or CDNA's MFMA (gfx9, wave64).
// m and n become tile loops (the grid), a LOCAL range of one wave the lanes, an UPCAST range the
// accumulator elements each lane holds, and k a loop over 16-wide slices. Each lane feeds the
// instruction the a and b elements its operand layout gives it; WMMA(a.., b.., e) with arg
// [16, 16, 16, kind] (src/uop/ops.ts AMD_MMA) is element e of the instruction's float32 result on
// a zero accumulator, and the REDUCE over the k slices adds it up (as for mma.sync).
//
// The layouts (lane l, element i; rows of a and c are m, columns of b and c are n):
// RDNA3 v_wmma_f32_16x16x16_{f16,bf16} (AMD GPUOpen, "How to accelerate AI applications on RDNA 3
// using WMMA": a_frag[i] = a[16*lane + i], b_frag[i] = b[16*i + lane], c row 2*i + lane/16;
// AMD matrix instruction calculator, gfx11 v_wmma_f32_16x16x16_f16):
//   a element i < 16: row l%16, k i          (lanes 16-31 repeat lanes 0-15)
//   b element i < 16: k i, column l%16        (likewise)
//   c/d element e < 8: row 2e + l/16, column l%16
// CDNA v_mfma_f32_16x16x16f16 / _bf16_1k (AMD matrix instruction calculator, CDNA2
// v_mfma_f32_16x16x16f16: A[i][k] in lane i + 16*(k/4), item k%4; B[k][j] in lane j + 16*(k/4),
// item k%4; D[i][j] in lane j + 16*(i/4), item i%4):
//   a element i < 4: row l%16, k 4*(l/16) + i
//   b element i < 4: k 4*(l/16) + i, column l%16
//   c/d element e < 4: row 4*(l/16) + e, column l%16
// Untested on AMD hardware: the layouts are checked by index simulation (tests/tc_amd_test.ts)
// and the kernels by compiling for gfx1100 and gfx90a.
import { AMD_MMA, type AmdMmaKind, AxisType, Ops, UOp } from "../uop/ops.ts";
import { dtypes } from "../dtype.ts";
import { sizeOf, storeTiles, tileLoops } from "./tc_common.ts";

/** the tile every AMD instruction here computes */
export const AMD_TC_DIMS = { m: 16, n: 16, k: 16 } as const;

/** TC amounts that pick an AMD instruction (CUDA's are the k of a slice: 16, 32, 64) */
export const AMD_TC_AMOUNT: Readonly<Record<AmdMmaKind, number>> = { wmma_gfx11: 11, mfma_gfx9: 9 };

/** the AMD instruction a TC amount picks, or null */
export function amdTcKind(amount: number): AmdMmaKind | null {
  const e = Object.entries(AMD_TC_AMOUNT).find(([, v]) => v === amount);
  return e ? e[0] as AmdMmaKind : null;
}

/** a lane's place in the instruction's operands, within one 16x16x16 tile (the header's table) */
export interface AmdLayout {
  /** a element i: [row, k] */
  a(lane: UOp, i: number): [UOp, UOp];
  /** b element i: [k, column] */
  b(lane: UOp, i: number): [UOp, UOp];
  /** c/d element e: [row, column] */
  c(lane: UOp, e: UOp): [UOp, UOp];
}

const int = (v: number) => UOp.const(dtypes.int32, v);
export const AMD_LAYOUTS: Readonly<Record<AmdMmaKind, AmdLayout>> = {
  wmma_gfx11: {
    a: (l, i) => [l.mod(16), int(i)],
    b: (l, i) => [int(i), l.mod(16)],
    c: (l, e) => [e.mul(2).add(l.idiv(16)), l.mod(16)],
  },
  mfma_gfx9: {
    a: (l, i) => [l.mod(16), l.idiv(16).mul(4).add(i)],
    b: (l, i) => [l.idiv(16).mul(4).add(i), l.mod(16)],
    c: (l, e) => [l.idiv(16).mul(4).add(e), l.mod(16)],
  },
};

/**
 * the kernel rebuilt for `kind` (src/opt/tc.ts found the matmul: `tries` its [m, n, a, b]
 * orientations, preferred first); `bad` rejects with the reason
 */
export function rebuildAmd(
  kind: AmdMmaKind,
  sink: UOp,
  st: UOp,
  outs: readonly UOp[],
  k: UOp,
  tries: readonly [UOp, UOp, UOp, UOp][],
  nextId: number,
  bad: (why: string) => never,
): UOp {
  const T = AMD_TC_DIMS, K = sizeOf(k);
  const fit = tries.find(([m, n]) =>
    [sizeOf(m), sizeOf(n), K].every((s) => s !== null && s % 16 === 0)
  );
  if (!fit) {
    const [m, n] = tries[0];
    bad(
      `sizes M=${sizeOf(m)}, N=${sizeOf(n)}, K=${K} do not fit ${kind} (16x16x16): M, N and K ` +
        "must be multiples of 16",
    );
  }
  const [m, n, a, b] = fit!;
  const spec = AMD_MMA[kind], lay = AMD_LAYOUTS[kind];
  const [mo, no, ko] = tileLoops(m, n, k, [T.m, T.n, T.k]);
  const lane = UOp.range(spec.lanes, nextId, AxisType.LOCAL);
  const elem = UOp.range(spec.c, nextId + 1, AxisType.UPCAST);
  const at = (x: UOp, tile: UOp, size: number) => tile.mul(size).add(x);
  const aVals = Array.from({ length: spec.a }, (_, i) => {
    const [row, kk] = lay.a(lane, i);
    return a.substitute(new Map([[m, at(row, mo, T.m)], [k, at(kk, ko, T.k)]]));
  });
  const bVals = Array.from({ length: spec.b }, (_, i) => {
    const [kk, col] = lay.b(lane, i);
    return b.substitute(new Map([[n, at(col, no, T.n)], [k, at(kk, ko, T.k)]]));
  });
  const wmma = UOp.make(Ops.WMMA, dtypes.float32, [...aVals, ...bVals, elem], [
    T.m,
    T.n,
    T.k,
    kind,
  ]);
  const sum = ko.op === Ops.RANGE
    ? UOp.make(Ops.REDUCE, dtypes.float32, [wmma, ko], Ops.ADD)
    : wmma;
  const [row, col] = lay.c(lane, elem);
  const idx = st.src[0].substitute(new Map([[m, at(row, mo, T.m)], [n, at(col, no, T.n)]]));
  return storeTiles(sink, st, outs, idx, sum, [m, n, mo, no], [lane, elem]);
}

/**
 * the AMD instruction for a gfx target, or null: gfx11 (RDNA3) WMMA; gfx908, gfx90a and gfx94x
 * (CDNA1-3) MFMA. bfloat16 needs MFMA's _1k form, which gfx908 lacks.
 */
export function amdTcKindFor(target: string, bf16: boolean): AmdMmaKind | null {
  const arch = target.split(":")[0];
  if (/^gfx11[0-9a-f]{2}$/.test(arch)) return "wmma_gfx11";
  if (/^gfx9(0a|4[0-9a-f])$/.test(arch)) return "mfma_gfx9";
  if (arch === "gfx908" && !bf16) return "mfma_gfx9";
  return null;
}
