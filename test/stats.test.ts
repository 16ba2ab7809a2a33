import { writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { distill, info, stats, type ProgressEvent } from "../src/index.js";
import { blobs, fx, mnistTeacherRows, python, rejectsWith, requireMnist, SKIP_MNIST, TEACHER, tmp } from "./helpers.js";
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
    const t = await info(fx("tiny_bn.pt"));
    expect(t.taps[0].channels).toBe(st.tensor("features.0.bn.mean").shape[0]);
    const std = st.tensor("features.0.bn.std").data as Float32Array;
    expect(Math.min(...std)).toBeGreaterThan(0);
  });

  it.skipIf(SKIP_MNIST)("on the bundled teacher's training images, the channel mean/std at each BN input agree with that BN's running mean/var", async () => {
    requireMnist();
    // The running statistics are what training saw on these same images (averaged over its last
    // batches, with augmentation), so the data's statistics must land close to them: a stats file
    // with the wrong normalization, layer order or channel axis would be far off.
    const out = path.join(tmp(), "mnist.stats.safetensors");
    const r = await stats({ teacher: TEACHER, data: mnistTeacherRows(), output: out });
    expect(r.samples).toBe(7000);
    const st = readSafetensors(out);
    const running = JSON.parse(python(`
import json, torch
sd = torch.jit.load(${JSON.stringify(TEACHER)}).state_dict()
print(json.dumps({k: sd[k].tolist() for k in sd if k.endswith(".running_mean") or k.endswith(".running_var")}))`));
    for (const layer of ["bn1", "bn2", "bn3"]) {
      const mean = Array.from(st.tensor(`${layer}.mean`).data as Float32Array), std = Array.from(st.tensor(`${layer}.std`).data as Float32Array);
      const rm: number[] = running[`${layer}.running_mean`], rs = (running[`${layer}.running_var`] as number[]).map(Math.sqrt);
      expect(mean.length, layer).toBe(rm.length);
      // |data mean - running mean| in units of the channel's std; relative std difference
      const dm = mean.map((m, c) => Math.abs(m - rm[c]) / std[c]), ds = std.map((s, c) => Math.abs(s - rs[c]) / rs[c]);
      const avg = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
      // measured: bn1 0.0004 / 0.001, bn2 0.012 / 0.008, bn3 0.045 / 0.043 on average; max 0.19 (bn3)
      expect(avg(dm), `${layer} mean`).toBeLessThan(0.1);
      expect(avg(ds), `${layer} std`).toBeLessThan(0.1);
      expect(Math.max(...dm), `${layer} mean, worst channel`).toBeLessThan(0.3);
      expect(Math.max(...ds), `${layer} std, worst channel`).toBeLessThan(0.3);
    }
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
