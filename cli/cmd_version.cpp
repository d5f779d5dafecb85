#include "cli/commands.hpp"

#include <iostream>

namespace strata::cli {

void register_version(CLI::App& app, Context&) {
    auto* cmd = app.add_subcommand("version", "Print the strata version");
    cmd->callback([] { std::cout << "strata version " << STRATA_VERSION << "\n"; });
}

} // namespace strata::cli
