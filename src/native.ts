// Loads the addon (build/Release or prebuilds/) through node-gyp-build.
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

export interface NativeJobHandle {
  promise: Promise<unknown>;
  cancel(): void;
}
/** dfkd's caching CPU allocator (native/core/alloc.h): large blocks kept for reuse while a job runs. */
export interface CpuCacheStats {
  /** false with DFKD_MALLOC=system */
  enabled: boolean;
  /** bytes held for reuse now (0 when no job runs) */
  cachedBytes: number;
  peakCachedBytes: number;
  /** allocations of 1 MB and more served from the cache / from malloc, since the process started */
  hits: number;
  misses: number;
}
/** Every default of a distill config (native/core: config.h and each method's recipe). */
export interface DistillDefaults {
  method: string;
  student: string;
  device: string;
  seed: number;
  outDir: string;
  evalEvery: number;
  checkpointEvery: number;
  /** Per method: the config sections it reads, fully defaulted. */
  methods: Record<string, { train: Record<string, unknown>; synth?: Record<string, unknown>; generator?: Record<string, unknown>; adversarial?: Record<string, unknown> }>;
}
export interface NativeAddon {
  runJob(kind: string, config: unknown, onEvent: (e: unknown) => void): NativeJobHandle;
  zoo(): string[];
  defaults(): DistillDefaults;
  runtime(): { torch: string; cuda: boolean; cudaDevices: number; threads: number; cpuCache: CpuCacheStats };
  /** Cancels this thread's running jobs and waits for their native threads. */
  stopAll(): void;
}

export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

let cached: NativeAddon | undefined;
export function native(): NativeAddon {
  if (!cached) {
    const require = createRequire(import.meta.url);
    const load = require("node-gyp-build") as (dir: string) => NativeAddon;
    try {
      cached = load(PACKAGE_ROOT);
      // process.exit() (or an uncaught exception) skips the addon's env cleanup hook: stop the
      // native threads here, or exit() tears libtorch down under a running job.
      const addon = cached;
      process.once("exit", () => addon.stopAll());
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
