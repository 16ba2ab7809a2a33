#!/usr/bin/env node
// dfkd command line: distill, eval, info, stats, zoo.
import { Command, CommanderError, Option } from "commander";
import cliProgress from "cli-progress";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import { freePort } from "./ports.js";
import { DfkdError, defaults, distill, evaluate, info, stats, zoo, type DistillConfig, type DatasetSpec, type Job, type JobEvent } from "./index.js";
import { mainJob, mnistSplit, hasMnist, mnistDir } from "./presets.js";

const EXIT = { ok: 0, error: 1, usage: 2, cancelled: 130 } as const;

const num = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new DfkdError("E_CONFIG", `not a number: ${v}`);
  return n;
};
const int = (v: string) => {
  const n = num(v);
  if (!Number.isInteger(n)) throw new DfkdError("E_CONFIG", `not an integer: ${v}`);
  return n;
};
const list = (v: string) => v.split(",").map((s) => s.trim()).filter(Boolean);
const nums = (v: string) => list(v).map(num);
/** --method, its choices the addon's registry (none to offer when the addon does not load). */
function methodOption(): Option {
  const o = new Option("-m, --method <method>", "distillation method");
  try {
    return o.choices(Object.keys(defaults().methods));
  } catch {
    return o;
  }
}

function range(v: string): { start?: number; end?: number } {
  const m = /^(-?\d*):(-?\d*)$/.exec(v);
  if (!m) throw new DfkdError("E_CONFIG", `a range is START:END (either may be empty), got ${v}`);
  return { start: m[1] ? Number(m[1]) : undefined, end: m[2] ? Number(m[2]) : undefined };
}

function dataset(images: string | undefined, labels: string | undefined, r: string | undefined, mean?: number[], std?: number[]): DatasetSpec | undefined {
  if (!images) return undefined;
  return { images, labels, ...(r ? range(r) : {}), ...(mean ? { mean } : {}), ...(std ? { std } : {}) };
}

function fail(e: unknown, json: boolean): never {
  const err = e instanceof DfkdError ? e : new DfkdError("E_INTERNAL", (e as Error)?.message ?? String(e));
  if (json) process.stdout.write(JSON.stringify({ type: "error", code: err.code, message: err.message, checkpoint: err.checkpoint }) + "\n");
  else process.stderr.write(`dfkd: error ${err.code}: ${err.message}\n`);
  process.exit(err.code === "E_CANCELLED" ? EXIT.cancelled : err.code === "E_CONFIG" ? EXIT.usage : EXIT.error);
}

/**
 * `dfkd distill --nproc N`: this same command as N local processes with torchrun's variables
 * (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR 127.0.0.1, a free MASTER_PORT). Rank 0's output is
 * the command's; the other ranks' stderr is shown with a "[rank r]" prefix. A rank that fails
 * ends the others with E_DISTRIBUTED within the distributed timeout (they notice at their next
 * collective); the exit status is rank 0's, else the first failure's. Ctrl-C reaches every rank
 * (same process group): they stop together at the next unit and write their checkpoints.
 */
async function launchRanks(n: number): Promise<never> {
  const port = await freePort();
  const args: string[] = [];
  for (let i = 2; i < process.argv.length; i++) {
    const a = process.argv[i];
    if (a === "--nproc") i++;
    else if (!a.startsWith("--nproc=")) args.push(a);
  }
  const codes: (number | null)[] = new Array(n).fill(null);
  process.on("SIGINT", () => { /* the ranks get it too and stop themselves */ });
  await Promise.all(Array.from({ length: n }, (_, rank) => new Promise<void>((resolve) => {
    // Without OMP_NUM_THREADS each rank gets its share of the cores (libtorch's default is all of
    // them: N ranks x all cores oversubscribe the machine; torchrun sets 1 in this case, we split
    // the cores); `threads` in the config or --threads still decide.
    const omp = process.env.OMP_NUM_THREADS || String(Math.max(1, Math.floor(os.availableParallelism() / n)));
    const env = { ...process.env, OMP_NUM_THREADS: omp, RANK: String(rank), WORLD_SIZE: String(n), LOCAL_RANK: String(rank), MASTER_ADDR: "127.0.0.1", MASTER_PORT: String(port) };
    const child = spawn(process.execPath, [process.argv[1], ...args], { env, stdio: rank === 0 ? "inherit" : ["ignore", "ignore", "pipe"] });
    child.stderr?.on("data", (d: Buffer) => {
      for (const line of d.toString().split("\n").filter(Boolean)) process.stderr.write(`[rank ${rank}] ${line}\n`);
    });
    child.on("exit", (code, signal) => {
      codes[rank] = code ?? (signal ? 128 : 1);
      resolve();
    });
  })));
  const code = codes[0] || codes.find((c) => c) || 0;
  process.exit(code);
}

