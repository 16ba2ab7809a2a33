import path from "node:path";
import { describe, expect, it } from "vitest";
import { distill, stats, type ProgressEvent } from "../src/index.js";
import { SKIP_MNIST, requireMnist, mnistVal, mnistTeacherRows, TEACHER, tmp } from "./helpers.js";

// The gradient checks of every loss (the FFT losses included) are C++ unit tests: test/native.
describe("spectral feature matching", () => {
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
