// Write floor of a block stage's output: the bytes of a finished composite file compressed once (byte shuffle and
// deflate at the file's level, the same codec s2crop packs its parts with) and written once to a file, block by
// block. Reading the composite back is not timed. With the read floor (bench_read_floor) it bounds what a composite
// run can cost: read every input once, write the output once.
//
//   bench_write_floor COMPOSITE.h5 SCRATCH_FILE [--deflate N]
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "s2crop/h5/h5.hpp"
#include "s2crop/pipeline/chunk_codec.hpp"

using namespace s2crop;

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_write_floor COMPOSITE.h5 SCRATCH_FILE [--deflate N]\n");
    return 2;
  }
  int deflate = 1;
  for (int i = 3; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--deflate") deflate = std::atoi(argv[i + 1]);
  using clock = std::chrono::steady_clock;
  double timed = 0;
  size_t raw_bytes = 0, written = 0;
  FILE* out = std::fopen(argv[2], "wb");
  if (!out) {
    std::perror(argv[2]);
    return 1;
  }
  h5::File file = h5::File::open_read(argv[1], MPI_COMM_NULL);
  h5::Node tiles = file.open_group("tiles");
  for (const std::string& name : tiles.children()) {
    h5::Node g = tiles.open_group(name);
    h5::Dataset refl = g.open_dataset("reflectance"), count = g.open_dataset("clear_count");
    const auto dims = refl.dims();  // month, band, y, x
    const size_t months = dims[0], bands = dims[1];
    const int H = static_cast<int>(dims[2]), W = static_cast<int>(dims[3]);
    const int bs = static_cast<int>(g.attr_int("block_size"));
    const pipeline::ChunkCodec codec({{months * bands, 2, -32768.0}, {months, 1, 0.0}}, deflate);
    std::vector<std::uint8_t> payload, packed;
    for (int y0 = 0; y0 < H; y0 += bs)
      for (int x0 = 0; x0 < W; x0 += bs) {
        const geo::Window w{x0, y0, std::min(bs, W - x0), std::min(bs, H - y0)};
        const size_t n = static_cast<size_t>(w.pixels());
        payload.resize(codec.payload_bytes(n));
        const std::vector<hsize_t> off{0, 0, static_cast<hsize_t>(y0), static_cast<hsize_t>(x0)};
        refl.read<std::int16_t>(off, {months, bands, static_cast<hsize_t>(w.height), static_cast<hsize_t>(w.width)},
                                reinterpret_cast<std::int16_t*>(payload.data()));
        count.read<std::uint8_t>({0, off[2], off[3]}, {months, static_cast<hsize_t>(w.height),
                                                        static_cast<hsize_t>(w.width)},
                                 payload.data() + months * bands * n * 2);
        const auto t0 = clock::now();
        codec.pack(payload.data(), w, std::min(bs, W), std::min(bs, H), packed);
        if (std::fwrite(packed.data(), 1, packed.size(), out) != packed.size()) {
          std::perror(argv[2]);
          return 1;
        }
        timed += std::chrono::duration<double>(clock::now() - t0).count();
        raw_bytes += payload.size();
        written += packed.size();
      }
  }
  const auto t0 = clock::now();
  std::fclose(out);
  timed += std::chrono::duration<double>(clock::now() - t0).count();
  std::printf("write floor: %.1f MiB compressed to %.1f MiB (deflate %d) and written once in %.3f s\n",
              raw_bytes / 1048576.0, written / 1048576.0, deflate, timed);
  std::remove(argv[2]);
  MPI_Finalize();
  return 0;
}