const pct = (x?: number) => (x === undefined ? "n/a" : `${(100 * x).toFixed(2)}%`);
const fmtLoss = (l: Record<string, number>) =>
  Object.entries(l).filter(([k]) => k !== "lr").slice(0, 4).map(([k, v]) => `${k} ${Math.abs(v) < 1e-2 || Math.abs(v) >= 1e4 ? v.toExponential(2) : v.toFixed(3)}`).join(", ");

/** Follows a job: a progress bar on a TTY, periodic lines otherwise, JSON lines with --json. */
async function follow<R>(job: Job<R>, json: boolean, quiet: boolean): Promise<R> {
  const tty = process.stderr.isTTY && !json && !quiet;
  const bar = tty ? new cliProgress.SingleBar({ format: "{phase} |{bar}| {value}/{total} {round} | {loss} | {rate} | ETA {etas}", hideCursor: true, clearOnComplete: false, stream: process.stderr }, cliProgress.Presets.shades_classic) : undefined;
  let started = false, lastLine = 0, lastPhase = "";
  let interrupted = 0;
  const onSigint = () => {
    interrupted++;
    if (interrupted === 1) {
      process.stderr.write("\ndfkd: stopping after the current step and writing a checkpoint (Ctrl-C again to quit at once)\n");
      job.cancel();
    } else process.exit(EXIT.cancelled);
  };
  process.on("SIGINT", onSigint);
  const onEvent = (e: JobEvent) => {
    if (json) { process.stdout.write(JSON.stringify(e) + "\n"); return; }
    if (quiet) return;
    if (e.type === "progress") {
      const payload = { phase: e.phase.padEnd(10), loss: fmtLoss(e.losses), rate: `${Math.round(e.throughput)}/s`, etas: e.eta < 0 ? "?" : `${Math.round(e.eta)}s`, round: e.rounds ? `round ${e.round}/${e.rounds}` : e.epochs ? `epoch ${e.epoch}/${e.epochs}` : "" };
      if (bar) {
        if (!started || e.phase !== lastPhase) { if (started) bar.stop(); bar.start(e.total, e.step, payload); started = true; }
        bar.setTotal(e.total);
        bar.update(e.step, payload);
      } else if (Date.now() - lastLine > 5000 || e.step === e.total && e.phase !== "synthesize") {
        lastLine = Date.now();
        process.stderr.write(`${payload.phase} ${e.step}/${e.total} ${payload.round} | ${payload.loss} | ${payload.rate} | ETA ${payload.etas}\n`);
      }
      lastPhase = e.phase;
    } else if (e.type === "log") process.stderr.write(`dfkd: ${e.message}\n`);
    else if (e.type === "eval") process.stderr.write(`\nstep ${e.step}: student accuracy ${pct(e.studentAccuracy)}\n`);
  };
  job.on("event", onEvent);
  try {
    return await job;
  } finally {
    bar?.stop();
    process.off("SIGINT", onSigint);
  }
}

const program = new Command();
program.name("dfkd").description("Data-free knowledge distillation of TorchScript models (libtorch core).").version("0.1.0")
  .exitOverride().configureOutput({ writeErr: (s) => process.stderr.write(s) });

