// One register function per subcommand file.
#pragma once

#include "cli/cli.hpp"

namespace strata::cli {

void register_version(CLI::App& app, Context& ctx);
void register_layer(CLI::App& app, Context& ctx);

} // namespace strata::cli
