import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { blobs, CLI, fx, tmp, TEACHER } from "./helpers.js";

// Asynchronous: a run of minutes in a synchronous child would starve vitest's worker RPC.
const dfkd = (...args: string[]) => new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "", stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  child.on("error", reject).on("close", (status) => resolve({ status, stdout, stderr }));
});

describe("CLI", () => {
  it("prints help and exits 0", async () => {
    const r = await dfkd("--help");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("distill");
    expect((await dfkd("distill", "--help")).stdout).toContain("--method");
  });

  it("info prints teacher introspection, as JSON too", async () => {
    const r = await dfkd("info", TEACHER, "--json");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ numClasses: 10, bnLayers: 3 });
    expect((await dfkd("info", TEACHER)).stdout).toContain("bn3 (bn, 120 channels)");
    const half = (await dfkd("info", fx("tiny_bn_half.pt"))).stdout;
    expect(half).toContain("3 classes (logits); 375 parameters (stored as Half, run in float32)");
    expect(half).toMatch(/inputs average \[0\.1\d+\] per channel \(read from the first BatchNorm\)/);
  });

  it("distill --json streams events and ends with the report", async () => {
    const out = tmp();
    const r = await dfkd("distill", fx("tiny_bn.pt"), "--student", "resnet8", "--method", "classical", "--data", blobs.train.images, "--labels", blobs.train.labels,
      "--test", blobs.test.images, "--test-labels", blobs.test.labels, "--steps", "60", "--out", out, "--json");
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.some((l) => l.type === "progress")).toBe(true);
    const report = lines.at(-1);
    expect(report.type).toBe("report");
    expect(report.evaluation.studentAccuracy).toBeGreaterThan(0.8);
    const ev = await dfkd("eval", "--student", report.student.path, "--teacher", fx("tiny_bn.pt"), "--test", blobs.test.images, "--test-labels", blobs.test.labels, "--json");
    expect(JSON.parse(ev.stdout).studentAccuracy).toBeCloseTo(report.evaluation.studentAccuracy, 6);
  });

  it("exits 1 with a coded message on a bad model file, 2 on a bad config", async () => {
    const r = await dfkd("info", fx("random.pt"));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("E_MODEL_INVALID");
    const u = await dfkd("distill", TEACHER, "--method", "nope");
    expect(u.status).toBe(2);
    const j = await dfkd("distill", TEACHER, "--steps", "-3", "--method", "classical", "--data", blobs.train.images, "--json");
    expect(j.status).toBe(2);
    expect(JSON.parse(j.stdout.trim().split("\n").at(-1)!)).toMatchObject({ type: "error", code: "E_CONFIG" });
  });
});

describe("CLI Ctrl-C", () => {
  it("SIGINT stops the run with a checkpoint (exit 130), and --resume finishes it", async () => {
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
    const resumed = await dfkd("distill", fx("tiny_bn.pt"), "--student", "resnet8", "--method", "classical", "--data", blobs.train.images,
      "--labels", blobs.train.labels, "--steps", "200", "--out", out, "--resume", last.checkpoint, "--json");
    expect(resumed.status).toBe(0);
  });
});
