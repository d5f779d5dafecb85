// The strata command line. Each subcommand lives in its own file and adds
// itself to the CLI11 app through a register_* function listed in
// commands.hpp. Subcommand callbacks do the work; they throw strata::Error
// for failures and set Context::exit_code for anything else than 0.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace strata::cli {

struct Context {
    // Global options.
    std::string root; // --root / STRATA_ROOT; empty means the default store
    bool debug = false;
    std::string log_level;
    // Set by commands that finish with a status other than 0 (diff, run).
    int exit_code = 0;

    // The store directory after applying --root, STRATA_ROOT and the default.
    std::string store_root() const;
};

int run_cli(int argc, char** argv);

} // namespace strata::cli