program.command("distill").description("distill a teacher into a smaller student, with or without data")
  .argument("[teacher]", "TorchScript teacher file")
  .option("--default", "the main job: the bundled MNIST LeNet-5 teacher -> LeNet-5-half, method auto, a 1-minute budget, scored on the MNIST report split (rows 8500:10000)")
  .option("-b, --budget <duration>", 'wall-clock budget: seconds or "90s", "10m", "2h" (default 5m when no size is given)', (v: string) => (/^\d+(\.\d+)?$/.test(v) ? Number(v) : v))
  .option("--input-shape <c,h,w>", "the teacher's input shape, when its file does not say", nums)
  .option("--prior <prior>", "synthesized inputs: natural (flips), digits (no flips) or auto (1 channel: digits)")
  .option("-s, --student <model|file>", `student: a built-in model (${"lenet5, lenet5_half, resnet8, resnet20, resnet18"}) or a TorchScript file`)
  .addOption(methodOption())
  .option("--data <images>", "training data (classical): IDX(.gz) or .npy images").option("--labels <file>", "training labels")
  .option("--data-range <a:b>", "rows of the training data")
  .option("--test <images>", "labeled test images for the report").option("--test-labels <file>", "test labels")
  .option("--test-range <a:b>", "rows of the test data")
  .option("--mnist <dir>", "MNIST folder: train on rows 0:7000 (classical), test on the report split 8500:10000")
  .option("--mean <m,...>", "the teacher's input normalization: mean per channel (after scaling bytes to [0,1]); also applied to --data/--test", nums)
  .option("--std <s,...>", "normalization std per channel", nums)
  .option("--stats <file>", "statistics file from `dfkd stats` (statistical, spectral)")
  .option("--layers <a,b>", "extra teacher submodules to tap", list)
  .option("--device <device>", "cpu, cuda, cuda:N or auto").option("--threads <n>", "CPU threads", int).option("--seed <n>", "random seed", int)
  .addOption(new Option("--precision <p>", "forwards in fp32, or under bf16 autocast").choices(["fp32", "bf16"]))
  .option("--channels-last", "NHWC memory order for convolutions (GPU fast path)")
  .option("--steps <n>", "student steps (classical)", int).option("--steps-per-round <n>", "student steps per synthesized batch", int)
  .option("--batch-size <n>", "student batch size", int).option("--lr <x>", "student learning rate", num)
  .option("--temperature <t>", "KD temperature", num)
  .option("--rounds <n>", "synthesis rounds (inversion methods)", int).option("--iterations <n>", "optimization steps per synthesized batch", int)
  .option("--synth-batch <n>", "synthesized batch size", int)
  .option("--epochs <n>", "adversarial epochs", int).option("--iters-per-epoch <n>", "adversarial iterations per epoch", int)
  .option("--eval-every <n>", "evaluate on the test set every n student steps", int)
  .option("--checkpoint-every <n>", "write a checkpoint every n steps/rounds/iterations", int)
  .option("-c, --config <file>", "JSON config (the library's DistillConfig); flags override it")
  .option("-o, --out <dir>", "output folder (student.pt, report.json, samples, checkpoint)")
  .option("--resume <checkpoint>", "continue a cancelled run from its checkpoint")
  .option("--json", "print events and the report as JSON lines on stdout").option("-q, --quiet", "no progress output")
  .option("--nproc <n>", "data-parallel: run as n local processes (c10d on 127.0.0.1: Gloo on the CPU, NCCL on CUDA, one GPU each); each takes cores/n threads unless --threads or OMP_NUM_THREADS says otherwise", int)
  .option("--dist-timeout <s>", "data-parallel: seconds a rank waits for the others before E_DISTRIBUTED (default 300)", num)
  .action(async (teacher: string | undefined, o) => {
    try {
      if (o.nproc !== undefined && (o.nproc < 1 || !Number.isInteger(o.nproc))) throw new DfkdError("E_CONFIG", "--nproc must be a positive integer");
      if (o.nproc > 1 && !process.env.WORLD_SIZE) await launchRanks(o.nproc);
      let cfg: DistillConfig = o.default ? mainJob() : ({} as DistillConfig);
      if (o.config) cfg = { ...cfg, ...JSON.parse(readFileSync(o.config, "utf8")) };
      if (teacher) cfg.teacher = teacher;
      if (!cfg.teacher) throw new DfkdError("E_CONFIG", "give a teacher file, --config, or --default");
      if (o.default && !cfg.test) process.stderr.write(`dfkd: MNIST not found at ${mnistDir()} (set DFKD_MNIST): running without a test set\n`);
      if (o.student) cfg.student = o.student;
      if (o.method) cfg.method = o.method;
      if (o.mnist) {
        if (!hasMnist(o.mnist)) throw new DfkdError("E_DATA_NOT_FOUND", `no MNIST IDX files in ${o.mnist}`);
        const s = mnistSplit(o.mnist);
        if (cfg.method === "classical") cfg.data = s.train;
        cfg.test = s.test;
      }
      cfg.data = dataset(o.data, o.labels, o.dataRange, o.mean, o.std) ?? cfg.data;
      cfg.test = dataset(o.test, o.testLabels, o.testRange, o.mean, o.std) ?? cfg.test;
      if (o.mean && o.std) cfg.normalization = { mean: o.mean, std: o.std };
      for (const [flag, key] of [["budget", "budget"], ["inputShape", "inputShape"], ["prior", "prior"], ["stats", "stats"], ["layers", "layers"], ["device", "device"], ["threads", "threads"], ["seed", "seed"], ["precision", "precision"], ["channelsLast", "channelsLast"], ["evalEvery", "evalEvery"], ["checkpointEvery", "checkpointEvery"], ["out", "outDir"], ["resume", "resume"]] as const)
        if (o[flag] !== undefined) (cfg as Record<string, unknown>)[key] = o[flag];
      if (o.distTimeout !== undefined) cfg.distributed = { ...cfg.distributed, timeout: o.distTimeout };
      const train = { ...cfg.train }, synth = { ...cfg.synth }, adv = { ...cfg.adversarial };
      if (o.steps !== undefined) train.steps = o.steps;
      if (o.stepsPerRound !== undefined) train.stepsPerRound = o.stepsPerRound;
      if (o.batchSize !== undefined) train.batchSize = o.batchSize;
      if (o.lr !== undefined) train.lr = o.lr;
      if (o.temperature !== undefined) train.temperature = o.temperature;
      if (o.rounds !== undefined) synth.rounds = o.rounds;
      if (o.iterations !== undefined) synth.iterations = o.iterations;
      if (o.synthBatch !== undefined) synth.batchSize = o.synthBatch;
      if (o.epochs !== undefined) adv.epochs = o.epochs;
      if (o.itersPerEpoch !== undefined) adv.itersPerEpoch = o.itersPerEpoch;
      Object.assign(cfg, { train, synth, adversarial: adv });
      const report = await follow(distill(cfg), !!o.json, !!o.quiet);
      if (o.json) process.stdout.write(JSON.stringify({ type: "report", ...report }) + "\n");
      else if (report.distributed && report.distributed.rank > 0) {
        process.stdout.write(`rank ${report.distributed.rank} of ${report.distributed.world}: done (rank 0 writes the student and the report)\n`);
      } else {
        const ev = report.evaluation;
        process.stdout.write(
          (report.methodChoice ? `\nmethod auto -> ${report.method}: ${report.methodChoice.reason}` : "") +
            (report.budget ? `\nbudget ${report.budget.seconds} s (${report.budget.source}): ${report.budget.units} ${report.budget.unit}s planned, ${report.budget.spent.toFixed(1)} s spent` : "") +
            `\nmethod ${report.method}: student saved to ${report.student.path} (${report.student.parameters} parameters; teacher ${report.teacher.parameters})\n` +
            (ev ? `held-out accuracy (${ev.samples} images): teacher ${pct(ev.teacherAccuracy)}, student ${pct(ev.studentAccuracy)}, agreement ${pct(ev.agreement)}\n` : "no test set: accuracy not measured\n") +
            `synthesized ${report.synthesized} images; ${report.studentSteps} student steps; ${report.timings.total.toFixed(1)} s (` +
            Object.entries(report.timings).filter(([k]) => k !== "total").map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(", ") + `)\nreport: ${report.report}\n`,
        );
      }
    } catch (e) {
      fail(e, !!o.json);
    }
  });

