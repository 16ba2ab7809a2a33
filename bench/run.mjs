#!/usr/bin/env node
// dfkd benchmarks (GitHub issue 6):
//   accuracy  every method on real data: the bundled MNIST LeNet-5 teacher distilled into
//             LeNet-5-half, scored on the report rows 8500..9999, or with --split val on the
//             validation rows 7000..8499 where presets are chosen (src/splits.ts; presets:
//             bench/presets.json)
//   speed     ours (the native "bench" job: the production loops) against the same loops in eager
//             PyTorch-Python (bench/reference.py), alternating, repeated, medians, ratio ours/eager
//   all       both;  report  only rewrites README.md and accuracy.png from the JSON results
// Results: <out>/accuracy.json, speed.json, README.md, accuracy.png (default out: bench/results).
// Needs the built addon and dist/ (npm install; npx tsc -p tsconfig.json).
import { spawn, spawnSync, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";
import { barChart, lineChart, PALETTE } from "./plot.mjs";
import { pythonEnv } from "../scripts/libtorch.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const rel = (p) => path.relative(ROOT, p) || ".";

const USAGE = `usage: node bench/run.mjs <accuracy|speed|all|report> [options]   (npm run bench -- <...>)
  --quick            every row for a few steps (CI): checks the pipeline and the output format
  --out DIR          results folder (default bench/results)
  --work DIR         scratch folder: students, stats files, the ResNet teacher
                     (default bench/work, or DIR/work with --out)
  --threads N        CPU threads for ours and for the eager reference (default 2)
  --seeds a,b        accuracy: run each row once per seed; the row gives the mean, and the
                     spread between seeds (default 0)
  --eval-every N     accuracy: evaluate the student every N student steps (time to accuracy: each
                     run keeps its curve of accuracy against the job's seconds, evaluations excluded;
                     the table gains time to 95/97/98%, and time-to-accuracy.png the curves)
  --split val|report accuracy: score on the validation rows (7000..8499, for choosing presets;
                     written to accuracy.val.json) or the report rows (8500..9999, the table;
                     accuracy.json). Default report. Splits: src/splits.ts
  --only a,b         only the rows whose id contains one of these strings; other rows already in
                     the results JSON are kept (accuracy ids: the keys of bench/presets.json;
                     speed ids: lenet5/deepinversion/b64, resnet8/classical/b256, ...)
  --repeats N        speed: alternating ours/eager measurements per row, medians (default 5)
  --min-iters N      speed: at least N timed iterations per measurement (default 5)
  --batches a,b      speed: batch sizes (default 64,256)
  --seconds S        speed: timed seconds aimed at per measurement (default 2)
  --warmup N         speed: untimed iterations before each measurement (default 3)
  --teachers a,b     speed: lenet5,resnet8 (default both)
  --kinds a,b        speed: deepinversion,spectral,adversarial,dafl,classical (default all;
                     dafl: adversarial with DAFL's terms and the BN term in the generator loss)
  --variants a,b     speed: extra sides per row that separate the causes of the gain (default
                     eager-malloc,ours-system; "none" for none): eager-malloc = eager with
                     GLIBC_TUNABLES set to dfkd's malloc settings; ours-system = ours with
                     DFKD_MALLOC=system (no caching allocator, no malloc settings); ours-jit =
                     ours with DFKD_JIT_OPTIMIZE=1; ours-nojit = ours with DFKD_JIT_OPTIMIZE=0;
                     ours-bf16-cl = ours with precision bf16 and channelsLast (for GPUs)
  --loss-tol X       speed: relative tolerance for ours vs eager losses (default 1e-3)
  --device D         speed: cpu (default) or cuda[:N], for both sides (eager: bench/reference.py on
                     the same device; its random draws stay on the CPU generator, ours draw on the
                     device's, so on a GPU the two sides' losses are not expected to agree)`;

function parseArgs(argv) {
  const o = { cmd: argv[0], quick: false, threads: 2, seeds: [0], evalEvery: 0, split: "report", repeats: 5, minIters: 5, batches: [64, 256], seconds: 2, warmup: 3,
    teachers: ["lenet5", "resnet8"], kinds: ["deepinversion", "spectral", "adversarial", "dafl", "classical"], only: [],
    variants: ["eager-malloc", "ours-system"], lossTol: 1e-3, device: "cpu" };
  const list = (v) => String(v ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  const pos = (v, name) => {
    const n = Number(v);
    if (!(n > 0)) usage(`${name} needs a positive number, got ${v}`);
    return n;
  };
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i], v = () => argv[++i];
    if (a === "--quick") o.quick = true;
    else if (a === "--out") o.out = path.resolve(v() ?? usage("--out needs a folder"));
    else if (a === "--work") o.work = path.resolve(v() ?? usage("--work needs a folder"));
    else if (a === "--threads") o.threads = Math.round(pos(v(), a));
    else if (a === "--seeds") {
      o.seeds = list(v()).map(Number);
      if (!o.seeds.length || !o.seeds.every((x) => Number.isInteger(x) && x >= 0)) usage("--seeds needs integers >= 0, e.g. 0,1,2");
    }
    else if (a === "--repeats") o.repeats = Math.round(pos(v(), a));
    else if (a === "--min-iters") o.minIters = Math.round(pos(v(), a));
    else if (a === "--eval-every") o.evalEvery = Math.round(pos(v(), a));
    else if (a === "--split") {
      o.split = v();
      if (!["val", "report"].includes(o.split)) usage("--split needs val or report");
    }
    else if (a === "--device") o.device = v();
    else if (a === "--variants") o.variants = list(v()).filter((x) => x !== "none");
    else if (a === "--loss-tol") o.lossTol = pos(v(), a);
    else if (a === "--batches") o.batches = list(v()).map((b) => Math.round(pos(b, a)));
    else if (a === "--seconds") o.seconds = pos(v(), a);
    else if (a === "--warmup") {
      o.warmup = Math.round(Number(v()));
      if (!(o.warmup >= 0)) usage("--warmup needs a number >= 0");
    }
    else if (a === "--teachers") o.teachers = list(v());
    else if (a === "--kinds") o.kinds = list(v());
    else if (a === "--only") o.only = list(v());
    else if (a === "-h" || a === "--help") { console.log(USAGE); process.exit(0); }
    else usage(`unknown option ${a}`);
  }
  if (!["accuracy", "speed", "all", "report"].includes(o.cmd)) usage(o.cmd ? `unknown command ${o.cmd}` : "");
  o.out ??= path.join(ROOT, "bench", "results");
  o.work ??= o.out === path.join(ROOT, "bench", "results") ? path.join(ROOT, "bench", "work") : path.join(o.out, "work");
  if (o.quick) Object.assign(o, { repeats: 1, batches: [8], warmup: 1, minIters: 2 });
  for (const x of o.variants) if (!VARIANTS[x]) usage(`unknown variant ${x} (${Object.keys(VARIANTS).join(", ")})`);
  o.argv = argv;
  return o;
}

