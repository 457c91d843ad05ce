// Model state: finding a model's tensors by walking its fields, loading a state dict into them,
// and the safetensors file format (https://huggingface.co/docs/safetensors: an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype, shape and byte range,
// then the little-endian data).
import { type DType, dtypes, type TypedArray, typedArrayFor } from "../dtype.ts";
import { Tensor } from "../tensor.ts";
import { fmtShape } from "../tensor/broadcast.ts";
import { upload } from "../tensor/creation.ts";

export type StateDict = Record<string, Tensor>;

/**
 * Every Tensor reachable from `model` through object fields, arrays and Maps, keyed by the dotted
 * path to it (`layers.0.weight`), as tinygrad's get_state_dict. Null fields are skipped.
 */
export function getStateDict(model: unknown, prefix = ""): StateDict {
  const out: StateDict = {};
  const seen = new Set<unknown>();
  const walk = (obj: unknown, path: string): void => {
    if (obj instanceof Tensor) {
      out[path] = obj;
      return;
    }
    if (obj === null || typeof obj !== "object" || seen.has(obj)) return;
    seen.add(obj);
    const at = (k: string) => (path === "" ? k : `${path}.${k}`);
    if (Array.isArray(obj)) obj.forEach((v, i) => walk(v, at(String(i))));
    else if (obj instanceof Map) obj.forEach((v, k) => walk(v, at(String(k))));
    else if (!ArrayBuffer.isView(obj)) {
      for (const [k, v] of Object.entries(obj)) walk(v, at(k));
    }
  };
  walk(model, prefix);
  return out;
}

/** the distinct Tensors of `model` (each once, even if shared), in state-dict order */
export function getParameters(model: unknown): Tensor[] {
  return [...new Set(Object.values(getStateDict(model)))];
}

export interface LoadOpts {
  /** every model tensor must be in the dict and every dict entry must be used (default true) */
  strict?: boolean;
}

/**
 * Copy each dict entry into the model tensor of the same name (on the model tensor's device).
 * Shapes and dtypes must match exactly; all copies run in one schedule.
 */
export function loadStateDict(model: unknown, dict: StateDict, opts: LoadOpts = {}): void {
  const strict = opts.strict ?? true;
  const mine = getStateDict(model);
  if (strict) {
    const missing = Object.keys(mine).filter((k) => !(k in dict));
    const unused = Object.keys(dict).filter((k) => !(k in mine));
    if (missing.length > 0 || unused.length > 0) {
      throw new Error(
        `loadStateDict: keys differ (missing from the dict: [${missing.join(", ")}]; ` +
          `in the dict but not the model: [${unused.join(", ")}]); ` +
          `pass { strict: false } to load only the names both have`,
      );
    }
  }
  const targets: [Tensor, Tensor][] = [];
  for (const [k, t] of Object.entries(mine)) {
    const v = dict[k];
    if (v === undefined) continue;
    if (!(v instanceof Tensor)) throw new TypeError(`loadStateDict: ${k} is not a Tensor`);
    if (v.shape.join() !== t.shape.join()) {
      throw new Error(
        `loadStateDict: ${k} has shape ${fmtShape(v.shape)} in the dict, the model needs ${
          fmtShape(t.shape)
        }`,
      );
    }
    if (v.dtype !== t.dtype) {
      throw new Error(
        `loadStateDict: ${k} is ${v.dtype.name} in the dict, the model needs ${t.dtype.name}; ` +
          `cast it first (dict[k] = dict[k].cast(...))`,
      );
    }
    // a copy, so that the model and the dict never share a buffer
    targets.push([t, v.to(t.device).contiguous()]);
  }
  Tensor.realize(...targets.map(([, v]) => v));
  for (const [t, v] of targets) t.uop = v.uop;
}

// ---- safetensors ----

const ST_DTYPES: [string, DType][] = [
  ["BOOL", dtypes.bool],
  ["U8", dtypes.uint8],
  ["I8", dtypes.int8],
  ["I16", dtypes.int16],
  ["U16", dtypes.uint16],
  ["I32", dtypes.int32],
  ["U32", dtypes.uint32],
  ["I64", dtypes.int64],
  ["U64", dtypes.uint64],
  ["F16", dtypes.float16],
  ["BF16", dtypes.bfloat16],
  ["F32", dtypes.float32],
  ["F64", dtypes.float64],
];
const toDType = new Map(ST_DTYPES);
const toName = new Map(ST_DTYPES.map(([n, d]) => [d, n]));

// TypedArrays use the platform's byte order; the format is little-endian
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
function checkEndian(op: string): void {
  if (!LITTLE_ENDIAN) throw new Error(`${op}: only little-endian hosts are supported`);
}

