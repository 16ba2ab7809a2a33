// Records the reliability figures of README "Reliability": resident memory over 50 short jobs
// in one process, and event-loop timer lag while jobs run. Writes bench/results/reliability.json.
// Usage: node bench/reliability.mjs   (after npm install / npm run fixtures; ~30 s on 2 cores)
// The lag figures depend on what else the machine runs: the load average is recorded with them.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { distill, runtime, BUNDLED_TEACHER } from "../dist/index.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const fx = (n) => path.join(ROOT, "test", "fixtures", n);
const tmp = () => mkdtempSync(path.join(os.tmpdir(), "dfkd-rel-"));
const mb = (b) => Math.round((b / 2 ** 20) * 10) / 10;
const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

// ---- RSS over 50 short jobs ---------------------------------------------------------------------
async function rssOverJobs(n = 50) {
  const out = tmp();
  const rss = [];
  const t0 = Date.now();
  for (let i = 0; i < n; i++) {
    await distill({
      teacher: fx("tiny_bn.pt"), student: "resnet8", method: "classical", outDir: out, seed: i, threads: 1,
      data: { images: fx("blobs_x.npy"), labels: fx("blobs_y.npy") }, test: { images: fx("blobs_test_x.npy"), labels: fx("blobs_test_y.npy") },
      train: { steps: 3, batchSize: 16 },
    });
    rss.push(process.memoryUsage().rss);
  }
  const after10 = rss[9], last = rss[n - 1];
  return {
    job: "classical, tiny_bn teacher -> resnet8 student (built each job), 3 steps + test evaluation, threads 1",
    jobs: n,
    seconds: round((Date.now() - t0) / 1000, 1),
    rssMiB: { afterJob1: mb(rss[0]), afterJob10: mb(after10), afterJob50: mb(last), max: mb(Math.max(...rss)) },
    growthMiBJobs10to50: mb(last - after10),
    growthKiBPerJob: Math.round((last - after10) / 1024 / (n - 10)),
    perJobMiB: rss.map(mb),
  };
}

// ---- event-loop lag during a run ------------------------------------------------------------------
async function lagDuring(label, makeJobs) {
  const h = monitorEventLoopDelay({ resolution: 10 });
  const lags = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    lags.push(now - last - 10);
    last = now;
  }, 10);
  h.enable();
  const t0 = Date.now();
  await Promise.all(makeJobs());
  const seconds = (Date.now() - t0) / 1000;
  h.disable();
  clearInterval(timer);
  lags.sort((a, b) => a - b);
  const mean = lags.reduce((s, x) => s + x, 0) / lags.length;
  return {
    run: label,
    seconds: round(seconds, 1),
    timer10ms: { ticks: lags.length, meanLagMs: round(mean), p99LagMs: round(lags[Math.floor(lags.length * 0.99)]), maxLagMs: round(lags.at(-1)) },
    // its samples include the 10 ms resolution timer itself: the excess over 10 ms is the lag
    monitorEventLoopDelayExcess: { meanMs: round(h.mean / 1e6 - 10), p99Ms: round(h.percentile(99) / 1e6 - 10), maxMs: round(h.max / 1e6 - 10) },
  };
}

const deepinversion = (threads) => () => [distill({
  teacher: BUNDLED_TEACHER, method: "deepinversion", outDir: tmp(), threads, seed: 0,
  synth: { rounds: 4, iterations: 60, batchSize: 64 }, train: { stepsPerRound: 40, batchSize: 64 },
})];

const torch = runtime().torch;  // loads the addon (dlopen of libtorch: ~0.1 s) before measuring
const loadavgAtStart = round(os.loadavg()[0]);
const idle = await lagDuring("idle (no job), 2 s", () => [new Promise((r) => setTimeout(r, 2000))]);
const oneJob = await lagDuring("one DeepInversion job on the bundled MNIST teacher (4 rounds x 60 iterations, batch 64), threads 2", deepinversion(2));
const twoJobs = await lagDuring("two such jobs at once, threads 1 each", () => [...deepinversion(1)(), ...deepinversion(1)()]);
const rss = await rssOverJobs();

const git = (...a) => {
  try { return execFileSync("git", a, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim(); } catch { return ""; }
};
const result = {
  date: new Date().toISOString(),
  // bench/results/ is the benchmarks' own output: it does not make the tree dirty
  commit: git("rev-parse", "--short", "HEAD") + (git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/results") ? "+dirty" : ""),
  command: ["node", "bench/reliability.mjs", ...process.argv.slice(2)].join(" "),
  machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memGiB: round(os.totalmem() / 2 ** 30, 1), loadavg1m: { start: loadavgAtStart, end: round(os.loadavg()[0]) } },
  node: process.version,
  torch,
  rss,
  eventLoopLag: [idle, oneJob, twoJobs],
};
mkdirSync(path.join(ROOT, "bench", "results"), { recursive: true });
const file = path.join(ROOT, "bench", "results", "reliability.json");
writeFileSync(file, JSON.stringify(result, null, 2) + "\n");
const { perJobMiB, ...rssSummary } = rss;
console.log(JSON.stringify({ rss: rssSummary, eventLoopLag: result.eventLoopLag, machine: result.machine }, null, 2));
console.log("written to", path.relative(process.cwd(), file));