function usage(msg) {
  if (msg) console.error(`bench: ${msg}`);
  console.error(USAGE);
  process.exit(2);
}

// ---- the library (built) ----------------------------------------------------------------------

async function loadDfkd() {
  const dist = path.join(ROOT, "dist");
  if (!existsSync(path.join(dist, "index.js")))
    throw new Error("dist/ is missing: build the TypeScript first (npx tsc -p tsconfig.json, or npm run build:ts)");
  const imp = (f) => import(pathToFileURL(path.join(dist, f)).href);
  const [index, native, presets] = await Promise.all([imp("index.js"), imp("native.js"), imp("presets.js")]);
  return { ...index, native: native.native, ...presets };
}

const LOAD_AT_START = os.loadavg();
/** The widest x86 vector ISA of this CPU: libtorch picks its kernels (and so the rounding of every
 * result) by it, and two machines with one model name can differ (seen: "AMD EPYC" with and
 * without AVX-512). */
function cpuIsa() {
  try {
    const flags = ` ${(readFileSync("/proc/cpuinfo", "utf8").match(/^flags\s*:(.*)$/m) ?? ["", ""])[1]} `;
    return flags.includes(" avx512f ") ? "AVX-512" : flags.includes(" avx2 ") ? "AVX2" : "older than AVX2";
  } catch { return "?"; }
}
export function environment(dfkd, threads) {
  const git = (...a) => {
    try { return execFileSync("git", a, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim(); } catch { return ""; }
  };
  // bench/results/ is this program's own output: an earlier `--only` row must not mark the next one dirty
  const dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/results") ? "+dirty" : "";
  const rt = dfkd.runtime();
  return {
    date: new Date().toISOString(), commit: git("rev-parse", "--short", "HEAD") + dirty, cpu: os.cpus()[0]?.model ?? "?", isa: cpuIsa(),
    cores: os.cpus().length, memGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)), threads, libtorch: rt.torch, node: process.version, platform: `${os.platform()} ${os.arch()}`,
    loadavg: LOAD_AT_START.map((x) => Number(x.toFixed(2))),
  };
}

/** Every option of this run, as parsed (defaults included), and the command line that made it. */
function options(o) {
  const { argv: _a, out, work, ...rest } = o;
  return { ...rest, out: rel(out), work: rel(work) };
}
const commandLine = (o) => ["node", "bench/run.mjs", ...o.argv].map((a) => (/^[\w./,:=@+-]+$/.test(a) ? a : JSON.stringify(a))).join(" ");
/** A row's provenance: commit (+dirty), date, machine, threads, versions, the command and all its options. */
function provenance(dfkd, o) {
  return { ...environment(dfkd, o.threads), command: commandLine(o), options: options(o) };
}

const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v) && !ArrayBuffer.isView(v);
function merge(a, b) {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = isObj(v) && isObj(out[k]) ? merge(out[k], v) : v;
  return out;
}
const selected = (id, only) => !only.length || only.some((s) => id.includes(s));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Curves [[seconds, accuracy], ...] (one per run) -> mean seconds to reach `bar` over the runs that did, and how many did. */
export function timeTo(curves, bar) {
  const ts = curves.map((c) => c.find(([, a]) => a >= bar)?.[0]).filter((v) => v !== undefined);
  return { seconds: ts.length ? ts.reduce((a, b) => a + b, 0) / ts.length : null, reached: ts.length, runs: curves.length };
}
export const TIME_TO_BARS = [0.95, 0.97, 0.98];
/** A timeTo() result in a table cell: "78 s (3/3)" or "— (0/3)". */
export const timeToCell = (t) => `${t.seconds === null ? "—" : `${t.seconds.toFixed(0)} s`} (${t.reached}/${t.runs})`;

function readJson(file) {
  try { return JSON.parse(readFileSync(file, "utf8")); } catch { return undefined; }
}
/** Rows of a previous result of the same mode, not re-run now, are kept (--only). */
function mergeRows(file, quick, rows, order) {
  const prev = readJson(file);
  const keep = prev && prev.quick === quick ? prev.rows.filter((r) => !rows.some((n) => n.id === r.id)) : [];
  const all = [...keep, ...rows];
  const rank = (id) => { const i = order.indexOf(id); return i < 0 ? order.length : i; };
  return all.sort((a, b) => rank(a.id) - rank(b.id));
}

// ---- accuracy ---------------------------------------------------------------------------------

// Published MNIST numbers, quoted FROM MEMORY of the DAFL paper (Chen et al., "Data-Free Learning
// of Student Networks", ICCV 2019, Table 1): not verified against the paper. Full MNIST (60,000
// training images, 10,000 test), LeNet-5 teacher, LeNet-5-half student.
export const PUBLISHED = {
  note: "quoted from memory of the DAFL paper (Chen et al., ICCV 2019, Table 1) and NOT verified against it; full MNIST (60,000 train / 10,000 test), so not directly comparable with this 7,000 / 3,000 split. DFAD's (Fang et al., 2019) MNIST result is not verified either and is not quoted.",
  teacher: { value: 98.91, what: "DAFL paper: LeNet-5 teacher" },
  rows: {
    classical: { value: 98.81, what: "DAFL paper: KD with data" },
    adversarial: { value: 98.2, what: "DAFL paper: DAFL student; DFAD's own number not verified, not quoted" },
  },
};

/** Tiny explicit sizes for --quick: every row runs a few steps only, whatever method auto picks. */
export function quickConfig(cfg) {
  const { budget: _budget, ...c } = cfg;
  c.train = { ...c.train, steps: 5, stepsPerRound: 2, batchSize: 16 };
  c.synth = { ...c.synth, rounds: 1, iterations: 2, batchSize: 16 };
  c.adversarial = { ...c.adversarial, epochs: 1, itersPerEpoch: 2, batchSize: 16, studentSteps: 1 };
  c.generator = { ...c.generator, ngf: 8 };
  return c;
}

