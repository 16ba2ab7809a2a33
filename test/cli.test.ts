import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { blobs, CLI, fx, tmp, TEACHER } from "./helpers.js";

const dfkd = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });

describe("CLI", () => {
  it("prints help and exits 0", () => {
    const r = dfkd("--help");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("distill");
    expect(dfkd("distill", "--help").stdout).toContain("--method");
  });

  it("info prints teacher introspection, as JSON too", () => {
    const r = dfkd("info", TEACHER, "--json");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ numClasses: 10, bnLayers: 3 });
    expect(dfkd("info", TEACHER).stdout).toContain("bn3 (bn, 120 channels)");
  });

  it("distill --json streams events and ends with the report", () => {
    const out = tmp();
    const r = dfkd("distill", fx("tiny_bn.pt"), "--student", "resnet8", "--method", "classical", "--data", blobs.train.images, "--labels", blobs.train.labels,
      "--test", blobs.test.images, "--test-labels", blobs.test.labels, "--steps", "60", "--out", out, "--json");
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.some((l) => l.type === "progress")).toBe(true);
    const report = lines.at(-1);
    expect(report.type).toBe("report");
    expect(report.evaluation.studentAccuracy).toBeGreaterThan(0.8);
    const ev = dfkd("eval", "--student", report.student.path, "--teacher", fx("tiny_bn.pt"), "--test", blobs.test.images, "--test-labels", blobs.test.labels, "--json");
    expect(JSON.parse(ev.stdout).studentAccuracy).toBeCloseTo(report.evaluation.studentAccuracy, 6);
  });

  it("exits 1 with a coded message on a bad model file, 2 on a bad config", () => {
    const r = dfkd("info", fx("random.pt"));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("E_MODEL_INVALID");
    const u = dfkd("distill", TEACHER, "--method", "nope");
    expect(u.status).toBe(2);
    const j = dfkd("distill", TEACHER, "--steps", "-3", "--method", "classical", "--data", blobs.train.images, "--json");
    expect(j.status).toBe(2);
    expect(JSON.parse(j.stdout.trim().split("\n").at(-1)!)).toMatchObject({ type: "error", code: "E_CONFIG" });
  });
});

describe("CLI Ctrl-C", () => {
  it("SIGINT stops the run with a checkpoint (exit 130), and --resume finishes it", async () => {
    const { spawn } = await import("node:child_process");
    const { existsSync } = await import("node:fs");
    const path = await import("node:path");
    const out = tmp();
    const args = [CLI, "distill", fx("tiny_bn.pt"), "--student", "resnet8", "--method", "classical", "--data", blobs.train.images,
      "--labels", blobs.train.labels, "--steps", "100000", "--out", out, "--json"];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    const code = await new Promise<number | null>((resolve) => {
      child.stdout.on("data", (d) => {
        stdout += d;
        if (stdout.includes('"phase":"train"') && !child.killed) child.kill("SIGINT");
      });
      child.on("exit", resolve);
    });
    expect(code).toBe(130);
    const last = JSON.parse(stdout.trim().split("\n").at(-1)!);
    expect(last).toMatchObject({ type: "error", code: "E_CANCELLED", checkpoint: path.join(out, "checkpoint.dfkd") });
    expect(existsSync(last.checkpoint)).toBe(true);
    const resumed = dfkd("distill", fx("tiny_bn.pt"), "--student", "resnet8", "--method", "classical", "--data", blobs.train.images,
      "--labels", blobs.train.labels, "--steps", "200", "--out", out, "--resume", last.checkpoint, "--json");
    expect(resumed.status).toBe(0);
  });
});
