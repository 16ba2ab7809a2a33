// The package as a user gets it: `npm pack`, then `npm install <tarball>` into a fresh TypeScript
// project in npm's default (hoisted) layout, the public types checked with `tsc --strict`
// (TypeScript 5 and 7), and a short distillation run through the installed package.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { existsSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { ROOT, tmp } from "./helpers.js";
// @ts-expect-error: plain ESM helper without types
import { findLibtorch } from "../scripts/libtorch.mjs";

// Asynchronous: a synchronous minute-long child would starve vitest's worker RPC.
const run = async (file: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env) =>
  (await promisify(execFile)(file, args, { cwd, env, encoding: "utf8", maxBuffer: 64 << 20 })).stdout;
const npm = (args: string[], cwd: string, env?: NodeJS.ProcessEnv) =>
  run("npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"], cwd, env);

/** Bytes under `dir`, not following links (the libtorch link is the user's torch, not ours). */
function du(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) n += du(p);
    else if (e.isFile()) n += statSync(p).size;
  }
  return n;
}

const CONSUMER = `
import { distill, info, DfkdError, BUNDLED_TEACHER, ERROR_CODES, type DistillReport, type ErrorCode, type Job, type JobEvent, type Method, type TeacherInfo } from "dfkd";

const out = process.argv[2];
const codes: readonly ErrorCode[] = ERROR_CODES;
const job: Job<DistillReport> = distill({
  teacher: BUNDLED_TEACHER,
  method: "deepinversion",
  threads: 1,
  synth: { rounds: 2, batchSize: 32, iterations: 10 },
  train: { stepsPerRound: 10, batchSize: 32 },
  outDir: out,
});
let progress = 0;
job.on("progress", (e) => { const step: number = e.step; progress = Math.max(progress, step); });
const phases: string[] = [];
for await (const e of job as AsyncIterable<JobEvent>) if (e.type === "phase") phases.push(e.phase);
const report: DistillReport = await job;
const method: Method = report.method;
const t: TeacherInfo = await info(BUNDLED_TEACHER);

let missing: ErrorCode | undefined;
try {
  await distill({ teacher: "no-such-teacher.pt" });
} catch (e) {
  if (e instanceof DfkdError && e.code === "E_MODEL_NOT_FOUND") missing = e.code;
  // @ts-expect-error: a misspelled error code must not compile
  if (e instanceof DfkdError && e.code === "E_CANCELED") missing = undefined;
}
// @ts-expect-error: a Job is made by distill(), evaluate() or stats(), never by new
const bad = (j: typeof job) => new j.constructor();
void bad;
console.log(JSON.stringify({ method, progress, phases, studentSteps: report.studentSteps, kd: report.losses.student.kd,
  student: report.student.path, classes: t.numClasses, missing, codes: codes.length }));
`;

describe("the packed package in a fresh TypeScript project", () => {
  let app = "";
  let installLog = "";
  beforeAll(async () => {
    const dest = tmp("dfkd-pack-");
    await npm(["pack", "--pack-destination", dest], ROOT);  // prepack: dist/ and the prebuilt addon
    const tarball = path.join(dest, readdirSync(dest).find((f) => f.endsWith(".tgz"))!);
    app = tmp("dfkd-app-");
    writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
    // The libtorch the tests run on, as a user points at theirs.
    const { torchDir } = findLibtorch({ allowInstall: false });
    const env = { ...process.env, LIBTORCH: path.resolve(torchDir, "..", "..", "..") };
    installLog = await npm(["install", "--foreground-scripts", "--prefer-offline", tarball, "typescript@5"], app, env);
  }, 600_000);

  it("installs in npm's default layout from the prebuilt addon, slim", () => {
    const pkg = path.join(app, "node_modules", "dfkd");
    expect(installLog).toMatch(/using the prebuilt addon/);
    expect(existsSync(path.join(pkg, "build"))).toBe(false);  // no source build, no objects, no PCH
    expect(existsSync(path.join(app, "node_modules", "cmake-js"))).toBe(true);  // hoisted, as npm does
    expect(du(pkg)).toBeLessThan(50 * 1024 * 1024);
    for (const f of ["LICENSE", "README.md", "bench/results/README.md", "bench/results/accuracy.png", "bench/presets.json", "bench/reference.py"])
      expect(existsSync(path.join(pkg, f)), f).toBe(true);
  });

  it("type-checks a consumer under --strict with TypeScript 5 and 7, and runs it", async () => {
    writeFileSync(path.join(app, "main.ts"), CONSUMER);
    const flags = ["--strict", "--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext", "main.ts"];
    await run(process.execPath, [path.join(app, "node_modules", "typescript", "bin", "tsc"), ...flags], app);
    const ts7 = tmp("dfkd-ts7-");
    writeFileSync(path.join(ts7, "package.json"), JSON.stringify({ name: "ts7", private: true }));
    await npm(["install", "--prefer-offline", "typescript@7"], ts7);
    const bin = JSON.parse(readFileSync(path.join(ts7, "node_modules", "typescript", "package.json"), "utf8")).bin.tsc;
    await run(process.execPath, [path.join(ts7, "node_modules", "typescript", bin), ...flags, "--noEmit"], app);

    const out = path.join(app, "out");
    const r = JSON.parse((await run(process.execPath, ["main.js", out], app, { ...process.env, LIBTORCH: "" })).trim().split("\n").pop()!);
    expect(r.method).toBe("deepinversion");
    expect(r.phases).toEqual(expect.arrayContaining(["load", "synthesize", "train", "save"]));
    expect(r.studentSteps).toBe(20);
    expect(r.progress).toBeGreaterThan(0);
    expect(Number.isFinite(r.kd)).toBe(true);
    expect(existsSync(r.student)).toBe(true);
    expect(r.classes).toBe(10);
    expect(r.missing).toBe("E_MODEL_NOT_FOUND");
  });

  it("a missing addon is E_ADDON with a fix that works in a consumer project", async () => {
    const code = `import("dfkd").then((d) => { try { d.zoo(); } catch (e) { console.log(JSON.stringify({ code: e.code, name: e.name, message: e.message })); } });`;
    const pkg = path.join(app, "node_modules", "dfkd");
    const link = path.join(pkg, ".libtorch", "lib");
    // A libtorch that cannot be found: the link points nowhere and no torch can be found to relink it.
    rmSync(link, { force: true });
    symlinkSync("/nonexistent", link);
    try {
      const out = await run(process.execPath, ["--input-type=module", "-e", code], app,
        { ...process.env, LIBTORCH: "/nonexistent", PYTHON: "/nonexistent" });
      const e = JSON.parse(out.trim());
      expect(e.code).toBe("E_ADDON");
      expect(e.name).toBe("DfkdError");
      expect(e.message).toMatch(/npm rebuild dfkd/);
    } finally {
      const { libDir } = findLibtorch({ allowInstall: false });
      rmSync(link, { force: true });
      symlinkSync(libDir, link);
    }
  });
});
