import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { evaluate, stats } from "../src/index.js";
import { blobs, fx, rejectsWith, SKIP_MNIST, requireMnist, TEACHER, tmp, mnistVal } from "./helpers.js";
import { readSafetensors } from "./safetensors.js";

// Datasets are exercised through `evaluate`, which loads them natively and scores the teacher.
const acc = async (test: Parameters<typeof evaluate>[0]["test"], teacher = fx("tiny_bn.pt")) =>
  (await evaluate({ teacher, test })).teacherAccuracy!;

/** Mean over images of |rfft2(x, norm="ortho")| per channel-free [H, W/2+1] bin (a plain DFT). */
function meanAmplitude(x: Float64Array, n: number, h: number, w: number): number[] {
  const wf = Math.floor(w / 2) + 1, out = new Array(h * wf).fill(0);
  for (let k = 0; k < n; k++) {
    const img = x.subarray(k * h * w, (k + 1) * h * w);
    for (let u = 0; u < h; u++) for (let v = 0; v < wf; v++) {
      let re = 0, im = 0;
      for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) {
        const t = -2 * Math.PI * (u * i / h + v * j / w);
        re += img[i * w + j] * Math.cos(t);
        im += img[i * w + j] * Math.sin(t);
      }
      out[u * wf + v] += Math.hypot(re, im) / Math.sqrt(h * w) / n;
    }
  }
  return out;
}

describe("datasets", () => {
  it("reads .npy (float32 images, int64 labels) and ranges", async () => {
    expect(await acc(blobs.test)).toBeGreaterThan(0.95);
    const r = await evaluate({ teacher: fx("tiny_bn.pt"), test: { ...blobs.test, start: 10, end: 60 } });
    expect(r.samples).toBe(50);
  });

  it("reads IDX files, gzipped or not, scaled to [0,1] and normalized", async () => {
    const norm = { mean: 0.2353, std: 0.2353 * 0.5 };
    const plain = await evaluate({ teacher: fx("tiny_bn.pt"), test: { images: fx("blobs-images-idx3-ubyte"), labels: fx("blobs-labels-idx1-ubyte.gz"), ...norm } });
    const gz = await evaluate({ teacher: fx("tiny_bn.pt"), test: { images: fx("blobs-images-idx3-ubyte.gz"), labels: fx("blobs-labels-idx1-ubyte.gz"), ...norm } });
    expect(plain.samples).toBe(600);
    expect(gz).toEqual(plain);
    // What the loader produced, read back: input_bn.pt's only BN takes the image itself, so the
    // stats of its tap are the loaded images' mean, std and mean Fourier amplitude. Expected:
    // (byte / 255 - mean) / std, computed here from the raw IDX bytes.
    const raw = readFileSync(fx("blobs-images-idx3-ubyte")).subarray(16);
    expect(raw.length).toBe(600 * 64);
    const x = Float64Array.from(raw, (b) => (b / 255 - norm.mean) / norm.std);
    const m = x.reduce((a, v) => a + v, 0) / x.length;
    const sd = Math.sqrt(x.reduce((a, v) => a + (v - m) ** 2, 0) / x.length);
    const amp = meanAmplitude(x, 600, 8, 8);
    for (const images of ["blobs-images-idx3-ubyte", "blobs-images-idx3-ubyte.gz"]) {
      const file = path.join(tmp(), "input.stats.safetensors");
      await stats({ teacher: fx("input_bn.pt"), data: { images: fx(images), labels: fx("blobs-labels-idx1-ubyte.gz"), ...norm }, output: file });
      const st = readSafetensors(file);
      expect((st.tensor("bn.mean").data as Float32Array)[0], images).toBeCloseTo(m, 5);
      expect((st.tensor("bn.std").data as Float32Array)[0], images).toBeCloseTo(sd, 5);
      const a = st.tensor("bn.amplitude");
      expect(a.shape).toEqual([1, 8, 5]);
      const got = Array.from(a.data as Float32Array);
      for (let i = 0; i < amp.length; i++) expect(got[i], `${images} amplitude ${i}`).toBeCloseTo(amp[i], 4);
    }
    // Without mean/std the bytes are only scaled to [0, 1].
    const file = path.join(tmp(), "input01.stats.safetensors");
    await stats({ teacher: fx("input_bn.pt"), data: { images: fx("blobs-images-idx3-ubyte.gz") }, output: file });
    const st = readSafetensors(file);
    expect((st.tensor("bn.mean").data as Float32Array)[0]).toBeCloseTo(m * norm.std + norm.mean, 5);
    expect((st.tensor("bn.std").data as Float32Array)[0]).toBeCloseTo(sd * norm.std, 5);
  });

  it.skipIf(SKIP_MNIST)("scores the bundled teacher on the MNIST validation rows (1,500, never trained on) above 98%", async () => {
    requireMnist();
    const r = await evaluate({ teacher: TEACHER, test: mnistVal() });
    expect(r.samples).toBe(1500);
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
