import { spawnSync } from "node:child_process";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { distill, info, runtime, zoo } from "../src/index.js";
import { blobs, fx, rejectsWith, ROOT, TEACHER, tmp } from "./helpers.js";

describe("addon and teacher introspection", () => {
  it("loads the addon built against libtorch 2.x without LD_LIBRARY_PATH", () => {
    const r = runtime();
    expect(r.torch).toMatch(/^2\.\d+/);
    expect(typeof r.cuda).toBe("boolean");
    expect(zoo()).toEqual(expect.arrayContaining(["lenet5", "lenet5_half", "resnet18"]));
    // This process may have inherited LD_LIBRARY_PATH (a shell that points at libtorch): load the
    // addon again in a child without it (nor LD_PRELOAD), so only the addon's rpath can find libtorch.
    const env = { ...process.env };
    delete env.LD_LIBRARY_PATH;
    delete env.LD_PRELOAD;
    const child = spawnSync(process.execPath, ["--input-type=module", "-e",
      `import { runtime, zoo } from ${JSON.stringify(pathToFileURL(path.join(ROOT, "dist", "index.js")).href)};
       const r = runtime(); console.log(JSON.stringify({ torch: r.torch, zoo: zoo().length, ld: process.env.LD_LIBRARY_PATH ?? null }));`],
      { env, encoding: "utf8", timeout: 60_000 });
    expect(child.status, child.stderr).toBe(0);
    expect(JSON.parse(child.stdout)).toEqual({ torch: r.torch, zoo: zoo().length, ld: null });
  });

  it("reports classes, BN taps and parameters of the bundled teacher", async () => {
    const t = await info(TEACHER);
    expect(t.numClasses).toBe(10);
    expect(t.inputShape).toEqual([1, 28, 28]);
    expect(t.bnLayers).toBe(3);
    expect(t.convolutions).toBe(3);
    expect(t.taps.filter((x) => x.kind === "bn").map((x) => [x.name, x.channels])).toEqual([["bn1", 6], ["bn2", 16], ["bn3", 120]]);
    expect(t.parameters).toBe(61990);
  });

  it.each(["resnet_traced.pt", "resnet_scripted.pt"])("taps every BN of a nested ResNet (%s)", async (f) => {
    const t = await info(fx(f));
    expect(t.taps.filter((x) => x.kind === "bn").map((x) => x.name)).toEqual([
      "bn1", "layer1.0.bn1", "layer1.0.bn2", "layer2.0.bn1", "layer2.0.bn2", "layer2.0.down.1",
    ]);
    expect(t.convolutions).toBe(6);  // one before each BatchNorm (aten::conv2d scripted, aten::_convolution traced)
    expect(t.numClasses).toBe(10);
  });

  it("taps named submodules at any depth, scripted or traced", async () => {
    for (const f of ["tiny_bn.pt", "tiny_bn_traced.pt"]) {
      const t = await info(fx(f), { layers: ["features.1", "features.2.conv", "head"] });
      expect(t.taps.filter((x) => x.kind === "layer").map((x) => x.name).sort()).toEqual(["features.1", "features.2.conv", "head"]);
    }
    await rejectsWith(info(fx("tiny_bn.pt"), { layers: ["nope"] }), "E_TAPS");
  });

  it("takes the input shape from the caller when the file has no metadata", async () => {
    await rejectsWith(info(fx("tiny_bn_nometa.pt")), "E_CONFIG");
    expect((await info(fx("tiny_bn_nometa.pt"), { inputShape: [1, 8, 8] })).numClasses).toBe(3);
  });

  it("gives coded errors for missing, truncated, random and non-TorchScript files", async () => {
    await rejectsWith(info(fx("missing.pt")), "E_MODEL_NOT_FOUND");
    for (const f of ["truncated.pt", "random.pt", "not_torchscript.pt"]) {
      const e = await rejectsWith(info(fx(f)), "E_MODEL_INVALID");
      expect(e.message).toContain("not a TorchScript model");
      expect(e.message).not.toMatch(/Exception raised from|frame #/);  // no C++ backtrace
    }
  });

  it("rejects input shapes the teacher cannot take, and non-logit outputs", async () => {
    const e = await rejectsWith(info(fx("tiny_bn.pt"), { inputShape: [3, 8, 8] }), "E_SHAPE");
    expect(e.message).toContain("[2, 3, 8, 8]");
    await rejectsWith(info(fx("bad_output.pt")), "E_MODEL_OUTPUT");
  });

  it("probes what the forward returns: logits, log-probabilities (log_softmax) or probabilities (softmax)", async () => {
    expect((await info(fx("tiny_bn.pt"))).output).toBe("logits");
    expect((await info(fx("tiny_nobn.pt"))).output).toBe("logits");
    expect((await info(fx("tiny_bn_logsoftmax.pt"))).output).toBe("log-probabilities");
    expect((await info(fx("tiny_bn_softmax.pt"))).output).toBe("probabilities");
  });

  it("distills a teacher that returns probabilities as it does the same teacher returning logits", async () => {
    // log softmax(z) = z - logsumexp(z): the BN, one-hot, adversarial and KD terms see the same
    // values from the three files (up to rounding). Taken as logits, the softmax's outputs (all in
    // [0, 1]) give KD at T = 20 near-uniform targets: the student's KD loss was 1e-4 of the others'.
    const run = (teacher: string) => distill({ teacher: fx(teacher), student: "resnet8", method: "fast", seed: 5, threads: 1,
      outDir: tmp(), synth: { rounds: 3, batchSize: 16, iterations: 2 }, train: { stepsPerRound: 4, batchSize: 16 },
      generator: { advWarmup: 0 }, test: blobs.test, output: { samples: false } });
    const [logits, logp, probs] = [await run("tiny_bn.pt"), await run("tiny_bn_logsoftmax.pt"), await run("tiny_bn_softmax.pt")];
    expect([logits.teacher.output, logp.teacher.output, probs.teacher.output]).toEqual(["logits", "log-probabilities", "probabilities"]);
    // (rounding drifts apart over the steps: within 2% of each other)
    const near = (a: number | undefined, b: number, what: string) => expect(Math.abs(a! - b), `${what}: ${a} against ${b}`).toBeLessThan(0.02 * Math.abs(b) + 1e-4);
    for (const r of [logp, probs]) {
      for (const [k, v] of Object.entries(logits.losses.synthesis)) near(r.losses.synthesis[k], v, k);
      for (const [k, v] of Object.entries(logits.losses.student)) near(r.losses.student[k], v, k);
      near(r.evaluation!.studentAccuracy, logits.evaluation!.studentAccuracy, "student accuracy");
    }
    console.log(JSON.stringify([logits, probs].map((r) => ({ ...r.losses, acc: r.evaluation!.studentAccuracy }))));
    expect(logits.losses.student.kd ?? logits.losses.student.total).toBeGreaterThan(1e-3);
  });

  it("runs a teacher stored in float16 in float32, with the same predictions as its float32 twin", async () => {
    const [half, full] = [await info(fx("tiny_bn_half.pt")), await info(fx("tiny_bn.pt"))];
    expect([half.storedDtype, full.storedDtype]).toEqual(["Half", "Float"]);
    expect(half.numClasses).toBe(3);
    // Before, its half weights met dfkd's float32 inputs: E_SHAPE ("rejected an input").
    const run = (teacher: string) => distill({ teacher: fx(teacher), student: "resnet8", method: "fast", seed: 1, threads: 1,
      outDir: tmp(), synth: { rounds: 1, batchSize: 8, iterations: 1 }, train: { stepsPerRound: 1, batchSize: 8 },
      test: blobs.test, output: { samples: false } });
    const [h, f] = [await run("tiny_bn_half.pt"), await run("tiny_bn.pt")];
    expect(f.evaluation!.teacherAccuracy).toBeGreaterThan(0.9);
    expect(Math.abs(h.evaluation!.teacherAccuracy! - f.evaluation!.teacherAccuracy!)).toBeLessThanOrEqual(0.01);
  });

  it("takes the logits of a forward that returns a dict, and says what it found when there are none", async () => {
    expect((await info(fx("tiny_bn_dict.pt"))).numClasses).toBe(3);
    const r = await distill({ teacher: fx("tiny_bn_dict.pt"), student: "resnet8", method: "fast", seed: 1, threads: 1, outDir: tmp(),
      synth: { rounds: 1, batchSize: 8, iterations: 1 }, train: { stepsPerRound: 1, batchSize: 8 }, test: blobs.test, output: { samples: false } });
    expect(r.evaluation!.teacherAccuracy).toBeGreaterThan(0.9);
    const e = await rejectsWith(info(fx("tiny_bn_dict_nologits.pt")), "E_MODEL_OUTPUT");
    expect(e.message).toContain("keys: a, b");
  });

  it("does not take BatchNorm without running statistics for a BN layer: nothing stored to match", async () => {
    // track_running_stats=False: its graph passes None for the statistics (this was E_TAPS).
    const t = await info(fx("tiny_norunningstats.pt"));
    expect(t.bnLayers).toBe(0);
    expect(t.convolutions).toBe(1);
    const r = await distill({ teacher: fx("tiny_norunningstats.pt"), student: "resnet8", seed: 1, threads: 1, outDir: tmp(), budget: 3,
      test: blobs.test, output: { samples: false } });
    expect(r.methodChoice!.reason).toMatch(/no BatchNorm/);
    expect(r.method).not.toBe("deepinversion");
  });
});
