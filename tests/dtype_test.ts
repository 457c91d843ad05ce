import assert from "node:assert/strict";
import {
  allDTypes,
  bf16round,
  canLosslessCast,
  castValue,
  dtypeFromName,
  dtypes,
  f16round,
  fromBF16Bits,
  leastUpperDType,
  toBF16Bits,
  typedArrayFor,
} from "../src/dtype.ts";

Deno.test("item sizes, kinds and min/max", () => {
  const table: [string, number, number, number][] = [
    ["bool", 1, 0, 1],
    ["int8", 1, -128, 127],
    ["uint8", 1, 0, 255],
    ["int16", 2, -32768, 32767],
    ["uint16", 2, 0, 65535],
    ["int32", 4, -(2 ** 31), 2 ** 31 - 1],
    ["uint32", 4, 0, 2 ** 32 - 1],
    ["int64", 8, -(2 ** 63), 2 ** 63 - 1],
    ["uint64", 8, 0, 2 ** 64 - 1],
    ["float16", 2, -Infinity, Infinity],
    ["bfloat16", 2, -Infinity, Infinity],
    ["float32", 4, -Infinity, Infinity],
    ["float64", 8, -Infinity, Infinity],
  ];
  assert.equal(allDTypes.length, table.length);
  for (const [name, size, min, max] of table) {
    const d = dtypeFromName(name);
    assert.equal(d.itemsize, size, name);
    assert.equal(d.min, min, name);
    assert.equal(d.max, max, name);
    assert.equal(typedArrayFor(d).BYTES_PER_ELEMENT, size, name);
  }
  assert.equal(dtypes.default_float, dtypes.float32);
  assert.equal(dtypes.default_int, dtypes.int32);
  assert.equal(dtypeFromName("half"), dtypes.float16);
  assert.throws(() => dtypeFromName("int7"), /unknown dtype 'int7'/);
  assert.equal(dtypes.float32.vec(4).scalar(), dtypes.float32);
  assert.equal(dtypes.float32.vec(4), dtypes.float32.vec(4));
});

Deno.test("promotion follows tinygrad's least_upper_dtype", () => {
  // pairs and the dtype tinygrad's lattice gives them
  const table: [string, string, string][] = [
    ["bool", "bool", "bool"],
    ["bool", "int8", "int8"],
    ["bool", "uint8", "uint8"],
    ["int8", "uint8", "int16"],
    ["int8", "uint16", "int32"],
    ["uint8", "uint16", "uint16"],
    ["int16", "uint16", "int32"],
    ["int32", "uint32", "int64"],
    ["int8", "uint32", "int64"],
    ["int64", "uint64", "float16"],
    ["uint64", "int8", "float16"],
    ["int32", "float16", "float16"],
    ["int64", "bfloat16", "bfloat16"],
    ["float16", "bfloat16", "float32"],
    ["bool", "float32", "float32"],
    ["float32", "float64", "float64"],
    ["uint8", "float64", "float64"],
    ["int32", "int64", "int64"],
  ];
  for (const [a, b, want] of table) {
    const da = dtypeFromName(a), db = dtypeFromName(b);
    assert.equal(leastUpperDType(da, db).name, want, `${a} + ${b}`);
    assert.equal(leastUpperDType(db, da).name, want, `${b} + ${a}`);
  }
  assert.equal(leastUpperDType(dtypes.int8, dtypes.uint8, dtypes.float16), dtypes.float16);
});

Deno.test("float16 and bfloat16 round to nearest, ties to even", () => {
  assert.equal(f16round(2049), 2048);
  assert.equal(f16round(2051), 2052);
  assert.equal(f16round(65504), 65504);
  assert.equal(f16round(65520), Infinity);
  assert.equal(f16round(1e-8), 0);
  assert.equal(bf16round(1 + 2 ** -8), 1);
  assert.equal(bf16round(1 + 3 * 2 ** -8), 1 + 2 ** -6);
  assert.equal(bf16round(1 + 2 ** -8 + 2 ** -20), 1 + 2 ** -7);
  assert.ok(Number.isNaN(bf16round(NaN)));
  assert.equal(toBF16Bits(1), 0x3f80);
  assert.equal(fromBF16Bits(0xc000), -2);
  assert.equal(bf16round(-0), -0);
  assert.ok(Object.is(bf16round(-0), -0));
});

Deno.test("castValue wraps ints, truncates floats, rounds to the float dtype", () => {
  assert.equal(castValue(128, dtypes.int8), -128);
  assert.equal(castValue(-1, dtypes.uint8), 255);
  assert.equal(castValue(70000, dtypes.int16), 4464);
  assert.equal(castValue(2 ** 31, dtypes.int32), -(2 ** 31));
  assert.equal(castValue(-1, dtypes.uint32), 2 ** 32 - 1);
  assert.equal(castValue(-2.7, dtypes.int32), -2);
  assert.equal(castValue(2 ** 40 + 5, dtypes.int32), 5);
  assert.equal(castValue(-1, dtypes.int64), -1);
  assert.equal(castValue(0.1, dtypes.float32), Math.fround(0.1));
  assert.equal(castValue(true, dtypes.float32), 1);
  assert.equal(castValue(0.25, dtypes.bool), 1);
  assert.equal(castValue(NaN, dtypes.bool), 1);
  assert.equal(castValue(NaN, dtypes.int32), 0);
});

Deno.test("canLosslessCast", () => {
  assert.ok(canLosslessCast(dtypes.int8, dtypes.int32));
  assert.ok(canLosslessCast(dtypes.uint8, dtypes.int16));
  assert.ok(!canLosslessCast(dtypes.uint16, dtypes.int16));
  assert.ok(!canLosslessCast(dtypes.int32, dtypes.float32));
  assert.ok(canLosslessCast(dtypes.int32, dtypes.float64));
  assert.ok(canLosslessCast(dtypes.float16, dtypes.float32));
  assert.ok(!canLosslessCast(dtypes.float32, dtypes.float16));
  assert.ok(canLosslessCast(dtypes.bool, dtypes.uint8));
});
