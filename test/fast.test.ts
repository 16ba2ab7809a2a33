import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { distill, stats } from "../src/index.js";
import { blobs, fx, ROOT, SKIP_MNIST, requireMnist, mnistVal, rejectsWith, TEACHER, tmp, weights } from "./helpers.js";

describe("fast (a meta-learned generator, FastDFKD)", () => {
  it.skipIf(SKIP_MNIST)("a LeNet-5-half trained on fast's samples of the MNIST teacher reaches >= 90% on the validation rows", async () => {
    requireMnist();
    // The library's fast recipe at a CI size: 50 rounds of 256 images x 5 generator steps, 10 KD
    // steps a round (about half a minute on 2 cores).
    const cfg = { teacher: TEACHER, method: "fast", seed: 0, synth: { rounds: 50 } };
    const r = await distill({ ...cfg, test: mnistVal(), outDir: tmp() });
    expect(r.method).toBe("fast");
    console.log(`fast, 50 rounds: student ${(r.evaluation!.studentAccuracy * 100).toFixed(2)}% on the validation rows`);
    expect(r.evaluation!.studentAccuracy).toBeGreaterThanOrEqual(0.9);
    expect(r.synthesized).toBe(50 * 256);
    expect(r.studentSteps).toBe(50 * 10);
    expect(r.losses.synthesis.bn).toBeGreaterThan(0);
  });

  it("the meta generator learns: after 20 batches its samples are closer to the teacher's BN statistics", async () => {
    // One iteration a batch: the reported synthesis loss is that of the meta generator's own
    // samples (a fresh z, before any adaptation). Same seed: the 1-round run shows the initial
    // generator; without the meta step the 20-round run would stay at that level.
    const run = (rounds: number) => distill({ teacher: fx("tiny_bn.pt"), student: "resnet8", method: "fast", seed: 1, threads: 1,
      outDir: tmp(), synth: { rounds, batchSize: 32, iterations: 1 }, train: { stepsPerRound: 1, batchSize: 16 }, output: { samples: false } });
    const initial = await run(1), trained = await run(20);
    expect(trained.synthesized).toBe(20 * 32);
    console.log(`meta generator BN loss: ${initial.losses.synthesis.bn} -> ${trained.losses.synthesis.bn}`);
    expect(trained.losses.synthesis.bn).toBeLessThan(initial.losses.synthesis.bn * 0.8);
  });

  it("weights its first BN layer by synth.firstBnMultiplier, with and without the running average", async () => {
    // One batch, one step, one seed: the same samples each time, so the BN term is affine in the
    // multiplier m (m x the first layer's loss + the others'). Before this was wired, fast read
    // the key and ignored it (the three values were equal).
    for (const bnMomentum of [0, 0.9]) {
      const bn = async (firstBnMultiplier: number) => (await distill({ teacher: fx("tiny_bn.pt"), student: "resnet8", method: "fast",
        seed: 3, threads: 1, outDir: tmp(), synth: { rounds: 1, batchSize: 8, iterations: 1, firstBnMultiplier },
        train: { stepsPerRound: 1, batchSize: 4 }, generator: { bnMomentum }, output: { samples: false } })).losses.synthesis.bn;
      const [b1, b2, b3] = [await bn(1), await bn(2), await bn(3)];
      expect(b2 - b1, `bnMomentum ${bnMomentum}`).toBeGreaterThan(0);
      expect(b3 - b1).toBeCloseTo(2 * (b2 - b1), 4);
    }
  });

  it("without BatchNorm or a stats file it uses DAFL's terms; a BN term asked for there is refused and says what to use", async () => {
    const run = (generator: Record<string, number>) => distill({ teacher: fx("tiny_nobn.pt"), student: "resnet8", method: "fast",
      outDir: tmp(), synth: { rounds: 1, batchSize: 4, iterations: 1 }, train: { stepsPerRound: 1, batchSize: 4 }, generator });
    const r = await run({});
    expect(Object.keys(r.losses.synthesis).sort()).toEqual(["activation", "entropy", "onehot", "total"]);
    const e = await rejectsWith(run({ bn: 10 }), "E_NO_BN");
    expect(e.message).toMatch(/stats.*generator\.bn 0/);
    await rejectsWith(run({ bn: 10, bnMomentum: 0.9 }), "E_NO_BN");  // with the running average too
  });

  it.skipIf(SKIP_MNIST)("an MLP teacher without BatchNorm (what auto gives fast): a LeNet-5-half learns from DAFL's terms alone", async () => {
    requireMnist();
    // The family's LeNet-300-100 on [-1, 1] (a tune teacher, 96.13% on the validation rows): 30
    // rounds of fast with the one-hot, activation and entropy terms, no statistics of any kind.
    const norm = { mean: [0.5], std: [0.5] };
    const r = await distill({ teacher: path.join(ROOT, "models", "family", "mlp300_pm1.pt"), inputShape: [1, 28, 28], normalization: norm,
      seed: 0, synth: { rounds: 30 }, test: { ...mnistVal(), ...norm }, outDir: tmp() });
    expect(r.method).toBe("fast");
    console.log(`fast on the MLP, 30 rounds: student ${(r.evaluation!.studentAccuracy * 100).toFixed(2)}% on the validation rows`);
    expect(r.evaluation!.studentAccuracy).toBeGreaterThanOrEqual(0.8);
  });

  it("a teacher without BatchNorm and a stats file: the meta generator learns the file's statistics", async () => {
    // The statistics term matches the file's per-channel means and stds of conv1 and conv2 (the
    // "feature" loss) instead of BN statistics; as above, one iteration a batch shows the meta
    // generator's own samples.
    const dir = tmp();
    const file = path.join(dir, "stats.safetensors");
    await stats({ teacher: fx("tiny_nobn.pt"), data: blobs.train, layers: ["conv1", "conv2"], output: file });
    const run = (rounds: number) => distill({ teacher: fx("tiny_nobn.pt"), stats: file, student: "resnet8", method: "fast", seed: 1,
      threads: 1, outDir: tmp(), synth: { rounds, batchSize: 32, iterations: 1 }, train: { stepsPerRound: 1, batchSize: 16 },
      output: { samples: false } });
    const initial = await run(1), trained = await run(20);
    expect(trained.losses.synthesis.bn).toBeUndefined();
    console.log(`meta generator feature loss: ${initial.losses.synthesis.feature} -> ${trained.losses.synthesis.feature}`);
    expect(initial.losses.synthesis.feature).toBeGreaterThan(0);
    expect(trained.losses.synthesis.feature).toBeLessThan(initial.losses.synthesis.feature * 0.8);
  });

  it("cancelled during synthesis, resume gives the same student as an uncancelled run", async () => {
    // The meta generator and its optimizer are in the checkpoint, and the student's weight average
    // (the recipe's train.ema): a round cancelled mid-way restarts from the meta generator as it was
    // at the round's start. (Without the average restored, this test fails: checked.) The BN term's
    // running average of earlier batches' statistics (generator.bnMomentum) is in it too.
    const base = { teacher: fx("tiny_bn.pt"), student: "resnet8", method: "fast" as const, seed: 7, threads: 1,
      synth: { rounds: 3, iterations: 30, batchSize: 16 }, train: { stepsPerRound: 10, batchSize: 16 },
      generator: { bnMomentum: 0.9 }, output: { samples: false } };
    const full = tmp();
    const whole = await distill({ ...base, outDir: full });
    const cut = tmp();
    const ac = new AbortController();
    const job = distill({ ...base, outDir: cut, signal: ac.signal }).on("progress", (e) => { if (e.phase === "synthesize" && e.round === 2 && e.step >= 10) ac.abort(); });
    await rejectsWith(job, "E_CANCELLED");
    const resumed = await distill({ ...base, outDir: cut, resume: path.join(cut, "checkpoint.dfkd") });
    expect(existsSync(path.join(cut, "student.pt"))).toBe(true);
    expect(weights(readFileSync(path.join(cut, "student.pt")))).toEqual(weights(readFileSync(path.join(full, "student.pt"))));
    expect(resumed.losses).toEqual(whole.losses);
    const alone = await distill({ ...base, outDir: tmp(), generator: { bnMomentum: 0 } });
    expect(alone.losses.synthesis.bn).not.toEqual(whole.losses.synthesis.bn);  // the running average took part
  });
});
