// What a user gets for the wrong kind of model file: weights instead of TorchScript, or a path
// that does not exist. The message must say what the file is and how to fix it.
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { distill, evaluate, info } from "../src/index.js";
import { python, rejectsWith, tmp } from "./helpers.js";

describe("model files", () => {
  const dir = tmp("dfkd-files-");
  const f = (n: string) => path.join(dir, n);
  beforeAll(() => {
    python(`
import torch, torch.nn as nn
m = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
torch.save(m.state_dict(), ${JSON.stringify(f("state_dict.pth"))})
torch.save(m.state_dict(), ${JSON.stringify(f("legacy.pt"))}, _use_new_zipfile_serialization=False)
torch.save(m, ${JSON.stringify(f("module.pt"))})
torch.jit.script(m).save(${JSON.stringify(f("scripted.pt"))})
`);
  }, 120_000);

  it.each(["state_dict.pth", "legacy.pt", "module.pt"])("%s (torch.save weights) is E_MODEL_INVALID saying how to export TorchScript", async (name) => {
    const e = await rejectsWith(info(f(name)), "E_MODEL_INVALID");
    expect(e.message).toMatch(/PyTorch weights file/);
    expect(e.message).toMatch(/torch\.jit\.script\(model\)/);
    expect(e.message).toMatch(/torch\.jit\.trace/);
  });

  it("a TorchScript file is not mistaken for weights", async () => {
    const t = await info(f("scripted.pt"), { inputShape: [1, 28, 28] });
    expect(t.numClasses).toBe(10);
  });

  it("a missing file names its field, the path and the working directory", async () => {
    const e = await rejectsWith(distill({ teacher: "nope/teacher.pt" }), "E_MODEL_NOT_FOUND");
    expect(e.message).toContain("teacher: file not found: nope/teacher.pt");
    expect(e.message).toContain(process.cwd());
    const s = await rejectsWith(distill({ teacher: f("scripted.pt"), student: "nope.pt", inputShape: [1, 28, 28] }), "E_MODEL_NOT_FOUND");
    expect(s.message).toMatch(/^student: /);
    const d = await rejectsWith(evaluate({ teacher: f("scripted.pt"), test: { images: f("x.npy"), labels: f("y.npy") } }), "E_DATA_NOT_FOUND");
    expect(d.message).toContain(`test.images: file not found: ${f("x.npy")}`);
  });
});
