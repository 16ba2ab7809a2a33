import { writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { distill, info, stats, type ProgressEvent } from "../src/index.js";
import { blobs, fx, rejectsWith, tmp } from "./helpers.js";
import { readSafetensors } from "./safetensors.js";

describe("dfkd stats and statistical feature matching", () => {
  it("computes per-layer mean, std and spectra of every tap and saves them as safetensors", async () => {
    const out = path.join(tmp(), "tiny.stats.safetensors");
    const r = await stats({ teacher: fx("tiny_bn.pt"), data: blobs.train, output: out });
    expect(r.samples).toBe(600);
    expect(r.layers.map((l) => l.name)).toEqual(["features.0.bn", "features.2.bn", "penultimate"]);
    expect(r.layers[0].spectrum).toEqual([4, 8, 5]);  // [C, H, W/2+1] on the 8x8 grid
    expect(r.layers[2].spectrum).toBeNull();           // 2-D features: no spectrum
    const st = readSafetensors(out);
    expect(JSON.parse(st.metadata.dfkd).format).toBe("dfkd-stats/1");
    // The data's channel means at a BN input agree with the BN running means (same data, trained).
    const t = await info(fx("tiny_bn.pt"));
    expect(t.taps[0].channels).toBe(st.tensor("features.0.bn.mean").shape[0]);
    const std = st.tensor("features.0.bn.std").data as Float32Array;
    expect(Math.min(...std)).toBeGreaterThan(0);
  });

  it("lets a teacher without BatchNorm be distilled by `statistical` from a stats file", async () => {
    const dir = tmp();
    const file = path.join(dir, "nobn.stats.safetensors");
    await rejectsWith(distill({ teacher: fx("tiny_nobn.pt"), student: "resnet8", method: "statistical", outDir: dir, synth: { rounds: 1, iterations: 2, batchSize: 8 } }), "E_NO_BN");
    await stats({ teacher: fx("tiny_nobn.pt"), data: blobs.train, output: file, layers: ["conv1", "conv2"] });
    const feat: number[] = [];
    const r = await distill({ teacher: fx("tiny_nobn.pt"), student: "resnet8", method: "statistical", stats: file, layers: ["conv1", "conv2"], outDir: dir,
      test: blobs.test, synth: { rounds: 4, iterations: 60, batchSize: 64 }, train: { stepsPerRound: 30, batchSize: 64 } })
      .on("progress", (e: ProgressEvent) => { if (e.phase === "synthesize" && e.round === 1) feat.push(e.losses.feature); });
    expect(feat.at(-1)!).toBeLessThan(feat[0] * 0.5);
    expect(r.evaluation!.studentAccuracy).toBeGreaterThan(0.6);  // 3 classes: chance is 1/3
  });

  it("rejects stats files that are missing, corrupt, or made for another teacher", async () => {
    const dir = tmp();
    const file = path.join(dir, "tiny.stats.safetensors");
    await stats({ teacher: fx("tiny_bn.pt"), data: blobs.train, output: file });
    const base = { student: "resnet8", method: "statistical" as const, outDir: dir, synth: { rounds: 1, iterations: 1, batchSize: 4 } };
    const e = await rejectsWith(distill({ ...base, teacher: fx("tiny_nobn.pt"), stats: file }), "E_STATS_MISMATCH");
    expect(e.message).toContain("features.0.bn");
    await rejectsWith(distill({ ...base, teacher: fx("resnet_traced.pt"), stats: file }), "E_STATS_MISMATCH");
    await rejectsWith(distill({ ...base, teacher: fx("tiny_bn.pt"), stats: path.join(dir, "missing.safetensors") }), "E_STATS_NOT_FOUND");
    writeFileSync(path.join(dir, "bad.safetensors"), Buffer.from("\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}"));
    await rejectsWith(distill({ ...base, teacher: fx("tiny_bn.pt"), stats: path.join(dir, "bad.safetensors") }), "E_STATS_INVALID");
  });
});
