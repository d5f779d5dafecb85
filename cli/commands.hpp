// One register function per subcommand file.
#pragma once

#include "cli/cli.hpp"

namespace strata::cli {

void register_version(CLI::App& app, Context& ctx);
void register_inspect_layers(CLI::App& app, Context& ctx); // history layers ls cat cp diff analyze

} // namespace strata::cli
