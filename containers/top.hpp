// `strata top`: the processes of a running container, as `docker top` shows
// them: ps(1) runs on the host with the given options (default -ef) and only
// the rows whose PID is in the container's PID namespace are kept.
#pragma once

#include <string>
#include <sys/types.h>
#include <vector>

namespace strata::containers {

struct TopResult {
    std::vector<std::string> titles;                 // ps's header fields (UID PID PPID ...)
    std::vector<std::vector<std::string>> processes; // one row per process; the last
                                                     // column keeps its spaces (CMD)
};

// Docker's check of ps options: "-o k=PID..." may only rename pid. Throws
// UsageError ("specifying \"k=PID\" is not allowed").
void validate_ps_args(const std::string& ps_args);

// Keeps the rows of ps output whose PID column is one of pids (and the
// thread rows, PID "-", that follow a kept row, as Docker). Throws Error
// when the header has no PID column ("Couldn't find PID field in ps output")
// or a PID is not a number.
TopResult parse_ps_output(const std::string& output, const std::vector<pid_t>& pids);

// Runs ps with ps_args (split at spaces, as Docker; empty: "-ef") and keeps
// the processes in the PID namespace of pid (the container's PID 1). Asks ps
// for only those (-q PIDS) first and retries without when ps refuses the
// combination. Throws Error when ps fails.
TopResult top(pid_t pid, const std::string& ps_args);

// The table as the docker CLI prints it (a tabwriter: columns at least 20
// wide, 3 spaces of padding), one line per process, ending in a newline.
std::string format_top(const TopResult& result);

} // namespace strata::containers
