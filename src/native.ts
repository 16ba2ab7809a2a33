// Loads the addon (build/Release or prebuilds/) through node-gyp-build.
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

export interface NativeJobHandle {
  promise: Promise<unknown>;
  cancel(): void;
}
export interface NativeAddon {
  runJob(kind: string, config: unknown, onEvent: (e: unknown) => void): NativeJobHandle;
  zoo(): string[];
  runtime(): { torch: string; cuda: boolean; cudaDevices: number; threads: number };
}

export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

let cached: NativeAddon | undefined;
export function native(): NativeAddon {
  if (!cached) {
    const require = createRequire(import.meta.url);
    const load = require("node-gyp-build") as (dir: string) => NativeAddon;
    try {
      cached = load(PACKAGE_ROOT);
    } catch (e) {
      const err = new Error(
        `dfkd: the native addon is not built or does not load (${(e as Error).message.split("\n")[0]}). ` +
          "Run 'npm run build:native' (set LIBTORCH=/path/to/libtorch to choose a libtorch).",
      ) as Error & { code: string };
      err.code = "E_ADDON";
      throw err;
    }
  }
  return cached;
}
