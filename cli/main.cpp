#include "cli/cli.hpp"

int main(int argc, char** argv) { return strata::cli::run_cli(argc, argv); }
