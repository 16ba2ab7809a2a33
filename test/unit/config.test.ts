// The façade's config handling without the addon: validation (types and ranges; messages name the
// field) and the native config it sends (no defaults of its own: the core fills them in).
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { distillSchema, nativeDistillConfig, parse, packageVersion } from "../../src/config.js";
import { DfkdError } from "../../src/errors.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const ok = (cfg: unknown) => parse(distillSchema, cfg, "distill config");
const code = (f: () => unknown) => {
  try { f(); } catch (e) { return `${(e as DfkdError).code}: ${(e as Error).message}`; }
  return "";
};

describe("distill config (no addon)", () => {
  const saved = process.env.DFKD_DEVICE;
  afterEach(() => { if (saved === undefined) delete process.env.DFKD_DEVICE; else process.env.DFKD_DEVICE = saved; });

  it("rejects wrong types, ranges and unknown keys with E_CONFIG naming the field", () => {
    expect(code(() => ok({ teacher: "t.pt", train: { steps: -5 } }))).toMatch(/^E_CONFIG: .*train\.steps/);
    expect(code(() => ok({ teacher: "t.pt", train: { lr: NaN } }))).toMatch(/^E_CONFIG: .*train\.lr/);
    expect(code(() => ok({ teacher: "t.pt", synth: { itrations: 5 } }))).toMatch(/^E_CONFIG: .*synth.*itrations/);
    expect(code(() => ok({ teacher: "t.pt", bogus: 1 }))).toMatch(/^E_CONFIG/);
    expect(code(() => ok({ teacher: "t.pt", train: { mixup: 1.5 } }))).toMatch(/mixup/);
    expect(code(() => ok({ teacher: "t.pt", train: { ema: 1 } }))).toMatch(/^E_CONFIG: .*train\.ema/);
    expect(code(() => ok({ teacher: "t.pt", generator: { bnMomentum: 1 } }))).toMatch(/^E_CONFIG: .*generator\.bnMomentum/);
    expect(code(() => ok({ teacher: "t.pt", method: "" }))).toMatch(/method/);
    // a tabular teacher's [features]: the message says what dfkd takes
    expect(code(() => ok({ teacher: "t.pt", inputShape: [20] }))).toMatch(/^E_CONFIG: .*inputShape.*\[channels, height, width\].*image classifiers/);
    expect(code(() => ok({}))).toMatch(/teacher/);
  });

  it("sends the config as given, plus outDir, device and version: every default comes from the core", () => {
    process.env.DFKD_DEVICE = "cuda:1";
    const ac = new AbortController();
    const nat = nativeDistillConfig(ok({ teacher: "t.pt", method: "spectral", outDir: "o", output: { samples: false }, synth: { rounds: 2 }, signal: ac.signal }));
    expect(nat).toEqual({ teacher: "t.pt", method: "spectral", output: { samples: false, dir: "o" }, synth: { rounds: 2 }, device: "cuda:1",
      version: JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")).version });
    delete process.env.DFKD_DEVICE;
    const bare = nativeDistillConfig(ok({ teacher: "t.pt" }));
    expect(bare).toEqual({ teacher: "t.pt", device: "cpu", version: packageVersion() });
    expect(bare).not.toHaveProperty("train");  // no copy of the recipes here
  });

  it("accepts any method name (the core's registry decides) and keeps typed arrays as they are", () => {
    const x = new Float32Array(4);
    const nat = nativeDistillConfig(ok({ teacher: "t.pt", method: "toy", test: { x, shape: [1, 1, 2, 2] } }));
    expect(nat.method).toBe("toy");
    expect((nat.test as unknown as { x: Float32Array }).x).toBe(x);
  });
});
