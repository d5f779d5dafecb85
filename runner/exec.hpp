// Running another process in a container that is already running (`strata
// exec`, health checks), given the host pid of its PID 1:
//
//   runner::ExecSpec spec;
//   spec.pid = state_pid;                 // the container's PID 1 (host pid)
//   spec.argv = {"sh", "-c", "cat /data/x"};
//   spec.env = config_env;                // the container's env, then -e's
//   spec.security = container_security;   // the same capabilities and seccomp profile
//   ExitStatus st = runner::exec(spec);
//
// The process joins every namespace of the container that differs from
// strata's (the user namespace first when the container has one of its own,
// then ipc, uts, net, pid, cgroup, mount) and every cgroup of its PID 1
// (each v1 hierarchy, or the v2 directory), then gets the container's
// confinement: the capability set of the container's Security (or every
// capability with `privileged`, as `docker exec --privileged`; the seccomp
// filter stays the container's, as in Docker), the seccomp filter, no_new_privs,
// PID 1's resource limits, a session keyring of its own, the user and groups
// resolved in the container's /etc/passwd and /etc/group. Every step fails
// closed: the command does not run when one cannot be applied (StartError,
// 126 as Docker's exec, 127 for a command not found).
//
// Joining a PID namespace only affects children, so a first child joins
// the namespaces and forks the process that runs the command: it is a
// member of the container's PID namespace and sees the container's /proc.
// Attached, that process is strata's own child (CLONE_PARENT), waited for
// here: its exit status is exact. Detached, it is forked once more and its
// parent exits, so the container's PID 1 adopts and reaps it (as with
// `docker exec -d`); nothing waits for it here.
#pragma once

#include "runner/runner.hpp"
#include "util/child.hpp"
#include "util/fd.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace strata::runner {

struct ExecSpec {
    pid_t pid = -1;                // host pid of the container's PID 1
    std::vector<std::string> argv; // argv[0] without '/' is searched in the env's PATH
    // The container's env followed by the exec's own (later entries win).
    // PATH defaults to Docker's, HOME to the user's, TERM to xterm with tty.
    std::vector<std::string> env;
    std::string hostname;    // HOSTNAME's default; empty: the container's /etc/hostname
    std::string cwd;         // empty: "/"; must exist (else 126, as Docker)
    std::string user;        // "", "name", "uid", "name:group", "uid:gid"
    Security security;       // the container's
    bool privileged = false; // every capability (`docker exec --privileged`)
    bool tty = false;        // a new pty from the container's devpts instance
    // Detached: stdio is /dev/null, the process is adopted by the
    // container's PID 1 and start() returns once it has exec'd.
    bool detach = false;
    // As in RunSpec: stdin -1 is /dev/null, stdout/stderr -1 the caller's;
    // with tty, stdin_fd and stdout_fd are what is copied to and from the pty.
    int stdin_fd = -1;
    int stdout_fd = -1;
    int stderr_fd = -1;
};

// An exec'd process. Destroying it while it runs kills it (SIGKILL) and
// reaps it.
class Exec {
public:
    // Throws StartError when the process could not be started (126: a
    // protection or the namespaces could not be applied, the working
    // directory is missing, the command is not executable; 127: the command
    // was not found), Error when the container is not running.
    static Exec start(const ExecSpec& spec);

    Exec() = default;
    Exec(Exec&&) noexcept;
    Exec& operator=(Exec&&) noexcept;
    Exec(const Exec&) = delete;
    Exec& operator=(const Exec&) = delete;
    ~Exec();

    // Host pid of the process (-1 when detached).
    pid_t pid() const noexcept { return m_pid; }
    void kill(int sig);
    // Sets the pty's window size (tty only).
    void resize(unsigned short rows, unsigned short cols);
    // Waits for the process, copying between the caller's streams and the
    // pty with tty, and serving control (cancel kills it: throws Cancelled).
    ExitStatus wait(Control* control = nullptr);
    // Waits up to timeout (no tty copying); nullopt when still running.
    std::optional<ExitStatus> wait_for(std::chrono::milliseconds timeout);

private:
    pid_t m_pid = -1;
    UniqueFd m_pidfd;
    UniqueFd m_master;
    int m_tty_in = -1;
    int m_tty_out = -1;
    int m_winsize_fd = -1;
    bool m_reaped = true;
    void kill_and_reap() noexcept;
};

// start() + wait(); a detached exec returns status 0 once started.
ExitStatus exec(const ExecSpec& spec, Control* control = nullptr);

// The host pids of the processes in the PID namespace of pid (pid
// included), ascending, from /proc. Throws Error when pid does not exist.
std::vector<pid_t> pid_namespace_members(pid_t pid);

} // namespace strata::runner
