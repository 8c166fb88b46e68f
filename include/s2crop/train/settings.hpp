#pragma once
// The ranges of the training settings, checked in one place for the four training commands. Torch-free.
#include "s2crop/train/trainer.hpp"

namespace s2crop::train {

// Throws ConfigError naming the option and the value given for any setting outside its range: non-finite numbers,
// lr outside [0, 1], a negative weight decay, patience or thread count, a validation fraction outside [0, 1), ...
// run_train calls it before it reads or computes anything; the CLI needs no copies of these checks.
void check_settings(const TrainSettings& settings);

}  // namespace s2crop::train
