import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { mnistRows } from "../src/splits.js";
// @ts-expect-error: plain ESM helper without types
import { pythonEnv } from "../scripts/libtorch.mjs";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const FIX = path.join(ROOT, "test", "fixtures");
export const fx = (name: string) => path.join(FIX, name);
export const MNIST = process.env.DFKD_MNIST ?? path.resolve(ROOT, "..", "shared", "data", "mnist");
export const HAS_MNIST = existsSync(path.join(MNIST, "t10k-images-idx3-ubyte.gz"));
/**
 * Real-data tests run when MNIST is present and are skipped (`it.skipIf(SKIP_MNIST)`) when it is
 * not, unless DFKD_REQUIRE_DATA=1 (set by .ci/run): then they run and fail in `requireMnist()`,
 * so that CI cannot pass with its accuracy tests skipped.
 */
export const REQUIRE_DATA = process.env.DFKD_REQUIRE_DATA === "1";
export const SKIP_MNIST = !HAS_MNIST && !REQUIRE_DATA;
export function requireMnist(): void {
  if (!HAS_MNIST)
    throw new Error(`MNIST not found: ${path.join(MNIST, "t10k-images-idx3-ubyte.gz")} is missing, and DFKD_REQUIRE_DATA=1 ` +
      "forbids skipping the real-data tests. Point DFKD_MNIST at the folder with the t10k IDX files (or unset DFKD_REQUIRE_DATA to skip them).");
}
/** Tests pick configs and thresholds: they score on the validation rows (src/splits.ts), never on the report rows. */
export const mnistVal = () => mnistRows(MNIST, "val");
/** The rows the bundled teacher was trained on (classical's data, the stats file's data). */
export const mnistTeacherRows = () => mnistRows(MNIST, "teacher");
export const TEACHER = path.join(ROOT, "models", "mnist_lenet5.pt");
export const CLI = path.join(ROOT, "dist", "cli.js");

export function tmp(prefix = "dfkd-test-"): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Runs Python (with the torch dfkd was built against) and returns stdout. */
export function python(code: string): string {
  return execFileSync(process.env.PYTHON || "python3", ["-c", code], { env: pythonEnv(), encoding: "utf8" });
}

/** Blob fixtures (1x8x8, 3 classes): train and test specs. */
export const blobs = {
  train: { images: fx("blobs_x.npy"), labels: fx("blobs_y.npy") },
  test: { images: fx("blobs_test_x.npy"), labels: fx("blobs_test_y.npy") },
};

/** Expects a promise to reject with a DfkdError of `code`; returns it. */
export async function rejectsWith(p: PromiseLike<unknown>, code: string): Promise<Error & { code: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as Error & { code: string };
    if (err.code !== code) throw new Error(`expected ${code}, got ${err.code}: ${err.message}`);
    return err;
  }
  throw new Error(`expected a rejection with ${code}, but it resolved`);
}

/**
 * The tensor payload of a TorchScript zip (data/ entries), for bit-level comparison
 * (test/weights.mjs, which test/reference/record.mjs shares).
 */
export { weights } from "./weights.mjs";
