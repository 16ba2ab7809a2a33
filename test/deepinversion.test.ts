import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { distill, mnist, type ProgressEvent } from "../src/index.js";
import { mainJob } from "../src/presets.js";
import { fx, SKIP_MNIST, requireMnist, MNIST, rejectsWith, TEACHER, tmp, weights } from "./helpers.js";
import { readSafetensors } from "./safetensors.js";

describe("deepinversion", () => {
  it.skipIf(SKIP_MNIST)("a LeNet-5-half trained only on DeepInversion samples of the MNIST teacher reaches >= 90% held-out", async () => {
    requireMnist();
    const out = tmp();
    const synth: ProgressEvent[] = [];
    const cfg = mainJob();  // the README's main job: the CI-sized DeepInversion preset
    const r = await distill({ ...cfg, test: mnist(MNIST, { start: 7000 }), outDir: out })
      .on("progress", (e) => { if (e.phase === "synthesize" && e.round === 1) synth.push(e); });
    expect(r.method).toBe("deepinversion");
    expect(r.evaluation!.studentAccuracy).toBeGreaterThanOrEqual(0.9);
    // the synthesis loss goes down within a batch
    expect(synth.at(-1)!.losses.bn).toBeLessThan(synth[0].losses.bn * 0.5);
    // outputs: samples as tensors and a PNG grid; per-phase times and final losses in the report
    const png = readFileSync(path.join(out, "samples.png"));
    expect(png.subarray(1, 4).toString()).toBe("PNG");
    const st = readSafetensors(path.join(out, "samples.safetensors"));
    expect(st.tensor("x").shape.slice(1)).toEqual([1, 28, 28]);
    expect(r.timings.synthesize).toBeGreaterThan(0);
    expect(r.timings.train).toBeGreaterThan(0);
    expect(r.losses.synthesis.bn).toBeGreaterThan(0);
    expect(r.synthesized).toBe(cfg.synth!.rounds! * cfg.synth!.batchSize!);
  });

  it("runs Adaptive DeepInversion (competition term) on a small teacher", async () => {
    const r = await distill({ teacher: fx("resnet_traced.pt"), student: "resnet8", method: "deepinversion", outDir: tmp(),
      synth: { rounds: 2, iterations: 10, batchSize: 16, adi: 0.2 }, train: { stepsPerRound: 5, batchSize: 16 } });
    expect(r.losses.synthesis.adi).toBeGreaterThan(0);
    expect(r.losses.synthesis.adi).toBeLessThanOrEqual(1);
  });

  it("train.mixup mixes pairs of bank images in the student's batches, and is validated", async () => {
    const base = { teacher: fx("resnet_traced.pt"), student: "resnet8", method: "noise" as const, seed: 3,
      synth: { rounds: 1, batchSize: 16 } };
    const run = (mixup: number) => distill({ ...base, outDir: tmp(), train: { stepsPerRound: 2, batchSize: 16, mixup } });
    const plain = await run(0), mixed = await run(1), again = await run(1);
    // Same seed, same noise bank: only the mixtures can change what the student sees.
    expect(mixed.losses.student.kd).not.toBe(plain.losses.student.kd);
    expect(again.losses.student.kd).toBe(mixed.losses.student.kd);  // drawn from the job's seeded RNG
    const e = await rejectsWith(run(1.5), "E_CONFIG");
    expect(e.message).toContain("mixup");
  });

  it("asks for BN statistics only of teachers that have them", async () => {
    const e = await rejectsWith(distill({ teacher: fx("tiny_nobn.pt"), student: "resnet8", method: "deepinversion", outDir: tmp(), synth: { rounds: 1, iterations: 2, batchSize: 4 } }), "E_NO_BN");
    expect(e.message).toContain("dfkd stats");
  });

  it("cancelled during synthesis, resume gives the same student as an uncancelled run", async () => {
    const base = { teacher: fx("tiny_bn.pt"), student: "resnet8", method: "deepinversion" as const, seed: 7, threads: 1,
      synth: { rounds: 3, iterations: 30, batchSize: 16 }, train: { stepsPerRound: 10, batchSize: 16 }, output: { samples: false } };
    const full = tmp();
    await distill({ ...base, outDir: full });
    const cut = tmp();
    const ac = new AbortController();
    const job = distill({ ...base, outDir: cut, signal: ac.signal }).on("progress", (e) => { if (e.phase === "synthesize" && e.round === 2 && e.step >= 10) ac.abort(); });
    await rejectsWith(job, "E_CANCELLED");
    await distill({ ...base, outDir: cut, resume: path.join(cut, "checkpoint.dfkd") });
    expect(existsSync(path.join(cut, "student.pt"))).toBe(true);
    const a = readFileSync(path.join(full, "student.pt")), b = readFileSync(path.join(cut, "student.pt"));
    expect(weights(a)).toEqual(weights(b));
  });
});
