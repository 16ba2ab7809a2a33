// What a run does before its first unit, from the teacher and what the user gave:
//   - method "auto": which method (choose_method), and why;
//   - the defaults that follow the teacher's input and layers (resolve_defaults): the input prior
//     (flip, jitter), the input normalization, the adversarial generator's terms;
//   - the time budget (plan_budget): a short calibration on this machine and device, then the
//     sizes (rounds, epochs, steps) that end the run within the budget.
// Every rule is written once, here, with its source.
#pragma once
#include <string>
#include <utility>

#include "core/config.h"
#include "core/json.h"

namespace dfkd {

struct Run;
struct MethodInfo;

// method "auto" (or none): training data -> classical; a stats file -> spectral; a teacher with
// BatchNorm -> fast (a meta-learned generator against the BN statistics); neither -> the
// adversarial loop with DAFL's terms in place of the adversarial one (DAFL).
// Returns (method, why). Loads the teacher to count its BatchNorm layers.
std::pair<std::string, std::string> choose_method(const Json& config);

// Applies the teacher- and input-dependent defaults to the keys the user did not give, and the
// input normalization to r.meta (config, else the teacher's metadata, else the datasets').
void resolve_defaults(DistillConfig& c, Run& r, const MethodInfo& info);

// Sizes the run to its budget (config, else kDefaultBudgetSeconds when no size was given):
// measures one synthesis iteration / generator step / student step / evaluation, then sets the
// sizes the user did not give. `resumed`: the plan stored in a checkpoint (applied, not
// re-measured, so a resumed run has the sizes it started with). Returns the report's `budget`
// (null when the run is not budgeted). E_BUDGET when not even one unit fits.
Json plan_budget(DistillConfig& c, Run& r, const MethodInfo& info, const Json& resumed);
// The sizes of a plan (report.budget.plan: {"synth.rounds": n, ...}) into the config: what
// plan_budget sets, for the ranks of a data-parallel run that take rank 0's plan.
void apply_plan(DistillConfig& c, const MethodInfo& info, const Json& plan);

}  // namespace dfkd
