// Loads the addon (build/Release or prebuilds/) through node-gyp-build.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { DfkdError } from "./errors.js";

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
/** What runtime() reports of the loaded addon and its libtorch. */
export interface RuntimeInfo {
  /** libtorch version the addon runs on */
  torch: string;
  /** CUDA usable (a CUDA libtorch and a visible GPU) */
  cuda: boolean;
  cudaDevices: number;
  /** the CUDA-graph path is compiled in (a CUDA torch with its CUDA C runtime and CCCL headers) */
  cudaGraphs: boolean;
  /** c10d's Gloo process group is compiled in (data-parallel jobs across processes on the CPU; dist.h) */
  distributed: boolean;
  /** c10d's NCCL process group is compiled in (data-parallel jobs on CUDA devices, one per local rank) */
  nccl: boolean;
  /** libtorch's intra-op threads in this process (a job's `threads` sets it for that job) */
  threads: number;
  cpuCache: CpuCacheStats;
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
  runtime(): RuntimeInfo;
  /** Cancels this thread's running jobs and waits for their native threads. */
  stopAll(): void;
}

export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

const HINT =
  "Fix: run 'npm rebuild dfkd' (pnpm: 'pnpm approve-builds', then 'pnpm rebuild dfkd'); it links the libtorch it " +
  "finds (LIBTORCH, python3's torch, a system libtorch, else it installs a pinned CPU wheel) and builds the addon " +
  "if no prebuilt one fits; add --foreground-scripts to see what it does. Set LIBTORCH=/path/to/libtorch (or a " +
  "torch package folder) to choose one.";

let cached: NativeAddon | undefined;
/** The addon, loaded once (node-gyp-build: build/Release, else prebuilds/<platform>-<arch>). Throws E_ADDON. */
export function native(): NativeAddon {
  if (!cached) {
    // The addon finds libtorch through the link .libtorch/lib (scripts/libtorch.mjs), made at
    // install time. Where install scripts did not run (pnpm's default) or the torch it pointed at
    // moved, make it now: before the first load, since the dynamic loader remembers a missing folder.
    let linkError = "";
    if (!existsSync(path.join(PACKAGE_ROOT, ".libtorch", "lib"))) {
      const r = spawnSync(process.execPath, [path.join(PACKAGE_ROOT, "scripts", "install.mjs"), "--link"], { encoding: "utf8" });
      if (r.status !== 0) linkError = ` No libtorch to link: ${(r.stderr || r.error?.message || "").trim().replace(/^dfkd: install failed: /, "")}.`;
    }
    const require = createRequire(import.meta.url);
    let addon: NativeAddon;
    try {
      addon = (require("node-gyp-build") as (dir: string) => NativeAddon)(PACKAGE_ROOT);
    } catch (e) {
      throw new DfkdError("E_ADDON", `dfkd: the native addon is not built or does not load (${(e as Error).message.split("\n")[0]}).${linkError} ${HINT}`, { cause: e });
    }
    cached = addon;
    // process.exit() (or an uncaught exception) skips the addon's env cleanup hook: stop the
    // native threads here, or exit() tears libtorch down under a running job.
    process.once("exit", () => addon.stopAll());
  }
  return cached;
}
