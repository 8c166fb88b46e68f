#pragma once
// How every kind of model file is written (model_file.hpp describes the file): torch-free, so that models without
// LibTorch weights (the random forest) are written the same way.
#include <functional>
#include <string>

#include "s2crop/h5/h5.hpp"
#include "s2crop/nn/model_spec.hpp"

namespace s2crop::nn {

// Writes `path` through a temporary renamed at the end: the spec's attributes, then what `body` adds (the weights;
// it closes every handle it opens). A failure removes the temporary and throws OutputError naming `path` (disk full
// said so).
void write_model_file(const std::string& path, const ModelSpec& spec, const std::string& provenance,
                      const std::string& run_fingerprint, const std::function<void(h5::File&)>& body);

}  // namespace s2crop::nn
