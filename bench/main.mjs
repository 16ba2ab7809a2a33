#!/usr/bin/env node
// The main job (README quick start, `npm run main`: the bundled LeNet-5, method auto, a 1-minute
// budget, lenet5_half, scored on the report rows) once per seed, one after another: writes
// bench/results/main.json (a row per seed with its provenance, and the mean). Run it on an
// otherwise idle machine (the budget sizes each run by the measured pace).
// Usage: node bench/main.mjs [--seeds 0,1,2] [--out DIR]
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { environment } from "./run.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const argv = process.argv.slice(2);
const opt = (name, def) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : def; };
const seeds = opt("--seeds", "0,1,2").split(",").map(Number);
const out = path.resolve(opt("--out", path.join(ROOT, "bench", "results")));
const dfkd = await import(path.join(ROOT, "dist", "index.js"));

const rows = [];
for (const seed of seeds) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `dfkd-main-s${seed}-`));
  const args = ["dist/cli.js", "distill", "--default", "--seed", String(seed), "-o", dir, "-q"];
  const env = environment(dfkd, 2);  // (the main job's threads: the library's default, 2 here)
  execFileSync(process.execPath, args, { cwd: ROOT, stdio: "inherit" });
  const r = JSON.parse(readFileSync(path.join(dir, "report.json"), "utf8"));
  const row = {
    seed, studentAccuracy: r.evaluation.studentAccuracy, teacherAccuracy: r.evaluation.teacherAccuracy,
    agreement: r.evaluation.agreement, split: "report (rows 8500..9999)", seconds: r.timings.total, budget: r.budget,
    method: r.method, methodChoice: r.methodChoice, studentSteps: r.studentSteps, synthesized: r.synthesized,
    timings: r.timings, ...env, reportCommit: r.commit, command: `node ${args.join(" ")}`, config: r.config,
  };
  console.log(`main job, seed ${seed}: ${(row.studentAccuracy * 100).toFixed(2)}% in ${row.seconds.toFixed(1)} s`);
  rows.push(row);
}
const mean = rows.reduce((a, r) => a + r.studentAccuracy, 0) / rows.length;
writeFileSync(path.join(out, "main.json"), JSON.stringify({
  $comment: [
    "The main job (README quick start: npm run main = the bundled LeNet-5, method auto, budget 1m, lenet5_half),",
    "one run per seed, one after another on an idle machine (node bench/main.mjs). A budgeted run's sizes follow",
    "the measured pace, so it is not bit-reproducible. Earlier rows: git history of this file.",
  ],
  mean, rows,
}, null, 2) + "\n");
console.log(`main job: mean ${(mean * 100).toFixed(2)}% over seeds ${seeds.join(", ")}`);