program.command("eval").description("accuracy of a student and/or teacher on a labeled test set, and their agreement")
  .option("--student <file>", "TorchScript student").option("--teacher <file>", "TorchScript teacher")
  .option("--test <images>", "test images").option("--test-labels <file>", "test labels").option("--test-range <a:b>", "rows")
  .option("--mnist <dir>", "MNIST folder: test on the report split, rows 8500:10000")
  .option("--mean <m,...>", "normalization mean", nums).option("--std <s,...>", "normalization std", nums)
  .option("--device <device>", "cpu, cuda, auto").option("--json", "JSON output")
  .action(async (o) => {
    try {
      const test = dataset(o.test, o.testLabels, o.testRange, o.mean, o.std) ?? (o.mnist ? mnistSplit(o.mnist).test : undefined);
      if (!test) throw new DfkdError("E_CONFIG", "give --test and --test-labels, or --mnist");
      const r = await evaluate({ student: o.student, teacher: o.teacher, test, device: o.device });
      if (o.json) process.stdout.write(JSON.stringify(r) + "\n");
      else process.stdout.write(`${r.samples} images: teacher ${pct(r.teacherAccuracy)}, student ${pct(r.studentAccuracy)}, agreement ${pct(r.agreement)}\n`);
    } catch (e) {
      fail(e, !!o.json);
    }
  });

