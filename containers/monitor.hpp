// The monitor: one small process per started container (the job podman's
// conmon does), the program strata-monitor. It is started detached (its own
// session, reparented away from the CLI), holds <id>/monitor.lock for its
// whole life, and in a private mount namespace of its own mounts the image's
// snapshots + <id>/upper at <id>/rootfs (nothing leaks onto the host, even if
// it is SIGKILLed). It starts the container through runner::Container (PID 1
// dies with it), holds its stdio or pty, writes the json-file log (with
// max-size/max-file rotation), records the state (pid, start/finish times,
// exit code, OOMKilled), applies the restart policy, and serves
// <id>/monitor.sock:
//
//   a request line, answered by one line ("ok" or "error MESSAGE"), then closed:
//     "kill SIG"     deliver SIG to the container's PID 1
//     "stop SIG"     the same, and mark the stop as asked for (no restart)
//     "network-connect {"Network":N,"IPv4Address":A,"Aliases":[...]}"
//     "network-disconnect {"Network":N}"
//                    `network connect`/`disconnect` (cli/cmd_network.cpp): the
//                    running sandbox joins/leaves N now (the endpoint is the
//                    monitor's, its lock held by it like the start's ones) and
//                    every later start of this monitor does as well
//   or "attach\n", then frames both ways, each an 8-byte header (Docker's
//   stdcopy: stream byte, 3 zero bytes, big-endian length) and a payload:
//     from the monitor: 1 stdout, 2 stderr, 3 exit (payload: the exit code)
//     to the monitor:   0 stdin data, 1 stdin closed, 2 resize ("ROWS COLS")
//
// The socket is reached through /proc/self/fd/<dirfd>/monitor.sock, so a
// store path longer than sun_path's 108 bytes works.
#pragma once

#include "containers/store.hpp"
#include "util/fd.hpp"

#include <chrono>
#include <functional>
#include <string>

namespace strata::containers {

// What the monitor calls besides its own work; health checks (containers/health.*)
// add themselves here (monitor_hooks() in strata_monitor_main.cpp).
struct MonitorHooks {
    // Called every tick_interval while the container runs, from the
    // monitor's I/O thread, with the container's id and its PID 1.
    std::chrono::milliseconds tick_interval{0};
    std::function<void(const Store& store, const std::string& id, int pid)> on_tick;
    // Called after each exit of the container, before the state is written:
    // may set state.oom_killed (the resources engineer's OOM flag).
    std::function<void(const Store& store, const std::string& id, State& state)> on_exit;
};

// Runs the monitor in this process (strata-monitor's main). ready_fd gets
// "ok\n" once the container runs, or "error CODE MESSAGE\n"; with
// attach_first the container starts only after a first attach connection
// (or 30 s). Returns the process exit code.
int run_monitor(const std::string& store_root, const std::string& id, int ready_fd,
                bool attach_first, const MonitorHooks& hooks);

// The strata-monitor program: beside /proc/self/exe, in the build tree, or in PATH.
std::string find_monitor_program();

// Starts a container (created or exited) through a new detached monitor and
// waits until it runs. Throws runner::StartError with Docker's exit code
// (125, 126, 127) when it cannot start. A running container is left alone.
// With attach_first the monitor waits for an attach before starting: call
// connect_monitor + "attach" then finish_start().
struct StartHandle {
    UniqueFd ready;
};
StartHandle begin_start(const Store& store, const std::string& id, bool attach_first);
void finish_start(StartHandle& handle);
inline void start(const Store& store, const std::string& id) {
    StartHandle h = begin_start(store, id, false);
    finish_start(h);
}

// A connection to the container's monitor; an empty fd when none listens.
UniqueFd connect_monitor(const Store& store, const std::string& id);
// Sends a request line and returns the answer line ("ok", "error ...");
// nullopt when no monitor answers.
std::optional<std::string> monitor_request(const Store& store, const std::string& id,
                                           const std::string& line);

// Frames of the attach protocol.
void write_frame(int fd, unsigned char stream, std::string_view payload);
// Reads one frame; false at EOF.
bool read_frame(int fd, unsigned char& stream, std::string& payload);

// Stops a running container as `docker stop`: signal (the config's
// StopSignal, else SIGTERM), then SIGKILL after timeout seconds (a negative
// timeout: Config.StopTimeout, else 10). Returns once it is not running.
void stop(const Store& store, const std::string& id, int timeout_seconds = -1, int signal = 0);
// Sends sig (as `docker kill`); throws Error when it is not running.
void kill(const Store& store, const std::string& id, int sig);
// Waits (up to 15 s) until no monitor holds the container: one whose
// container ended is finishing (log, unmount, auto-remove).
void wait_monitor_exit(const Store& store, const std::string& id);
// Waits until the container is not running (polls its state).
State wait_not_running(const Store& store, const std::string& id);

} // namespace strata::containers
