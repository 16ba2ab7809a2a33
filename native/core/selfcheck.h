// Finite-difference gradient checks of every loss in losses.h (float64), for the test suite.
#pragma once
#include "core/common.h"

namespace dfkd {
// Returns { "<loss>": max |autograd - central difference| / max(1, |grad|) over sampled coordinates }.
Json gradient_selfcheck(uint64_t seed);
}  // namespace dfkd
