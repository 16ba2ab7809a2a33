import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { distill, runtime, type ProgressEvent } from "../src/index.js";
import { blobs, fx, SKIP_MNIST, requireMnist, mnistVal, mnistTeacherRows, python, rejectsWith, TEACHER, tmp } from "./helpers.js";

describe("classical KD", () => {
  it("trains a zoo student on data: the KD loss goes down and the student matches the teacher", async () => {
    const out = tmp();
    const losses: number[] = [];
    const job = distill({ teacher: fx("tiny_bn.pt"), student: "lenet5_half", method: "classical", data: blobs.train, test: blobs.test, outDir: out,
      inputShape: [1, 8, 8], train: { steps: 120, batchSize: 64, lr: 0.05, cropPadding: 0 } }).on("progress", (e) => losses.push(e.losses.kd));
    await expect(job).rejects.toMatchObject({ code: "E_CONFIG" });  // lenet5 needs >= 28x28 inputs
    const job2 = distill({ teacher: fx("tiny_bn.pt"), student: "resnet8", method: "classical", data: blobs.train, test: blobs.test, outDir: out,
      train: { steps: 120, batchSize: 64, lr: 0.05, cropPadding: 0 } }).on("progress", (e) => losses.push(e.losses.kd));
    const r = await job2;
    expect(losses.length).toBeGreaterThan(2);
    expect(losses.at(-1)!).toBeLessThan(losses[0] * 0.5);
    expect(r.evaluation!.studentAccuracy).toBeGreaterThan(0.9);
    expect(r.evaluation!.agreement).toBeGreaterThan(0.9);
    expect(r.studentSteps).toBe(120);
    const report = JSON.parse(readFileSync(path.join(out, "report.json"), "utf8"));
    expect(report.evaluation.studentAccuracy).toBe(r.evaluation!.studentAccuracy);
    expect(report.timings.train).toBeGreaterThan(0);
  });

  it("saves a TorchScript student that Python's torch.jit.load opens and that gives the same predictions", async () => {
    const out = tmp();
    const r = await distill({ teacher: fx("tiny_bn.pt"), student: "resnet8", method: "classical", data: blobs.train, test: blobs.test, outDir: out, train: { steps: 60, batchSize: 64 } });
    const acc = Number(python(`
import torch, numpy as np, json
m = torch.jit.load(${JSON.stringify(r.student.path)})
x = torch.from_numpy(np.load(${JSON.stringify(blobs.test.images)}))
y = torch.from_numpy(np.load(${JSON.stringify(blobs.test.labels)}))
with torch.no_grad():
    print((m(x).argmax(1) == y).float().mean().item())
`).trim());
    expect(acc).toBeCloseTo(r.evaluation!.studentAccuracy!, 5);
  });

  it.skipIf(SKIP_MNIST)("distills the bundled MNIST LeNet-5 into LeNet-5-half with data above 97%", async () => {
    requireMnist();
    const r = await distill({ teacher: TEACHER, method: "classical", data: mnistTeacherRows(), test: mnistVal(), outDir: tmp(), train: { steps: 300 } });
    expect(r.evaluation!.teacherAccuracy).toBeGreaterThan(0.98);
    expect(r.evaluation!.studentAccuracy).toBeGreaterThan(0.97);
    expect(r.student.parameters).toBeLessThan(r.teacher.parameters / 2);
  });

  it("uses a TorchScript file as the student, and rejects one with another class count", async () => {
    const out = tmp();
    const r = await distill({ teacher: fx("tiny_bn.pt"), student: fx("tiny_nobn.pt"), method: "classical", data: blobs.train, test: blobs.test, outDir: out, train: { steps: 40, batchSize: 64 } });
    expect(existsSync(r.student.path)).toBe(true);
    await rejectsWith(distill({ teacher: fx("resnet_traced.pt"), student: fx("tiny_nobn.pt"), method: "classical",
      data: { x: new Float32Array(4 * 3 * 32 * 32), shape: [4, 3, 32, 32] }, outDir: out, train: { steps: 2 } }), "E_SHAPE");
  });

  it("rejects training data the teacher cannot take", async () => {
    await rejectsWith(distill({ teacher: TEACHER, method: "classical", data: blobs.train, outDir: tmp(), train: { steps: 2 } }), "E_SHAPE");
  });
});

