#!/usr/bin/env node
// The teacher-family benchmark (issue 20): every teacher of bench/family.json (trained by
// scripts/train_family.py on MNIST rows 0..6999) x method, at a fixed wall-clock budget, with
// the library's default recipe (no per-teacher knob: the config holds the teacher, what a user
// knows of it — normalization — the budget, the seed and the test rows), into lenet5_half.
// Choose recipes with --split val on the teachers whose role is "tune"; report with --split
// report on all of them. classical is the KD-with-data baseline (rows 0..6999, same budget).
// Results: <out>/family.json (report split) or family.val.json, one row per
// teacher/method/budget/seed with its provenance, and <out>/family.md (means over seeds).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { environment, timeTo, timeToCell, TIME_TO_BARS } from "./run.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const USAGE = `usage: node bench/family.mjs [options]
  --budget B         the budget of every run: seconds or "90s", "5m" (default 5m)
  --seeds a,b        seeds (default 0,1,2); a row per seed, the table gives the mean
  --split val|report score on the validation rows 7000..8499 (choices) or the report rows
                     8500..9999 (default report)
  --teachers a,b     teachers of bench/family.json (default all; "tune": the tune teachers)
  --methods a,b      auto, adversarial, fast, deepinversion, spectral, classical (default auto,classical);
                     a method that does not apply to a teacher (deepinversion, statistical without BatchNorm)
                     is skipped
  --set k=v,k=v      config keys on top of the defaults, for comparing a choice on the validation
                     split (e.g. generator.output=standardized); the method column becomes
                     "<method> [k=v,...]"
  --label L          the method column becomes "<method> (L)": rows kept apart from the same
                     recipe's rows (a re-run replaces rows of the same key), e.g. a baseline
                     re-run on this machine beside a variant (each row's cpu says which machine)
  --eval-every N     evaluate the student every N steps (time to accuracy: each row keeps its curve of
                     accuracy against the job's seconds, evaluations excluded; family.md gains a
                     time-to-95/97/98% table)
  --plot FILE        with --eval-every: a PNG of the curves of this invocation's rows
  --threads N        CPU threads (default 2)
  --out DIR          results folder (default bench/results)`;

function parseArgs(argv) {
  const o = { evalEvery: 0, plot: "", label: "", set: [], budget: "5m", seeds: [0, 1, 2], split: "report", teachers: [], methods: ["auto", "classical"], threads: 2, out: path.join(ROOT, "bench", "results"), argv };
  const list = (v) => String(v ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = () => argv[++i];
    if (a === "--budget") o.budget = v();
    else if (a === "--seeds") o.seeds = list(v()).map(Number);
    else if (a === "--split") o.split = v();
    else if (a === "--teachers") o.teachers = list(v());
    else if (a === "--methods") o.methods = list(v());
    else if (a === "--set") o.set = list(v());
    else if (a === "--label") o.label = v();
    else if (a === "--threads") o.threads = Number(v());
    else if (a === "--eval-every") o.evalEvery = Number(v());
    else if (a === "--plot") o.plot = path.resolve(v());
    else if (a === "--out") o.out = path.resolve(v());
    else { console.error(`family: unknown option ${a}\n${USAGE}`); process.exit(2); }
  }
  if (!["val", "report"].includes(o.split)) { console.error(USAGE); process.exit(2); }
  return o;
}

/** "a.b=v" -> cfg.a.b = v (JSON when it parses: numbers, booleans; else the string). */
function setPath(cfg, kv) {
  const eq = kv.indexOf("=");
  if (eq < 1) throw new Error(`--set wants key=value, got ${kv}`);
  const keys = kv.slice(0, eq).split(".");
  let v = kv.slice(eq + 1);
  try { v = JSON.parse(v); } catch { /* a string */ }
  let o = cfg;
  for (const k of keys.slice(0, -1)) o = o[k] ??= {};
  o[keys.at(-1)] = v;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const imp = (f) => import(pathToFileURL(path.join(ROOT, "dist", f)).href);
  const [index, presets] = await Promise.all([imp("index.js"), imp("presets.js")]);
  if (!presets.hasMnist()) throw new Error(`MNIST not found at ${presets.mnistDir()}`);
  const family = JSON.parse(readFileSync(path.join(ROOT, "bench", "family.json"), "utf8")).teachers;
  let names = o.teachers.length ? o.teachers : Object.keys(family);
  if (names.includes("tune")) names = Object.keys(family).filter((n) => family[n].role === "tune");
  const split = presets.mnistSplit();
  const test = o.split === "val" ? split.val : split.test;
  const work = path.join(ROOT, "bench", "work", "family");
  mkdirSync(work, { recursive: true });
  mkdirSync(o.out, { recursive: true });
  const file = path.join(o.out, o.split === "val" ? "family.val.json" : "family.json");
  const results = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : { rows: {} };
  const command = ["node", "bench/family.mjs", ...o.argv].join(" ");
  const mine = [];  // this invocation's rows (the plot's)
  for (const name of names) {
    const t = family[name];
    if (!t) throw new Error(`no teacher ${name} in bench/family.json`);
    const norm = { mean: t.mean, std: t.std };
    for (const base of o.methods) {
      if (["deepinversion", "statistical"].includes(base) && !t.bnLayers) continue;
      const method = (o.set.length ? `${base} [${o.set.join(",")}]` : base) + (o.label ? ` (${o.label})` : "");
      for (const seed of o.seeds) {
        const id = `${name}/${method}/${o.budget}${o.evalEvery ? `/eval${o.evalEvery}` : ""}/s${seed}`;
        const out = path.join(work, id.replaceAll("/", "_").replace(/[^\w.-]+/g, "_"));
        const cfg = {
          teacher: path.join(ROOT, t.file), student: "lenet5_half", seed, threads: o.threads, budget: o.budget,
          normalization: norm, test: { ...test, ...norm }, outDir: out,
          ...(base === "auto" ? {} : { method: base }),
          ...(base === "classical" ? { data: { ...split.train, ...norm } } : {}),
          ...(o.evalEvery > 0 ? { evalEvery: o.evalEvery } : {}),
        };
        for (const kv of o.set) setPath(cfg, kv);
        mkdirSync(out, { recursive: true });
        const cfgFile = path.join(out, "config.json");
        writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));
        const env = environment(index, o.threads);
        process.stderr.write(`family: ${id} ... `);
        const r = spawnSync(process.execPath, [path.join(ROOT, "dist", "cli.js"), "distill", "-c", cfgFile, "--json", "-q"], { encoding: "utf8", maxBuffer: 1 << 28 });
        const last = r.stdout.trim().split("\n").reverse().find((l) => l.startsWith('{"type":"report"'));
        if (!last) {
          process.stderr.write(`failed (${r.status}): ${r.stderr.slice(-400)}\n`);
          results.rows[id] = { teacher: name, method, budget: o.budget, seed, error: (r.stderr || r.stdout).slice(-600), ...env, command };
          continue;
        }
        const rep = JSON.parse(last);
        const row = {
          teacher: name, role: t.role, method, chosen: rep.method, reason: rep.methodChoice?.reason, budget: o.budget, seed, split: o.split,
          studentAccuracy: rep.evaluation.studentAccuracy, teacherAccuracy: rep.evaluation.teacherAccuracy, agreement: rep.evaluation.agreement,
          seconds: rep.timings.total, budgetSeconds: rep.budget?.seconds, units: rep.budget?.units, unit: rep.budget?.unit, resized: rep.budget?.resized ?? 0,
          warnings: rep.budget?.warnings, studentSteps: rep.studentSteps, synthesized: rep.synthesized, timings: rep.timings,
          ...(o.evalEvery > 0 ? { evalEvery: o.evalEvery, curve: (rep.evals ?? []).map((e) => [+e.elapsed.toFixed(2), e.studentAccuracy]) } : {}),
          ...env, reportCommit: rep.commit, config: rep.config, command,
        };
        results.rows[id] = row;
        mine.push(row);
        process.stderr.write(`${(row.studentAccuracy * 100).toFixed(2)}% in ${row.seconds.toFixed(1)} s (${rep.method}, ${row.units} ${row.unit}s)\n`);
        writeFileSync(file, JSON.stringify(results, null, 2) + "\n");
      }
    }
  }
  writeFileSync(file, JSON.stringify(results, null, 2) + "\n");
  writeFileSync(path.join(o.out, "family.md"), table(results, path.join(o.out, "family.json"), path.join(o.out, "family.val.json")));
  process.stderr.write(`family: wrote ${path.relative(ROOT, file)} and family.md\n`);
  if (o.plot && mine.some((r) => r.curve?.length)) {
    const { lineChart, PALETTE } = await import("./plot.mjs");
    const keys = [...new Set(mine.map((r) => `${r.teacher} ${r.method}`))];
    const series = mine.filter((r) => r.curve?.length).map((r) => ({
      label: `${r.teacher} ${r.method}`, color: PALETTE[keys.indexOf(`${r.teacher} ${r.method}`) % PALETTE.length],
      points: r.curve.map(([t, a]) => [t, a * 100]) }));
    const xMax = Math.max(...mine.map((r) => r.budgetSeconds ?? r.seconds));
    writeFileSync(o.plot, lineChart({ title: "Student accuracy against time", xMax, series,
      subtitle: `${o.split} rows, ${o.threads} threads, evaluations every ${o.evalEvery} steps (not counted), one line per seed; ${command}` }));
    process.stderr.write(`family: wrote ${path.relative(ROOT, o.plot)}\n`);
  }
}

/** A row's CPU, short: "Intel(R) Xeon(R) Processor" -> "Intel Xeon" (timings compare only within one). */
const machine = (cpu) => (cpu ?? "unknown CPU").replace(/\((R|TM)\)/g, "").replace(/\b(Processor|CPU)\b/g, "").replace(/\s+/g, " ").trim();

/** Markdown: per split and budget, teacher x method, mean student accuracy over seeds (n), mean seconds. */
export function table(...files) {
  const rows = [];
  for (const f of files) if (typeof f === "string" && existsSync(f)) rows.push(...Object.values(JSON.parse(readFileSync(f, "utf8")).rows));
  let md = "# Teacher family (bench/family.mjs)\n\nStudent lenet5_half, library defaults, the given budget on 2 threads; accuracy on the split named, mean over seeds (n), mean wall seconds of the whole run, the commit(s) of the code (+dirty: the tree had uncommitted changes), the machine(s) (CPU: compare timings only within one). Rows with provenance: family.json (report split), family.val.json (validation split). A cell's recipe is the library default of its commit: `git log` says what changed between commits.\n";
  const groups = new Map();
  for (const r of rows) {
    if (r.error) continue;
    const k = `${r.split} / budget ${r.budget}${r.evalEvery ? ` / evaluated every ${r.evalEvery} steps` : ""}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(r);
  }
  for (const [k, rs] of groups) {
    const methods = [...new Set(rs.map((r) => r.method))];
    const teachers = [...new Set(rs.map((r) => r.teacher))];
    md += `\n## ${k}\n\n| teacher (role, teacher acc.) | ${methods.join(" | ")} |\n|---|${methods.map(() => "---").join("|")}|\n`;
    for (const t of teachers) {
      const tr = rs.filter((r) => r.teacher === t);
      const cells = methods.map((m) => {
        const c = tr.filter((r) => r.method === m);
        if (!c.length) return "-";
        const mean = (f) => c.reduce((s, r) => s + f(r), 0) / c.length;
        const commits = [...new Set(c.map((r) => r.commit))].join(", ");
        const cpus = [...new Set(c.map((r) => machine(r.cpu)))].join(", ");
        return `${(mean((r) => r.studentAccuracy) * 100).toFixed(2)}% (n=${c.length}, ${mean((r) => r.seconds).toFixed(0)} s${m === "auto" ? `, ${c[0].chosen}` : ""}; ${commits}; ${cpus})`;
      });
      md += `| ${t} (${tr[0].role}, ${(tr[0].teacherAccuracy * 100).toFixed(2)}%) | ${cells.join(" | ")} |\n`;
    }
    if (!rs.some((r) => r.curve)) continue;
    // Time to accuracy: the job's seconds (evaluations excluded) at the first evaluation at or
    // above each bar, mean over the seeds that reached it (how many did, of n).
    md += `\nTime to accuracy (mean seconds over the seeds that reached it; reached/n):\n\n| teacher | method | 95% | 97% | 98% |\n|---|---|---|---|---|\n`;
    for (const t of teachers)
      for (const m of methods) {
        const c = rs.filter((r) => r.teacher === t && r.method === m && r.curve);
        if (!c.length) continue;
        md += `| ${t} | ${m} | ${TIME_TO_BARS.map((b) => timeToCell(timeTo(c.map((r) => r.curve), b))).join(" | ")} |\n`;
      }
  }
  return md;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main().catch((e) => { console.error(e); process.exit(1); });
