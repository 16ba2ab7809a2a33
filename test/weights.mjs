// Shared by test/helpers.ts and test/reference/record.mjs (plain ESM, run without a TS loader).
/**
 * The tensor payload of a TorchScript zip (data/ entries), for bit-level comparison. Sizes come
 * from the central directory: PyTorch's writer leaves them 0 in the local headers (bit 3).
 */
export function weights(zip) {
  const end = zip.lastIndexOf("PK\x05\x06");
  if (end < 0) throw new Error("not a zip file");
  const count = zip.readUInt16LE(end + 10);
  let p = zip.readUInt32LE(end + 16);
  const out = [];
  for (let k = 0; k < count; k++) {
    if (zip.readUInt32LE(p) !== 0x02014b50) throw new Error("bad zip central directory");
    const size = zip.readUInt32LE(p + 20), nameLen = zip.readUInt16LE(p + 28), extra = zip.readUInt16LE(p + 30), comment = zip.readUInt16LE(p + 32);
    const local = zip.readUInt32LE(p + 42);
    const name = zip.subarray(p + 46, p + 46 + nameLen).toString();
    p += 46 + nameLen + extra + comment;
    if (!/\/data\/\d+$/.test(name)) continue;
    const data = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    out.push(name.replace(/^.*\/data/, "data") + ":" + zip.subarray(data, data + size).toString("base64"));
  }
  return out.sort();
}
