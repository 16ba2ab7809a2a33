#!/usr/bin/env node
// dfkd benchmarks (GitHub issue 6):
//   accuracy  every method on real data: the bundled MNIST LeNet-5 teacher distilled into
//             LeNet-5-half, scored on the 3,000 held-out images (presets: bench/presets.json)
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
import { barChart } from "./plot.mjs";
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
  --only a,b         only the rows whose id contains one of these strings; other rows already in
                     the results JSON are kept (accuracy ids: the keys of bench/presets.json;
                     speed ids: lenet5/deepinversion/b64, resnet8/classical/b256, ...)
  --repeats N        speed: alternating ours/eager measurements per row, medians (default 5)
  --batches a,b      speed: batch sizes (default 64,256)
  --seconds S        speed: timed seconds aimed at per measurement (default 2)
  --warmup N         speed: untimed iterations before each measurement (default 3)
  --teachers a,b     speed: lenet5,resnet8 (default both)
  --kinds a,b        speed: deepinversion,spectral,adversarial,classical (default all)`;

function parseArgs(argv) {
  const o = { cmd: argv[0], quick: false, threads: 2, seeds: [0], repeats: 5, batches: [64, 256], seconds: 2, warmup: 3,
    teachers: ["lenet5", "resnet8"], kinds: ["deepinversion", "spectral", "adversarial", "classical"], only: [] };
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
  if (o.quick) Object.assign(o, { repeats: 1, batches: [8], warmup: 1 });
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
function environment(dfkd, threads) {
  const git = (...a) => {
    try { return execFileSync("git", a, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim(); } catch { return ""; }
  };
  // bench/results/ is this program's own output: an earlier `--only` row must not mark the next one dirty
  const dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/results") ? "+dirty" : "";
  const rt = dfkd.runtime();
  return {
    date: new Date().toISOString(), commit: git("rev-parse", "--short", "HEAD") + dirty, cpu: os.cpus()[0]?.model ?? "?",
    cores: os.cpus().length, threads, libtorch: rt.torch, node: process.version, platform: `${os.platform()} ${os.arch()}`,
    loadavg: LOAD_AT_START.map((x) => Number(x.toFixed(2))),
  };
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

/** Tiny sizes for --quick: every row runs a few steps only. */
export function quickConfig(cfg) {
  const c = { ...cfg };
  if (c.method === "classical") c.train = { ...c.train, steps: 5, batchSize: 16 };
  else if (c.method === "adversarial") {
    c.adversarial = { ...c.adversarial, epochs: 1, itersPerEpoch: 2, batchSize: 16, studentSteps: 1 };
    c.generator = { ...c.generator, ngf: 8 };
    c.train = { ...c.train, batchSize: 16 };
  } else {
    c.synth = { ...c.synth, rounds: 1, iterations: 2, batchSize: 16 };
    c.train = { ...c.train, stepsPerRound: 2, batchSize: 16 };
  }
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
  const work = path.join(o.work, "accuracy");
  mkdirSync(work, { recursive: true });
  let stats, statsSeconds;
  const rows = [];
  const save = () => {
    const all = mergeRows(path.join(o.out, "accuracy.json"), o.quick, rows, order);
    const result = {
      kind: "accuracy", quick: o.quick, env: environment(dfkd, o.threads),
      setting: {
        teacher: "models/mnist_lenet5.pt (LeNet-5 with BN, trained by scripts/train_teacher.py on MNIST rows 0..6999)",
        student: "lenet5_half", test: "MNIST t10k rows 7000..9999 (3,000 held-out images)", data: "MNIST t10k rows 0..6999 (classical only)",
        mnist: dir, teacherAccuracy: all.find((r) => r.teacherAccuracy !== undefined)?.teacherAccuracy,
      },
      published: PUBLISHED, rows: all,
    };
    writeFileSync(path.join(o.out, "accuracy.json"), JSON.stringify(result, null, 2) + "\n");
    return result;
  };
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const commit = environment(dfkd, o.threads).commit;  // the same for every row of this run
  for (const name of names) {
    const p = presets[name];
    const overrides = Object.fromEntries(Object.entries(p).filter(([k]) => !k.startsWith("$")));
    const method = overrides.method ?? name;
    let cfg = merge({ teacher: dfkd.BUNDLED_TEACHER, student: "lenet5_half", method, seed: 0, threads: o.threads,
      test: split.test, outDir: path.join(work, name) }, overrides);
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
    const { test: _t, data: _d, seed: _s, ...shown } = cfg;
    const config = { ...shown, data: cfg.data ? "MNIST rows 0..6999" : undefined, test: "MNIST rows 7000..9999" };
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
      runs.push({ seed, studentAccuracy: ev.studentAccuracy, agreement: ev.agreement, wallSeconds: wall });
      console.log(`top-1 ${pct(ev.studentAccuracy)}, agreement ${pct(ev.agreement)}, ${fmtTime(wall)}, ${r.synthesized} synthesized`);
    }
    if (error) {
      rows.push({ id: name, label: p.$label ?? name, method, threads: o.threads, seeds: o.seeds, error, date: new Date().toISOString(), config });
      save();
      continue;
    }
    const ev = r.evaluation ?? {};
    const accs = runs.map((x) => x.studentAccuracy);
    // With several seeds: the mean over seeds, with every run beside it (the spread is the noise of one run).
    rows.push({
      id: name, label: p.$label ?? name, method, threads: o.threads, seeds: o.seeds, commit,
      studentAccuracy: mean(accs), agreement: mean(runs.map((x) => x.agreement)),
      ...(runs.length > 1 ? { studentAccuracyMin: Math.min(...accs), studentAccuracyMax: Math.max(...accs), runs } : {}),
      teacherAccuracy: ev.teacherAccuracy, testSamples: ev.samples, wallSeconds: mean(runs.map((x) => x.wallSeconds)), timings: r.timings,
      synthesized: r.synthesized, realImages: method === "classical" ? 7000 : 0, studentSteps: r.studentSteps,
      statsSeconds: p.$stats ? statsSeconds : undefined, date: new Date().toISOString(), config,
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

function speedKinds(dfkd) {
  const recipe = dfkd.defaults().methods;  // the student side of each method's recipe (native/core/methods)
  return {
    deepinversion: { unit: "synthesis iterations/s", cfg: { synth: { ...recipe.deepinversion.synth, ...DI_SYNTH } } },
    spectral: { unit: "synthesis iterations/s", stats: true, cfg: { synth: { ...recipe.spectral.synth, ...SPECTRAL_SYNTH } } },
    adversarial: { unit: "iterations/s (5 student steps + 1 generator step)",
      cfg: { train: recipe.adversarial.train, adversarial: { studentSteps: 5 },
        generator: { nz: 100, ngf: 64, optimizer: "adam", lr: 1e-3, schedule: "none", loss: "l1", adversarial: 1 } } },
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

/** bench/reference.py serve: one long-lived Python process, one JSON line per measurement. */
class Reference {
  constructor() {
    this.proc = spawn(PYTHON, [path.join(ROOT, "bench", "reference.py"), "serve"], { env: pythonEnv(), stdio: ["pipe", "pipe", "inherit"] });
    this.pending = [];
    readline.createInterface({ input: this.proc.stdout }).on("line", (line) => {
      const p = this.pending.shift();
      if (!p) return;
      try {
        const m = JSON.parse(line);
        m.ok ? p.resolve(m.result) : p.reject(new Error(`eager reference: ${m.error}`));
      } catch { p.reject(new Error(`eager reference: unexpected output: ${line.slice(0, 200)}`)); }
    });
    const dead = (why) => { for (const p of this.pending.splice(0)) p.reject(new Error(`eager reference (${PYTHON} bench/reference.py) ${why}`)); };
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

/** One speed row: calibration, then `repeats` alternating (ours, eager) measurements, medians. */
async function measure(base, o, ours, eager) {
  let iterations = 1;
  if (!o.quick) {
    // Calibration (also warms both processes up): one timed iteration after the warm-up on each
    // side, not recorded; then as many iterations as make the slower side last about --seconds.
    const cal = { ...base, iterations: 1 };
    const [a, e] = [await ours(cal), await eager(cal)];
    iterations = Math.max(1, Math.min(1000, Math.round(o.seconds / Math.max(a.seconds, e.seconds))));
  }
  const cfg = { ...base, iterations };
  const samples = { ours: [], eager: [] }, first = {};
  for (let r = 0; r < o.repeats; r++) {
    for (const side of r % 2 ? ["eager", "ours"] : ["ours", "eager"]) {
      const res = side === "ours" ? await ours(cfg) : await eager(cfg);
      samples[side].push(res.itersPerSec);
      first[side] ??= res.firstLosses;
      process.stdout.write(".");
    }
  }
  const mo = median(samples.ours), me = median(samples.eager);
  const key = base.kind === "adversarial" ? "g_generator" : base.kind === "classical" ? "student" : "total";
  const lo = first.ours?.[key], le = first.eager?.[key];
  return {
    warmup: base.warmup, iterations, repeats: o.repeats, ours: { median: mo, samples: samples.ours }, eager: { median: me, samples: samples.eager },
    ratio: mo / me,
    firstLoss: { key, ours: lo, eager: le, relDiff: lo !== undefined && le !== undefined ? Math.abs(lo - le) / Math.max(Math.abs(lo), Math.abs(le), 1e-12) : null },
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
  const ref = new Reference();
  const ours = (cfg) => dfkd.native().runJob("bench", cfg, () => {}).promise;
  const rows = [];
  const save = () => {
    const result = {
      kind: "speed", quick: o.quick, env: environment(dfkd, o.threads),
      method: "per row: calibration, then `repeats` x (ours, eager) alternating (order swapped every repeat); each measurement builds its models, runs `warmup` untimed iterations, then times `iterations`; medians of iterations/s; ratio = ours / eager",
      rows: mergeRows(path.join(o.out, "speed.json"), o.quick, rows, order),
    };
    writeFileSync(path.join(o.out, "speed.json"), JSON.stringify(result, null, 2) + "\n");
    return result;
  };
  try {
    for (const { id, t, k, b } of plan) {
      const T = teachers[t];
      // adversarial: after 2 iterations every graph (generator with and without grad, student, teacher)
      // has run at least twice, so the profiling executor has specialized it; its iterations are slow.
      const warmup = k === "adversarial" ? Math.min(o.warmup, 2) : o.warmup;
      const base = { kind: k, teacher: T.teacher, teacherArch: T.teacherArch, student: T.student, inputShape: T.inputShape,
        threads: o.threads, seed: 0, batchSize: b, warmup, ...kinds[k].cfg, ...(kinds[k].stats ? { stats: statsFor[t] } : {}) };
      process.stdout.write(`speed ${id}: `);
      try {
        const m = await measure(base, o, ours, (cfg) => ref.run(cfg));
        const row = { id, teacher: t, label: T.label, kind: k, unit: kinds[k].unit, batchSize: b, threads: o.threads, ...m, date: new Date().toISOString() };
        rows.push(row);
        console.log(` ours ${fmtRate(row.ours.median)}, eager ${fmtRate(row.eager.median)} ${kinds[k].unit}: ratio ${row.ratio.toFixed(2)}`);
      } catch (e) {  // recorded; the other rows still run
        rows.push({ id, teacher: t, label: T.label, kind: k, unit: kinds[k].unit, batchSize: b, threads: o.threads,
          error: `${e.code ? e.code + ": " : ""}${e.message}`, date: new Date().toISOString() });
        console.log(` FAILED ${e.message}`);
      }
      save();
    }
  } finally {
    ref.close();
  }
  return save();
}

// ---- report -----------------------------------------------------------------------------------

const pct = (x) => (x === undefined || x === null ? "n/a" : `${(100 * x).toFixed(2)}%`);
function fmtTime(s) {
  if (s === undefined || s === null) return "n/a";
  if (s < 60) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, "0")} s`;
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
  ["the speed table", "npm run bench -- speed --threads 2 --repeats 5 --batches 64,256"],
  ["one speed row", "npm run bench -- speed --only lenet5/deepinversion/b64"],
  ["CI smoke test (every row, a few steps)", "npm run bench -- all --quick --out /tmp/dfkd-bench-quick"],
  ["rewrite README.md and accuracy.png from the JSON", "npm run bench -- report"],
];

