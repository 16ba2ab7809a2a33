// A run: config -> loop -> events. The caller owns the thread (the addon starts one per job);
// the job polls `cancel` between steps and, when it is set, writes a checkpoint and throws
// E_CANCELLED. Kinds: "distill", "evaluate", "info", "stats", "bench" (speed, see bench.h), "selfcheck".
#pragma once
#include <atomic>
#include <functional>

#include "core/common.h"

namespace dfkd {

using EmitFn = std::function<void(const Json&)>;

// Returns the result (for distill: the report that is also written to disk). Throws dfkd::Error.
Json run_job(const std::string& kind, const Json& config, const EmitFn& emit, const std::atomic<bool>& cancel);

}  // namespace dfkd
