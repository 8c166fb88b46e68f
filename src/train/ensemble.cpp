// `train --ensemble N`: N LSTMs, one after the other, joined into one model file whose probabilities classify
// averages. On a few hundred samples a model's accuracy depends on its seed as much as on its settings
// (bench/RESULTS.md, accuracy on real data); the average of several does not.
#include <chrono>
#include <filesystem>
#include <sstream>

#include "checkpoint.hpp"
#include "sampling.hpp"
#include "setup.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/hash.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/nn/model_file_writer.hpp"

namespace fs = std::filesystem;

namespace s2crop::train {

namespace {

// Member k's parameters copied from its own model file into `into` (a group of the ensemble's file).
void copy_parameters(const std::string& member, const h5::Node& into) {
  h5::File f = h5::File::open_read(member, MPI_COMM_NULL);
  h5::Node from = f.open_group("parameters");
  for (const std::string& name : from.children()) {
    h5::Dataset ds = from.open_dataset(name);
    const std::vector<hsize_t> dims = ds.dims();
    size_t n = 1;
    for (hsize_t d : dims) n *= static_cast<size_t>(d);
    std::vector<float> values(n);
    ds.read<float>(std::vector<hsize_t>(dims.size(), 0), dims, values.data());
    into.create_dataset<float>(name, dims, dims, 0, 0.f)
        .write<float>(std::vector<hsize_t>(dims.size(), 0), dims, values.data(), false);
  }
}

}  // namespace

void train_ensemble(const TrainSettings& s, int members, const samples::TrainingSetHeader& header,
                    const parallel::MpiContext& mpi) {
  const auto t_start = std::chrono::steady_clock::now();
  const std::string dir = s.output + ".members";
  const std::string ckpt = s.checkpoint_dir.empty() ? s.output + ".ckpt" : s.checkpoint_dir;
  const nn::ModelSpec spec = model_spec(s, header, {}, mpi);
  std::vector<TrainSettings> member_settings;
  std::ostringstream fingerprint;
  fingerprint << "ensemble=" << members;
  for (int k = 0; k < members; ++k) {
    TrainSettings m = s;
    m.ensemble = 1;
    m.seed = k == 0 ? s.seed : hash64(s.seed, static_cast<std::uint64_t>(k));
    m.output = dir + "/member-" + std::to_string(k) + ".h5";
    m.checkpoint_dir = ckpt + "/member-" + std::to_string(k);
    fingerprint << "\n" << fingerprint_text(m, spec, mpi.size(), fs::file_size(s.samples));
    member_settings.push_back(std::move(m));
  }
  const std::string run_fingerprint = hash::hex64(hash::fnv1a(fingerprint.str()));
  if (already_trained(s, mpi, run_fingerprint)) return;
  for (int k = 0; k < members; ++k) {
    if (mpi.is_root())
      log::info("ensemble member " + std::to_string(k + 1) + " of " + std::to_string(members) + " (seed " +
                std::to_string(member_settings[static_cast<size_t>(k)].seed) + ")");
    train_model(member_settings[static_cast<size_t>(k)], mpi);
  }
  parallel::root_first(mpi.world(), [&] {
    nn::ModelSpec joined = nn::read_model_spec(member_settings[0].output);  // normalisation: the same split for all
    joined.ensemble = members;
    std::ostringstream provenance;
    provenance << s.config_text << "ensemble = " << members << "\nmember_seeds =";
    for (const auto& m : member_settings) provenance << " " << m.seed;
    provenance << "\nranks = " << mpi.size() << "\n";
    nn::write_model_file(s.output, joined, provenance.str(), run_fingerprint, [&](h5::File& f) {
      copy_parameters(member_settings[0].output, f.create_group("parameters"));
      h5::Node rest = f.create_group("members");
      for (int k = 1; k < members; ++k)
        copy_parameters(member_settings[static_cast<size_t>(k)].output, rest.create_group(std::to_string(k)));
    });
    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::remove_all(ckpt, ec);
    log::info("wrote " + s.output + ": an ensemble of " + std::to_string(members) + " LSTMs (classify averages their "
              "probabilities) in " +
              log::format_duration(std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count()));
  });
}

}  // namespace s2crop::train
