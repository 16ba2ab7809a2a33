// The GPU code paths, tested on the CPU: bf16 autocast, channels-last, and a training loop that
// waits for the device only on the steps it reports (issue 18). CPU autocast runs the same
// dispatcher path as CUDA's; without bf16 hardware it is slow, so the runs here are tiny.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { distill, type DistillConfig, type DistillReport, type ProgressEvent } from "../src/index.js";
import { blobs, fx, rejectsWith, tmp } from "./helpers.js";

const base: DistillConfig = { teacher: fx("tiny_bn.pt"), student: "resnet8", method: "deepinversion", seed: 3, threads: 2, test: blobs.test,
  synth: { rounds: 3, iterations: 20, batchSize: 32 }, train: { stepsPerRound: 30, batchSize: 32 }, output: { samples: false } };

async function run(cfg: DistillConfig): Promise<{ report: DistillReport; first: Record<string, number> }> {
  let first: Record<string, number> | undefined;
  const report = await distill({ ...cfg, outDir: tmp() }).on("progress", (e: ProgressEvent) => { first ??= e.losses; });
  return { report, first: first! };
}
const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

describe("GPU code paths on the CPU", () => {
  let fp32: { report: DistillReport; first: Record<string, number> };
  beforeAll(async () => { fp32 = await run(base); });

  it("bf16 autocast: the first losses are within 2% of float32's (and not identical: the convolutions ran in bf16), and the run still learns", async () => {
    const bf16 = await run({ ...base, precision: "bf16" });
    for (const k of ["bn", "ce", "total"]) {
      expect(bf16.first[k]).not.toBe(fp32.first[k]);
      expect(rel(bf16.first[k], fp32.first[k])).toBeLessThan(0.02);
    }
    expect(bf16.report.config.precision).toBe("bf16");
    expect(bf16.report.evaluation!.studentAccuracy).toBeGreaterThanOrEqual(0.9);  // 3 classes; float32: 1.0
    await rejectsWith(distill({ ...base, precision: "fp16" as "bf16", outDir: tmp() }), "E_CONFIG");
  });

  it("channels-last gives float32's losses up to rounding, and a student as good", async () => {
    const cl = await run({ ...base, channelsLast: true });
    for (const k of ["bn", "ce", "total"]) expect(rel(cl.first[k], fp32.first[k])).toBeLessThan(1e-4);
    expect(cl.report.evaluation!.studentAccuracy).toBeGreaterThanOrEqual(0.9);
  });

  it("cudaGraphs on a CPU run: a log line says why it is off, and the student is the one without it", async () => {
    const logs: string[] = [];
    const a = await distill({ ...base, cudaGraphs: true, outDir: tmp() }).on("log", (e) => logs.push(e.message));
    expect(logs.some((m) => /^cudaGraphs: (not compiled in|not a CUDA device)/.test(m))).toBe(true);
    expect(a.losses.student).toEqual(fp32.report.losses.student);
    expect(a.evaluation).toEqual(fp32.report.evaluation);
  });

  describe("host syncs", () => {
    beforeAll(() => { process.env.DFKD_COUNT_SYNCS = "1"; });
    afterAll(() => { delete process.env.DFKD_COUNT_SYNCS; });
    it("a step reads device values only when it is reported: one read per progress event (and one at the end), no other scalar read in the loop", async () => {
      const adversarial: DistillConfig = { ...base, method: "adversarial", generator: { ngf: 8 }, adversarial: { epochs: 1, itersPerEpoch: 30, batchSize: 32, studentSteps: 2 } };
      for (const cfg of [base, adversarial, { ...base, method: "classical", data: blobs.train, train: { steps: 60, batchSize: 32 } } as DistillConfig]) {
        const { report } = await run(cfg);
        const s = report.hostSyncs;
        expect(s.items).toBe(0);  // .item() anywhere in the loop would count here
        expect(s.reads).toBe(s.progressEvents + s.evals + 1);  // + the run's last losses, checked once at the end
        expect(s.progressEvents).toBeGreaterThan(0);
      }
      // without DFKD_COUNT_SYNCS the reads are counted, other scalar reads are not
      delete process.env.DFKD_COUNT_SYNCS;
      const { report } = await run(base);
      expect(report.hostSyncs.items).toBeUndefined();
      expect(report.hostSyncs.reads).toBe(report.hostSyncs.progressEvents + 1);
      process.env.DFKD_COUNT_SYNCS = "1";
    });
  });
});
