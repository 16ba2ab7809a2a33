// Typed configuration and its validation (types and ranges). Every default lives in the C++ core
// (native/core/config.h and each method's recipe, native/core/methods/), which also checks the
// method name and reports unknown keys; `defaults()` (index.ts) reads them from the addon.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { DfkdError } from "./errors.js";

/** The built-in methods (the addon's registry may hold more: `Object.keys(defaults().methods)`). */
export type Method = "auto" | "classical" | "statistical" | "spectral" | "deepinversion" | "adversarial" | "fast" | "noise" | (string & {});

const positiveInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const positive = z.number().positive().finite();
const nonNeg = z.number().nonnegative().finite();
/** A teacher's input [C, H, W]: dfkd distills image classifiers (the teacher takes [N, C, H, W]). */
export const inputShapeSchema = z.array(positiveInt).length(3, {
  message: "expected [channels, height, width]: dfkd distills image classifiers, whose input is [N, C, H, W]",
});
const perChannel = z.union([z.number().finite(), z.array(z.number().finite()).min(1)]);
const typedArray = z.custom<ArrayBufferView>((v) => ArrayBuffer.isView(v) && !(v instanceof DataView), {
  message: "expected a typed array (Float32Array, Float64Array, Uint8Array, Int32Array, BigInt64Array)",
});

const rangeAndNorm = {
  /** First row (inclusive; negative counts from the end). */
  start: z.number().int().optional(),
  /** Last row (exclusive; negative counts from the end). */
  end: z.number().int().optional(),
  /** Normalization applied after scaling uint8 images to [0, 1]: (x - mean) / std. */
  mean: perChannel.optional(),
  std: perChannel.optional(),
};
export const fileDatasetSchema = z.strictObject({
  /** IDX (.idx / -ubyte, optionally .gz) or .npy images [N,H,W] or [N,C,H,W]. */
  images: z.string().min(1),
  labels: z.string().min(1).optional(),
  ...rangeAndNorm,
});
export const memoryDatasetSchema = z.strictObject({
  x: typedArray,
  shape: z.array(nonNegInt).min(2).max(4),
  y: typedArray.optional(),
  ...rangeAndNorm,
});
export const datasetSchema = z.union([fileDatasetSchema, memoryDatasetSchema]);
export type DatasetSpec = z.input<typeof datasetSchema>;

export const trainSchema = z.strictObject({
  /** classical: optimizer steps. */
  steps: positiveInt.optional(),
  /** data-free inversion methods: KD steps after each synthesized batch. */
  stepsPerRound: nonNegInt.optional(),
  batchSize: positiveInt.optional(),
  optimizer: z.enum(["sgd", "adam"]).optional(),
  lr: positive.optional(),
  momentum: nonNeg.optional(),
  weightDecay: nonNeg.optional(),
  betas: z.tuple([nonNeg, nonNeg]).optional(),
  schedule: z.enum(["cosine", "step", "none"]).optional(),
  /** For schedule "step": steps, or fractions of the run when < 1. */
  milestones: z.array(nonNeg).optional(),
  gamma: positive.optional(),
  warmup: nonNegInt.optional(),
  /** KD temperature tau. */
  temperature: positive.optional(),
  /** Weight of the cross-entropy on labels (classical only). */
  ceWeight: nonNeg.optional(),
  /** Student loss: KL at temperature tau, or L1 on logits (DFAD). */
  loss: z.enum(["kl", "l1"]).optional(),
  /** Augmentation of student batches: random crop with this zero padding, horizontal flip. */
  cropPadding: nonNegInt.optional(),
  flip: z.boolean().optional(),
  /** Synthesized-data methods: this fraction of each student batch is replaced by mixtures
   * lam*x_i + (1-lam)*x_j of two bank images (lam ~ U(0,1) per image), labeled by the teacher
   * like any other input: samples between the synthesized ones, near the decision boundaries. */
  mixup: z.number().min(0).max(1).optional(),
  /** Average the student's weights over its steps: an exponential moving average at this decay
   * per step (warm-up min(ema, (1 + n) / (10 + n)) at step n; BN running statistics included).
   * The average is what the run evaluates, checkpoints and saves. 0 turns it off. */
  ema: z.number().min(0).lt(1).optional(),
});

