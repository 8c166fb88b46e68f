// Placeholder until the 'extract' subcommand lands (issue 3): registered so the command list is complete.
#include "options.hpp"
#include "s2crop/common/errors.hpp"

namespace s2crop::cli {

int run_extract(int, char**, const parallel::MpiContext&) {
  throw ConfigError("s2crop extract is not implemented in this build yet");
}

}  // namespace s2crop::cli
