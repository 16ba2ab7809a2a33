import { describe, expect, it } from "vitest";
import { evaluate } from "../src/index.js";
import { blobs, fx, rejectsWith, SKIP_MNIST, requireMnist, TEACHER } from "./helpers.js";
import { mnist } from "../src/index.js";
import { MNIST } from "./helpers.js";

// Datasets are exercised through `evaluate`, which loads them natively and scores the teacher.
const acc = async (test: Parameters<typeof evaluate>[0]["test"], teacher = fx("tiny_bn.pt")) =>
  (await evaluate({ teacher, test })).teacherAccuracy!;

describe("datasets", () => {
  it("reads .npy (float32 images, int64 labels) and ranges", async () => {
    expect(await acc(blobs.test)).toBeGreaterThan(0.95);
    const r = await evaluate({ teacher: fx("tiny_bn.pt"), test: { ...blobs.test, start: 10, end: 60 } });
    expect(r.samples).toBe(50);
  });

  it("reads IDX files, gzipped or not, scaled to [0,1] and normalized", async () => {
    const plain = await evaluate({ teacher: fx("tiny_bn.pt"), test: { images: fx("blobs-images-idx3-ubyte"), labels: fx("blobs-labels-idx1-ubyte.gz"), mean: 0.2353, std: 0.2353 * 0.5 } });
    const gz = await evaluate({ teacher: fx("tiny_bn.pt"), test: { images: fx("blobs-images-idx3-ubyte.gz"), labels: fx("blobs-labels-idx1-ubyte.gz"), mean: 0.2353, std: 0.2353 * 0.5 } });
    expect(plain.samples).toBe(600);
    expect(gz).toEqual(plain);
  });

  it.skipIf(SKIP_MNIST)("scores the bundled teacher on the held-out MNIST 3,000 above 98%", async () => {
    requireMnist();
    const r = await evaluate({ teacher: TEACHER, test: mnist(MNIST, { start: 7000 }) });
    expect(r.samples).toBe(3000);
    expect(r.teacherAccuracy).toBeGreaterThan(0.98);
  });

  it("takes in-memory typed arrays from JS", async () => {
    const { readFileSync } = await import("node:fs");
    const npy = (f: string) => { const b = readFileSync(f); const h = b.readUInt16LE(8); return b.subarray(10 + h); };
    const xb = npy(fx("blobs_test_x.npy")), yb = npy(fx("blobs_test_y.npy"));
    const x = new Float32Array(xb.buffer.slice(xb.byteOffset, xb.byteOffset + xb.byteLength));
    const y = new BigInt64Array(yb.buffer.slice(yb.byteOffset, yb.byteOffset + yb.byteLength));
    const r = await evaluate({ teacher: fx("tiny_bn.pt"), test: { x, y, shape: [300, 1, 8, 8] } });
    expect(r.teacherAccuracy).toEqual(await acc(blobs.test));
    await rejectsWith(evaluate({ teacher: fx("tiny_bn.pt"), test: { x, y, shape: [301, 1, 8, 8] } }), "E_DATA_INVALID");
  });

  it("rejects datasets whose labels do not match their images, and corrupt files", async () => {
    const e = await rejectsWith(evaluate({ teacher: fx("tiny_bn.pt"), test: { images: fx("blobs_x.npy"), labels: fx("blobs_y_short.npy") } }), "E_DATA_INVALID");
    expect(e.message).toContain("600 images but 100 labels");
    await rejectsWith(evaluate({ teacher: fx("tiny_bn.pt"), test: { images: fx("lying-images-idx3-ubyte"), labels: fx("blobs-labels-idx1-ubyte.gz") } }), "E_DATA_INVALID");
    await rejectsWith(evaluate({ teacher: fx("tiny_bn.pt"), test: { images: fx("truncated-images-idx3-ubyte.gz"), labels: fx("blobs-labels-idx1-ubyte.gz") } }), "E_DATA_INVALID");
    await rejectsWith(evaluate({ teacher: fx("tiny_bn.pt"), test: { images: fx("complex.npy") } }), "E_DATA_INVALID");
    await rejectsWith(evaluate({ teacher: fx("tiny_bn.pt"), test: { images: fx("nope.npy"), labels: fx("blobs_y.npy") } }), "E_DATA_NOT_FOUND");
    await rejectsWith(evaluate({ teacher: fx("tiny_bn.pt"), test: { images: fx("blobs_x.npy"), labels: fx("blobs_y.npy"), start: 500, end: 700 } }), "E_CONFIG");
  });
});
