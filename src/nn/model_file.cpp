#include "s2crop/nn/model_file.hpp"
#include "s2crop/nn/model_file_writer.hpp"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/common/staged_file.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/version.hpp"

namespace s2crop::nn {

namespace {

constexpr std::int64_t kModelFormatVersion = 1;

std::vector<double> to_doubles(const std::vector<float>& v) { return {v.begin(), v.end()}; }
std::vector<float> to_floats(const std::vector<double>& v) { return {v.begin(), v.end()}; }

}  // namespace

namespace {

void write_model_attrs(h5::File& f, const ModelSpec& spec, const std::string& provenance,
                       const std::string& run_fingerprint) {
  f.set_attr("format", std::string(kModelFormat));
  f.set_attr("format_version", kModelFormatVersion);
  f.set_attr("s2crop_version", std::string(kVersion));
  f.set_attr("created", log::utc_timestamp());
  f.set_attr("config", provenance);
  f.set_attr("run_fingerprint", run_fingerprint);
  f.set_attr("kind", spec.kind);
  f.set_attr("bands", spec.bands);
  f.set_attr("ndvi", static_cast<std::int64_t>(spec.ndvi));
  f.set_attr("ndvi_nir", spec.ndvi_nir);
  f.set_attr("months", static_cast<std::int64_t>(spec.months));
  f.set_attr("season_start_month", static_cast<std::int64_t>(spec.season_start_month));
  f.set_attr("hidden", static_cast<std::int64_t>(spec.hidden));
  f.set_attr("layers", static_cast<std::int64_t>(spec.layers));
  if (spec.ensemble > 1) f.set_attr("ensemble", static_cast<std::int64_t>(spec.ensemble));
  f.set_attr("dropout", spec.dropout);
  f.set_attr("class_names", spec.class_names);
  f.set_attr("feature_mean", to_doubles(spec.mean));
  f.set_attr("feature_std", to_doubles(spec.stddev));
  if (spec.is_ndvi_model()) {
    f.set_attr("task", spec.task);
    f.set_attr("horizon", static_cast<std::int64_t>(spec.horizon));
    f.set_attr("t_min", static_cast<std::int64_t>(spec.t_min));
    f.set_attr("t_max", static_cast<std::int64_t>(spec.t_max));
  }
  if (spec.is_unet()) {
    const UNetSpec& u = spec.unet;
    f.set_attr("unet_in_channels", static_cast<std::int64_t>(u.in_channels));
    f.set_attr("unet_outputs", static_cast<std::int64_t>(u.outputs));
    f.set_attr("unet_task", u.task);
    f.set_attr("unet_depth", static_cast<std::int64_t>(u.depth));
    f.set_attr("unet_width", static_cast<std::int64_t>(u.width));
    f.set_attr("unet_norm", u.norm);
    f.set_attr("unet_groups", static_cast<std::int64_t>(u.groups));
    f.set_attr("unet_encoder", u.encoder);
    f.set_attr("unet_blocks", static_cast<std::int64_t>(u.blocks));
    f.set_attr("unet_upsampling", u.upsampling);
    f.set_attr("unet_dropout", u.dropout);
    f.set_attr("unet_months", std::vector<double>(u.months.begin(), u.months.end()));
  }
}

}  // namespace

void save_model(const std::string& path, const ModelSpec& spec, LstmClassifier& model, const std::string& provenance,
                const std::string& run_fingerprint) {
  save_model(path, spec, *model, provenance, run_fingerprint);
}

void write_model_file(const std::string& path, const ModelSpec& spec, const std::string& provenance,
                      const std::string& run_fingerprint, const std::function<void(h5::File&)>& body) {
  StagedFile staged(path, ".partial");
  errno = 0;
  try {
    h5::File f = h5::File::create(staged.path(), MPI_COMM_SELF);
    write_model_attrs(f, spec, provenance, run_fingerprint);
    body(f);  // every handle it opened closed before the file, or HDF5 refuses to finish it
    f.close();
  } catch (const std::exception& e) {
    // HDF5 reports a failed write in its own words; the OS error it met is still in errno (the file's closing in
    // the unwinding fails the same way). No partial file is left to be mistaken for a model.
    const int err = errno;
    staged.discard();
    const bool full = err == ENOSPC || err == EDQUOT || err == EFBIG;
    throw OutputError(path, "cannot write the model file: " +
                                (full ? "disk full? (" + std::string(std::strerror(err)) + ")" : std::string(e.what())) +
                                "; the partial file " + staged.path() + " was removed");
  }
  staged.commit();
}

void save_model(const std::string& path, const ModelSpec& spec, torch::nn::Module& model, const std::string& provenance,
                const std::string& run_fingerprint) {
  write_model_file(path, spec, provenance, run_fingerprint, [&](h5::File& f) {
    {
      auto group = f.create_group("parameters");
      for (auto& p : model.named_parameters()) {
        auto t = p.value().detach().to(torch::kCPU).contiguous();
        std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
        auto ds = group.create_dataset<float>(p.key(), dims, dims, 0, 0.f);
        ds.write<float>(std::vector<hsize_t>(dims.size(), 0), dims, t.data_ptr<float>(), false);
      }
    }
    // Buffers (batch-norm running statistics), as float32 under /buffers; models without any write none.
    if (!model.named_buffers().is_empty()) {
      auto group = f.create_group("buffers");
      for (auto& b : model.named_buffers()) {
        auto t = b.value().detach().to(torch::kCPU).to(torch::kFloat32).contiguous();
        std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
        if (dims.empty()) dims = {1};  // a scalar (num_batches_tracked) as one element: HDF5 chunks need a rank
        auto ds = group.create_dataset<float>(b.key(), dims, dims, 0, 0.f);
        ds.write<float>(std::vector<hsize_t>(dims.size(), 0), dims, t.data_ptr<float>(), false);
      }
    }  // every handle closed before the file, or HDF5 refuses to finish it
  });
}

ModelSpec read_model_spec(const std::string& path) {
  if (!std::filesystem::exists(path)) throw InputError(path, "model file not found");
  h5::File f = [&] {
    try {
      return h5::File::open_read(path, MPI_COMM_NULL);
    } catch (const Error& e) {
      throw InputError(path, "not a readable model file (HDF5): " + std::string(e.what()));
    }
  }();
  if (!f.has_attr("format") || f.attr_string("format") != kModelFormat)
    throw InputError(path, "not an s2crop model file (made by 's2crop train')");
  if (f.attr_int("format_version") > kModelFormatVersion)
    throw InputError(path, "model format version is newer than this s2crop understands");
  ModelSpec s;
  try {
    s.kind = f.attr_string("kind");
    // An NDVI model without covariates stores an empty band list, which HDF5 reads back as a null buffer.
    try {
      s.bands = f.attr_strings("bands");
    } catch (const Error&) {
      if (s.kind != "ndvi_lstm" && s.kind != "unet" && s.kind != "unet_encoder") throw;
    }
    s.ndvi = f.attr_int("ndvi") != 0;
    s.ndvi_nir = f.attr_string("ndvi_nir");
    s.months = static_cast<int>(f.attr_int("months"));
    s.season_start_month = static_cast<int>(f.attr_int("season_start_month"));
    s.hidden = static_cast<int>(f.attr_int("hidden"));
    s.layers = static_cast<int>(f.attr_int("layers"));
    s.ensemble = f.has_attr("ensemble") ? static_cast<int>(f.attr_int("ensemble")) : 1;
    s.dropout = f.attr_doubles("dropout").at(0);
    if (s.kind == "unet_encoder" || s.kind == "unet") {
      // Empty lists (an encoder has no classes; a test model may have no band names or statistics) read back as
      // null buffers.
      auto strings = [&](const char* name) {
        try { return f.attr_strings(name); } catch (const Error&) { return std::vector<std::string>{}; }
      };
      auto doubles = [&](const char* name) {
        try { return f.attr_doubles(name); } catch (const Error&) { return std::vector<double>{}; }
      };
      s.class_names = strings("class_names");
      s.mean = to_floats(doubles("feature_mean"));
      s.stddev = to_floats(doubles("feature_std"));
    } else {
      s.class_names = f.attr_strings("class_names");
      s.mean = to_floats(f.attr_doubles("feature_mean"));
      s.stddev = to_floats(f.attr_doubles("feature_std"));
    }
    if (s.kind == "ndvi_lstm") {
      s.task = f.attr_string("task");
      s.horizon = static_cast<int>(f.attr_int("horizon"));
      s.t_min = static_cast<int>(f.attr_int("t_min"));
      s.t_max = static_cast<int>(f.attr_int("t_max"));
    }
    if (s.is_unet()) {
      UNetSpec& u = s.unet;
      u.in_channels = static_cast<int>(f.attr_int("unet_in_channels"));
      u.outputs = static_cast<int>(f.attr_int("unet_outputs"));
      u.task = f.attr_string("unet_task");
      u.depth = static_cast<int>(f.attr_int("unet_depth"));
      u.width = static_cast<int>(f.attr_int("unet_width"));
      u.norm = f.attr_string("unet_norm");
      u.groups = static_cast<int>(f.attr_int("unet_groups"));
      u.encoder = f.attr_string("unet_encoder");
      u.blocks = static_cast<int>(f.attr_int("unet_blocks"));
      u.upsampling = f.attr_string("unet_upsampling");
      u.dropout = f.attr_doubles("unet_dropout").at(0);
      u.months.clear();
      for (double m : f.attr_doubles("unet_months")) u.months.push_back(static_cast<int>(m));
    }
  } catch (const Error& e) {
    throw InputError(path, std::string("model file is incomplete: ") + e.what());
  }
  // Training stores finite means and standard deviations of at least 1e-6: anything else is a damaged or edited file,
  // and would normalise every pixel to NaN (a map of class 0 with confidence 0 that looks finished).
  for (size_t i = 0; i < s.mean.size(); ++i)
    if (!std::isfinite(s.mean[i]))
      throw InputError(path, "feature_mean[" + std::to_string(i) + "] is not a finite number: the model's input "
                             "normalisation is damaged");
  for (size_t i = 0; i < s.stddev.size(); ++i)
    if (!std::isfinite(s.stddev[i]) || !(s.stddev[i] > 0))
      throw InputError(path, "feature_std[" + std::to_string(i) + "] is " + std::to_string(s.stddev[i]) +
                             ": the model's input normalisation is damaged (a standard deviation must be finite and "
                             "positive)");
  if (s.is_unet()) {
    try {
      s.unet.check();
    } catch (const ConfigError& e) {
      throw InputError(path, std::string("U-Net architecture attributes are invalid: ") + e.what());
    }
    if (s.kind == "unet" && s.n_classes() != s.unet.outputs)
      throw InputError(path, "U-Net model names " + std::to_string(s.n_classes()) + " classes/labels for " +
                                 std::to_string(s.unet.outputs) + " outputs");
    if (!s.mean.empty() && (s.mean.size() != static_cast<size_t>(s.unet.in_channels) || s.stddev.size() != s.mean.size()))
      throw InputError(path, "U-Net normalisation does not match its input bands");
    return s;
  }
  if (s.kind != "lstm" && s.kind != "ndvi_lstm" && s.kind != "rf")
    throw InputError(path, "model kind '" + s.kind + "' is unknown");
  if (s.is_ndvi_model()) {
    if ((s.task != "forecast" && s.task != "gapfill") || (s.task == "forecast" && (s.horizon < 1 || s.t_min < 1 ||
                                                                                  s.t_max < s.t_min || s.t_max > 11)))
      throw InputError(path, "NDVI model task attributes are invalid");
    if (s.hidden < 1 || s.layers < 1 || s.months != 12) throw InputError(path, "model architecture attributes are invalid");
    return s;
  }
  if (s.mean.size() != static_cast<size_t>(s.n_features()) || s.stddev.size() != s.mean.size())
    throw InputError(path, "model normalisation does not match its features");
  if (s.ensemble < 1 || s.ensemble > 1000 || (s.ensemble > 1 && s.kind != "lstm"))
    throw InputError(path, "ensemble attribute " + std::to_string(s.ensemble) + " is invalid");
  if (s.n_classes() < 2 || s.months != 12 || (s.kind == "lstm" && (s.hidden < 1 || s.layers < 1)))
    throw InputError(path, "model architecture attributes are invalid");
  return s;
}

LstmClassifier load_model(const std::string& path, ModelSpec& spec) {
  spec = read_model_spec(path);
  if (spec.kind != "lstm")
    throw InputError(path, "model kind '" + spec.kind + "' is not a crop-type classifier (NDVI models: s2crop ndvi)");
  LstmClassifier model(spec);
  load_parameters(path, *model);
  model->eval();
  return model;
}

std::vector<LstmClassifier> load_ensemble(const std::string& path, ModelSpec& spec) {
  std::vector<LstmClassifier> members{load_model(path, spec)};
  for (int k = 1; k < spec.ensemble; ++k) {
    LstmClassifier model(spec);
    load_parameters(path, *model, "", "members/" + std::to_string(k));
    model->eval();
    members.push_back(model);
  }
  return members;
}

void load_parameters(const std::string& path, torch::nn::Module& model, const std::string& prefix,
                     const std::string& group_name) {
  h5::File f = h5::File::open_read(path, MPI_COMM_NULL);
  h5::Node group;
  try {
    group = f.open_group(group_name);
  } catch (const Error&) {
    throw InputError(path, "model file has no " + group_name);
  }
  torch::NoGradGuard no_grad;
  for (auto& p : model.named_parameters()) {
    const std::string name = prefix + p.key();
    if (!group.exists(name)) throw InputError(path, "model file lacks parameter " + name);
    auto ds = group.open_dataset(name);
    auto dims = ds.dims();
    auto& t = p.value();
    if (dims.size() != static_cast<size_t>(t.dim()))
      throw InputError(path, "parameter " + p.key() + " has the wrong shape for this architecture");
    for (size_t i = 0; i < dims.size(); ++i)
      if (static_cast<int64_t>(dims[i]) != t.size(static_cast<int64_t>(i)))
        throw InputError(path, "parameter " + p.key() + " has the wrong shape for this architecture");
    std::vector<float> values(static_cast<size_t>(t.numel()));
    ds.read<float>(std::vector<hsize_t>(dims.size(), 0), dims, values.data());
    for (float v : values)
      if (!std::isfinite(v)) throw InputError(path, "parameter " + p.key() + " holds NaN or infinity");
    t.copy_(torch::from_blob(values.data(), t.sizes(), torch::kFloat32));
  }
  if (model.named_buffers().is_empty()) return;
  if (!f.exists("buffers")) throw InputError(path, "model file has no buffers (batch-norm statistics)");
  auto buffers = f.open_group("buffers");
  for (auto& b : model.named_buffers()) {
    const std::string name = prefix + b.key();
    if (!buffers.exists(name)) throw InputError(path, "model file lacks buffer " + name);
    auto ds = buffers.open_dataset(name);
    auto dims = ds.dims();
    auto& t = b.value();
    bool same = dims.size() == static_cast<size_t>(t.dim()) || (t.dim() == 0 && dims == std::vector<hsize_t>{1});
    for (size_t i = 0; same && t.dim() > 0 && i < dims.size(); ++i)
      same = static_cast<int64_t>(dims[i]) == t.size(static_cast<int64_t>(i));
    if (!same) throw InputError(path, "buffer " + b.key() + " has the wrong shape for this architecture");
    std::vector<float> values(static_cast<size_t>(t.numel()));
    ds.read<float>(std::vector<hsize_t>(dims.size(), 0), dims, values.data());
    for (float v : values)
      if (!std::isfinite(v)) throw InputError(path, "buffer " + b.key() + " holds NaN or infinity");
    t.copy_(torch::from_blob(values.data(), t.sizes(), torch::kFloat32).to(t.scalar_type()));
  }
}

ModelSpec read_segmentation_model_spec(const std::string& path) {
  ModelSpec spec = read_model_spec(path);
  if (spec.kind == "unet_encoder")
    throw InputError(path, "is a pre-trained U-Net encoder (and decoder, from 's2crop pretrain'), not a segmentation "
                           "model: train one with 's2crop segment train' first");
  if (spec.kind != "unet")
    throw InputError(path, "model kind '" + spec.kind + "' is not a U-Net segmentation model (" +
                               (spec.kind == "lstm" ? "a crop-type classifier: use 's2crop classify'"
                                                    : "an NDVI model: use 's2crop ndvi predict'") +
                               ")");
  try {
    spec.unet.check();
  } catch (const ConfigError& e) {
    throw InputError(path, std::string("invalid U-Net architecture: ") + e.what());
  }
  if (spec.class_names.size() != static_cast<size_t>(spec.unet.outputs))
    throw InputError(path, "names " + std::to_string(spec.class_names.size()) + " outputs but the U-Net has " +
                               std::to_string(spec.unet.outputs));
  if (spec.unet.outputs >= 255) throw InputError(path, "has more than 254 outputs");
  return spec;
}

UNet load_unet(const std::string& path, ModelSpec& spec) {
  spec = read_model_spec(path);
  if (spec.kind != "unet")
    throw InputError(path, "model kind '" + spec.kind + "' is not a U-Net segmentation model");
  UNet model(spec.unet);
  load_parameters(path, *model);
  model->eval();
  return model;
}

PretrainedParts load_pretrained(const std::string& path, UNet& unet) {
  const ModelSpec spec = read_model_spec(path);
  PretrainedParts loaded;
  if (spec.kind == "unet") {
    load_parameters(path, *unet->encoder, "encoder.");
    loaded.encoder = true;
    return loaded;
  }
  if (spec.kind != "unet_encoder") throw InputError(path, "model kind '" + spec.kind + "' holds no U-Net encoder");
  // Files of `pretrain` name their tensors as a U-Net does ("encoder.*", and "decoder.*" where reconstruction
  // trained a decoder); those of earlier versions held the encoder alone, unprefixed.
  bool prefixed = false, has_decoder = false;
  {
    h5::File f = h5::File::open_read(path, MPI_COMM_NULL);
    if (!f.exists("parameters")) throw InputError(path, "model file has no parameters");
    auto group = f.open_group("parameters");
    prefixed = group.exists("encoder." + unet->encoder->named_parameters().begin()->key());
    has_decoder = prefixed && group.exists("decoder." + unet->decoder->named_parameters().begin()->key());
  }
  load_parameters(path, *unet->encoder, prefixed ? "encoder." : "");
  loaded.encoder = true;
  if (has_decoder) {
    load_parameters(path, *unet->decoder, "decoder.");
    loaded.decoder = true;
  }
  return loaded;
}

}  // namespace s2crop::nn
