// The benchmark programs (bench/run.mjs) in --quick mode: every row runs a few steps, and the
// results have the documented format. The numbers themselves are not checked (quick mode).
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { requireMnist, ROOT, SKIP_MNIST, tmp } from "./helpers.js";

const presets = JSON.parse(readFileSync(path.join(ROOT, "bench", "presets.json"), "utf8"));
const accuracyRows = Object.keys(presets).filter((k) => !k.startsWith("$"));
const KINDS = ["deepinversion", "spectral", "adversarial", "dafl", "classical"];
const fraction = (x: unknown) => typeof x === "number" && x >= 0 && x <= 1;

describe("benchmarks (bench/run.mjs --quick)", () => {
  const run = (args: string[]) => promisify(execFile)(process.execPath, [path.join(ROOT, "bench", "run.mjs"), ...args], {
    cwd: ROOT, encoding: "utf8", timeout: 180_000,
  });

  it("runs every speed row and its variants for a few steps, compares every loss of both sides, and writes speed.json and README.md", async () => {
    const out = tmp("dfkd-bench-");
    // One thread: about 12 s on 2 cores, and immune to the slowdown of multi-threaded libtorch when
    // other processes compete for the cores (several times slower at 2 threads on a busy machine).
    await run(["speed", "--quick", "--threads", "1", "--out", out]);
    const readme = readFileSync(path.join(out, "README.md"), "utf8");
    expect(readme).toContain("Quick mode");
    for (const h of ["## Accuracy", "## Speed", "## Reproduce", "npm run bench -- accuracy", "npm run bench -- speed"]) expect(readme).toContain(h);

    const speed = JSON.parse(readFileSync(path.join(out, "speed.json"), "utf8"));
    expect(speed.kind).toBe("speed");
    expect(speed.quick).toBe(true);
    expect(speed.env).toMatchObject({ threads: 1, libtorch: expect.any(String), cpu: expect.any(String), cores: expect.any(Number),
      commit: expect.stringMatching(/^[0-9a-f]{7,}(\+dirty)?$/), command: expect.stringContaining("node bench/run.mjs speed --quick") });
    expect(speed.env.options).toMatchObject({ repeats: 1, minIters: 2, variants: ["eager-malloc", "ours-system"], lossTol: 1e-3 });
    expect(speed.rows.map((r: { id: string }) => r.id)).toEqual(["lenet5", "resnet8"].flatMap((t) => KINDS.map((k) => `${t}/${k}/b8`)));
    for (const r of speed.rows) {
      expect(r.error, r.id).toBeUndefined();
      expect(r.ours.median, r.id).toBeGreaterThan(0);
      expect(r.eager.median, r.id).toBeGreaterThan(0);
      expect(r.ratio).toBeCloseTo(r.ours.median / r.eager.median, 6);
      expect(r.ours.samples).toHaveLength(1);
      expect([r.ours.min, r.ours.max]).toEqual([r.ours.median, r.ours.median]);
      expect(r.iterations, r.id).toBe(2);  // --min-iters (2 in quick mode): never a single timed iteration
      expect(r.provenance).toMatchObject({ commit: speed.env.commit, threads: 1, command: speed.env.command });
      expect(r.config).toMatchObject({ batchSize: 8, threads: 1 });
      // Same zoo initialization, same seed, same CPU generator, same order of draws: both sides compute
      // the same numbers, so every loss they report agrees, at the first iteration and at the last.
      expect(r.firstLoss.relDiff, r.id).toBeLessThan(1e-3);
      expect(r.losses.match, `${r.id}: ${JSON.stringify(r.losses)}`).toBe(true);
      expect(r.losses.onlyEager, r.id).toEqual([]);
      expect(r.losses.onlyOurs, r.id).toEqual([]);
      const keys = Object.keys(r.losses.last);
      expect(keys, r.id).toContain(r.firstLoss.key);
      if (r.kind === "dafl") expect(keys, r.id).toEqual(expect.arrayContaining(["g_onehot", "g_activation", "g_entropy", "g_bn", "g_discrepancy"]));
      if (r.kind === "deepinversion") expect(keys, r.id).toEqual(expect.arrayContaining(["ce", "bn", "tvL2", "l2"]));
      if (r.kind === "spectral") expect(keys, r.id).toContain("spectral");
      // the variants run in their own processes, with the same math
      expect(Object.keys(r.variants), r.id).toEqual(["eager-malloc", "ours-system"]);
      for (const [n, v] of Object.entries(r.variants) as [string, { median: number; losses: { match: boolean } }][]) {
        expect(v.median, `${r.id} ${n}`).toBeGreaterThan(0);
        expect(v.losses.match, `${r.id} ${n}`).toBe(true);
      }
    }
    expect(readme).toContain("### Where the gain comes from");
    expect(readme).toMatch(/\| ours \(min–max\) \| eager PyTorch \(min–max\) \| \*\*ours \/ eager\*\* \| measurements \| losses ours \/ eager \|/);
    expect(readme.match(/\| LeNet-5 → LeNet-5-half \(1x28x28\) \| \w+ \| 8 \| [^|]*\/s[^|]* \| [\d.]+ \([\d.]+–[\d.]+\) \|/g)).toHaveLength(KINDS.length);
  }, 240_000);

  it.skipIf(SKIP_MNIST)("runs every accuracy row for a few steps on the report rows and writes accuracy.json, README.md and accuracy.png", async () => {
    requireMnist();
    const out = tmp("dfkd-bench-");
    await run(["accuracy", "--quick", "--threads", "1", "--out", out]);
    const readme = readFileSync(path.join(out, "README.md"), "utf8");
    expect(readme).toContain("Quick mode");
    const acc = JSON.parse(readFileSync(path.join(out, "accuracy.json"), "utf8"));
    expect(acc.kind).toBe("accuracy");
    expect(acc.quick).toBe(true);
    expect(acc.setting.teacherAccuracy).toBeGreaterThan(0.95);
    expect(acc.published.note).toMatch(/NOT verified/);
    expect(acc.rows.map((r: { id: string }) => r.id)).toEqual(accuracyRows);
    expect(acc.split).toBe("report");
    for (const r of acc.rows) {
      expect(r.split, r.id).toMatchObject({ name: "report", rows: "8500..9999", samples: 1500 });
      expect(r.provenance, r.id).toMatchObject({ commit: expect.any(String), cpu: expect.any(String), cores: expect.any(Number), threads: 1,
        libtorch: expect.any(String), node: expect.any(String), command: expect.stringContaining("node bench/run.mjs accuracy --quick") });
      expect(r.config.test, r.id).toMatchObject({ start: 8500, end: 10000 });
      if (r.method === "classical") expect(r.config.data, r.id).toMatchObject({ start: 0, end: 7000 });
      expect(r.rebuilt, r.id).toBeUndefined();
      expect(r.error, r.id).toBeUndefined();
      expect(fraction(r.studentAccuracy), r.id).toBe(true);
      expect(fraction(r.agreement), r.id).toBe(true);
      expect(r.testSamples).toBe(1500);
      expect(r.wallSeconds).toBeGreaterThan(0);
      expect(Number.isInteger(r.synthesized)).toBe(true);
      if (r.method === "classical") expect(r.synthesized).toBe(0);
      else expect(r.synthesized).toBeGreaterThan(0);
      expect(r.seeds).toEqual([0]);
      expect(readme).toContain(`| ${r.label} | ${(100 * r.studentAccuracy).toFixed(2)}% |`);
      expect(readme).toContain(`| report rows 8500..9999 | ${r.date.slice(0, 10)}, ${r.provenance.commit} |`);
    }
    expect(readme).toMatch(/\| method \| top-1 \| agreement with teacher \| wall time \| synthesized images \| published \(unverified\) \| seeds: min–max top-1 \| scored on \| provenance \|/);
    expect(readme).not.toContain("Pending a re-run");
    const png = readFileSync(path.join(out, "accuracy.png"));
    expect(png.subarray(0, 8)).toEqual(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]));
    expect(png.readUInt32BE(16)).toBeGreaterThan(100);  // IHDR width
  }, 240_000);

  it.skipIf(SKIP_MNIST)("--seeds runs a row once per seed and reports the mean and the spread; --eval-every adds each run's curve and the time to 95/97/98%", async () => {
    requireMnist();
    const out = tmp("dfkd-bench-");
    await run(["accuracy", "--quick", "--only", "noise", "--seeds", "0,1,2", "--eval-every", "1", "--threads", "1", "--out", out]);
    const [row] = JSON.parse(readFileSync(path.join(out, "accuracy.json"), "utf8")).rows;
    expect(row.seeds).toEqual([0, 1, 2]);
    expect(row.split.name).toBe("report");
    expect(row.runs.map((r: { seed: number }) => r.seed)).toEqual([0, 1, 2]);
    const accs: number[] = row.runs.map((r: { studentAccuracy: number }) => r.studentAccuracy);
    expect(row.studentAccuracy).toBeCloseTo(accs.reduce((a, b) => a + b) / 3, 10);
    expect([row.studentAccuracyMin, row.studentAccuracyMax]).toEqual([Math.min(...accs), Math.max(...accs)]);
    const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
    expect(readFileSync(path.join(out, "README.md"), "utf8")).toContain(`3 seeds (0, 1, 2): ${pct(row.studentAccuracyMin)}–${pct(row.studentAccuracyMax)} |`);
    // time to accuracy: every run's curve (one point per student step here), seconds rising
    expect(row.evalEvery).toBe(1);
    for (const r of row.runs as { curve: [number, number][] }[]) {
      expect(r.curve.length).toBe(row.studentSteps);  // an evaluation after every student step
      for (let i = 1; i < r.curve.length; i++) expect(r.curve[i][0]).toBeGreaterThanOrEqual(r.curve[i - 1][0]);
    }
    expect(Object.keys(row.timeTo)).toEqual(["0.95", "0.97", "0.98"]);
    expect(row.timeTo["0.95"]).toEqual({ seconds: null, reached: 0, runs: 3 });  // noise, 5 steps: never 95%
    expect(readFileSync(path.join(out, "README.md"), "utf8")).toContain("| time to 95 / 97 / 98% (reached/runs) |");
    expect(readFileSync(path.join(out, "time-to-accuracy.png")).subarray(1, 4).toString()).toBe("PNG");
    // --split val: the same row on the validation rows, in its own file; the report table is untouched
    await run(["accuracy", "--quick", "--only", "noise", "--split", "val", "--threads", "1", "--out", out]);
    const val = JSON.parse(readFileSync(path.join(out, "accuracy.val.json"), "utf8"));
    expect(val.split).toBe("val");
    expect(val.rows[0].split).toMatchObject({ name: "val", rows: "7000..8499", samples: 1500 });
    expect(val.rows[0].config.test).toMatchObject({ start: 7000, end: 8500 });
    expect(JSON.parse(readFileSync(path.join(out, "accuracy.json"), "utf8")).rows[0]).toEqual(row);
    expect(readFileSync(path.join(out, "README.md"), "utf8")).toContain("### Validation rows (for choosing presets; not results)");
  }, 240_000);
});