export const synthSchema = z.strictObject({
  rounds: positiveInt.optional(),
  batchSize: positiveInt.optional(),
  iterations: nonNegInt.optional(),
  lr: positive.optional(),
  betas: z.tuple([nonNeg, nonNeg]).optional(),
  lrSchedule: z.enum(["cosine", "none"]).optional(),
  /** Random shift (roll) of the batch by up to this many pixels at each synthesis iteration. */
  jitter: nonNegInt.optional(),
  /** Random horizontal flip of the batch at each synthesis iteration (default true, DeepInversion's
   * prior for natural images). Set false where a mirrored input is not a valid one (digits, text):
   * MNIST spectral, 3 seeds: 96.96% held-out with it, 97.84% without (bench/presets.json). */
  flip: z.boolean().optional(),
  /** Memory bank capacity in images (default: every synthesized image, up to 1 GiB of them; beyond, the oldest go first). */
  bankSize: nonNegInt.optional(),
  ce: nonNeg.optional(),
  bn: nonNeg.optional(),
  /** The first BatchNorm layer's weight in the BN term (DeepInversion's first_bn_multiplier;
   * deepinversion's default 10, fast's 1). */
  firstBnMultiplier: nonNeg.optional(),
  feature: nonNeg.optional(),
  squared: z.boolean().optional(),
  firstLayerMultiplier: nonNeg.optional(),
  spectral: nonNeg.optional(),
  spectrum: z.enum(["amplitude", "power"]).optional(),
  layerWeights: z.array(nonNeg).optional(),
  tvL1: nonNeg.optional(),
  tvL2: nonNeg.optional(),
  l2: nonNeg.optional(),
  /** Adaptive DeepInversion competition weight (0 = plain DeepInversion). */
  adi: nonNeg.optional(),
  adiTemperature: positive.optional(),
  clip: nonNeg.optional(),
});

export const generatorSchema = z.strictObject({
  nz: positiveInt.optional(),
  ngf: positiveInt.optional(),
  optimizer: z.enum(["sgd", "adam"]).optional(),
  lr: positive.optional(),
  betas: z.tuple([nonNeg, nonNeg]).optional(),
  schedule: z.enum(["cosine", "step", "none"]).optional(),
  milestones: z.array(nonNeg).optional(),
  gamma: positive.optional(),
  loss: z.enum(["l1", "kl"]).optional(),
  adversarial: nonNeg.optional(),
  /** DAFL terms (0 = off): one-hot CE, activation, information entropy. */
  onehot: nonNeg.optional(),
  activation: nonNeg.optional(),
  entropy: nonNeg.optional(),
  /** Statistics term on generated batches: the teacher's BatchNorm statistics (fast: a `stats`
   * file's per-layer means and stds when one is given). 0 by default for a teacher with neither:
   * DAFL's terms (onehot, activation, entropy) instead. */
  bn: nonNeg.optional(),
  /**
   * The generator's last layer: "pixels" (sigmoid to [0, 1], then the teacher's normalization),
   * "standardized" (DFAD's tanh + BatchNorm: mean 0 / std 1 per channel), "auto" (default:
   * standardized, except pixels when the normalization cannot be the data's statistics, e.g.
   * raw pixels 0 / 1 or [-1, 1] as 0.5 / 0.5).
   */
  output: z.enum(["auto", "pixels", "standardized"]).optional(),
  /** fast: the fraction of the run's rounds before the adversarial term is on (0..1). */
  advWarmup: z.number().min(0).max(1).optional(),
  /**
   * fast: the BN term compares the teacher's statistics with the batch's mixed with a running
   * average of the earlier batches' (this momentum, 0..1 excluded; Fast-Datafree's bn_mmt): each
   * batch need only keep the average on target. 0: every batch on its own. The BN term only (a
   * stats file's term compares each batch alone); E_CONFIG with method adversarial.
   */
  bnMomentum: z.number().min(0).lt(1).optional(),
});