function envLine(env) {
  return `${env.date.slice(0, 16).replace("T", " ")} UTC, commit ${env.commit || "?"}, ${env.cpu} (${env.cores} cores), ${env.threads} threads, libtorch ${env.libtorch}, Node ${env.node}, load average at start ${env.loadavg.join(" / ")}`;
}

export function renderReadme(acc, spd) {
  const L = ["# dfkd benchmarks", "",
    "Written by `node bench/run.mjs` (see [Reproduce](#reproduce)); the numbers are in `accuracy.json` and `speed.json`.", ""];
  if (acc?.quick || spd?.quick)
    L.push("> **Quick mode** (`--quick`): every row ran for a few steps only. These numbers check the pipeline and the format; they are not results.", "");
  L.push("## Accuracy: MNIST, LeNet-5 teacher → LeNet-5-half student", "");
  if (!acc) L.push("Not run yet: `npm run bench -- accuracy`.", "");
  else {
    const s = acc.setting;
    L.push(`Teacher \`models/mnist_lenet5.pt\` (LeNet-5 with BatchNorm) trained on MNIST rows 0..6999; every student is scored on the ${fmtNum(acc.rows[0]?.testSamples ?? 3000)} held-out images (rows 7000..9999). ` +
      "Data-free rows never see an MNIST image; *spectral* uses the teacher's published `dfkd stats` file (computed on its training rows), *classical* trains on the 7,000 training images. " +
      "Sizes per row: `bench/presets.json`. Wall time: the whole job (load, synthesis, training, evaluation) on " + `${acc.env.threads} CPU threads.`, "",
      `Latest run: ${envLine(acc.env)}. Rows from earlier runs (\`--only\` re-runs one row and keeps the others) carry their own date${acc.rows.some((r) => r.commit) ? " and commit" : ""} in \`accuracy.json\`.`, "",
      "Rows run with several seeds (`--seeds`) give the mean over the seeds (wall time: per run) and, in the last column, the lowest and highest single run.", "",
      "| method | held-out top-1 | agreement with teacher | wall time | synthesized images | published (unverified) | seeds: min–max top-1 |",
      "| --- | ---: | ---: | ---: | ---: | --- | --- |",
      `| **teacher** LeNet-5 | ${pct(s.teacherAccuracy)} | — | — | — | ${acc.published.teacher.value.toFixed(2)}% (${acc.published.teacher.what}) | — |`);
    for (const r of acc.rows) {
      const pub = acc.published.rows[r.id];
      if (r.error) {
        L.push(`| ${r.label} | failed: ${r.error.replace(/\|/g, "/").slice(0, 160)} | | | | ${pub ? `${pub.value.toFixed(2)}% (${pub.what})` : "—"} | |`);
        continue;
      }
      const synth = r.method === "classical" ? `— (${fmtNum(r.realImages)} real)` : fmtNum(r.synthesized);
      const over = r.wallSeconds > 900 ? " (over 15 min)" : "";
      const seeds = r.runs ? `${r.runs.length} seeds (${r.seeds.join(", ")}): ${pct(r.studentAccuracyMin)}–${pct(r.studentAccuracyMax)}` : `1 (seed ${r.seeds?.[0] ?? 0})`;
      L.push(`| ${r.label} | ${pct(r.studentAccuracy)} | ${pct(r.agreement)} | ${fmtTime(r.wallSeconds)}${over} | ${synth} | ${pub ? `${pub.value.toFixed(2)}% (${pub.what})` : "—"} | ${seeds} |`);
    }
    const st = acc.rows.find((r) => r.statsSeconds !== undefined);
    if (st) L.push("", `The teacher's stats file (\`dfkd stats\` on its training images, done once by the data owner) took ${fmtTime(st.statsSeconds)}; it is not in the wall times.`);
    L.push("", `Published numbers: ${acc.published.note}`, "", "![held-out top-1 per method](accuracy.png)", "");
  }
  L.push("## Speed: ours (libtorch C++ behind N-API) vs the same loops in eager PyTorch-Python", "");
  if (!spd) L.push("Not run yet: `npm run bench -- speed`.", "");
  else {
    L.push("*Ours* is the native `bench` job (`native/core/bench.cpp`): it times the production code paths themselves " +
      "(`InputSynthesizer::run` for deepinversion/spectral, `GeneratorSynth::sample/step` + `student_step` for adversarial, `student_step` for classical). " +
      "*Eager* is `bench/reference.py`: the same loops as a PyTorch user writes them (nn.Module, forward hooks on the BN layers, torch.optim), identical math and hyper-parameters, " +
      "same thread count, same batch. " + spd.method + ".", "",
      "Both sides initialize the models as the zoo does and draw every random number from a CPU generator with the same seed in the same order, so they start from the same state: " +
      "the *first loss* column (the loss of the first iteration: synthesis total, student loss, or generator loss) must agree on both sides, a check that the math is the same before the speed is believed.", "",
      `Run: ${envLine(spd.env)}.`, "",
      "Run it on an otherwise idle machine: when other processes compete for the cores, libtorch's worker threads get preempted and both sides slow down erratically (seen: 100x at 2 threads on 2 busy cores).", "",
      "Where the difference comes from: both sides run the same libtorch kernels. Ours has no Python between the ops, runs the TorchScript graphs without the profiling executor's specialization (except the adversarial loop), " +
      "and reuses a step's large CPU blocks through its caching allocator (`native/core/alloc.h`), where eager PyTorch's default CPU allocator hands them back to malloc, so that the kernel maps and zeroes fresh pages every step " +
      "(the batch-256 adversarial rows: about a third of eager's CPU time is system time). See the main README, \"Two process-level settings\".", "",
      "| teacher → student | loop | batch | unit | ours | eager PyTorch | **ours / eager** | measurements | first loss ours / eager |",
      "| --- | --- | ---: | --- | ---: | ---: | ---: | --- | --- |");
    for (const r of spd.rows) {
      if (r.error) {
        L.push(`| ${r.label} | ${r.kind} | ${r.batchSize} | ${r.unit} | failed: ${r.error.replace(/\|/g, "/").slice(0, 160)} | | | | |`);
        continue;
      }
      const fl = r.firstLoss;
      const check = fl.relDiff === null ? "n/a" : `${fmtLoss(fl.ours)} / ${fmtLoss(fl.eager)} ${fl.relDiff < 1e-3 ? "(match)" : "(**differ**)"}`;
      L.push(`| ${r.label} | ${r.kind} | ${r.batchSize} | ${r.unit} | ${fmtRate(r.ours.median)} | ${fmtRate(r.eager.median)} | **${r.ratio.toFixed(2)}** | ${r.repeats} × ${r.iterations} it (+${r.warmup} warm-up) | ${check} |`);
    }
    L.push("", "ResNet-8 teacher: random weights with BN statistics from a few passes on noise (`bench/reference.py make-teacher`), student: the zoo's `resnet8`. " +
      "Spectral targets: `dfkd stats` of each teacher on 256 Gaussian images (values do not change the speed). Classical: batches drawn from a fixed pool of Gaussian images, no augmentation.", "");
  }
  L.push("## Reproduce", "", "From the repository root, with MNIST in `../shared/data/mnist` (or `DFKD_MNIST=...`):", "", "```sh");
  for (const [what, cmd] of COMMANDS) L.push(`# ${what}`, cmd);
  L.push("```", "", "Options: `node bench/run.mjs --help`.", "");
  return L.join("\n");
}