async function accuracy(dfkd, o) {
  const presets = readJson(path.join(ROOT, "bench", "presets.json"));
  if (!presets) throw new Error("bench/presets.json is missing or not JSON");
  const order = Object.keys(presets).filter((k) => !k.startsWith("$"));
  const names = order.filter((k) => selected(k, o.only));
  const dir = dfkd.mnistDir();
  if (!dfkd.hasMnist(dir)) throw new Error(`MNIST (t10k IDX files) not found in ${dir}: set DFKD_MNIST to its folder`);
  const split = dfkd.mnistSplit(dir);
  // Presets are chosen on the validation rows (--split val); the table reports the report rows.
  const scored = { name: o.split, rows: dfkd.rowsLabel(o.split), samples: dfkd.MNIST_SPLITS[o.split].end - dfkd.MNIST_SPLITS[o.split].start,
    use: dfkd.MNIST_SPLITS[o.split].use };
  const testSet = o.split === "val" ? split.val : split.test;
  const file = path.join(o.out, o.split === "val" ? "accuracy.val.json" : "accuracy.json");
  const work = path.join(o.work, o.split === "val" ? "accuracy-val" : "accuracy");
  mkdirSync(work, { recursive: true });
  let stats, statsSeconds;
  const rows = [];
  const save = () => {
    const all = mergeRows(file, o.quick, rows, order);
    const result = {
      kind: "accuracy", quick: o.quick, split: o.split, env: provenance(dfkd, o),
      setting: {
        teacher: `models/mnist_lenet5.pt (LeNet-5 with BN, trained by scripts/train_teacher.py on MNIST rows ${dfkd.rowsLabel("teacher")})`,
        student: "lenet5_half", test: `MNIST t10k rows ${scored.rows} (${o.split} split, ${fmtNum(scored.samples)} images)`,
        data: `MNIST t10k rows ${dfkd.rowsLabel("teacher")} (classical only)`,
        splits: Object.fromEntries(Object.entries(dfkd.MNIST_SPLITS).map(([k, v]) => [k, { rows: dfkd.rowsLabel(k), use: v.use }])),
        mnist: dir, teacherAccuracy: all.find((r) => r.teacherAccuracy !== undefined && r.split?.name === o.split)?.teacherAccuracy,
      },
      published: PUBLISHED, rows: all,
    };
    writeFileSync(file, JSON.stringify(result, null, 2) + "\n");
    return result;
  };
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  for (const name of names) {
    const p = presets[name];
    const overrides = Object.fromEntries(Object.entries(p).filter(([k]) => !k.startsWith("$")));
    const method = overrides.method ?? name;
    let cfg = merge({ teacher: dfkd.BUNDLED_TEACHER, student: "lenet5_half", method, seed: 0, threads: o.threads,
      test: testSet, outDir: path.join(work, name), ...(o.evalEvery > 0 ? { evalEvery: o.evalEvery } : {}) }, overrides);
    if (method === "classical") cfg.data ??= split.train;
    if (p.$stats) {
      if (!stats) {
        // The data owner's published statistics: computed on the teacher's training split.
        stats = path.join(work, o.quick ? "teacher.quick.stats.safetensors" : "teacher.stats.safetensors");
        const t = performance.now();
        await dfkd.stats({ teacher: dfkd.BUNDLED_TEACHER, data: o.quick ? { ...split.train, end: 512 } : split.train, output: stats, threads: o.threads });
        statsSeconds = (performance.now() - t) / 1000;
      }
      cfg.stats = stats;
    }
    if (o.quick) cfg = quickConfig(cfg);
    // The full config given to distill (the core's defaults fill the rest; report.json records them),
    // dataset specs with their rows, and the seeds in place of the one seed.
    const { seed: _s, ...given } = cfg;
    const config = { ...given, seeds: o.seeds };
    const runs = [];
    let r, error;
    for (const seed of o.seeds) {
      process.stdout.write(`accuracy ${name}: ${method}${o.seeds.length > 1 ? `, seed ${seed}` : ""} ... `);
      const t0 = performance.now();
      try {
        r = await dfkd.distill({ ...cfg, seed, outDir: o.seeds.length > 1 ? `${cfg.outDir}-seed${seed}` : cfg.outDir });
      } catch (e) {  // a failed row (e.g. E_NAN with a tuned preset) is recorded; the others still run
        error = `${e.code ?? "E_INTERNAL"}: ${e.message}${o.seeds.length > 1 ? ` (seed ${seed})` : ""}`;
        console.log(`FAILED ${e.code ?? ""} ${e.message}`);
        break;
      }
      const wall = (performance.now() - t0) / 1000;
      const ev = r.evaluation ?? {};
      runs.push({ seed, studentAccuracy: ev.studentAccuracy, agreement: ev.agreement, wallSeconds: wall,
        ...(o.evalEvery > 0 ? { curve: (r.evals ?? []).map((e) => [+e.elapsed.toFixed(2), e.studentAccuracy]) } : {}) });
      console.log(`top-1 ${pct(ev.studentAccuracy)}, agreement ${pct(ev.agreement)}, ${fmtTime(wall)}, ${r.synthesized} synthesized`);
    }
    if (error) {
      rows.push({ id: name, label: p.$label ?? name, method, threads: o.threads, seeds: o.seeds, split: scored, error, date: new Date().toISOString(),
        provenance: provenance(dfkd, o), config });
      save();
      continue;
    }
    const ev = r.evaluation ?? {};
    const accs = runs.map((x) => x.studentAccuracy);
    // With several seeds: the mean over seeds, with every run beside it (the spread is the noise of one run).
    const prov = provenance(dfkd, o);
    rows.push({
      id: name, label: p.$label ?? name, method, threads: o.threads, seeds: o.seeds, commit: prov.commit, split: scored,
      studentAccuracy: mean(accs), agreement: mean(runs.map((x) => x.agreement)),
      ...(runs.length > 1 || o.evalEvery > 0 ? { studentAccuracyMin: Math.min(...accs), studentAccuracyMax: Math.max(...accs), runs } : {}),
      ...(o.evalEvery > 0 ? { evalEvery: o.evalEvery, timeTo: Object.fromEntries(TIME_TO_BARS.map((b) => [b, timeTo(runs.map((x) => x.curve), b)])) } : {}),
      teacherAccuracy: ev.teacherAccuracy, testSamples: ev.samples, wallSeconds: mean(runs.map((x) => x.wallSeconds)), timings: r.timings,
      synthesized: r.synthesized, realImages: method === "classical" ? 7000 : 0, studentSteps: r.studentSteps,
      statsSeconds: p.$stats ? statsSeconds : undefined, date: prov.date, provenance: prov, config,
      ...(r.config ? { effectiveConfig: r.config } : {}),
    });
    save();
  }
  return save();
}

// ---- speed ------------------------------------------------------------------------------------

// The speed rows' synthesis: each method's recipe (from the addon: both sides get every key) with
// ImageNet's BN weight for deepinversion and a unit spectral weight.
const DI_SYNTH = { bn: 0.01 };
const SPECTRAL_SYNTH = { spectral: 1 };
const GENERATOR = { nz: 100, ngf: 64, optimizer: "adam", lr: 1e-3, schedule: "none", loss: "l1", adversarial: 1 };

function speedKinds(dfkd) {
  const recipe = dfkd.defaults().methods;  // the student side of each method's recipe (native/core/methods)
  const adversarial = { unit: "iterations/s (5 student steps + 1 generator step)",
    cfg: { train: recipe.adversarial.train, adversarial: { studentSteps: 5 }, generator: GENERATOR } };
  return {
    deepinversion: { unit: "synthesis iterations/s", cfg: { synth: { ...recipe.deepinversion.synth, ...DI_SYNTH } } },
    spectral: { unit: "synthesis iterations/s", stats: true, cfg: { synth: { ...recipe.spectral.synth, ...SPECTRAL_SYNTH } } },
    adversarial,
    // DAFL's terms (weights of DAFL_train.py) and DeepInversion's BN term in the generator loss: the
    // eager reference computes each of them, so their values are cross-checked term by term.
    dafl: { ...adversarial, engine: "adversarial",
      cfg: { ...adversarial.cfg, generator: { ...GENERATOR, onehot: 1, activation: 0.1, entropy: 5, bn: 1 } } },
    classical: { unit: "KD steps/s", cfg: { train: { ...recipe.classical.train, cropPadding: 0, flip: false } } },
  };
}