program.command("info").description("introspect a TorchScript teacher: classes, BatchNorm layers, taps, parameters")
  .argument("<teacher>", "TorchScript file").option("--input-shape <c,h,w>", "input shape if the file has no dfkd metadata", (v) => list(v).map(int))
  .option("--layers <a,b>", "also tap these submodules", list).option("--json", "JSON output")
  .action(async (teacher: string, o) => {
    try {
      const r = await info(teacher, { inputShape: o.inputShape, layers: o.layers });
      if (o.json) { process.stdout.write(JSON.stringify(r) + "\n"); return; }
      const stored = r.storedDtype === "Float" ? "" : ` (stored as ${r.storedDtype}, run in float32)`;
      const mean = r.inputMean ? `  inputs average ${JSON.stringify(r.inputMean.map((v) => Number(v.toFixed(3))))} per channel (read from the first BatchNorm)\n` : "";
      process.stdout.write(`${r.path}\n  input ${JSON.stringify(r.inputShape)} -> ${r.numClasses} classes (${r.output}); ${r.parameters} parameters${stored}; device ${r.device}\n` + mean +
        `  ${r.bnLayers} BatchNorm layers, ${r.convolutions} convolutions; taps:\n` + r.taps.map((t) => `    ${t.name} (${t.kind}${t.channels ? `, ${t.channels} channels` : ""})`).join("\n") + "\n");
    } catch (e) {
      fail(e, !!o.json);
    }
  });

program.command("stats").description("compute per-layer statistics of a teacher on data (to publish instead of the data)")
  .argument("<teacher>", "TorchScript file").option("--data <images>", "images").option("--labels <file>", "labels (unused, checked)")
  .option("--data-range <a:b>", "rows").option("--mnist <dir>", "MNIST folder: rows 0:7000")
  .option("--mean <m,...>", "normalization mean", nums).option("--std <s,...>", "normalization std", nums)
  .option("--layers <a,b>", "also tap these submodules", list)
  .option("-o, --out <file>", "output .safetensors", "stats.safetensors").option("--json", "JSON output")
  .action(async (teacher: string, o) => {
    try {
      const data = dataset(o.data, o.labels, o.dataRange, o.mean, o.std) ?? (o.mnist ? mnistSplit(o.mnist).train : undefined);
      if (!data) throw new DfkdError("E_CONFIG", "give --data (and --mean/--std), or --mnist");
      const r = await follow(stats({ teacher, data, output: o.out, layers: o.layers }), !!o.json, true);
      if (o.json) process.stdout.write(JSON.stringify(r) + "\n");
      else process.stdout.write(`wrote ${r.path}: ${r.layers.length} layers over ${r.samples} samples (${r.layers.map((l) => l.name).join(", ")})\n`);
    } catch (e) {
      fail(e, !!o.json);
    }
  });

program.command("zoo").description("list the built-in student models").action(() => {
  process.stdout.write(zoo().join("\n") + "\n");
});

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : EXIT.usage);
  fail(e, false);
}
