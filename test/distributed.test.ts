import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { runtime } from "../src/index.js";
import { freePort } from "../src/ports.js";
import { blobs, CLI, fx, mnistVal, python, requireMnist, SKIP_MNIST, TEACHER, tmp } from "./helpers.js";

// Data-parallel runs over c10d's Gloo group on 127.0.0.1 (native/core/dist.cpp). The step-level
// equivalence (2 ranks at batch B/2 = 1 rank at batch B: losses, gradients, a synthesis run, two
// student steps) is in the core's unit tests (test/native/core_tests.cpp, "dist"); here the
// whole job through the CLI. They need the gloo headers at build time (.ci/run installs them).

type Run = { status: number | null; stdout: string; stderr: string; lines: Array<Record<string, any>> };
function cli(args: string[], env: Record<string, string> = {}, onLine?: (l: Record<string, any>) => void) {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const done = new Promise<Run>((resolve, reject) => {
    let stdout = "", stderr = "", pending = "";
    const lines: Run["lines"] = [];
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
      pending += d;
      let nl;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const text = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (!text.startsWith("{")) continue;
        const l = JSON.parse(text);
        lines.push(l);
        onLine?.(l);
      }
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", reject).on("close", (status) => resolve({ status, stdout, stderr, lines }));
  });
  return { child, done };
}

/** The same distill config on one process and on `--nproc 2` (1 thread each): both reports. */
async function oneAndTwo(config: Record<string, unknown>) {
  const file = (out: string) => {
    const f = path.join(out, "config.json");
    writeFileSync(f, JSON.stringify({ teacher: TEACHER, threads: 1, test: mnistVal(), outDir: out, ...config }));
    return f;
  };
  const one = await cli(["distill", "-c", file(tmp()), "--json", "-q"]).done;
  const two = await cli(["distill", "-c", file(tmp()), "--json", "-q", "--nproc", "2"]).done;
  expect(one.status, one.stderr).toBe(0);
  expect(two.status, two.stderr).toBe(0);
  return { r1: one.lines.at(-1)!, r2: two.lines.at(-1)! };
}

// DeepInversion on the tiny BN teacher of the fixtures (3 blob classes): CI-sized.
const job = (out: string, rounds: number) => ["distill", fx("tiny_bn.pt"), "--student", "resnet8", "--method", "deepinversion",
  "--rounds", String(rounds), "--iterations", "30", "--synth-batch", "32", "--steps-per-round", "20", "--batch-size", "32",
  "--threads", "1", "--seed", "3", "--test", blobs.test.images, "--test-labels", blobs.test.labels, "--out", out, "--json"];