function speedTeachers(dfkd, work) {
  return {
    lenet5: { label: "LeNet-5 → LeNet-5-half (1x28x28)", teacher: dfkd.BUNDLED_TEACHER, teacherArch: "lenet5", student: "lenet5_half", inputShape: [1, 28, 28] },
    resnet8: { label: "ResNet-8 → ResNet-8 (3x32x32)", teacher: path.join(work, "resnet8_teacher.pt"), teacherArch: "resnet8", student: "resnet8", inputShape: [3, 32, 32] },
  };
}

const PYTHON = process.env.PYTHON || "python3";

// dfkd's process-level malloc settings (native/addon/addon.cpp, on glibc): one arena, a fixed 32 MB
// mmap threshold, no trimming below 1 GB. Eager PyTorch gets the same through glibc's tunables.
const DFKD_MALLOC_TUNABLES = "glibc.malloc.arena_max=1:glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824";

/**
 * Extra sides of a speed row, each in its own process, to separate the causes of the gain:
 * ours without its allocator settings, eager with them, ours with the TorchScript executor's
 * specialization forced on or off.
 */
export const VARIANTS = {
  "eager-malloc": { side: "eager", label: "eager, dfkd's malloc settings", env: { GLIBC_TUNABLES: DFKD_MALLOC_TUNABLES } },
  "ours-system": { side: "ours", label: "ours, DFKD_MALLOC=system", env: { DFKD_MALLOC: "system" } },
  "ours-jit": { side: "ours", label: "ours, DFKD_JIT_OPTIMIZE=1", env: { DFKD_JIT_OPTIMIZE: "1" } },
  "ours-nojit": { side: "ours", label: "ours, DFKD_JIT_OPTIMIZE=0", env: { DFKD_JIT_OPTIMIZE: "0" } },
  // the GPU options (issue 18): bf16 autocast changes the losses by up to about 1%
  "ours-bf16-cl": { side: "ours", label: "ours, bf16 autocast + channels-last", env: {}, config: { precision: "bf16", channelsLast: true }, lossTol: 0.03 },
};

/**
 * A long-lived child that answers one JSON line per measurement: bench/reference.py serve (eager),
 * or this program's serve-ours (ours in a process of its own, for the variants' environments).
 */
class LineServer {
  constructor(name, cmd, args, env) {
    this.name = name;
    this.proc = spawn(cmd, args, { env, stdio: ["pipe", "pipe", "inherit"] });
    this.pending = [];
    readline.createInterface({ input: this.proc.stdout }).on("line", (line) => {
      const p = this.pending.shift();
      if (!p) return;
      try {
        const m = JSON.parse(line);
        m.ok ? p.resolve(m.result) : p.reject(new Error(`${name}: ${m.error}`));
      } catch { p.reject(new Error(`${name}: unexpected output: ${line.slice(0, 200)}`)); }
    });
    const dead = (why) => { for (const p of this.pending.splice(0)) p.reject(new Error(`${name} ${why}`)); };
    this.proc.on("exit", (code) => dead(`exited (code ${code})`));
    this.proc.on("error", (e) => dead(`failed to start: ${e.message}`));
  }
  run(config) {
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.proc.stdin.write(JSON.stringify({ config }) + "\n");
    });
  }
  close() { this.proc.stdin.end(); }
}

const eagerServer = (name, extraEnv = {}) =>
  new LineServer(`eager reference (${PYTHON} bench/reference.py${Object.keys(extraEnv).length ? ", " + Object.entries(extraEnv).map(([k, v]) => `${k}=${v}`).join(" ") : ""})`,
    PYTHON, [path.join(ROOT, "bench", "reference.py"), "serve"], { ...pythonEnv(), ...extraEnv });
const oursServer = (name, extraEnv) =>
  new LineServer(`ours (${Object.entries(extraEnv).map(([k, v]) => `${k}=${v}`).join(" ")})`,
    process.execPath, [fileURLToPath(import.meta.url), "serve-ours"], { ...process.env, ...extraEnv });

/** `node bench/run.mjs serve-ours`: runs native bench jobs from JSON lines on stdin (the variants' process). */
async function serveOurs() {
  const dfkd = await loadDfkd();
  for await (const line of readline.createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    let out;
    try {
      out = { ok: true, result: await dfkd.native().runJob("bench", JSON.parse(line).config, () => {}).promise };
    } catch (e) {
      out = { ok: false, error: `${e.code ? e.code + ": " : ""}${e.message}` };
    }
    process.stdout.write(JSON.stringify(out) + "\n");
  }
}

function gaussian(n, seed) {  // mulberry32 + Box-Muller: the stats data of the speed rows
  let s = seed >>> 0;
  const u = () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297; };
  const x = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u())), a = 2 * Math.PI * u();
    x[i] = r * Math.cos(a);
    if (i + 1 < n) x[i + 1] = r * Math.sin(a);
  }
  return x;
}

const relDiff = (a, b) => Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-12);

/**
 * Every loss both sides report (each term, the totals, the lr), first and last iteration: ours
 * against eager, relative difference, within `tol`. Keys reported by one side only are listed.
 */
export function compareLosses(ours, eager, tol, [A, B] = ["ours", "eager"]) {
  const onlyA = `only${A[0].toUpperCase()}${A.slice(1)}`, onlyB = `only${B[0].toUpperCase()}${B.slice(1)}`;
  const out = { tolerance: tol, match: true, maxRelDiff: 0, compared: 0, [onlyA]: [], [onlyB]: [] };
  for (const when of ["first", "last"]) {
    const a = ours?.[when] ?? {}, b = eager?.[when] ?? {};
    out[when] = {};
    for (const k of Object.keys(a).sort()) {
      if (!(k in b)) { if (!out[onlyA].includes(k)) out[onlyA].push(k); continue; }
      const d = relDiff(a[k], b[k]);
      out[when][k] = { [A]: a[k], [B]: b[k], relDiff: d };
      out.compared++;
      out.maxRelDiff = Math.max(out.maxRelDiff, d);
      if (!(d <= tol)) out.match = false;
    }
    for (const k of Object.keys(b)) if (!(k in a) && !out[onlyB].includes(k)) out[onlyB].push(k);
  }
  if (out.compared === 0) out.match = false;
  return out;
}

const spread = (xs) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), samples: xs });

/**
 * One speed row: calibration, then `repeats` rounds over every side (ours, eager, the variants),
 * the order rotated every round; each measurement times at least --min-iters iterations. Medians
 * with min and max; the losses of every side compared with its counterpart.
 */