export const adversarialSchema = z.strictObject({
  epochs: positiveInt.optional(),
  itersPerEpoch: positiveInt.optional(),
  studentSteps: positiveInt.optional(),
  batchSize: positiveInt.optional(),
  /**
   * The fraction of each student batch drawn from a bank of the generator's earlier samples
   * (0..1, excluded; replay against forgetting, MB-DFKD). Default: by the teacher (see README).
   */
  replay: z.number().min(0).lt(1).optional(),
  /** The replay bank's capacity in images (default: every sample put in it, up to 1 GiB of them). */
  bankSize: positiveInt.optional(),
  /** Also measure the discrepancy after each student and generator step (extra forwards). */
  diagnostics: z.boolean().optional(),
});

export const distillSchema = z.strictObject({
  /** TorchScript teacher file. */
  teacher: z.string().min(1),
  /** A built-in model name (see zoo()) or a TorchScript file. Default: lenet5_half. */
  student: z.string().min(1).optional(),
  /** A method of the registry (native/core/methods), or "auto" (the default): classical when
   * `data` is given, spectral with a `stats` file, fast for a teacher with BatchNorm, fast with
   * DAFL's terms for one with neither BatchNorm nor convolutions (an MLP), else adversarial with
   * DAFL's terms. The report says which and why. */
  method: z.custom<Method>((v) => typeof v === "string" && v.length > 0, { message: "expected a method name" }).optional(),
  device: z.string().regex(/^(cpu|cuda|auto|cuda:\d+)$/, "device must be cpu, cuda, cuda:N or auto").optional(),
  seed: nonNegInt.optional(),
  threads: positiveInt.optional(),
  /** The models' forwards: "fp32" (default), or "bf16" autocast — convolutions and matrix products
   * in bfloat16, weights, losses and optimizer in float32 (GPUs with bf16 tensor cores, recent
   * CPUs). Evaluation always runs in float32; the saved student is float32. */
  precision: z.enum(["fp32", "bf16"]).optional(),
  /** 4-D weights and inputs in channels-last (NHWC) memory order: the fast path of cuDNN's and
   * oneDNN's convolutions. Same values, same student. Default false. */
  channelsLast: z.boolean().optional(),
  /** CUDA devices: the student step (teacher and student forwards, loss, backward) and the
   * input-synthesis step (teacher forward, loss, backward into the batch; not with the ADI term)
   * captured as CUDA graphs after 3 eager steps and replayed, the optimizer steps eager. Ignored
   * (with a log line) elsewhere. Default false: not yet measured on a GPU. */
  cudaGraphs: z.boolean().optional(),
  /** Data-parallel runs. The ranks come from torchrun's environment variables (RANK, WORLD_SIZE,
   * LOCAL_RANK, MASTER_ADDR, MASTER_PORT; `dfkd distill --nproc N` sets them for N local
   * processes): with WORLD_SIZE > 1 each process works on its share of every batch over c10d's
   * Gloo group (CPU) or NCCL group (CUDA, one device per local rank); every method; rank 0 writes
   * the outputs. `timeout`: seconds a rank waits for the others (rendezvous, each collective)
   * before E_DISTRIBUTED; default 300. `syncBatchNorm`: a zoo student's BatchNorm normalizes by the
   * whole batch's statistics over the ranks (the student of one process at the global batch; one
   * all-reduce per layer and step each way); false: by each rank's share (as DDP without
   * SyncBatchNorm: fewer collectives — classical on 2 local ranks 1.84x one process's time with it,
   * 1.34x without, bench/results/dist.md). Default true. Generators always synchronize theirs. */
  distributed: z.strictObject({ timeout: positive.optional(), syncBatchNorm: z.boolean().optional() }).optional(),
  /** Teacher input [C, H, W]; default: the teacher file's dfkd metadata, or the data's shape. */
  inputShape: inputShapeSchema.optional(),
  /** Wall-clock budget of the whole run: seconds, or "90s", "10m", "2h", "1h30m". The run measures
   * what a step costs on this machine and sizes itself (rounds, epochs, steps) to end within it;
   * sizes given explicitly are kept. Default: 5 minutes when no size is given. */
  budget: z.union([positive, z.string().regex(/^(\d+(\.\d+)?(s|m|min|h)?)+$/, 'budget: a duration like "90s", "10m", "2h"')]).optional(),
  /** What synthesized inputs should look like: "natural" (photos: random flips), "digits"
   * (digits, letters, documents: no flips). Default "auto": one channel -> digits, else natural. */
  prior: z.enum(["auto", "natural", "digits"]).optional(),
  /** The teacher's input normalization, (pixel/255 - mean) / std per channel, when its file has no
   * dfkd metadata: for the samples' images and the student's metadata. Default: the metadata,
   * else the test (or data) set's mean/std. */
  normalization: z.strictObject({ mean: z.array(z.number().finite()).min(1), std: z.array(positive).min(1) }).optional(),
  /** Training data (classical) — data-free methods never need it. */
  data: datasetSchema.optional(),
  /** Labeled test set: accuracy of teacher and student and their agreement go in the report. */
  test: datasetSchema.optional(),
  /** A `dfkd stats` file (statistical, spectral, fast). */
  stats: z.string().min(1).optional(),
  /** Extra teacher submodules to tap (paths like "layer1.0"). */
  layers: z.array(z.string().min(1)).optional(),
  outDir: z.string().min(1).optional(),
  output: z
    .strictObject({
      student: z.string().optional(),
      report: z.string().optional(),
      checkpoint: z.string().optional(),
      generator: z.string().optional(),
      /** Save a batch of synthesized samples (.safetensors + .png). Default true. */
      samples: z.boolean().optional(),
    })
    .optional(),
  train: trainSchema.optional(),
  synth: synthSchema.optional(),
  generator: generatorSchema.optional(),
  adversarial: adversarialSchema.optional(),
  /** Evaluate the student on `test` every N student steps (0 = only at the end). */
  evalEvery: nonNegInt.optional(),
  /** Write a checkpoint every N steps (classical), rounds (inversion) or iterations (adversarial). */
  checkpointEvery: nonNegInt.optional(),
  /** Continue from a checkpoint written by a cancelled or failed run with the same config. */
  resume: z.string().min(1).optional(),
  signal: z.custom<AbortSignal>((v) => v instanceof AbortSignal, { message: "expected an AbortSignal" }).optional(),
});
export type DistillConfig = z.input<typeof distillSchema>;

