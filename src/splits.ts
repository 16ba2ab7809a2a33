// The data splits of this project, in one place: the benchmarks (bench/run.mjs), the tests and the
// bundled presets (src/presets.ts) all take their rows from here.
//
// MNIST here is the 10,000-image t10k file set (../shared/data/mnist). Its rows are used for:
//   teacher   0..6999     trained the bundled teacher (scripts/train_teacher.py); also the data of
//                         the with-data baseline (classical) and of the teacher's published
//                         `dfkd stats` file
//   val       7000..8499  every choice: presets, recipe options (flip, weights, rounds), test
//                         thresholds. Look here as often as you like.
//   report    8500..9999  only the figures that are reported (bench/results, README). Nothing is
//                         chosen by its accuracy on these rows.
// Before this split existed, presets were chosen on rows 7000..9999 and the tables reported the
// same rows; results measured that way are marked as such in bench/results (split "tuned-on").
import { mnist, type DatasetSpec } from "./index.js";

export type SplitName = "teacher" | "val" | "report";

export interface SplitRows {
  /** First row (inclusive) and end row (exclusive) of the t10k files. */
  start: number;
  end: number;
  /** What the rows are for. */
  use: string;
}

export const MNIST_SPLITS: Readonly<Record<SplitName, SplitRows>> = Object.freeze({
  teacher: { start: 0, end: 7000, use: "trained the bundled teacher; the with-data baseline's data; the teacher's stats file" },
  val: { start: 7000, end: 8500, use: "validation: every choice (presets, recipe options, test thresholds) is made on these rows" },
  report: { start: 8500, end: 10000, use: "report: only the reported figures; nothing is chosen on these rows" },
});

/** "7000..8499" (inclusive, as the README writes rows). */
export function rowsLabel(name: SplitName): string {
  const s = MNIST_SPLITS[name];
  return `${s.start}..${s.end - 1}`;
}

/** The dataset spec (IDX files in `dir`, rows of `name`). */
export function mnistRows(dir: string, name: SplitName): DatasetSpec {
  const s = MNIST_SPLITS[name];
  return mnist(dir, { start: s.start, end: s.end });
}
