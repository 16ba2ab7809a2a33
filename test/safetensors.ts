import { readFileSync } from "node:fs";

/** Minimal safetensors reader for tests: header JSON and float32 tensors. */
export function readSafetensors(path: string) {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"));
  const tensor = (name: string) => {
    const e = header[name];
    const [a, b] = e.data_offsets;
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    return { shape: e.shape as number[], data: e.dtype === "F32" ? new Float32Array(ab) : new BigInt64Array(ab) };
  };
  return { header, metadata: header.__metadata__ as Record<string, string>, tensor };
}
