// Speed benchmark job ("bench"): times N iterations of the production code paths after a warm-up,
// for comparison with the same loops in eager PyTorch-Python (bench/reference.py).
#pragma once
#include <atomic>

#include "core/common.h"

namespace dfkd {

// cfg: { kind: "deepinversion" | "spectral" | "adversarial" | "classical", teacher, teacherArch?,
// student (zoo name or TorchScript file), inputShape?, stats? (spectral), batchSize, iterations,
// warmup, threads?, seed?, device?, layers?, synth {}, train {}, generator {}, adversarial {} }.
// Returns { kind, batchSize, iterations, warmup, seconds, itersPerSec, imagesPerSec, threads,
// firstLosses, lastLosses }.
Json bench_job(const Json& cfg, const std::atomic<bool>& cancel);

}  // namespace dfkd
