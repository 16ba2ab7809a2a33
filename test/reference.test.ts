// Behaviour kept across refactors: every method's short deterministic run (threads 1, seed 0,
// tiny sizes; test/reference/record.mjs) gives the same losses and the same student (and
// generator) weight bytes as recorded in test/reference/before.json, before issue 15's refactor.
// Where the math changes on purpose, before.json is re-recorded in the same commit, which says why.
//
// Bits depend on the CPU kernels: the record was made with libtorch's AVX2 kernels (ATen's and
// oneDNN's), so the runs happen in a child process with both pinned to AVX2, which gives the same
// bits on an AVX-512 machine (checked: unpinned there, the stats file's hash already differs).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { requireMnist, ROOT, SKIP_MNIST, tmp } from "./helpers.js";

describe("reference behaviour", () => {
  it.skipIf(SKIP_MNIST)("every method gives the recorded losses and bit-identical weights", async () => {
    requireMnist();
    const before = JSON.parse(readFileSync(path.join(ROOT, "test", "reference", "before.json"), "utf8"));
    const out = path.join(tmp(), "now.json");
    execFileSync(process.execPath, [path.join(ROOT, "test", "reference", "record.mjs"), out],
      { cwd: ROOT, stdio: "inherit", env: { ...process.env, ATEN_CPU_CAPABILITY: "avx2", ONEDNN_MAX_CPU_ISA: "AVX2" } });
    const now = JSON.parse(readFileSync(out, "utf8"));
    for (const name of Object.keys(before)) expect(now[name], name).toEqual(before[name]);
  });
});
