// Issue 20: method "auto" (the default), time budgets, input shapes read from a teacher without
// metadata, labeled samples. The family teachers are committed (scripts/train_family.py).
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { distill, info, stats } from "../src/index.js";
import { CLI, ROOT, SKIP_MNIST, TEACHER, mnistTeacherRows, mnistVal, python, rejectsWith, requireMnist, tmp } from "./helpers.js";
import { execFileSync } from "node:child_process";

const family = (name: string) => path.join(ROOT, "models", "family", `${name}.pt`);
const MNIST_NORM = { mean: [0.1307], std: [0.3081] };
// A run that only has to start: one adversarial iteration of tiny batches, or one fast round.
const tiny = { adversarial: { epochs: 1, itersPerEpoch: 1, batchSize: 8 }, train: { batchSize: 8 } };
const tinyFast = { synth: { rounds: 1, batchSize: 8, iterations: 1 }, train: { stepsPerRound: 1, batchSize: 8 } };

describe("method auto", () => {
  it("is the default and picks fast (a meta-learned generator, FastDFKD) for a teacher with BatchNorm", async () => {
    const r = await distill({ teacher: TEACHER, outDir: tmp(), ...tinyFast });
    expect(r.method).toBe("fast");
    expect(r.methodChoice?.reason).toMatch(/3 BatchNorm layers/);
    const g = r.config.generator as Record<string, number>;
    expect([g.adversarial, g.bn, g.onehot, g.activation, g.entropy]).toEqual([1.1, 10, 0.5, 0, 0]);  // Fast-Datafree's weights
    // the adversarial method keeps its own weights for a BN teacher
    const a = await distill({ teacher: TEACHER, method: "adversarial", outDir: tmp(), ...tiny });
    const ga = a.config.generator as Record<string, number>;
    expect([ga.adversarial, ga.bn, ga.onehot, ga.activation, ga.entropy]).toEqual([1, 10, 0.5, 0, 0]);
    expect((a.config.adversarial as Record<string, number>).replay).toBe(0);  // replay: measured on BN-less teachers only
  });

  it("picks DAFL (the adversarial loop with DAFL's terms, no adversarial term) for a teacher without BatchNorm and no stats file", async () => {
    const r = await distill({ teacher: family("lenet5_nobn"), method: "auto", outDir: tmp(), ...tiny });
    expect(r.method).toBe("adversarial");
    expect(r.methodChoice?.reason).toMatch(/no BatchNorm/);
    const g = r.config.generator as Record<string, number>;
    expect([g.adversarial, g.bn, g.onehot, g.activation, g.entropy]).toEqual([0, 0, 1, 0.1, 5]);
    expect((r.config.adversarial as Record<string, number>).replay).toBe(0.5);  // half of each student batch replayed
  });

  it("picks fast with DAFL's terms for a teacher with neither BatchNorm nor convolutions (an MLP)", async () => {
    for (const name of ["mlp300_pm1", "mlp_raw"])  // scripted and traced
      expect((await info(family(name), { inputShape: [1, 28, 28] })).convolutions).toBe(0);
    const r = await distill({ teacher: family("mlp300_pm1"), inputShape: [1, 28, 28], normalization: { mean: [0.5], std: [0.5] },
      outDir: tmp(), ...tinyFast });
    expect(r.method).toBe("fast");
    expect(r.methodChoice?.reason).toMatch(/no BatchNorm layers and no convolutions/);
    const g = r.config.generator as Record<string, number>;
    expect([g.adversarial, g.bn, g.onehot, g.activation, g.entropy]).toEqual([0, 0, 1, 0.1, 5]);
    expect(r.losses.synthesis.bn).toBeUndefined();
    expect(r.losses.synthesis.activation).toBeLessThan(0);  // -mean|f| of the penultimate features
    expect(r.losses.synthesis.entropy).toBeDefined();
  });

  it("keeps the terms the user gives", async () => {
    const r = await distill({ teacher: family("lenet5_nobn"), outDir: tmp(), ...tiny, generator: { entropy: 0 }, adversarial: { ...tiny.adversarial, replay: 0 } });
    const g = r.config.generator as Record<string, number>;
    expect([g.onehot, g.entropy]).toEqual([1, 0]);
    expect((r.config.adversarial as Record<string, number>).replay).toBe(0);
  });

  it.skipIf(SKIP_MNIST)("picks spectral when a stats file is given, and classical when data is", async () => {
    requireMnist();
    const dir = tmp();
    const file = path.join(dir, "stats.safetensors");
    await stats({ teacher: family("lenet5_nobn"), data: { ...mnistTeacherRows(), end: 512 }, layers: ["conv1", "conv2"], output: file });
    const s = await distill({ teacher: family("lenet5_nobn"), stats: file, outDir: dir,
      synth: { iterations: 2, batchSize: 8, rounds: 1 }, train: { stepsPerRound: 1, batchSize: 8 } });
    expect(s.method).toBe("spectral");
    expect(s.methodChoice?.reason).toMatch(/statistics file/);
    const c = await distill({ teacher: TEACHER, data: { ...mnistTeacherRows(), end: 256 }, outDir: tmp(), train: { steps: 2, batchSize: 8 } });
    expect(c.method).toBe("classical");
  });

  it("infers the input normalization from the first BatchNorm when none is given (raw pixels, [-1, 1], centred)", async () => {
    // The family's raw-pixel CNN (no metadata) and its [-1, 1] VGG without its metadata: the first
    // BatchNorm's running mean through the first convolution gives the inputs' mean, 0.13 and -0.74
    // for MNIST; the BN ResNet-8 (normalized by MNIST's statistics) reads as centred: no guess.
    expect((await info(family("cnn_bn_raw"))).inputMean![0]).toBeCloseTo(0.13, 1);
    const bare = path.join(tmp(), "vgg_bn_pm1_bare.pt");
    python(`import torch; torch.jit.save(torch.jit.load(${JSON.stringify(family("vgg_bn_pm1"))}), ${JSON.stringify(bare)})`);
    expect((await info(bare)).meta).toEqual({});
    expect((await info(bare)).inputMean![0]).toBeCloseTo(-0.74, 1);
    const run = (teacher: string, normalization?: { mean: number[]; std: number[] }) =>
      distill({ teacher, normalization, inputShape: [1, 28, 28], outDir: tmp(), ...tinyFast, output: { samples: false } });
    const norm = (r: Awaited<ReturnType<typeof run>>) => [r.config.normalization, (r.config.generator as Record<string, unknown>).output];
    expect(norm(await run(family("cnn_bn_raw")))).toEqual([{ mean: [0], std: [1] }, "pixels"]);
    expect(norm(await run(bare))).toEqual([{ mean: [0.5], std: [0.5] }, "pixels"]);
    expect(norm(await run(family("resnet8_bn")))).toEqual([undefined, "standardized"]);
    // what the user gives wins
    expect(norm(await run(family("cnn_bn_raw"), MNIST_NORM))).toEqual([MNIST_NORM, "standardized"]);
  });

  it("follows the input prior: no synthesis flip for 1-channel digits, jitter a sixteenth of the side", async () => {
    const r = await distill({ teacher: TEACHER, method: "deepinversion", outDir: tmp(),
      synth: { iterations: 1, batchSize: 4, rounds: 1 }, train: { stepsPerRound: 1, batchSize: 4 } });
    const s = r.config.synth as Record<string, unknown>;
    expect([s.flip, s.jitter]).toEqual([false, 2]);
    const n = await distill({ teacher: TEACHER, method: "deepinversion", prior: "natural", outDir: tmp(),
      synth: { iterations: 1, batchSize: 4, rounds: 1 }, train: { stepsPerRound: 1, batchSize: 4 } });
    expect((n.config.synth as Record<string, unknown>).flip).toBe(true);
  });
});

