// Datasets read from files that a system package installs (nothing is downloaded).
import { dtypes } from "../dtype.ts";
import { gunzipSync } from "node:zlib";
import { Tensor } from "../tensor.ts";

/** where Debian's dataset-fashion-mnist package puts the IDX files */
export const FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";

export interface MnistLike {
  /** uint8 [60000, 1, 28, 28] */
  xTrain: Tensor;
  /** uint8 [60000], class indices 0..9 */
  yTrain: Tensor;
  /** uint8 [10000, 1, 28, 28] */
  xTest: Tensor;
  /** uint8 [10000] */
  yTest: Tensor;
}

/** an IDX file (optionally .gz): big-endian magic 0x00000800 | ndim, the sizes, then uint8 data */
export function readIdx(path: string): { shape: number[]; data: Uint8Array } {
  let bytes = Deno.readFileSync(path);
  if (path.endsWith(".gz")) bytes = new Uint8Array(gunzipSync(bytes));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = bytes.byteLength >= 4 ? view.getUint32(0) : 0;
  const ndim = magic & 0xff;
  if ((magic & 0xffffff00) !== 0x800 || ndim < 1 || bytes.byteLength < 4 + 4 * ndim) {
    throw new Error(`readIdx: ${path} is not a uint8 IDX file (magic 0x${magic.toString(16)})`);
  }
  const shape = Array.from({ length: ndim }, (_, i) => view.getUint32(4 + 4 * i));
  const n = shape.reduce((a, b) => a * b, 1), start = 4 + 4 * ndim;
  if (bytes.byteLength - start !== n) {
    throw new Error(
      `readIdx: ${path} holds ${bytes.byteLength - start} bytes of data, [${shape}] needs ${n}`,
    );
  }
  return { shape, data: bytes.subarray(start) };
}

/**
 * Fashion-MNIST from the IDX files of Debian's dataset-fashion-mnist (`apt-get install
 * dataset-fashion-mnist`), as tinygrad's nn.datasets.mnist: images uint8 [N, 1, 28, 28], labels
 * uint8 [N]. `dir` overrides where the files are looked for.
 */
export function fashionMnist(dir = FASHION_MNIST_DIR, device?: string): MnistLike {
  const load = (name: string, images: boolean): Tensor => {
    const plain = `${dir}/${name}`;
    let path = `${plain}.gz`;
    try {
      Deno.statSync(path);
    } catch {
      try {
        Deno.statSync(plain);
        path = plain;
      } catch {
        throw new Error(
          `fashionMnist: ${path} not found; install Debian's package dataset-fashion-mnist ` +
            `(apt-get install -y dataset-fashion-mnist) or pass the directory holding the IDX files`,
        );
      }
    }
    const { shape, data } = readIdx(path);
    const want = images ? 3 : 1;
    if (shape.length !== want || (images && (shape[1] !== 28 || shape[2] !== 28))) {
      throw new Error(
        `fashionMnist: ${path} has shape [${shape}], expected ${images ? "[N, 28, 28]" : "[N]"}`,
      );
    }
    const s = images ? [shape[0], 1, 28, 28] : shape;
    return Tensor.from(data, { shape: s, dtype: dtypes.uint8, device });
  };
  return {
    xTrain: load("train-images-idx3-ubyte", true),
    yTrain: load("train-labels-idx1-ubyte", false),
    xTest: load("t10k-images-idx3-ubyte", true),
    yTest: load("t10k-labels-idx1-ubyte", false),
  };
}
