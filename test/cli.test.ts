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