function report(o) {
  const acc = readJson(path.join(o.out, "accuracy.json")), spd = readJson(path.join(o.out, "speed.json"));
  writeFileSync(path.join(o.out, "README.md"), renderReadme(acc, spd));
  if (acc) {
    const bars = acc.rows.map((r) => ({ label: r.id, value: r.studentAccuracy === undefined ? null : 100 * r.studentAccuracy,
      color: r.method === "classical" ? [120, 120, 120] : r.method === "noise" ? [190, 150, 60] : [66, 110, 190] }));
    const lines = [];
    if (acc.setting.teacherAccuracy !== undefined) lines.push({ value: 100 * acc.setting.teacherAccuracy, label: "teacher LeNet-5, held-out top-1", color: [200, 40, 40] });
    writeFileSync(path.join(o.out, "accuracy.png"), barChart({
      title: `MNIST: LeNet-5 -> LeNet-5-half${acc.quick ? " (QUICK MODE)" : ""}`,
      subtitle: `held-out top-1 (%) on ${acc.rows[0]?.testSamples ?? 3000} images, threads ${acc.env.threads}, ${acc.env.date.slice(0, 10)}, commit ${acc.env.commit}`,
      bars, lines,
    }));
  }
}

async function main() {
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
  console.log(`bench: wrote ${rel(o.out)}/{${["accuracy.json", "speed.json", "README.md", "accuracy.png"].filter((f) => existsSync(path.join(o.out, f))).join(",")}} in ${fmtTime((performance.now() - t0) / 1000)}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`\nbench: ${e.code ? e.code + ": " : ""}${e.message}`);
    process.exit(1);
  });
}
