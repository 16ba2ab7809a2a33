// Typed configuration with defaults and validation. Published-recipe defaults live in the C++
// synthesizers (each with its source); the values here are the façade's own and per-method
// student-training defaults.
import path from "node:path";
import { z } from "zod";
import { DfkdError } from "./errors.js";

export const METHODS = ["classical", "statistical", "spectral", "deepinversion", "adversarial", "noise"] as const;
export type Method = (typeof METHODS)[number];

const positiveInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const positive = z.number().positive().finite();
const nonNeg = z.number().nonnegative().finite();
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
  /** Memory bank capacity in images (default: every synthesized image is kept). */
  bankSize: nonNegInt.optional(),
  ce: nonNeg.optional(),
  bn: nonNeg.optional(),
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
  /** BN statistics term on generated batches. */
  bn: nonNeg.optional(),
});

export const adversarialSchema = z.strictObject({
  epochs: positiveInt.optional(),
  itersPerEpoch: positiveInt.optional(),
  studentSteps: positiveInt.optional(),
  batchSize: positiveInt.optional(),
  /** Also measure the discrepancy after each student and generator step (extra forwards). */
  diagnostics: z.boolean().optional(),
});

export const distillSchema = z.strictObject({
  /** TorchScript teacher file. */
  teacher: z.string().min(1),
  /** A built-in model name (see zoo()) or a TorchScript file. Default: lenet5_half. */
  student: z.string().min(1).optional(),
  method: z.enum(METHODS).optional(),
  device: z.string().regex(/^(cpu|cuda|auto|cuda:\d+)$/, "device must be cpu, cuda, cuda:N or auto").optional(),
  seed: nonNegInt.optional(),
  threads: positiveInt.optional(),
  /** Teacher input [C, H, W]; default: the teacher file's dfkd metadata, or the data's shape. */
  inputShape: z.array(positiveInt).length(3).optional(),
  /** Training data (classical) — data-free methods never need it. */
  data: datasetSchema.optional(),
  /** Labeled test set: accuracy of teacher and student and their agreement go in the report. */
  test: datasetSchema.optional(),
  /** A `dfkd stats` file (statistical, spectral). */
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

/** Student-training defaults per method (the synthesis defaults are in native/core/synth). */
export const TRAIN_DEFAULTS: Record<Method, z.infer<typeof trainSchema>> = {
  // Hinton et al.: KL at tau = 4; SGD with cosine decay, a common CIFAR/MNIST KD recipe.
  classical: { steps: 2000, batchSize: 128, optimizer: "sgd", lr: 0.05, momentum: 0.9, weightDecay: 5e-4, schedule: "cosine", temperature: 4, ceWeight: 0, loss: "kl", cropPadding: 2, flip: false },
  // The `datafree` library (CMI / Fast-Datafree): SGD 0.1, momentum 0.9, wd 1e-4, KD steps
  // after each synthesized batch from a bank that keeps every image, T = 20.
  deepinversion: { stepsPerRound: 100, batchSize: 256, optimizer: "sgd", lr: 0.1, momentum: 0.9, weightDecay: 1e-4, schedule: "cosine", temperature: 20, loss: "kl", cropPadding: 2, flip: false },
  statistical: { stepsPerRound: 100, batchSize: 256, optimizer: "sgd", lr: 0.1, momentum: 0.9, weightDecay: 1e-4, schedule: "cosine", temperature: 20, loss: "kl", cropPadding: 2, flip: false },
  spectral: { stepsPerRound: 100, batchSize: 256, optimizer: "sgd", lr: 0.1, momentum: 0.9, weightDecay: 1e-4, schedule: "cosine", temperature: 20, loss: "kl", cropPadding: 2, flip: false },
  // Baseline: the same KD loop on unoptimized Gaussian noise.
  noise: { stepsPerRound: 100, batchSize: 256, optimizer: "sgd", lr: 0.1, momentum: 0.9, weightDecay: 1e-4, schedule: "cosine", temperature: 20, loss: "kl", cropPadding: 2, flip: false },
  // DFAD_mnist.py: student SGD lr 0.01, momentum 0.9, wd 1e-4, batch 512, L1 on logits.
  adversarial: { batchSize: 512, optimizer: "sgd", lr: 0.01, momentum: 0.9, weightDecay: 1e-4, schedule: "none", temperature: 1, loss: "l1", cropPadding: 0, flip: false },
};

/** The device when a config names none: $DFKD_DEVICE, else "cpu". */
export function defaultDevice(): string {
  return process.env.DFKD_DEVICE || "cpu";
}

/** The config the native job reads (all defaults applied). */
export function nativeDistillConfig(cfg: z.output<typeof distillSchema>, zoo: string[]) {
  const method: Method = cfg.method ?? "deepinversion";
  if ((method === "classical") && !cfg.data)
    throw new DfkdError("E_CONFIG", "invalid config: method 'classical' needs data (a labeled or unlabeled dataset)");
  const outDir = cfg.outDir ?? "dfkd-out";
  const studentName = cfg.student ?? "lenet5_half";
  const student = zoo.includes(studentName) ? { model: studentName } : { path: studentName };
  const output = {
    dir: outDir,
    student: cfg.output?.student ?? path.join(outDir, "student.pt"),
    report: cfg.output?.report ?? path.join(outDir, "report.json"),
    checkpoint: cfg.output?.checkpoint ?? path.join(outDir, "checkpoint.dfkd"),
    generator: cfg.output?.generator ?? path.join(outDir, "generator.pt"),
    samples: cfg.output?.samples ?? true,
    samplesPrefix: path.join(outDir, "samples"),
  };
  const { signal: _signal, outDir: _o, output: _out, student: _s, ...rest } = cfg;
  return {
    ...rest,
    method,
    device: cfg.device ?? defaultDevice(),
    seed: cfg.seed ?? 0,
    student,
    output,
    train: { ...TRAIN_DEFAULTS[method], ...cfg.train },
    synth: cfg.synth ?? {},
    generator: cfg.generator ?? {},
    adversarial: cfg.adversarial ?? {},
  };
}