describe("budget", () => {
  it.skipIf(SKIP_MNIST)("a budgeted run measures, sizes itself, stops by itself and reports how the budget was spent", async () => {
    requireMnist();
    const out = tmp();
    const events: string[] = [];
    const r = await distill({ teacher: TEACHER, method: "adversarial", budget: "10s", test: mnistVal(), outDir: out })
      .on("phase", (e: { phase: string }) => events.push(e.phase));
    expect(events).toContain("calibrate");
    const b = r.budget!;
    expect(b.source).toBe("config");
    expect(b.seconds).toBe(10);
    expect(b.calibration.studentStep).toBeGreaterThan(0);
    expect(b.calibration.generatorStep).toBeGreaterThan(0);
    expect(b.units).toBeGreaterThanOrEqual(1);
    // the sizes the run used are the plan's
    const a = r.config.adversarial as Record<string, number>;
    expect(a.epochs * a.itersPerEpoch).toBe(b.units);
    expect(r.studentSteps).toBe(b.units * (a.studentSteps ?? 5));
    expect(b.spent).toBeGreaterThan(0);
    expect(r.timings.calibrate).toBeGreaterThan(0);
    // a 10-second budget is far below what the method needs: the report says so
    expect(b.warnings?.join(" ")).toMatch(/expect a weak student/);
    expect(existsSync(path.join(out, "student.pt"))).toBe(true);
    expect(r.evaluation!.samples).toBe(1500);
  });

  it("a cancelled budgeted run resumes to the sizes it was planned with (not a new budget)", async () => {
    const out = tmp();
        // tiny batches: hundreds of iterations fit even on a loaded machine; cancelled at the first checkpoint
    const cfg = { teacher: TEACHER, method: "adversarial", budget: "30s", outDir: out, checkpointEvery: 2, train: { batchSize: 16 }, adversarial: { batchSize: 16 } };
    let plan: Record<string, unknown> | undefined;
    const ac = new AbortController();
    const err = await rejectsWith(distill({ ...cfg, signal: ac.signal }).on("event", (e) => {
      if (e.type !== "checkpoint") return;
      // the last checkpoint (the one written on cancel) holds the plan as the deadline left it
      plan = (e.state as { budget?: { plan?: Record<string, unknown> } }).budget?.plan;
      ac.abort();
    }), "E_CANCELLED");
    expect(plan?.["adversarial.itersPerEpoch"]).toBeGreaterThan(0);
    const r = await distill({ ...cfg, resume: (err as { checkpoint?: string }).checkpoint });
    expect(r.budget?.resumed).toBe(true);
    expect(r.budget?.plan).toEqual(plan);
    const a = r.config.adversarial as Record<string, number>;
    expect(a.epochs * a.itersPerEpoch).toBe(Number(plan!["adversarial.epochs"]) * Number(plan!["adversarial.itersPerEpoch"]));
    expect(r.timings.calibrate).toBeUndefined();
  });

  it("a budget too small for one unit is E_BUDGET saying what does not fit", async () => {
    const e = await rejectsWith(distill({ teacher: TEACHER, budget: 0.001, outDir: tmp() }), "E_BUDGET");
    expect(e.message).toMatch(/fits no round of fast/);
    expect(e.message).toMatch(/raise the budget to at least/);
  });

  it("accepts durations and refuses nonsense", async () => {
    await rejectsWith(distill({ teacher: TEACHER, budget: "5 parsecs", outDir: tmp() }), "E_CONFIG");
    await rejectsWith(distill({ teacher: TEACHER, budget: -1, outDir: tmp() }), "E_CONFIG");
  });

  it("explicit sizes are kept: no calibration, no budget in the report", async () => {
    const r = await distill({ teacher: TEACHER, method: "adversarial", outDir: tmp(), ...tiny });
    expect(r.budget).toBeUndefined();
    expect(r.timings.calibrate).toBeUndefined();
    expect(r.studentSteps).toBe(5);
  });
});

