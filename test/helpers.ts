import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
// @ts-expect-error: plain ESM helper without types
import { pythonEnv } from "../scripts/libtorch.mjs";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const FIX = path.join(ROOT, "test", "fixtures");
export const fx = (name: string) => path.join(FIX, name);
export const MNIST = process.env.DFKD_MNIST ?? path.resolve(ROOT, "..", "shared", "data", "mnist");
export const HAS_MNIST = existsSync(path.join(MNIST, "t10k-images-idx3-ubyte.gz"));
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
