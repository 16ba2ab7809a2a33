// The bundled main job: the shipped MNIST LeNet-5 teacher distilled data-free into LeNet-5-half,
// scored on the report split of MNIST (../shared/data/mnist, rows 8,500..9,999; see splits.ts).
import { existsSync } from "node:fs";
import path from "node:path";
import type { DistillConfig } from "./config.js";
import { BUNDLED_TEACHER } from "./index.js";
import { PACKAGE_ROOT } from "./native.js";
import { mnistRows } from "./splits.js";

export { MNIST_SPLITS, mnistRows, rowsLabel, type SplitName } from "./splits.js";

export function mnistDir(): string {
  return process.env.DFKD_MNIST ?? path.resolve(PACKAGE_ROOT, "..", "shared", "data", "mnist");
}

export function hasMnist(dir = mnistDir()): boolean {
  return existsSync(path.join(dir, "t10k-images-idx3-ubyte.gz")) || existsSync(path.join(dir, "t10k-images-idx3-ubyte"));
}

/**
 * MNIST splits of this project (splits.ts): `train` rows 0..6999 (the teacher's, and the with-data
 * baseline's), `val` rows 7000..8499 (every choice is made here), `test` = the report split, rows
 * 8500..9999 (reported figures only).
 */
export function mnistSplit(dir = mnistDir()) {
  return { train: mnistRows(dir, "teacher"), val: mnistRows(dir, "val"), test: mnistRows(dir, "report") };
}

/**
 * The main job: the bundled teacher, method "auto" (fast for this BN teacher: plan.cpp
 * choose_method), a 1-minute budget on this machine. No recipe knob: what a
 * user gets with a teacher and a budget.
 */
export function mainJob(): DistillConfig {
  const cfg: DistillConfig = { teacher: BUNDLED_TEACHER, student: "lenet5_half", seed: 0, budget: "1m", outDir: "dfkd-out" };
  if (hasMnist()) cfg.test = mnistSplit().test;
  return cfg;
}
