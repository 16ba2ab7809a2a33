#!/usr/bin/env node
// The cost of data parallelism on the CPU (issue 17): the same job, same global batches and sizes,
// as one process with 2 threads and as 2 local ranks with 1 thread each (`dfkd distill --nproc 2`,
// c10d Gloo on 127.0.0.1), on the bundled MNIST teacher. Per method: the synthesis and training
// seconds of both (rank 0's report), their ratio, and rank 0's time in collectives (all-reduces and
// broadcasts, issue to completion: the transfer and the wait for the slower rank) as a fraction of
// its whole job. On 2 cores the ideal is a ratio of 1 (the same cores, split another way): what is
// above it is the price of the collectives and of the smaller per-rank batches.
// Results: <out>/dist.json (rows with provenance) and <out>/dist.md.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { environment } from "./run.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const USAGE = `usage: node bench/dist.mjs [--methods deepinversion,fast,classical] [--repeats N] [--out DIR]
  --methods a,b   methods to time (default deepinversion,fast,classical)
  --repeats N     runs of each side, alternating; medians (default 3)
  --out DIR       results folder (default bench/results)`;

// Explicit sizes (no budget: both sides do the same work), about 30-60 s a run on 2 cores.
const JOBS = {
  deepinversion: { method: "deepinversion", synth: { rounds: 4, iterations: 100, batchSize: 256 }, train: { stepsPerRound: 50, batchSize: 256 } },
  fast: { method: "fast", synth: { rounds: 40, batchSize: 256 }, train: { stepsPerRound: 10, batchSize: 256 } },
  classical: { method: "classical", train: { steps: 400, batchSize: 256 } },
};

function parseArgs(argv) {
  const o = { methods: Object.keys(JOBS), repeats: 3, out: path.join(ROOT, "bench", "results"), argv };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = () => argv[++i];
    if (a === "--methods") o.methods = String(v()).split(",").filter(Boolean);
    else if (a === "--repeats") o.repeats = Number(v());
    else if (a === "--out") o.out = path.resolve(v());
    else { console.error(`dist: unknown option ${a}\n${USAGE}`); process.exit(2); }
  }
  for (const m of o.methods) if (!JOBS[m]) { console.error(`dist: no job for method ${m}\n${USAGE}`); process.exit(2); }
  return o;
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const imp = (f) => import(pathToFileURL(path.join(ROOT, "dist", f)).href);
  const [index, presets] = await Promise.all([imp("index.js"), imp("presets.js")]);
  if (!index.runtime().distributed) throw new Error("this build has no c10d Gloo group (apt install libgloo-dev, rebuild)");
  if (!presets.hasMnist()) throw new Error(`MNIST not found at ${presets.mnistDir()}`);
  const split = presets.mnistSplit();
  const work = path.join(ROOT, "bench", "work", "dist");
  mkdirSync(work, { recursive: true });
  mkdirSync(o.out, { recursive: true });
  const command = ["node", "bench/dist.mjs", ...o.argv].join(" ");
  const file = path.join(o.out, "dist.json");
  const results = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : { rows: {} };
  const run = (name, side) => {
    const out = path.join(work, `${name}-${side}`);
    mkdirSync(out, { recursive: true });
    const cfg = { teacher: index.BUNDLED_TEACHER, student: "lenet5_half", seed: 0, test: split.val, outDir: out,
      threads: side === "1x2" ? 2 : 1, output: { samples: false }, ...JOBS[name], ...(name === "classical" ? { data: split.train } : {}) };
    const cfgFile = path.join(out, "config.json");
    writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));
    const args = [path.join(ROOT, "dist", "cli.js"), "distill", "-c", cfgFile, "--json", "-q", ...(side === "2x1" ? ["--nproc", "2"] : [])];
    const r = spawnSync(process.execPath, args, { encoding: "utf8", maxBuffer: 1 << 28 });
    const last = r.stdout.trim().split("\n").reverse().find((l) => l.startsWith('{"type":"report"'));
    if (!last) throw new Error(`${name} ${side} failed (${r.status}): ${r.stderr.slice(-600)}`);
    return JSON.parse(last);
  };
  for (const name of o.methods) {
    const sides = { "1x2": [], "2x1": [] };
    for (let k = 0; k < o.repeats; k++)
      for (const side of ["1x2", "2x1"]) {
        process.stderr.write(`dist: ${name} ${side === "1x2" ? "1 process x 2 threads" : "2 ranks x 1 thread"} (${k + 1}/${o.repeats}) ... `);
        const rep = run(name, side);
        sides[side].push(rep);
        process.stderr.write(`${rep.timings.total.toFixed(1)} s, ${(rep.evaluation.studentAccuracy * 100).toFixed(2)}%\n`);
      }
    const phase = (side, k) => median(sides[side].map((r) => r.timings[k] ?? 0));
    const phases = ["synthesize", "train", "total"].filter((k) => phase("1x2", k) > 0);
    const coll = sides["2x1"].map((r) => r.distributed.collectives);
    const row = {
      method: name, job: JOBS[name], repeats: o.repeats,
      seconds: Object.fromEntries(phases.map((k) => [k, { oneProcess: phase("1x2", k), twoRanks: phase("2x1", k), ratio: phase("2x1", k) / phase("1x2", k) }])),
      collectives: { count: median(coll.map((c) => c.count)), megabytes: median(coll.map((c) => c.megabytes)), seconds: median(coll.map((c) => c.seconds)),
        fractionOfJob: median(sides["2x1"].map((r) => r.distributed.collectives.seconds / r.timings.total)) },
      accuracy: { oneProcess: median(sides["1x2"].map((r) => r.evaluation.studentAccuracy)), twoRanks: median(sides["2x1"].map((r) => r.evaluation.studentAccuracy)) },
      runs: Object.fromEntries(Object.entries(sides).map(([s, rs]) => [s, rs.map((r) => ({ timings: r.timings, studentAccuracy: r.evaluation.studentAccuracy, distributed: r.distributed }))])),
      ...environment(index, 2), threads: { oneProcess: 2, perRank: 1 }, command,
    };
    results.rows[name] = row;
    writeFileSync(file, JSON.stringify(results, null, 2) + "\n");
  }
  writeFileSync(path.join(o.out, "dist.md"), table(results));
  process.stderr.write(`dist: wrote ${path.relative(ROOT, file)} and dist.md\n`);
}

function table(results) {
  let md = "# Data parallelism on the CPU (bench/dist.mjs)\n\nThe same job (bundled MNIST teacher -> LeNet-5-half, explicit sizes, same global batches) as one process with 2 threads and as `--nproc 2` with 1 thread a rank (c10d Gloo, 127.0.0.1), on 2 cores: medians over the repeats of rank 0's report. *collectives*: rank 0's seconds from issuing each all-reduce or broadcast to its completion (the transfer and the wait for the other rank), as a share of its whole job. Accuracy on the validation rows (a check, not a result).\n\n| method | job | phase: 1 process x 2 threads / 2 ranks x 1 thread (ratio) | collectives (count, MB, s) | collectives / job | accuracy 1 process / 2 ranks | provenance |\n|---|---|---|---|---:|---|---|\n";
  for (const r of Object.values(results.rows)) {
    const ph = Object.entries(r.seconds).map(([k, v]) => `${k} ${v.oneProcess.toFixed(1)} / ${v.twoRanks.toFixed(1)} s (${v.ratio.toFixed(2)})`).join("; ");
    const c = r.collectives;
    md += `| ${r.method} | \`${JSON.stringify(r.job)}\` | ${ph} | ${c.count}, ${c.megabytes.toFixed(1)} MB, ${c.seconds.toFixed(2)} s | ${(100 * c.fractionOfJob).toFixed(1)}% | ${(100 * r.accuracy.oneProcess).toFixed(2)}% / ${(100 * r.accuracy.twoRanks).toFixed(2)}% | ${r.date.slice(0, 16)} UTC, ${r.commit}, ${r.cpu}${r.isa ? ` ${r.isa}` : ""} (${r.cores} cores), \`${r.command}\` |\n`;
  }
  return md;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main().catch((e) => { console.error(e); process.exit(1); });
