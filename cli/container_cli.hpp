// Shared by the container commands (cmd_container.cpp), run/create
// (cmd_run.cpp) and inspect (cmd_inspect.cpp).
#pragma once

#include "cli/cli.hpp"
#include "cli/template.hpp"
#include "containers/json_log.hpp"
#include "containers/store.hpp"

#include <functional>
#include <string>
#include <vector>

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

// A container that may not be removed as it stands (running, without
// force): dockerd's 409.
class ContainerConflict : public Error {
public:
    using Error::Error;
};

// One container as ps sees it.
struct ContainerEntry {
    std::string id;
    nlohmann::ordered_json config;
    containers::State state;
};
// ps's selection: newest first; running ones only unless all_states (or
// last > 0, or a status/exited filter); the `last` newest when last > 0;
// Docker's filters as "key=value" (id, name, label, status, ancestor,
// exited: values of one key ORed, but every label must match; keys ANDed).
// UsageError for a bad filter.
std::vector<ContainerEntry> list_containers(const containers::Store& cs, bool all_states, int last,
                                            const std::vector<std::string>& filters);
// ps's COMMAND: Path and Args joined by spaces, an argument with a space
// in single quotes (as dockerd lists it).
std::string docker_command(const nlohmann::ordered_json& config);

// rm: removes a stopped container; force stops it first (SIGKILL, as
// Docker); volumes removes its anonymous volumes too. ContainerConflict for
// a running one without force.
void remove_container(containers::Store& cs, const std::string& id, bool force, bool volumes);

// container prune: removes the containers that are not running (nor
// about to: a live monitor) and that the filters select (label=K[=V],
// label!=K[=V], until=TIME: created before): their ids. UsageError
// for another filter. bytes: what their writable layers' files held.
struct ContainerPrune {
    std::vector<std::string> removed;
    std::uint64_t bytes = 0;
};
ContainerPrune prune_containers(containers::Store& cs, const std::vector<std::string>& filters);

// logs: the container's json-file log entries (rotated files first) after
// the tail/since/until selection, then with follow the new ones until it
// stops. sink gets each entry and its text (with the time in front for
// timestamps) and returns false to stop.
struct LogOptions {
    bool follow = false;
    bool timestamps = false;
    std::string tail = "all";
    std::string since, until;
};
void read_logs(const containers::Store& cs, const std::string& id, const LogOptions& o,
               const std::function<bool(const containers::LogEntry&, const std::string&)>& sink);

} // namespace strata::cli