async function measure(base, o, sides) {
  let iterations = o.minIters;
  let calibration;
  if (!o.quick) {
    // Calibration (also warms both processes up): one timed iteration after the warm-up on each
    // side, not recorded; then as many iterations as make the slower side last about --seconds,
    // and never fewer than --min-iters.
    const cal = { ...base, iterations: 1 };
    const [a, e] = [await sides.ours(cal), await sides.eager(cal)];
    calibration = { oursSeconds: a.seconds, eagerSeconds: e.seconds };
    iterations = Math.max(o.minIters, Math.min(1000, Math.round(o.seconds / Math.max(a.seconds, e.seconds))));
  }
  const cfg = { ...base, iterations };
  const names = Object.keys(sides);
  const samples = Object.fromEntries(names.map((n) => [n, []])), losses = {}, torch = {};
  for (let r = 0; r < o.repeats; r++) {
    const order = names.map((_, i) => names[(i + r) % names.length]);
    for (const side of order) {
      const res = await sides[side](cfg);
      samples[side].push(res.itersPerSec);
      losses[side] ??= { first: res.firstLosses, last: res.lastLosses };
      if (res.torch) torch[side] = res.torch;
      process.stdout.write(".");
    }
  }
  const mo = median(samples.ours), me = median(samples.eager);
  const key = base.kind === "adversarial" || base.kind === "dafl" ? "g_generator" : base.kind === "classical" ? "student" : "total";
  const lo = losses.ours?.first?.[key], le = losses.eager?.first?.[key];
  const variants = {};
  for (const n of names.filter((x) => VARIANTS[x])) {
    const v = VARIANTS[n];
    variants[n] = { label: v.label, env: v.env, ...spread(samples[n]),
      // same math as its side's default: the losses must agree with it as closely as ours with eager
      losses: compareLosses(losses[n], losses[v.side], v.lossTol ?? o.lossTol, [n, v.side]) };
  }
  return {
    warmup: base.warmup, iterations, repeats: o.repeats, minIters: o.minIters, seconds: o.seconds, calibration,
    ours: spread(samples.ours), eager: spread(samples.eager), ratio: mo / me, variants,
    ratios: Object.fromEntries(Object.entries(variants).map(([n, v]) => [n, VARIANTS[n].side === "ours" ? v.median / me : mo / v.median])),
    firstLoss: { key, ours: lo, eager: le, relDiff: lo !== undefined && le !== undefined ? relDiff(lo, le) : null },
    losses: compareLosses(losses.ours, losses.eager, o.lossTol),
    eagerTorch: torch.eager,
  };
}

async function speed(dfkd, o) {
  const kinds = speedKinds(dfkd), teachers = speedTeachers(dfkd, o.work);
  for (const t of o.teachers) if (!teachers[t]) usage(`unknown teacher ${t} (${Object.keys(teachers).join(", ")})`);
  for (const k of o.kinds) if (!kinds[k]) usage(`unknown kind ${k} (${Object.keys(kinds).join(", ")})`);
  const order = [];
  for (const t of Object.keys(teachers)) for (const k of Object.keys(kinds)) for (const b of [8, 64, 256, ...o.batches]) order.push(`${t}/${k}/b${b}`);
  const plan = [];
  for (const t of o.teachers) for (const k of o.kinds) for (const b of o.batches) {
    const id = `${t}/${k}/b${b}`;
    if (selected(id, o.only)) plan.push({ id, t, k, b });
  }
  mkdirSync(o.work, { recursive: true });
  if (plan.some((p) => p.t === "resnet8") && !existsSync(teachers.resnet8.teacher)) {
    const r = spawnSync(PYTHON, [path.join(ROOT, "bench", "reference.py"), "make-teacher", teachers.resnet8.teacher], { env: pythonEnv(), encoding: "utf8" });
    if (r.status !== 0) throw new Error(`could not make the ResNet-8 teacher: ${r.stderr || r.error}`);
  }
  const statsFor = {};
  for (const t of new Set(plan.filter((p) => kinds[p.k].stats).map((p) => p.t))) {
    // Spectral targets: the teacher's statistics on Gaussian images (values do not change the speed).
    const out = path.join(o.work, `${t}.noise.stats.safetensors`);
    if (!existsSync(out)) {
      const shape = [256, ...teachers[t].inputShape];
      await dfkd.stats({ teacher: teachers[t].teacher, data: { x: gaussian(shape.reduce((a, b) => a * b), 1), shape }, output: out, threads: o.threads });
    }
    statsFor[t] = out;
  }
  const servers = { eager: eagerServer("eager") };
  for (const n of o.variants) servers[n] = VARIANTS[n].side === "eager" ? eagerServer(n, VARIANTS[n].env) : oursServer(n, VARIANTS[n].env);
  const sides = { ours: (cfg) => dfkd.native().runJob("bench", cfg, () => {}).promise };
  for (const [n, srv] of Object.entries(servers)) sides[n] = (cfg) => srv.run({ ...cfg, ...VARIANTS[n]?.config });
  const rows = [];
  const save = () => {
    const result = {
      kind: "speed", quick: o.quick, env: provenance(dfkd, o),
      method: "per row: calibration, then `repeats` rounds over every side (ours, eager and the variants, each variant in its own process), the order rotated every round; each measurement builds its models, runs `warmup` untimed iterations, then times `iterations` (at least `minIters`); medians of iterations/s with min and max; ratio = ours / eager",
      variants: Object.fromEntries(o.variants.map((n) => [n, VARIANTS[n]])),
      rows: mergeRows(path.join(o.out, "speed.json"), o.quick, rows, order),
    };
    writeFileSync(path.join(o.out, "speed.json"), JSON.stringify(result, null, 2) + "\n");
    return result;
  };
  try {
    for (const { id, t, k, b } of plan) {
      const T = teachers[t];
      const engine = kinds[k].engine ?? k;
      // adversarial: after 2 iterations every graph (generator with and without grad, student, teacher)
      // has run at least twice, so the profiling executor has specialized it; its iterations are slow.
      const warmup = engine === "adversarial" ? Math.min(o.warmup, 2) : o.warmup;
      const base = { kind: engine, teacher: T.teacher, teacherArch: T.teacherArch, student: T.student, inputShape: T.inputShape,
        threads: o.threads, device: o.device, seed: 0, batchSize: b, warmup, ...kinds[k].cfg, ...(kinds[k].stats ? { stats: statsFor[t] } : {}) };
      process.stdout.write(`speed ${id}: `);
      const head = { id, teacher: t, label: T.label, kind: k, unit: kinds[k].unit, batchSize: b, threads: o.threads };
      try {
        const m = await measure(base, o, sides);
        const prov = provenance(dfkd, o);
        const row = { ...head, ...m, date: prov.date, commit: prov.commit, provenance: prov, config: base };
        rows.push(row);
        console.log(` ours ${fmtRate(row.ours.median)}, eager ${fmtRate(row.eager.median)} ${kinds[k].unit}: ratio ${row.ratio.toFixed(2)}; ` +
          `losses ${row.losses.match ? "agree" : "DIFFER"} (${row.losses.compared} compared, max rel. diff ${row.losses.maxRelDiff.toExponential(1)})`);
      } catch (e) {  // recorded; the other rows still run
        rows.push({ ...head, error: `${e.code ? e.code + ": " : ""}${e.message}`, date: new Date().toISOString(), provenance: provenance(dfkd, o), config: base });
        console.log(` FAILED ${e.message}`);
      }
      save();
    }
  } finally {
    for (const srv of Object.values(servers)) srv.close();
  }
  return save();
}

