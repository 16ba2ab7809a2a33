import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { distill, type ProgressEvent } from "../src/index.js";
import { SKIP_MNIST, requireMnist, mnistVal, python, rejectsWith, TEACHER, tmp, weights } from "./helpers.js";

const mean = (a: number[]) => a.reduce((s, x) => s + x, 0) / a.length;

describe("adversarial (DFAD/DAFL)", () => {
  it.skipIf(SKIP_MNIST)("generator steps raise the discrepancy, student steps lower it, and the student learns", async () => {
    requireMnist();
    const out = tmp();
    const g: number[] = [], s: number[] = [];
    const r = await distill({ teacher: TEACHER, method: "adversarial", test: mnistVal(), outDir: out, seed: 0,
      // DFAD with DeepInversion's BN term on G's samples and a faster student: 90% in 100
      // iterations in tuning (plain DFAD: 26%, with DAFL's terms: 64%).
      generator: { ngf: 16, bn: 1 }, adversarial: { epochs: 4, itersPerEpoch: 25, batchSize: 128, diagnostics: true }, train: { batchSize: 128, lr: 0.1 } })
      .on("progress", (e: ProgressEvent) => {
        g.push(e.losses.g_discrepancy_after - e.losses.g_discrepancy);
        s.push(e.losses.kd_after - e.losses.kd);
      });
    expect(mean(g)).toBeGreaterThan(0);
    expect(mean(s)).toBeLessThan(0);
    expect(r.evaluation!.studentAccuracy).toBeGreaterThan(0.7);  // chance: 0.1
    // the generator is saved as TorchScript: samples can be drawn later
    const gpath = path.join(out, "generator.pt");
    expect(existsSync(gpath)).toBe(true);
    const shape = python(`
import torch
g = torch.jit.load(${JSON.stringify(gpath)})
print(list(g(torch.randn(5, 100)).shape))`).trim();
    expect(shape).toBe("[5, 1, 28, 28]");
    expect(existsSync(path.join(out, "samples.png"))).toBe(true);
  });

  it("takes DAFL's terms and the BN term in the generator loss, each finite and weighted as configured", async () => {
    // One iteration: the generator step's terms are computed on the initial generator (same seed,
    // same z) and a student after one step on its samples, whatever the weights. So both runs see the
    // same term values, and each run's generator loss must be its own weighted sum of them.
    const run = async (w: { onehot: number; activation: number; entropy: number; bn: number }) =>
      (await distill({ teacher: TEACHER, method: "adversarial", outDir: tmp(), seed: 4, threads: 1, output: { samples: false },
        generator: { ngf: 8, ...w }, adversarial: { epochs: 1, itersPerEpoch: 1, batchSize: 32, studentSteps: 1 }, train: { batchSize: 32 } })).losses.synthesis;
    const wa = { onehot: 1, activation: 0.1, entropy: 5, bn: 1 }, wb = { onehot: 3, activation: 2, entropy: 0.5, bn: 0.25 };
    const a = await run(wa), b = await run(wb);
    const terms = ["onehot", "activation", "entropy", "bn"] as const;
    for (const k of [...terms, "discrepancy", "generator"]) {
      expect(Number.isFinite(a[k]), k).toBe(true);
      expect(Number.isFinite(b[k]), k).toBe(true);
    }
    for (const k of [...terms, "discrepancy"]) expect(b[k], k).toBeCloseTo(a[k], 6);
    expect(a.onehot).toBeGreaterThan(0);                 // CE of the teacher's logits to its own argmax
    expect(a.activation).toBeLessThan(0);                // -mean |penultimate features|
    expect(a.entropy).toBeGreaterThanOrEqual(-1);        // sum p log10 p of the mean prediction, 10 classes
    expect(a.entropy).toBeLessThan(0);
    expect(a.bn).toBeGreaterThan(0);
    const total = (r: Record<string, number>, w: typeof wa) => -r.discrepancy + terms.reduce((s, k) => s + w[k] * r[k], 0);
    expect(a.generator).toBeCloseTo(total(a, wa), 4);
    expect(b.generator).toBeCloseTo(total(b, wb), 4);
    expect(Math.abs(a.generator - b.generator)).toBeGreaterThan(1e-3);  // the weights changed the loss
  });

  it("replays banked samples: a run cancelled mid-way resumes to the uncancelled run's student, bank included", async () => {
    // adversarial.replay 0.5: half of each student batch comes from the bank of earlier samples, so
    // a resume that lost the bank trains on other rows from its first step on (checked: without
    // the bank's restore this fails).
    const base = { teacher: TEACHER, method: "adversarial" as const, seed: 8, threads: 1, output: { samples: false }, generator: { ngf: 8 },
      adversarial: { epochs: 1, itersPerEpoch: 200, batchSize: 16, studentSteps: 2, replay: 0.5 }, train: { batchSize: 16 } };
    const full = tmp();
    const whole = await distill({ ...base, outDir: full });
    const cut = tmp();
    const ac = new AbortController();
    await rejectsWith(distill({ ...base, outDir: cut, signal: ac.signal }).on("progress", (e) => { if (e.step >= 10) ac.abort(); }), "E_CANCELLED");
    const resumed = await distill({ ...base, outDir: cut, resume: path.join(cut, "checkpoint.dfkd") });
    expect(weights(readFileSync(path.join(cut, "student.pt")))).toEqual(weights(readFileSync(path.join(full, "student.pt"))));
    expect(resumed.losses).toEqual(whole.losses);
    const plain = await distill({ ...base, outDir: tmp(), adversarial: { ...base.adversarial, replay: 0 } });
    expect(plain.losses).not.toEqual(whole.losses);  // the replay took part
    await rejectsWith(distill({ ...base, outDir: tmp(), adversarial: { ...base.adversarial, replay: 1 } }), "E_CONFIG");
    // the BN term's running average is fast's: the adversarial generator says so rather than ignore it
    await rejectsWith(distill({ ...base, outDir: tmp(), generator: { ngf: 8, bn: 1, bnMomentum: 0.9 } }), "E_CONFIG");
  });
});