describe("Job API", () => {
  const cfg = (out: string, steps = 400) => ({ teacher: fx("tiny_bn.pt"), student: "resnet8", method: "classical" as const, data: blobs.train, outDir: out, seed: 3, train: { steps, batchSize: 64 } });

  it("runs on its own thread: a JS timer fires while a run is in progress", async () => {
    // A run of 100,000 steps (minutes). If it ran on the JS thread, distill() would return only
    // after it, and the timer below could not fire before the run ended. On its own thread, the
    // timer fires on the next turn of the event loop and cancels the run after a few steps.
    const job = distill(cfg(tmp(), 100_000));
    const steps: number[] = [];
    job.on("progress", (e) => steps.push(e.step));
    let fired = false;
    setTimeout(() => { fired = true; job.cancel(); }, 0);
    await rejectsWith(job, "E_CANCELLED");
    expect(fired).toBe(true);
    expect(steps.at(-1) ?? 0).toBeLessThan(100_000);
  });

  it("streams typed progress events through an async iterator", async () => {
    const job = distill(cfg(tmp(), 200));
    const seen: ProgressEvent[] = [];
    const phases: string[] = [];
    for await (const e of job) {
      if (e.type === "progress") seen.push(e);
      if (e.type === "phase") phases.push(e.phase);
    }
    expect(phases).toEqual(["load", "train", "save"]);
    expect(seen.at(-1)).toMatchObject({ phase: "train", step: 200, total: 200 });
    expect(seen.at(-1)!.throughput).toBeGreaterThan(0);
    expect(seen.at(-1)!.eta).toBeGreaterThanOrEqual(0);
    expect((await job).studentSteps).toBe(200);
  });

  it("stops on an AbortSignal within a step, writes a checkpoint, and resume finishes the run", async () => {
    const out = tmp();
    const ac = new AbortController();
    const job = distill({ ...cfg(out, 800), signal: ac.signal });
    job.on("progress", (e) => { if (e.step >= 50) ac.abort(); });
    const err = await rejectsWith(job, "E_CANCELLED");
    expect((err as { checkpoint?: string }).checkpoint).toBe(path.join(out, "checkpoint.dfkd"));
    expect(existsSync(path.join(out, "checkpoint.dfkd"))).toBe(true);
    const steps: number[] = [];
    const r = await distill({ ...cfg(out, 800), resume: path.join(out, "checkpoint.dfkd") }).on("progress", (e) => steps.push(e.step));
    expect(steps[0]).toBeGreaterThan(50);
    expect(r.studentSteps).toBe(800);
  });

  it("validates the config with messages that name the field", async () => {
    const e1 = await rejectsWith(distill({ teacher: TEACHER, method: "nope" as never }), "E_CONFIG");
    expect(e1.message).toContain("method");
    const e2 = await rejectsWith(distill({ teacher: TEACHER, train: { steps: -5 } }), "E_CONFIG");
    expect(e2.message).toContain("train.steps");
    const e3 = await rejectsWith(distill({ teacher: TEACHER, train: { lr: NaN } }), "E_CONFIG");
    expect(e3.message).toContain("train.lr");
    await rejectsWith(distill({ teacher: TEACHER, method: "classical" }), "E_CONFIG");
    await rejectsWith(distill({ teacher: TEACHER, bogus: 1 } as never), "E_CONFIG");
    if (!runtime().cuda) await rejectsWith(distill({ teacher: TEACHER, device: "cuda" }), "E_DEVICE");
  });
});
