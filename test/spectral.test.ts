import path from "node:path";
import { describe, expect, it } from "vitest";
import { distill, stats, type ProgressEvent } from "../src/index.js";
import { native } from "../src/native.js";
import { SKIP_MNIST, requireMnist, mnistVal, mnistTeacherRows, TEACHER, tmp } from "./helpers.js";

describe("spectral feature matching", () => {
  it("every loss (the FFT loss included) has the gradient finite differences give", async () => {
    const r = (await native().runJob("selfcheck", { seed: 1 }, () => {}).promise) as Record<string, number>;
    expect(Object.keys(r)).toEqual(expect.arrayContaining(["spectral_amplitude", "spectral_power", "bn_stats", "kd_kl", "adi_competition"]));
    for (const [name, err] of Object.entries(r)) expect(err, name).toBeLessThan(1e-5);
  });

  it.skipIf(SKIP_MNIST)("on the MNIST teacher: lowers the spectral distance >= 10x from noise, and its student beats a noise-distilled one by far", async () => {
    requireMnist();
    const dir = tmp();
    const file = path.join(dir, "mnist.stats.safetensors");
    await stats({ teacher: TEACHER, data: mnistTeacherRows(), output: file });
    const test = mnistVal();
    const common = { teacher: TEACHER, test, seed: 1, synth: { rounds: 8, batchSize: 256, iterations: 150 }, train: { stepsPerRound: 60 } };
    const spec: number[] = [];
    const r = await distill({ ...common, method: "spectral", stats: file, outDir: path.join(dir, "spectral") })
      .on("progress", (e: ProgressEvent) => { if (e.phase === "synthesize" && e.round === 1) spec.push(e.losses.spectral); });
    expect(spec.at(-1)!).toBeLessThan(spec[0] / 10);
    const noise = await distill({ ...common, method: "noise", outDir: path.join(dir, "noise") });
    expect(r.evaluation!.studentAccuracy! - noise.evaluation!.studentAccuracy!).toBeGreaterThan(0.3);
  });
});
