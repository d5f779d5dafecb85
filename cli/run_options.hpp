// The options of `strata run` and `strata create` as plain data (Docker's
// flags; no CLI11 type), and the container record made from them: what
// run/create do, callable by other front ends of the same store.
#pragma once

#include "cli/run_flags.hpp"
#include "runner/runner.hpp"

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace strata::cli {

struct RunOptions {
    bool rm = false;
    bool init = false;
    bool interactive = false;
    bool tty = false;
    std::vector<std::string> env;
    std::string workdir;
    std::string user;
    // --network: "" is the default (bridge as root, none without root).
    std::string network;
    std::string ip;                           // --ip
    std::vector<std::string> network_aliases; // --network-alias
    std::vector<std::string> dns, dns_search, dns_options;
    std::string hostname;
    std::vector<std::string> volumes;
    std::vector<std::string> tmpfs;
    std::vector<std::string> ulimits;
    std::vector<std::string> devices;
    bool read_only = false;
    std::string scratch = "memory";
    // --lazy / --no-lazy: serve an image that is not unpacked from its
    // compressed layers (snapshot/lazy_index.hpp); neither: lazy when a
    // snapshot is missing.
    bool lazy = false;
    bool no_lazy = false;
    std::optional<std::string> entrypoint;
    std::vector<std::string> security_opts;
    std::vector<std::string> cap_add;
    std::vector<std::string> cap_drop;
    bool privileged = false;
    // --env-file, --mount, --add-host (cli/run_flags.hpp)
    std::vector<std::string> env_files;
    std::vector<std::string> mount_flags;
    std::vector<std::string> volumes_from; // --volumes-from (cli/run_flags.hpp RunVolumes)
    std::vector<std::string> add_hosts;
    runner::Resources resources; // --memory, --cpus... (cli/run_flags.hpp)
    // Kept containers (create, run without --rm): cli/container_ops.hpp.
    bool detach = false;
    std::string name;
    std::string restart = "no";
    std::vector<std::string> labels;
    std::vector<std::string> log_opts;
    std::string stop_signal;
    std::optional<int> stop_timeout;
    HealthFlags health;   // --health-* (cli/run_flags.hpp)
    PublishFlags publish; // -p, -P (cli/run_flags.hpp)
    std::string image;
    std::vector<std::string> command;
};

// create (and run without --rm): a container record in the store at
// store_root made from o (o.image resolved in that store, o.command its
// command), with the image pinned so that gc keeps it; the container is not
// started. Docker's warnings (limits this host cannot apply, IPv4
// forwarding off) go to warn. Returns the new container's id. Throws
// UsageError without root and for options Docker refuses (with Docker's
// messages), the store's errors for an unknown image, runner::StartError
// (125) for a seccomp profile that cannot be read.
std::string create_container(const std::string& store_root, const RunOptions& o,
                             std::ostream& warn);

} // namespace strata::cli