// ---- report -----------------------------------------------------------------------------------

const pct = (x) => (x === undefined || x === null ? "n/a" : `${(100 * x).toFixed(2)}%`);
function fmtTime(s) {
  if (s === undefined || s === null) return "n/a";
  if (s < 60) return `${s.toFixed(1)} s`;
  const r = Math.round(s);  // (299.6 s is 5 min 00 s, not 4 min 60 s)
  return `${Math.floor(r / 60)} min ${String(r % 60).padStart(2, "0")} s`;
}
const fmtRate = (x) => (x === undefined || x === null || !Number.isFinite(x) ? "n/a" : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const fmtNum = (n) => n.toLocaleString("en-US");
const fmtLoss = (x) => (x === undefined || x === null ? "n/a" : Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(3) : x.toFixed(4));

export const COMMANDS = [
  ["setup", "npm install && npx tsc -p tsconfig.json"],
  ["everything (roughly an hour on 2 idle cores, an estimate)", "npm run bench -- all"],
  ["the accuracy table and plot", "npm run bench -- accuracy"],
  ["one accuracy row (others in accuracy.json are kept)", "npm run bench -- accuracy --only deepinversion"],
  ["one accuracy row as the mean over 3 seeds (the spectral row of the table)", "npm run bench -- accuracy --only spectral --seeds 0,1,2"],
  ["choosing a preset: score on the validation rows (accuracy.val.json), never on the report rows", "npm run bench -- accuracy --split val --only spectral --seeds 0,1,2"],
  ["the speed table (with the variants that separate the causes)", "npm run bench -- speed --threads 2 --repeats 5 --min-iters 5 --batches 64,256"],
  ["one speed row", "npm run bench -- speed --only lenet5/deepinversion/b64"],
  ["CI smoke test (every row, a few steps)", "npm run bench -- all --quick --out /tmp/dfkd-bench-quick"],
  ["rewrite README.md and accuracy.png from the JSON", "npm run bench -- report"],
];

function envLine(env) {
  return `${env.date.slice(0, 16).replace("T", " ")} UTC, commit ${env.commit || "?"}, ${env.cpu}${env.isa ? ` ${env.isa}` : ""} (${env.cores} cores), ${env.threads} threads, libtorch ${env.libtorch}, Node ${env.node}, load average at start ${env.loadavg.join(" / ")}`;
}

/** Where a row was scored: the split, and for rows measured before the split, that presets were chosen there. */
function scoredOn(r) {
  const s = r.split;
  if (!s) return "?";
  if (s.name === "report") return `report rows ${s.rows}`;
  if (s.name === "val") return `validation rows ${s.rows}`;
  return `rows ${s.rows}: presets chosen on them too (pending a re-run)`;
}
/** A row's provenance in one cell: rebuilt rows say so; others give their date and commit. */
function provenanceCell(r) {
  const when = `${(r.date ?? "?").slice(0, 10)}, ${r.provenance?.commit ?? r.commit ?? "—"}`;
  if (r.rebuilt) return `**rebuilt** ${r.rebuilt} (${when})`;
  if (r.provenanceMissing) return `${when}; not recorded: ${r.provenanceMissing.join(", ")}`;
  return when;
}

function accuracyTable(L, acc) {
  const s = acc.setting;
  // time to 95/97/98%: a column when some row was run with --eval-every
  const tt = acc.rows.some((r) => r.timeTo);
  const ttCell = (r) => (tt ? ` ${r.timeTo ? TIME_TO_BARS.map((b) => timeToCell(r.timeTo[b])).join(" / ") : "not measured"} |` : "");
  L.push(`| method | top-1 | agreement with teacher | wall time |${tt ? " time to 95 / 97 / 98% (reached/runs) |" : ""} synthesized images | published (unverified) | seeds: min–max top-1 | scored on | provenance |`,
    `| --- | ---: | ---: | ---: |${tt ? " --- |" : ""} ---: | --- | --- | --- | --- |`,
    `| **teacher** LeNet-5 | ${pct(s.teacherAccuracy)} | — | — |${tt ? " — |" : ""} — | ${acc.published.teacher.value.toFixed(2)}% (${acc.published.teacher.what}) | — | | |`);
  for (const r of acc.rows) {
    const pub = acc.published.rows[r.id];
    if (r.error) {
      L.push(`| ${r.label} | failed: ${r.error.replace(/\|/g, "/").slice(0, 160)} | | |${tt ? " |" : ""} | ${pub ? `${pub.value.toFixed(2)}% (${pub.what})` : "—"} | | ${scoredOn(r)} | ${provenanceCell(r)} |`);
      continue;
    }
    const synth = r.method === "classical" ? `— (${fmtNum(r.realImages)} real)` : fmtNum(r.synthesized);
    const over = r.wallSeconds > 900 ? " (over 15 min)" : "";
    const seeds = r.runs?.length > 1 ? `${r.runs.length} seeds (${r.seeds.join(", ")}): ${pct(r.studentAccuracyMin)}–${pct(r.studentAccuracyMax)}` : `1 (seed ${r.seeds?.[0] ?? 0})`;
    L.push(`| ${r.label} | ${pct(r.studentAccuracy)} | ${pct(r.agreement)} | ${fmtTime(r.wallSeconds)}${over} |${ttCell(r)} ${synth} | ${pub ? `${pub.value.toFixed(2)}% (${pub.what})` : "—"} | ${seeds} | ${scoredOn(r)} | ${provenanceCell(r)} |`);
  }
}

const range = (m) => `${fmtRate(m.median)} (${fmtRate(m.min ?? m.median)}–${fmtRate(m.max ?? m.median)})`;
function lossCell(r) {
  const l = r.losses;
  if (!l) {  // rows measured before every loss was compared: the first one only
    const fl = r.firstLoss;
    return fl.relDiff === null ? "n/a" : `first only: ${fmtLoss(fl.ours)} / ${fmtLoss(fl.eager)} ${fl.relDiff < 1e-3 ? "(match)" : "(**differ**)"}`;
  }
  const first = l.first?.[r.firstLoss?.key], last = l.last?.[r.firstLoss?.key];
  const show = (x) => (x ? `${fmtLoss(x.ours)} / ${fmtLoss(x.eager)}` : "n/a");
  return `${l.match ? "match" : "**differ**"}: ${l.compared} values, max rel. diff ${l.maxRelDiff.toExponential(1)} (tol. ${l.tolerance}); ${r.firstLoss?.key} first ${show(first)}, last ${show(last)}`;
}

export function renderReadme(acc, spd, val) {
  const L = ["# dfkd benchmarks", "",
    "Written by `node bench/run.mjs` (see [Reproduce](#reproduce)); the numbers are in `accuracy.json` and `speed.json`, each row with its provenance " +
    "(commit and whether the tree was clean, date, machine, threads, versions, the full config and the command that made it).", ""];
  if (acc?.quick || spd?.quick)
    L.push("> **Quick mode** (`--quick`): every row ran for a few steps only. These numbers check the pipeline and the format; they are not results.", "");
  L.push("## Accuracy: MNIST, LeNet-5 teacher → LeNet-5-half student", "");
  if (!acc) L.push("Not run yet: `npm run bench -- accuracy`.", "");
  else {
    L.push("MNIST here is the 10,000-image t10k set, split once for the whole project (`src/splits.ts`): rows 0..6999 trained the teacher " +
      "`models/mnist_lenet5.pt` (LeNet-5 with BatchNorm) and are the with-data baseline's data and the published stats file's; rows 7000..8499 are the " +
      "**validation** rows, on which every choice (presets, recipe options, test thresholds) is made (`--split val`, written to `accuracy.val.json`); " +
      "rows 8500..9999 are the **report** rows, which only this table looks at. " +
      "Data-free rows never see an MNIST image; *spectral* uses the teacher's published `dfkd stats` file (computed on its training rows), *classical* trains on the 7,000 training images. " +
      "Sizes per row: `bench/presets.json`. Wall time: the whole job (load, synthesis, training, evaluation) on " + `${acc.env.threads} CPU threads.`, "");
    const legacy = acc.rows.filter((r) => r.split?.name === "tuned-on");
    if (legacy.length)
      L.push(`> **Pending a re-run.** ${legacy.length === acc.rows.length ? "Every row below was" : `${legacy.length} rows below were`} measured before the split existed: ` +
        "scored on rows 7000..9999, **the same rows the presets were chosen on** (the flip per row, ADI's weight, the rounds), so these are not held-out figures. " +
        "They stay until `npm run bench -- accuracy --seeds 0,1,2` re-runs the table on the report rows with presets chosen on the validation rows.", "");
    if (acc.rows.some((r) => r.rebuilt))
      L.push("Rows marked **rebuilt** were reconstructed from the runs' report.json files, which record no date, commit, threads or config: those fields were filled in by hand.", "");
    L.push(`Latest run: ${envLine(acc.env)}${acc.env.command ? `, \`${acc.env.command}\`` : ""}. Each row carries its own provenance in \`accuracy.json\` (last column).`, "",
      "Rows run with several seeds (`--seeds`) give the mean over the seeds (wall time: per run) and, in the seeds column, the lowest and highest single run.", "");
    accuracyTable(L, acc);
    const st = acc.rows.find((r) => r.statsSeconds !== undefined);
    if (st) L.push("", `The teacher's stats file (\`dfkd stats\` on its training images, done once by the data owner) took ${fmtTime(st.statsSeconds)}; it is not in the wall times.`);
    L.push("", `Published numbers: ${acc.published.note}`, "", "![top-1 per method](accuracy.png)", "");
  }
  if (val) {
    L.push("### Validation rows (for choosing presets; not results)", "",
      `\`accuracy.val.json\`: scored on the validation rows ${val.rows[0]?.split?.rows ?? "7000..8499"}. Latest: ${envLine(val.env)}.`, "");
    accuracyTable(L, val);
    L.push("");
  }
  L.push("## Speed: ours (libtorch C++ behind N-API) vs the same loops in eager PyTorch-Python", "");
  if (!spd) L.push("Not run yet: `npm run bench -- speed`.", "");
  else {
    const rows = spd.rows.filter((r) => !r.error);
    const legacy = rows.filter((r) => !r.losses);
    L.push("*Ours* is the native `bench` job (`native/core/bench.cpp`): it times the production code paths themselves " +
      "(`InputSynthesizer::run` for deepinversion/spectral, `GeneratorSynth::sample/step` + `student_step` for adversarial and dafl, `student_step` for classical). " +
      "*Eager* is `bench/reference.py`: the same loops as a PyTorch user writes them (nn.Module, forward hooks on the BN layers, torch.optim), identical math and hyper-parameters, " +
      "same thread count, same batch. " + spd.method + ".", "",
      "Both sides initialize the models as the zoo does and draw every random number from a CPU generator with the same seed in the same order, so they compute the same numbers: " +
      "the *losses* column compares every loss both sides report (each term, the totals, the lr) at the first iteration (a warm-up one) and at the last, a check that the math is the same before the speed is believed. " +
      "Where the last values *differ* beyond the tolerance while the first agree exactly, the two sides drifted apart over the timed iterations (float rounding that differs between a TorchScript graph and Python's op order, amplified by the optimization: most on the long batch-64 runs and the adversarial loops, whose generator maximizes the very disagreement); a different formula would already show at the first iteration.", "");
    if (legacy.length)
      L.push(`> **Pending a re-run.** ${legacy.length === rows.length ? "Every row below was" : `${legacy.length} rows were`} measured by an older harness: ` +
        "with the repeats shown (the documented default is 5), the adversarial rows timed 1 iteration per measurement, `--seconds` was not recorded, " +
        "only the first loss was compared, and no variant separated the causes of the gain. Where the min–max ranges of ours and eager overlap, the ratio is not established.", "");
    L.push(`Run: ${envLine(spd.env)}${spd.env.command ? `, \`${spd.env.command}\`` : ""}.`, "",
      "Run it on an otherwise idle machine: when other processes compete for the cores, libtorch's worker threads get preempted and both sides slow down erratically (seen: 100x at 2 threads on 2 busy cores).", "",
      "| teacher → student | loop | batch | unit | ours (min–max) | eager PyTorch (min–max) | **ours / eager** | measurements | losses ours / eager |",
      "| --- | --- | ---: | --- | ---: | ---: | ---: | --- | --- |");
    for (const r of spd.rows) {
      if (r.error) {
        L.push(`| ${r.label} | ${r.kind} | ${r.batchSize} | ${r.unit} | failed: ${r.error.replace(/\|/g, "/").slice(0, 160)} | | | | |`);
        continue;
      }
      const lo = (x) => x.min ?? Math.min(...x.samples), hi = (x) => x.max ?? Math.max(...x.samples);
      const overlap = lo(r.ours) <= hi(r.eager) && lo(r.eager) <= hi(r.ours) ? " (ranges overlap)" : "";
      const rng = (side) => (side.min === undefined ? `${fmtRate(side.median)} (${side.samples.map(fmtRate).join(", ")})` : range(side));
      L.push(`| ${r.label} | ${r.kind} | ${r.batchSize} | ${r.unit} | ${rng(r.ours)} | ${rng(r.eager)} | **${r.ratio.toFixed(2)}**${overlap} | ${r.repeats} × ${r.iterations} it (+${r.warmup} warm-up) | ${lossCell(r)} |`);
    }
    const withVariants = rows.filter((r) => r.variants && Object.keys(r.variants).length);
    if (withVariants.length) {
      const names = [...new Set(withVariants.flatMap((r) => Object.keys(r.variants)))];
      L.push("", "### Where the gain comes from", "",
        "Both sides run the same libtorch kernels. Ours has no Python between the ops, runs the TorchScript graphs without the profiling executor's specialization (except the adversarial loops), " +
        "sets malloc to one arena, a fixed 32 MB mmap threshold and no trimming below 1 GB, and replaces libtorch's CPU allocator by a cache of large blocks (`native/core/alloc.h`). " +
        "The variants, each in a process of its own, take these apart: *eager-malloc* is eager PyTorch with the same malloc settings through `GLIBC_TUNABLES` " +
        "(what a PyTorch user can get without dfkd; the block cache has no such switch); *ours-system* is ours with `DFKD_MALLOC=system` (neither the malloc settings nor the cache). " +
        "Ratios: ours / eager-malloc (what is left once eager has the malloc settings) and ours-system / eager (what is left without the allocator work).", "",
        `| teacher → student | loop | batch | ours | eager | ${names.map((n) => `${VARIANTS[n]?.label ?? n}`).join(" | ")} | ours / eager | ${names.map((n) => (VARIANTS[n]?.side === "ours" ? `${n} / eager` : `ours / ${n}`)).join(" | ")} | variants' losses |`,
        `| --- | --- | ---: | ---: | ---: | ${names.map(() => "---:").join(" | ")} | ---: | ${names.map(() => "---:").join(" | ")} | --- |`);
      for (const r of withVariants) {
        const v = names.map((n) => (r.variants[n] ? range(r.variants[n]) : "—"));
        const q = names.map((n) => (r.ratios?.[n] !== undefined ? r.ratios[n].toFixed(2) : "—"));
        const lm = names.map((n) => r.variants[n]?.losses).filter(Boolean);
        L.push(`| ${r.label} | ${r.kind} | ${r.batchSize} | ${range(r.ours)} | ${range(r.eager)} | ${v.join(" | ")} | ${r.ratio.toFixed(2)} | ${q.join(" | ")} | ${lm.every((x) => x.match) ? "match" : "**differ**"} |`);
      }
    } else {
      L.push("", "Where the difference comes from: not separated in this run (no `--variants`). See the main README, \"Two process-level settings\".");
    }
    L.push("", "ResNet-8 teacher: random weights with BN statistics from a few passes on noise (`bench/reference.py make-teacher`), student: the zoo's `resnet8`. " +
      "Spectral targets: `dfkd stats` of each teacher on 256 Gaussian images (values do not change the speed). Classical: batches drawn from a fixed pool of Gaussian images, no augmentation. " +
      "*dafl*: the adversarial loop with DAFL's terms (one-hot 1, activation 0.1, entropy 5) and the BN term (1) in the generator loss.", "");
  }
  L.push("## Reproduce", "", "From the repository root, with MNIST in `../shared/data/mnist` (or `DFKD_MNIST=...`):", "", "```sh");
  for (const [what, cmd] of COMMANDS) L.push(`# ${what}`, cmd);
  L.push("```", "", "Options: `node bench/run.mjs --help`.", "");
  return L.join("\n");
}

