// A job: kind + config -> result, on the caller's thread (the addon starts one per job); the job
// polls `cancel` between steps and, when it is set, writes a checkpoint and throws E_CANCELLED.
// Kinds: "distill" (driver.h), "evaluate", "info", "stats" (jobs/jobs.h), "bench" (bench.h).
#pragma once
#include <atomic>
#include <functional>

#include "core/common.h"

namespace dfkd {

using EmitFn = std::function<void(const Json&)>;

// Returns the result (for distill: the report that is also written to disk). Throws dfkd::Error.
Json run_job(const std::string& kind, const Json& config, const EmitFn& emit, const std::atomic<bool>& cancel);

// Every default of a distill config, from the one place they are set (config.h and each
// method's recipe): { method, student, device, seed, outDir, evalEvery, checkpointEvery,
// methods: { <name>: { train, synth?, generator?, adversarial? } } }.
Json distill_defaults();

}  // namespace dfkd
