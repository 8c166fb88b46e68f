// Placeholder until the 'train' subcommand lands (issue 3): registered so the command list is complete.
#include "options.hpp"
#include "s2crop/common/errors.hpp"

namespace s2crop::cli {

int run_train(int, char**, const parallel::MpiContext&) {
  throw ConfigError("s2crop train is not implemented in this build yet");
}

}  // namespace s2crop::cli
