#!/usr/bin/env node
// Reference behaviour of every method: short deterministic runs (threads 1, seed 0, tiny sizes)
// of the built library (dist/), their report losses and counters and a hash of the student's
// (and generator's) weight bytes. `ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 node
// test/reference/record.mjs OUT.json` writes them (the AVX2 kernels the record was made with);
// test/reference.test.ts checks that today's build gives the same (written before issue 15's
// refactor, test/reference/before.json).
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { weights } from "../weights.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const dfkd = await import(path.join(ROOT, process.env.DFKD_DIST ?? "dist", "index.js"));
const MNIST = process.env.DFKD_MNIST ?? path.resolve(ROOT, "..", "shared", "data", "mnist");
const TEACHER = path.join(ROOT, "models", "mnist_lenet5.pt");

const hash = (file) => createHash("sha256").update(weights(readFileSync(file)).join("\n")).digest("hex");
/** A safetensors stats file's tensors (header without __metadata__, which names the teacher's path). */
function statsHash(file) {
  const raw = readFileSync(file);
  const n = Number(raw.readBigUInt64LE(0));
  const header = JSON.parse(raw.subarray(8, 8 + n).toString("utf8"));
  delete header.__metadata__;
  return createHash("sha256").update(JSON.stringify(header)).update(raw.subarray(8 + n)).digest("hex");
}

const mnist = (start, end) => dfkd.mnist(MNIST, { start, end });
const small = { teacher: TEACHER, seed: 0, threads: 1, test: mnist(7000, 7300), output: { samples: false } };
// The recipe defaults these runs were recorded with, written out: issue 20 changed the library's
// defaults (CPU-sized recipes, the synthesis flip and jitter from the input prior, the adversarial
// generator's terms from the teacher, its pixel head), and the loops must still give the recorded numbers.
const v0 = {
  synth: { lr: 0.25, tvL2: 1e-4, flip: true, jitter: 2 }, train: { weightDecay: 1e-4, cropPadding: 2 },
  adversarial: { train: { lr: 0.01, schedule: "none" }, generator: { ngf: 64, bn: 0, output: "standardized" } },
};
const inv = { synth: { ...v0.synth, rounds: 2, batchSize: 16, iterations: 6 }, train: { ...v0.train, stepsPerRound: 4, batchSize: 16 } };
const bn10 = { ...inv, synth: { ...inv.synth, bn: 10 } };
const feature10 = { ...inv, synth: { ...inv.synth, feature: 10 } };
export const CASES = {
  classical: { ...small, method: "classical", data: mnist(0, 512), train: { steps: 12, batchSize: 32 } },
  deepinversion: { ...small, method: "deepinversion", ...bn10 },
  adi: { ...small, method: "deepinversion", synth: { ...bn10.synth, adi: 0.2 }, train: inv.train },
  statistical: { ...small, method: "statistical", ...feature10 },
  spectral: { ...small, method: "spectral", ...inv },
  spectral_stats: { ...small, method: "spectral", stats: "STATS", ...inv },
  statistical_stats: { ...small, method: "statistical", stats: "STATS", ...feature10 },
  noise: { ...small, method: "noise", ...inv },
  // past the synthesis warm-up (min(100, iterations / 10) = 4) and through periodic checkpoints
  deepinversion_long: { ...small, method: "deepinversion", checkpointEvery: 1, synth: { ...v0.synth, bn: 10, rounds: 2, batchSize: 16, iterations: 40 },
    train: { ...v0.train, stepsPerRound: 20, batchSize: 16 } },
  statistical_long: { ...small, method: "statistical", synth: { ...v0.synth, feature: 10, rounds: 2, batchSize: 16, iterations: 40, flip: false },
    train: { ...v0.train, stepsPerRound: 20, batchSize: 16, mixup: 0.5 } },
  adversarial: { ...small, method: "adversarial", adversarial: { epochs: 1, itersPerEpoch: 3, studentSteps: 2, batchSize: 16 },
    train: { ...v0.adversarial.train, batchSize: 16 }, generator: v0.adversarial.generator },
  adversarial_dafl: { ...small, method: "adversarial", adversarial: { epochs: 1, itersPerEpoch: 3, studentSteps: 2, batchSize: 16 },
    train: { ...v0.adversarial.train, batchSize: 16, loss: "kl" }, generator: { ...v0.adversarial.generator, onehot: 1, activation: 0.1, entropy: 5, bn: 1 } },
};

export async function record(only) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "dfkd-ref-"));
  const stats = path.join(dir, "mnist.stats.safetensors");
  const out = {};
  const st = await dfkd.stats({ teacher: TEACHER, data: mnist(0, 256), output: stats, threads: 1 });
  out.stats = { samples: st.samples, layers: st.layers.length, sha256: statsHash(stats) };
  for (const [name, cfg] of Object.entries(CASES)) {
    if (only && !only.includes(name)) continue;
    const outDir = path.join(dir, name);
    const r = await dfkd.distill({ ...cfg, stats: cfg.stats ? stats : undefined, outDir });
    out[name] = {
      losses: r.losses, studentSteps: r.studentSteps, synthesized: r.synthesized, evaluation: r.evaluation,
      student: hash(path.join(outDir, "student.pt")),
      ...(cfg.method === "adversarial" ? { generator: hash(path.join(outDir, "generator.pt")) } : {}),
    };
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const t0 = Date.now();
  const r = await record(process.argv.slice(3).length ? process.argv.slice(3) : undefined);
  writeFileSync(process.argv[2] ?? "reference.json", JSON.stringify(r, null, 1) + "\n");
  console.log(`${Object.keys(r).length} cases in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
