// Shared by the container commands (cmd_container.cpp), run/create
// (cmd_run.cpp) and inspect (cmd_inspect.cpp).
#pragma once

#include "cli/cli.hpp"
#include "cli/template.hpp"
#include "containers/store.hpp"

#include <string>

namespace strata::cli {

// Docker's STATUS column: "Up 3 seconds", "Exited (0) 2 minutes ago", "Created".
std::string container_status_text(const containers::State& s);
// `docker inspect`'s document of a container.
TemplateValue container_document(const containers::Store& store, const std::string& id);
// Starts a container and, with attach, copies its streams until it ends
// (stdin too with interactive); returns its exit code (0 when detached).
// Prints Docker's errors; StartError's code becomes the exit code.
int start_container(Context& ctx, const std::string& id, bool attach, bool interactive);
// "Error response from daemon: MESSAGE" on stderr.
void daemon_error(const std::string& message);

} // namespace strata::cli