/** the raw little-endian storage bytes of a tensor (bfloat16 as its bits) */
async function rawBytes(t: Tensor): Promise<Uint8Array> {
  const d = t.dtype === dtypes.bfloat16 ? await t.bitcast(dtypes.uint16).data() : await t.data();
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/**
 * Write `dict` to `path` as safetensors, with optional string `metadata` (`__metadata__`).
 * Async because reading a tensor's data is async on some devices.
 */
export async function safeSave(
  dict: StateDict,
  path: string | URL,
  metadata?: Record<string, string>,
): Promise<void> {
  checkEndian("safeSave");
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(dict)) {
    if (name === "__metadata__") throw new Error(`safeSave: "__metadata__" is a reserved name`);
    const dtype = toName.get(t.dtype);
    if (dtype === undefined) {
      throw new Error(`safeSave: ${name}: no safetensors dtype for ${t.dtype.name}`);
    }
    const bytes = await rawBytes(t);
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] };
    chunks.push(bytes);
    offset += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  // pad with spaces so the data starts 8-byte aligned, as the reference implementation does
  json += " ".repeat((8 - ((8 + json.length) % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.byteLength), true);
  out.set(head, 8);
  let at = 8 + head.byteLength;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  await Deno.writeFile(path, out);
}

export interface SafetensorsFile {
  tensors: StateDict;
  metadata: Record<string, string>;
}

interface Entry {
  name: string;
  dtype: DType;
  shape: number[];
  bytes: Uint8Array;
}

/** the header of safetensors bytes, checked; every error names what is wrong with the file */
function readHeader(
  bytes: Uint8Array,
  what: string,
): { entries: Entry[]; metadata: Record<string, string> } {
  checkEndian("safeLoad");
  const bad = (why: string): never => {
    throw new Error(`safeLoad: ${what}: ${why}`);
  };
  if (bytes.byteLength < 8) {
    bad(`only ${bytes.byteLength} bytes; a file starts with an 8-byte header length`);
  }
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(bytes.byteLength - 8)) {
    bad(`header length ${n} is past the end of the file (${bytes.byteLength} bytes)`);
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + Number(n))),
    );
  } catch (e) {
    return bad(`header is not UTF-8 JSON (${e instanceof Error ? e.message : e})`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    bad("header is not a JSON object");
  }
  const data = bytes.subarray(8 + Number(n));
  const entries: Entry[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") {
      const ok = info !== null && typeof info === "object" && !Array.isArray(info) &&
        Object.values(info).every((v) => typeof v === "string");
      if (!ok) bad(`__metadata__ must be an object of strings, got ${JSON.stringify(info)}`);
      metadata = info as Record<string, string>;
      continue;
    }
    const { dtype, shape, data_offsets: offs } = (info ?? {}) as {
      dtype?: unknown;
      shape?: unknown;
      data_offsets?: unknown;
    };
    const dt = toDType.get(String(dtype));
    if (dt === undefined) {
      bad(
        `${name}: dtype ${JSON.stringify(dtype)} is not one of ${
          ST_DTYPES.map(([k]) => k).join(", ")
        }`,
      );
    }
    const okInts = (a: unknown): a is number[] =>
      Array.isArray(a) && a.every((v) => Number.isInteger(v) && v >= 0);
    if (!okInts(shape)) bad(`${name}: shape ${JSON.stringify(shape)} is not a list of sizes`);
    if (!okInts(offs) || offs.length !== 2) {
      bad(`${name}: data_offsets ${JSON.stringify(offs)} is not [begin, end]`);
    }
    const [b, e] = offs as number[];
    const numel = (shape as number[]).reduce((x, y) => x * y, 1);
    if (e < b || e > data.byteLength) {
      bad(`${name}: data_offsets [${b}, ${e}] outside the ${data.byteLength} data bytes`);
    }
    if (e - b !== numel * dt!.itemsize) {
      bad(
        `${name}: ${dtype} ${fmtShape(shape as number[])} needs ${
          numel * dt!.itemsize
        } bytes, data_offsets give ${e - b}`,
      );
    }
    entries.push({ name, dtype: dt!, shape: shape as number[], bytes: data.subarray(b, e) });
  }
  return { entries, metadata };
}

/** the tensors and metadata of safetensors bytes (on `device`, default Device.DEFAULT) */
export function safeParse(
  bytes: Uint8Array,
  what = "safetensors data",
  device?: string,
): SafetensorsFile {
  const { entries, metadata } = readHeader(bytes, what);
  const tensors: StateDict = {};
  for (const { name, dtype, shape, bytes: raw } of entries) {
    // a copy: the file's offsets need not be aligned for the dtype
    const Arr = typedArrayFor(dtype);
    const store = new Arr(raw.slice().buffer, 0, raw.byteLength / dtype.itemsize) as TypedArray;
    tensors[name] = upload(dtype, store, shape, device === undefined ? undefined : { device });
  }
  return { tensors, metadata };
}

/** the tensors of a safetensors file (on `device`, default Device.DEFAULT) */
export function safeLoad(path: string | URL, device?: string): StateDict {
  return safeParse(Deno.readFileSync(path), String(path), device).tensors;
}

/** the `__metadata__` strings of a safetensors file ({} if it has none) */
export function safeLoadMetadata(path: string | URL): Record<string, string> {
  return readHeader(Deno.readFileSync(path), String(path)).metadata;
}
