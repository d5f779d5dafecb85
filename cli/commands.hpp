// One register function per subcommand file.
#pragma once

#include "cli/cli.hpp"

namespace strata::cli {

void register_version(CLI::App& app, Context& ctx);
void register_registry(CLI::App& app, Context& ctx);
void register_bootstrap(CLI::App& app, Context& ctx);
void register_images(CLI::App& app, Context& ctx);
void register_inspect(CLI::App& app, Context& ctx);
void register_maintenance(CLI::App& app, Context& ctx);
void register_import(CLI::App& app, Context& ctx);
void register_archive(CLI::App& app, Context& ctx);
void register_run(CLI::App& app, Context& ctx);
void register_create(CLI::App& app, Context& ctx);
void register_containers(CLI::App& app, Context& ctx); // ps and the lifecycle commands, container ...
void register_resources(CLI::App& app, Context& ctx);  // stats, pause, unpause
void register_exec(CLI::App& app, Context& ctx); // exec (cmd_exec.cpp)
void register_top(CLI::App& app, Context& ctx);
void register_mount(CLI::App& app, Context& ctx);
void register_layer(CLI::App& app, Context& ctx);
void register_parse(CLI::App& app, Context& ctx);
// Looking inside images without unpacking them (cli/inspect_image.hpp).
void register_history(CLI::App& app, Context& ctx);
void register_layers(CLI::App& app, Context& ctx);
void register_ls(CLI::App& app, Context& ctx);
void register_cat(CLI::App& app, Context& ctx);
void register_cp(CLI::App& app, Context& ctx);   // of images; of containers: container_fs.hpp
void register_diff(CLI::App& app, Context& ctx); // of images and directories; of containers too
void register_analyze(CLI::App& app, Context& ctx);
void register_build(CLI::App& app, Context& ctx);
void register_container_fs(CLI::App& app, Context& ctx); // commit (diff, export, cp: see container_fs.hpp)
void register_volume(CLI::App& app, Context& ctx);
void register_network(CLI::App& app, Context& ctx); // network create/ls/inspect/rm/prune/connect/disconnect
void register_port(CLI::App& app, Context& ctx); // port (cmd_port.cpp)
void register_prune(CLI::App& app, Context& ctx); // builder prune, system prune (cmd_prune.cpp)
void register_events(CLI::App& app, Context& ctx); // events (cmd_events.cpp)
void register_serve(CLI::App& app, Context& ctx); // serve: the Docker Engine API (cmd_serve.cpp, serve/)
void register_completion(CLI::App& app, Context& ctx); // completion, man (hidden)

} // namespace strata::cli
