// strata-monitor: the per-container monitor (containers/monitor.hpp),
// started detached by `strata start` / `strata run -d`:
//   strata-monitor --root STORE --id ID --ready-fd FD [--attach-first]
#include "containers/monitor.hpp"

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>

namespace {

// The hooks the monitor runs besides its own work (health checks, OOM flag).
strata::containers::MonitorHooks monitor_hooks() {
    strata::containers::MonitorHooks hooks;
    return hooks;
}

} // namespace

int main(int argc, char** argv) {
    std::string root, id;
    int ready_fd = -1;
    bool attach_first = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--root" && i + 1 < argc) {
            root = argv[++i];
        } else if (a == "--id" && i + 1 < argc) {
            id = argv[++i];
        } else if (a == "--ready-fd" && i + 1 < argc) {
            ready_fd = std::atoi(argv[++i]);
        } else if (a == "--attach-first") {
            attach_first = true;
        } else {
            return 2;
        }
    }
    if (root.empty() || id.empty()) {
        return 2;
    }
    std::signal(SIGPIPE, SIG_IGN);
    if (ready_fd >= 0) {
        ::fcntl(ready_fd, F_SETFD, FD_CLOEXEC); // not the container's
    }
    try {
        return strata::containers::run_monitor(root, id, ready_fd, attach_first, monitor_hooks());
    } catch (const std::exception&) {
        return 1;
    }
}