function report(o) {
  const acc = readJson(path.join(o.out, "accuracy.json")), spd = readJson(path.join(o.out, "speed.json"));
  const val = readJson(path.join(o.out, "accuracy.val.json"));
  writeFileSync(path.join(o.out, "README.md"), renderReadme(acc, spd, val));
  if (acc) {
    const bars = acc.rows.map((r) => ({ label: r.id, value: r.studentAccuracy === undefined ? null : 100 * r.studentAccuracy,
      color: r.method === "classical" ? [120, 120, 120] : r.method === "noise" ? [190, 150, 60] : [66, 110, 190] }));
    const lines = [];
    if (acc.setting.teacherAccuracy !== undefined) lines.push({ value: 100 * acc.setting.teacherAccuracy, label: "teacher LeNet-5, top-1", color: [200, 40, 40] });
    const legacy = acc.rows.some((r) => r.split?.name === "tuned-on");
    writeFileSync(path.join(o.out, "accuracy.png"), barChart({
      title: `MNIST: LeNet-5 -> LeNet-5-half${acc.quick ? " (QUICK MODE)" : ""}${legacy ? " (PENDING RE-RUN)" : ""}`,
      subtitle: legacy ? `top-1 (%) on rows 7000..9999, the rows the presets were tuned on; threads ${acc.env.threads}, ${acc.env.date.slice(0, 10)}`
        : `top-1 (%) on ${acc.rows[0]?.testSamples ?? "?"} images (${acc.rows[0]?.split?.name} rows ${acc.rows[0]?.split?.rows}), threads ${acc.env.threads}, ${acc.env.date.slice(0, 10)}, commit ${acc.env.commit}`,
      bars, lines,
    }));
    // Time to accuracy (--eval-every): every run's curve, one colour per row.
    const curved = acc.rows.filter((r) => r.runs?.some((x) => x.curve?.length));
    if (curved.length) {
      const series = curved.flatMap((r, i) => r.runs.filter((x) => x.curve?.length).map((x) => ({
        label: r.id, color: PALETTE[i % PALETTE.length], points: x.curve.map(([t, a]) => [t, a * 100]) })));
      const first = curved[0];
      writeFileSync(path.join(o.out, "time-to-accuracy.png"), lineChart({
        title: `MNIST LeNet-5 -> half: top-1 vs time${acc.quick ? " (QUICK)" : ""}`,
        xMax: Math.max(...curved.flatMap((r) => r.runs.map((x) => x.wallSeconds))), series,
        subtitle: `${first.split?.name} rows ${first.split?.rows}, ${acc.env.threads} threads, evaluated every ${first.evalEvery} student steps (not counted), one line per seed; commit ${acc.env.commit}, ${acc.env.date.slice(0, 10)}`,
      }));
    }
  }
}

