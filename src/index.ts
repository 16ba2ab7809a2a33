// dfkd: data-free knowledge distillation for TorchScript models.
import { existsSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { datasetSchema, defaultDevice, distillSchema, nativeDistillConfig, parse, type DistillConfig, type DatasetSpec } from "./config.js";
import { DfkdError } from "./errors.js";
import { Job } from "./job.js";
import { native, PACKAGE_ROOT, type DistillDefaults } from "./native.js";

export { DfkdError } from "./errors.js";
export { Job } from "./job.js";
export type { JobEvent, ProgressEvent, PhaseEvent, LogEvent, EvalEvent, CheckpointEvent, Phase } from "./job.js";
export type { DistillConfig, DatasetSpec, Method } from "./config.js";
export type { CpuCacheStats, DistillDefaults } from "./native.js";

export interface Accuracy {
  samples: number;
  teacherAccuracy?: number;
  studentAccuracy?: number;
  /** Fraction of test images on which teacher and student predict the same class. */
  agreement?: number;
}

export interface DistillReport {
  method: string;
  teacher: { path: string; parameters: number };
  student: { path: string; parameters: number };
  device: string;
  seed: number;
  inputShape: number[];
  numClasses: number;
  studentSteps: number;
  synthesized: number;
  evaluation?: Accuracy;
  evals?: Array<{ step: number; studentAccuracy: number; elapsed: number }>;
  /** Seconds per phase (load, synthesize, train, evaluate, save) and total. */
  timings: Record<string, number>;
  losses: { student: Record<string, number>; synthesis: Record<string, number> };
  /** Where this report was written. */
  report: string;
  /** The effective config: every default filled in by the core (datasets from memory abridged). */
  config: Record<string, unknown>;
  /** Provenance: the dfkd version, the git commit the addon was built from (when known), the
   * date (ISO 8601, UTC) and libtorch's thread count. */
  dfkd?: string;
  commit?: string;
  date: string;
  threads: number;
}

export interface TeacherInfo {
  path: string;
  device: string;
  parameters: number;
  inputShape: number[];
  numClasses: number;
  bnLayers: number;
  taps: Array<{ name: string; kind: "bn" | "layer" | "penultimate"; channels?: number }>;
  meta: Record<string, unknown>;
}

export interface StatsResult {
  path: string;
  samples: number;
  layers: Array<{ name: string; channels: number; spectrum: number[] | null }>;
}

/** The bundled teacher: LeNet-5 (with BN) trained on the first 7,000 MNIST test-split images. */
export const BUNDLED_TEACHER = path.join(PACKAGE_ROOT, "models", "mnist_lenet5.pt");

/** Built-in student models. */
export function zoo(): string[] {
  return native().zoo();
}

/**
 * Every default of a distill config, from the core (the one place they are set): the top-level
 * ones and, per method of the registry, the sections it reads (train, synth, generator, adversarial).
 */
export function defaults(): DistillDefaults {
  return native().defaults();
}

/** libtorch version and CUDA availability of the loaded addon. */
export function runtime() {
  return native().runtime();
}

/**
 * Distills `config.teacher` into a student. Returns a Job at once: await it (or `job.result`)
 * for the report; listen to its events or iterate over them for progress.
 */
export function distill(config: DistillConfig): Job<DistillReport> {
  let cfg: z.output<typeof distillSchema>;
  let nat: ReturnType<typeof nativeDistillConfig>;
  try {
    cfg = parse(distillSchema, config, "distill config");
    nat = nativeDistillConfig(cfg);
  } catch (e) {
    return failed(e);
  }
  return new Job<DistillReport>((onEvent) => native().runJob("distill", nat, onEvent), {
    signal: cfg.signal,
  });
}

const evaluateSchema = z.strictObject({
  teacher: z.string().min(1).optional(),
  student: z.string().min(1).optional(),
  test: datasetSchema,
  device: z.string().optional(),
  batchSize: z.number().int().positive().optional(),
  threads: z.number().int().positive().optional(),
});

/** Top-1 accuracy of a teacher and/or student on a labeled test set, and their agreement. */
export function evaluate(config: z.input<typeof evaluateSchema>): Job<Accuracy> {
  try {
    const cfg = parse(evaluateSchema, config, "evaluate config");
    if (!cfg.teacher && !cfg.student) throw new DfkdError("E_CONFIG", "invalid evaluate config: give a teacher and/or a student");
    return new Job<Accuracy>((onEvent) => native().runJob("evaluate", { device: defaultDevice(), ...cfg }, onEvent));
  } catch (e) {
    return failed(e);
  }
}

const infoSchema = z.strictObject({
  inputShape: z.array(z.number().int().positive()).length(3).optional(),
  layers: z.array(z.string().min(1)).optional(),
  device: z.string().optional(),
});

/** Introspection of a TorchScript teacher: classes, taps (BN layers), parameter count. */
export function info(teacher: string, options: z.input<typeof infoSchema> = {}): Promise<TeacherInfo> {
  try {
    const o = parse(infoSchema, options, "info options");
    return new Job<TeacherInfo>((onEvent) => native().runJob("info", { teacher, device: defaultDevice(), ...o }, onEvent)).result;
  } catch (e) {
    return failed<TeacherInfo>(e).result;
  }
}

const statsSchema = z.strictObject({
  teacher: z.string().min(1),
  data: datasetSchema,
  output: z.string().min(1),
  layers: z.array(z.string().min(1)).optional(),
  batchSize: z.number().int().positive().optional(),
  device: z.string().optional(),
  threads: z.number().int().positive().optional(),
  signal: z.custom<AbortSignal>((v) => v instanceof AbortSignal).optional(),
});

/**
 * Computes per-layer statistics of a teacher on data (mean, std and Fourier spectra of every
 * tapped layer) and saves them as safetensors, to publish instead of the data.
 */
export function stats(config: z.input<typeof statsSchema>): Job<StatsResult> {
  try {
    const { signal, ...cfg } = parse(statsSchema, config, "stats config");
    return new Job<StatsResult>((onEvent) => native().runJob("stats", { device: defaultDevice(), ...cfg }, onEvent), { signal });
  } catch (e) {
    return failed(e);
  }
}

/** MNIST IDX files of a folder as a dataset spec (rows [start, end), normalized). */
export function mnist(dir: string, opts: { start?: number; end?: number; mean?: number; std?: number; split?: "train" | "test" | "t10k" } = {}): DatasetSpec {
  const prefix = opts.split === "train" ? "train" : "t10k";
  const file = (kind: string) => {
    const base = path.join(dir, `${prefix}-${kind}-idx${kind === "images" ? 3 : 1}-ubyte`);
    return existsSync(base + ".gz") ? base + ".gz" : base;
  };
  return {
    images: file("images"),
    labels: file("labels"),
    start: opts.start,
    end: opts.end,
    mean: opts.mean ?? 0.1307,
    std: opts.std ?? 0.3081,
  };
}

function failed<R>(e: unknown): Job<R> {
  return new Job<R>(() => {
    throw e instanceof DfkdError ? e : new DfkdError("E_INTERNAL", String((e as Error)?.message ?? e));
  });
}