describe("teachers without metadata", () => {
  it("reads the input shape from the weights when only one fits, and says when it is ambiguous", async () => {
    expect((await info(family("mlp_raw"))).inputShape).toEqual([1, 28, 28]);   // fc1: [256, 784]
    expect((await info(family("cnn_gn"))).inputShape).toEqual([1, 28, 28]);   // its classifier fixes the side
    const e = await rejectsWith(info(family("resnet8_bn")), "E_CONFIG");     // global pooling: any side fits
    expect(e.message).toMatch(/ambiguous.*\[1, 28, 28\].*\[1, 32, 32\].*--input-shape/s);
  });

  it("the generator makes images in [0, 1] through a normalization that cannot be the data's statistics", async () => {
    const teacher = family("lenet5_nobn");  // no BatchNorm: DAFL's terms, no BN term to anchor the output
    const pm1 = { mean: [0.5], std: [0.5] };  // inputs in [-1, 1]: a convention, not MNIST's statistics
    const out = tmp();
    const r = await distill({ teacher, normalization: pm1, outDir: out, ...tiny });
    expect((r.config.generator as Record<string, unknown>).output).toBe("pixels");
    // every sample, mapped back to pixels, is an image (the standardized head reaches far outside [0, 1])
    const range = JSON.parse(python(`
import torch, json
g = torch.jit.load(${JSON.stringify(path.join(out, "generator.pt"))})
torch.manual_seed(0)
x = g(torch.randn(256, 100)) * 0.5 + 0.5
print(json.dumps([x.min().item(), x.max().item(), x.std().item()]))`));
    expect(range[0]).toBeGreaterThanOrEqual(0);
    expect(range[1]).toBeLessThanOrEqual(1);
    expect(range[2]).toBeGreaterThan(0.01);  // not a constant image
    // MNIST's own statistics (the file's metadata): GeneratorA's standardized head
    const m = await distill({ teacher, outDir: tmp(), ...tiny });
    expect((m.config.generator as Record<string, unknown>).output).toBe("standardized");
    // a teacher with BatchNorm (auto: fast): the BN term does not move the standardized head onto [-1, 1] either
    const b = await distill({ teacher: family("resnet8_bn"), inputShape: [1, 28, 28], normalization: pm1, outDir: tmp(), ...tinyFast });
    expect((b.config.generator as Record<string, unknown>).output).toBe("pixels");
    expect((b.config.generator as Record<string, unknown>).bn).toBe(10);
    // ... and with MNIST's statistics it keeps the standardized head
    const s = await distill({ teacher: family("resnet8_bn"), inputShape: [1, 28, 28], normalization: { mean: [0.1307], std: [0.3081] }, outDir: tmp(), ...tinyFast });
    expect((s.config.generator as Record<string, unknown>).output).toBe("standardized");
    // pixels need a normalization
    const e = await rejectsWith(distill({ teacher: family("resnet8_bn"), inputShape: [1, 28, 28], outDir: tmp(), ...tinyFast,
      generator: { output: "pixels" } }), "E_CONFIG");
    expect(e.message).toMatch(/normalization/);
  });

  it("dfkd distill takes --input-shape and --budget, and labels the samples", () => {
    const out = tmp();
    execFileSync(process.execPath, [CLI, "distill", family("resnet8_bn"), "--input-shape", "1,28,28", "--mean", "0.1307", "--std", "0.3081",
      "--method", "adversarial", "--epochs", "1", "--iters-per-epoch", "1", "--batch-size", "8", "-o", out, "-q"], { encoding: "utf8" });
    const rep = JSON.parse(readFileSync(path.join(out, "report.json"), "utf8"));
    expect(rep.inputShape).toEqual([1, 28, 28]);
    expect(rep.config.normalization).toEqual(MNIST_NORM);
    // samples.png: 64 images scaled to 84 px with a label strip, 8 to a row (width 8 x (84 + 4) + 4)
    const png = readFileSync(path.join(out, "samples.png"));
    expect(png.readUInt32BE(16)).toBe(708);
    expect(png.readUInt32BE(20)).toBeGreaterThan(8 * 84);
  });

  it.skipIf(SKIP_MNIST)("a test set's normalization stands for the teacher's when the file has none", async () => {
    requireMnist();
    const out = tmp();
    const r = await distill({ teacher: family("resnet8_bn"), test: { ...mnistVal(), end: 7064, ...MNIST_NORM }, outDir: out, ...tinyFast });
    expect(r.inputShape).toEqual([1, 28, 28]);  // from the test set
    const meta = (await info(path.join(out, "student.pt"))).meta;
    expect([meta.mean, meta.std]).toEqual([MNIST_NORM.mean, MNIST_NORM.std]);
  });
});