async function main() {
  if (process.argv[2] === "serve-ours") return serveOurs();  // a child of the speed benchmark (--variants)
  const o = parseArgs(process.argv.slice(2));
  mkdirSync(o.out, { recursive: true });
  const load = os.loadavg()[0], cores = os.cpus().length;
  if (o.cmd !== "report" && !o.quick && load > 0.5 * cores)
    console.warn(`bench: warning: load average ${load.toFixed(1)} on ${cores} cores: other processes compete for the CPU. ` +
      "Timings will be noisy, and multi-threaded libtorch can slow down many times over when its threads are preempted.");
  const t0 = performance.now();
  if (o.cmd !== "report") {
    const dfkd = await loadDfkd();
    if (o.cmd === "accuracy" || o.cmd === "all") await accuracy(dfkd, o);
    if (o.cmd === "speed" || o.cmd === "all") await speed(dfkd, o);
  }
  report(o);
  console.log(`bench: wrote ${rel(o.out)}/{${["accuracy.json", "speed.json", "README.md", "accuracy.png", "time-to-accuracy.png"].filter((f) => existsSync(path.join(o.out, f))).join(",")}} in ${fmtTime((performance.now() - t0) / 1000)}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`\nbench: ${e.code ? e.code + ": " : ""}${e.message}`);
    process.exit(1);
  });
}