export function formatIssues(err: z.ZodError): string {
  return err.issues
    .map((i) => `${i.path.length ? i.path.join(".") : "config"}: ${i.message}`)
    .join("; ");
}

export function parse<T extends z.ZodType>(schema: T, value: unknown, what: string): z.output<T> {
  const r = schema.safeParse(value);
  if (!r.success) throw new DfkdError("E_CONFIG", `invalid ${what}: ${formatIssues(r.error)}`);
  return r.data;
}

/** The device when a config names none: $DFKD_DEVICE, else "cpu". */
export function defaultDevice(): string {
  return process.env.DFKD_DEVICE || "cpu";
}

let version: string | undefined;
/** This package's version (package.json), recorded in reports. */
export function packageVersion(root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")): string {
  if (version === undefined) {
    try { version = String(JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")).version); } catch { version = ""; }
  }
  return version;
}

/**
 * The config the native job reads: the validated config as given (the core fills in every
 * default, once), with the output folder and device resolved by the façade's own rules
 * (outDir; $DFKD_DEVICE) and the package version for the report.
 */
export function nativeDistillConfig(cfg: z.output<typeof distillSchema>) {
  const { signal: _signal, outDir, output, ...rest } = cfg;
  const out = { ...output, ...(outDir !== undefined ? { dir: outDir } : {}) };
  return {
    ...rest,
    device: cfg.device ?? defaultDevice(),
    ...(Object.keys(out).length ? { output: out } : {}),
    version: packageVersion(),
  };
}
