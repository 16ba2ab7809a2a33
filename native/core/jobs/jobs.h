// The jobs besides distill (driver.h): evaluate, info, stats, bench (bench.h).
#pragma once
#include <atomic>

#include "core/driver.h"

namespace dfkd {

// { teacher?, student?, test, device?, batchSize?, threads? } -> accuracies and agreement.
Json evaluate_job(const Json& cfg);
// { teacher, device?, layers?, inputShape? } -> the teacher's taps, classes, parameters.
Json info_job(const Json& cfg);
// { teacher, data, output, layers?, batchSize?, device?, threads? } -> the stats file written.
Json stats_job(const Json& cfg, const EmitFn& emit, const std::atomic<bool>& cancel);

}  // namespace dfkd
