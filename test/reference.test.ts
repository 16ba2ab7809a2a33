// Behaviour kept across refactors: every method's short deterministic run (threads 1, seed 0,
// tiny sizes; test/reference/record.mjs) gives the same losses and the same student (and
// generator) weight bytes as recorded in test/reference/before.json, before issue 15's refactor.
// Where the math changes on purpose, before.json is re-recorded in the same commit, which says why.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { requireMnist, ROOT, SKIP_MNIST } from "./helpers.js";

describe("reference behaviour", () => {
  it.skipIf(SKIP_MNIST)("every method gives the recorded losses and bit-identical weights", async () => {
    requireMnist();
    // @ts-expect-error: plain ESM helper without types
    const { record } = await import("./reference/record.mjs");
    const before = JSON.parse(readFileSync(path.join(ROOT, "test", "reference", "before.json"), "utf8"));
    const now = await record();
    for (const name of Object.keys(before)) expect(now[name], name).toEqual(before[name]);
  });
});