describe.skipIf(!runtime().distributed)("data-parallel runs (c10d Gloo, 2 local ranks)", () => {
  it.skipIf(SKIP_MNIST)("dfkd distill --nproc 2 gives a student in the band of the one-process run, written by rank 0", async () => {
    // DeepInversion on the bundled MNIST teacher, CI-sized (12 rounds of 128 images, 40 KD steps of
    // 128 a round), 1 thread per process, scored on the validation rows. The synthesis is the
    // one-process run's (each rank's share of every batch is identical: core_tests "dist"), and so
    // are the student's weights on both ranks, and its BatchNorm normalizes by the whole batch
    // (SyncBatchNorm, dist.h), but it is not the same run: each rank's student batch (64) draws from
    // its own half of the bank. Seed 3: 1 process 86.53%, 2 ranks 84.07% (before SyncBatchNorm,
    // 80.73 / 78.47 / 79.87% over three builds) on an AVX2 machine; on an AVX-512 one (other
    // oneDNN / ATen kernels, other rounding) the same seed gave 78.33% and 86.87%. The bound is the
    // "it learns" one (chance is 10%), the band is the test.
    requireMnist();
    const { r1, r2 } = await oneAndTwo({ method: "deepinversion", seed: 3,
      synth: { rounds: 12, iterations: 40, batchSize: 128 }, train: { stepsPerRound: 40, batchSize: 128 } });
    expect(r2.type).toBe("report");
    expect(r2.distributed).toMatchObject({ rank: 0, world: 2, backend: "gloo", studentBatchPerRank: 64, syncBatchNorm: true });
    // rank 0's collectives: at least one gradient bucket per student step, each the student's size
    const c = r2.distributed.collectives;
    expect(c.count).toBeGreaterThan(12 * 40);
    expect(c.megabytes).toBeGreaterThan((12 * 40 * 4 * r2.student.parameters) / 1e6);
    expect(c.seconds).toBeGreaterThan(0);
    expect(c.seconds).toBeLessThan(r2.timings.total);
    expect(r2.config.train.batchSize).toBe(128);
    expect(r2.synthesized).toBe(12 * 64);  // rank 0's share of each batch
    expect(r2.studentSteps).toBe(12 * 40);
    expect(existsSync(r2.student.path) && existsSync(r2.report)).toBe(true);  // written by rank 0
    // trained with dfkd's SyncBatchNorm operator, saved as the plain zoo model: it loads without dfkd
    expect(python(`import torch
m = torch.jit.load(${JSON.stringify(r2.student.path)}).eval()
print("dfkd" in m.code or any("dfkd" in c.code for c in m.modules() if hasattr(c, "code")), tuple(m(torch.zeros(2, 1, 28, 28)).shape))`).trim())
      .toBe("False (2, 10)");
    const a1 = r1.evaluation.studentAccuracy, a2 = r2.evaluation.studentAccuracy;
    console.log(`deepinversion, 12 rounds: 1 process ${(a1 * 100).toFixed(2)}%, 2 ranks ${(a2 * 100).toFixed(2)}% (validation rows)`);
    expect(a1).toBeGreaterThan(0.7);
    expect(a2).toBeGreaterThan(a1 - 0.1);
  });

  it.skipIf(SKIP_MNIST)("fast runs data-parallel: --nproc 2 gives a student in the band of the one-process run", async () => {
    // The fast recipe on the bundled MNIST teacher, CI-sized (30 rounds of 256 images), 1 thread
    // per process, validation rows. Each rank runs the meta generator (BatchNorm synchronized) and
    // the teacher on its share; the synthesis equals one process's (core_tests "dist"); the student
    // side differs as in the deepinversion test above, here with 128 images a rank: 1 process
    // 91.87%, 2 ranks 92.53% (seed 0, "Fast-2" recipe); 95.27% and 96.07% with the "Fast-5" recipe
    // and its weight average (methods/fast.cpp).
    requireMnist();
    const { r1, r2 } = await oneAndTwo({ method: "fast", seed: 0, synth: { rounds: 30 } });
    expect(r2.distributed).toMatchObject({ rank: 0, world: 2, backend: "gloo" });
    expect(r2.synthesized).toBe(r1.synthesized / 2);  // rank 0's share of each batch
    expect(r2.studentSteps).toBe(r1.studentSteps);
    const a1 = r1.evaluation.studentAccuracy, a2 = r2.evaluation.studentAccuracy;
    console.log(`fast, 30 rounds: 1 process ${(a1 * 100).toFixed(2)}%, 2 ranks ${(a2 * 100).toFixed(2)}% (validation rows)`);
    expect(a1).toBeGreaterThan(0.85);
    expect(a2).toBeGreaterThan(a1 - 0.05);
  });

  it("adversarial runs data-parallel too (CI-sized, tiny teacher), and a malformed environment is refused before any rendezvous", async () => {
    // The generator step's equivalence (2 ranks at B/2 = 1 rank at B) is in core_tests "dist";
    // here the job's wiring: both batches global, each rank a share, rank 0 reports. The job ends
    // only if every rank's student is bit-identical to rank 0's (Dist::check_same): without
    // SyncBatchNorm, the generator step's forward of the student moves its running statistics by
    // each rank's share, so they are averaged after it (a run without that average failed here).
    const out = tmp();
    const cfg = path.join(out, "config.json");  // (the student's BatchNorm per rank, as DDP without SyncBatchNorm)
    writeFileSync(cfg, JSON.stringify({ distributed: { syncBatchNorm: false } }));
    const adv = await cli(["distill", "-c", cfg, fx("tiny_bn.pt"), "--student", "resnet8", "--method", "adversarial", "--epochs", "1", "--iters-per-epoch", "4",
      "--batch-size", "32", "--threads", "1", "--seed", "3", "--test", blobs.test.images, "--test-labels", blobs.test.labels, "--out", out, "--json", "-q", "--nproc", "2"]).done;
    expect(adv.status, adv.stderr).toBe(0);
    const rep = adv.lines.at(-1)!;
    expect(rep.type).toBe("report");
    expect(rep.distributed).toMatchObject({ rank: 0, world: 2, studentBatchPerRank: 16, syncBatchNorm: false });
    expect(rep.config.train.batchSize).toBe(32);
    expect(rep.config.adversarial.batchSize).toBe(32);
    expect(rep.studentSteps).toBe(4 * rep.config.adversarial.studentSteps);
    expect(rep.synthesized).toBe(4 * (rep.config.adversarial.studentSteps * 16 + 16));  // rank 0's shares
    // generator.pt: trained with its BatchNorm synchronized, written as the plain model (loads without dfkd)
    expect(python(`import torch
g = torch.jit.load(${JSON.stringify(path.join(out, "generator.pt"))}).eval()
print(any("dfkd" in c.code for c in g.modules() if hasattr(c, "code")), tuple(g(torch.zeros(2, 100)).shape))`).trim())
      .toBe("False (2, 1, 8, 8)");
    const base = ["distill", fx("tiny_bn.pt"), "--student", "resnet8", "--rounds", "1", "--out", tmp(), "--json"];
    const env = { WORLD_SIZE: "2", RANK: "5", MASTER_ADDR: "127.0.0.1", MASTER_PORT: String(await freePort()) };
    const bad = await cli([...base, "--method", "deepinversion"], env).done;
    expect(bad.lines.at(-1)).toMatchObject({ type: "error", code: "E_CONFIG", message: "RANK 5 is not below WORLD_SIZE 2" });
  });

  it("a rank that dies ends the other with E_DISTRIBUTED, and the last checkpoint resumes", async () => {
    const out = tmp();
    const port = String(await freePort());
    const args = [...job(out, 40), "--checkpoint-every", "1", "--dist-timeout", "30"];
    const env = (rank: number) => ({ RANK: String(rank), WORLD_SIZE: "2", LOCAL_RANK: String(rank), MASTER_ADDR: "127.0.0.1", MASTER_PORT: port });
    const r1 = cli(args, env(1));
    let killed = false;
    const r0 = cli(args, env(0), (l) => {
      if (l.type === "checkpoint" && !killed) { killed = true; r1.child.kill("SIGKILL"); }
    });
    const [a] = await Promise.all([r0.done, r1.done]);
    expect(killed).toBe(true);
    expect(a.status).toBe(1);
    const err = a.lines.at(-1)!;
    expect(err.type).toBe("error");
    expect(err.code).toBe("E_DISTRIBUTED");
    expect(err.message).toMatch(/^rank 0 of 2: .* failed/);
    // Rank 0's checkpoint is intact: one process continues from it (its share of the bank) to the end.
    const ck = path.join(out, "checkpoint.dfkd");
    expect(existsSync(ck)).toBe(true);
    const resumed = await cli([...job(out, 40), "--resume", ck]).done;
    expect(resumed.status, resumed.stderr).toBe(0);
    const rep = resumed.lines.at(-1)!;
    expect(rep.type).toBe("report");
    expect(rep.studentSteps).toBe(40 * 20);
    expect(JSON.parse(readFileSync(path.join(out, "report.json"), "utf8")).studentSteps).toBe(40 * 20);
  });
});
