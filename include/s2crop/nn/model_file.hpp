#pragma once
// The one self-describing model file (HDF5): the ModelSpec as attributes (architecture, bands, NDVI, normalisation,
// class names) and every parameter as a float32 dataset under /parameters/<name>, so h5py (and the PyTorch bench)
// can read the weights too. Written to a temporary name and renamed.
#include <string>
#include <vector>

#include "s2crop/nn/lstm_classifier.hpp"
#include "s2crop/nn/unet.hpp"

namespace s2crop::nn {

// `provenance`: "key = value" lines of the training run, stored as attribute `config`; `run_fingerprint` identifies
// the run's data and settings, so rerunning a finished training can tell it has nothing to do.
void save_model(const std::string& path, const ModelSpec& spec, LstmClassifier& model, const std::string& provenance,
                const std::string& run_fingerprint = "");
// Any model's parameters (named_parameters) and buffers (named_buffers, e.g. batch-norm statistics, under /buffers)
// with its spec. What pre-training keeps (kind "unet_encoder"): save_model(path, spec, *simsiam->kept, ...).
void save_model(const std::string& path, const ModelSpec& spec, torch::nn::Module& model, const std::string& provenance,
                const std::string& run_fingerprint = "");
// Loads the parameters (and buffers, if the model has any) stored in `path` into `model` (shapes checked). A
// pre-trained encoder goes into a U-Net with load_pretrained (below).
// `prefix`: the stored names carry it (e.g. "encoder." to load a U-Net's encoder from a whole U-Net's file).
// `group`: where the parameters are stored (an ensemble's further members under "members/<k>").
void load_parameters(const std::string& path, torch::nn::Module& model, const std::string& prefix = "",
                     const std::string& group = "parameters");
// What load_pretrained put into a U-Net.
struct PretrainedParts {
  bool encoder = false, decoder = false;
};
// The pre-trained parts of `unet` from a `s2crop pretrain` file (kind unet_encoder: the encoder, and the decoder
// where masked-month reconstruction trained one) or the encoder from another U-Net's file (kind unet). Shapes are
// checked; throws InputError naming the file.
PretrainedParts load_pretrained(const std::string& path, UNet& unet);

// Builds the crop-type classifier described by the file and loads its weights. Throws InputError naming the file for anything
// missing, mis-shaped or from another format.
LstmClassifier load_model(const std::string& path, ModelSpec& spec);
// Every member of an ensemble (ModelSpec::ensemble; a single model is an ensemble of one): member 0's parameters
// under /parameters, member k's under /members/<k>.
std::vector<LstmClassifier> load_ensemble(const std::string& path, ModelSpec& spec);
// Builds the U-Net (kind "unet") described by the file, loads its weights and buffers, in eval mode.
UNet load_unet(const std::string& path, ModelSpec& spec);

}  // namespace s2crop::nn
