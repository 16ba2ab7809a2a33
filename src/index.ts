/// <reference types="node" preserve="true" />
// dfkd: data-free knowledge distillation for TorchScript models.
import { existsSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import {
  adversarialSchema, datasetSchema, defaultDevice, distillSchema, generatorSchema, inputShapeSchema, nativeDistillConfig, parse, synthSchema, trainSchema,
  type DistillConfig, type DatasetSpec, type Method,
} from "./config.js";
import { DfkdError, type ErrorCode } from "./errors.js";
import { Job } from "./job.js";
import { native, PACKAGE_ROOT, type DistillDefaults, type RuntimeInfo } from "./native.js";

export { DfkdError, ERROR_CODES } from "./errors.js";
export type { ErrorCode } from "./errors.js";
export type { Job, JobEvent, ProgressEvent, PhaseEvent, LogEvent, EvalEvent, CheckpointEvent, Phase } from "./job.js";
export type { DistillConfig, DatasetSpec, Method } from "./config.js";
export type { CpuCacheStats, DistillDefaults, RuntimeInfo } from "./native.js";
/** `train` of a DistillConfig: the student's optimizer, schedule, KD loss and augmentation. */
export type TrainOptions = z.input<typeof trainSchema>;
/** `synth` of a DistillConfig: input synthesis (statistical, spectral, deepinversion; fast: z's optimizer, batch, iterations). */
export type SynthOptions = z.input<typeof synthSchema>;
/** `generator` of a DistillConfig: the generator of the adversarial and fast methods. */
export type GeneratorOptions = z.input<typeof generatorSchema>;
/** `adversarial` of a DistillConfig: the adversarial method's loop sizes. */
export type AdversarialOptions = z.input<typeof adversarialSchema>;

export interface Accuracy {
  samples: number;
  teacherAccuracy?: number;
  studentAccuracy?: number;
  /** Fraction of test images on which teacher and student predict the same class. */
  agreement?: number;
}

/** The budget of a run (report.budget): what calibration measured and how the run was sized. */
export interface BudgetReport {
  /** The budget in seconds, and whether it came from the config or the default (5 minutes). */
  seconds: number;
  source: "config" | "default";
  /** Seconds per synthesis iteration, student step, generator step and evaluation, measured here. */
  calibration: { synthIteration: number; studentStep: number; generatorStep: number; evaluate: number };
  calibrationSeconds: number;
  /** The loop's unit (round, iteration, step), its estimated cost, and how many the run does. */
  unit: "round" | "iteration" | "step";
  unitSeconds: number;
  units: number;
  /** The sizes the budget set (keys like "synth.rounds"); sizes given in the config are kept. */
  plan: Record<string, number>;
  /** Estimated and actual seconds of the whole run. */
  estimate: number;
  spent: number;
  warnings?: string[];
  resumed?: boolean;
}

export interface DistillReport {
  method: Method;
  /** When the method was "auto": why this one. */
  methodChoice?: { method: "auto"; reason: string };
  budget?: BudgetReport;
  /** `output`: what the teacher's forward returns (TeacherInfo.output). */
  teacher: { path: string; parameters: number; output: TeacherOutput };
  student: { path: string; parameters: number };
  device: string;
  seed: number;
  inputShape: number[];
  numClasses: number;
  studentSteps: number;
  synthesized: number;
  evaluation?: Accuracy;
  /** Every evalEvery student steps: accuracy on `test`, and seconds since the job started (evaluations excluded). */
  evals?: Array<{ step: number; studentAccuracy: number; elapsed: number }>;
  /** Seconds per phase (load, synthesize, train, evaluate, save) and total. */
  timings: Record<string, number>;
  /** Host syncs of the training loop: device reads (one per progress event, evaluation or
   * checkpoint, and one at the end; a step that is not reported waits for nothing), the progress events, the
   * evaluations, and — with DFKD_COUNT_SYNCS=1 in the environment — every other scalar read. */
  hostSyncs: { reads: number; progressEvents: number; evals: number; items?: number };
  /** A data-parallel run (config `distributed`, WORLD_SIZE > 1): this process's rank and the
   * group. Only rank 0's report is written (and its student); `config.train.batchSize` is the
   * global batch, each rank steps on `studentBatchPerRank` of it. `collectives`: rank 0's
   * all-reduces and broadcasts over the run — how many, the megabytes it put into them, and the
   * seconds from issuing each to its completion (transfer plus waiting for slower ranks).
   * `syncBatchNorm`: whether the student's BatchNorm normalized over the ranks (config
   * `distributed.syncBatchNorm` and a zoo student). */
  distributed?: {
    rank: number; world: number; backend: "gloo" | "nccl"; studentBatchPerRank: number; timeout: number; syncBatchNorm: boolean;
    collectives: { count: number; megabytes: number; seconds: number };
  };
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

/** What a teacher's forward returns, found by probing it: "logits"; "log-probabilities" (a
 * log_softmax at its end: used as logits, which they are up to a constant per row); or
 * "probabilities" (a softmax at its end: rows in [0, 1] summing to 1), which dfkd turns into their
 * logarithms before any loss (KD at temperature T on probabilities would see near-uniform targets).
 * A student dfkd writes returns logits either way. */
export type TeacherOutput = "logits" | "log-probabilities" | "probabilities";

export interface TeacherInfo {
  path: string;
  device: string;
  parameters: number;
  inputShape: number[];
  numClasses: number;
  output: TeacherOutput;
  /** The dtype its floating weights are stored in ("Float", "Half", "BFloat16", "Double"); dfkd
   * runs every teacher in float32 (config precision "bf16" asks for autocast). */
  storedDtype: string;
  /** The per-channel mean of the inputs it was trained on, where its first BatchNorm normalizes the
   * input or a convolution of it and a linear fit of that BatchNorm's running mean holds: what
   * `distill` infers the input normalization from when none is given (README). */
  inputMean?: number[];
  /** BatchNorm layers with running statistics (one built with track_running_stats=False stores none
   * and does not count). */
  bnLayers: number;
  /** Convolution calls in the teacher's forward (0: an MLP; `auto` picks by it without BatchNorm). */
  convolutions: number;
  taps: Array<{ name: string; kind: "bn" | "layer" | "penultimate"; channels?: number }>;
  meta: Record<string, unknown>;
}

export interface StatsResult {
  path: string;
  samples: number;
  layers: Array<{ name: string; channels: number; spectrum: number[] | null }>;
}

/** A file the config names must exist: otherwise `code`, naming the field and where it was looked for. */
function requireFile(field: string, file: string | undefined, code: ErrorCode): void {
  if (file === undefined || existsSync(file)) return;
  const where = path.isAbsolute(file) ? "" : ` (resolved to ${path.resolve(file)} from the working directory ${process.cwd()})`;
  throw new DfkdError(code, `${field}: file not found: ${file}${where}`);
}
function requireDataset(field: string, d: DatasetSpec | undefined): void {
  if (d && "images" in d) {
    requireFile(`${field}.images`, d.images, "E_DATA_NOT_FOUND");
    requireFile(`${field}.labels`, d.labels, "E_DATA_NOT_FOUND");
  }
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
export function runtime(): RuntimeInfo {
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
    const models = zoo();
    requireFile("teacher", cfg.teacher, "E_MODEL_NOT_FOUND");
    if (cfg.student !== undefined && !models.includes(cfg.student)) requireFile("student", cfg.student, "E_MODEL_NOT_FOUND");
    requireFile("stats", cfg.stats, "E_STATS_NOT_FOUND");
    requireFile("resume", cfg.resume, "E_CHECKPOINT");
    requireDataset("data", cfg.data);
    requireDataset("test", cfg.test);
    nat = nativeDistillConfig(cfg);
  } catch (e) {
    return failed(e);
  }
  return Job.start<DistillReport>((onEvent) => native().runJob("distill", nat, onEvent), {
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

/** Options of evaluate(). */
export type EvaluateOptions = z.input<typeof evaluateSchema>;

/** Top-1 accuracy of a teacher and/or student on a labeled test set, and their agreement. */
export function evaluate(config: EvaluateOptions): Job<Accuracy> {
  try {
    const cfg = parse(evaluateSchema, config, "evaluate config");
    if (!cfg.teacher && !cfg.student) throw new DfkdError("E_CONFIG", "invalid evaluate config: give a teacher and/or a student");
    requireFile("teacher", cfg.teacher, "E_MODEL_NOT_FOUND");
    requireFile("student", cfg.student, "E_MODEL_NOT_FOUND");
    requireDataset("test", cfg.test);
    return Job.start<Accuracy>((onEvent) => native().runJob("evaluate", { device: defaultDevice(), ...cfg }, onEvent));
  } catch (e) {
    return failed(e);
  }
}

const infoSchema = z.strictObject({
  inputShape: inputShapeSchema.optional(),
  layers: z.array(z.string().min(1)).optional(),
  device: z.string().optional(),
});

/** Options of info(). */
export type InfoOptions = z.input<typeof infoSchema>;

/** Introspection of a TorchScript teacher: classes, taps (BN layers), parameter count. */
export function info(teacher: string, options: InfoOptions = {}): Promise<TeacherInfo> {
  try {
    const o = parse(infoSchema, options, "info options");
    requireFile("teacher", teacher, "E_MODEL_NOT_FOUND");
    return Job.start<TeacherInfo>((onEvent) => native().runJob("info", { teacher, device: defaultDevice(), ...o }, onEvent)).result;
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

/** Options of stats(). */
export type StatsOptions = z.input<typeof statsSchema>;

/**
 * Computes per-layer statistics of a teacher on data (mean, std and Fourier spectra of every
 * tapped layer) and saves them as safetensors, to publish instead of the data.
 */
export function stats(config: StatsOptions): Job<StatsResult> {
  try {
    const { signal, ...cfg } = parse(statsSchema, config, "stats config");
    requireFile("teacher", cfg.teacher, "E_MODEL_NOT_FOUND");
    requireDataset("data", cfg.data);
    return Job.start<StatsResult>((onEvent) => native().runJob("stats", { device: defaultDevice(), ...cfg }, onEvent), { signal });
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
  return Job.start<R>(() => {
    throw e instanceof DfkdError ? e : new DfkdError("E_INTERNAL", String((e as Error)?.message ?? e));
  });
}
