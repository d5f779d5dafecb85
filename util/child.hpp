// Child: an owned child process. Destroying a Child whose process still runs
// kills its process group (SIGTERM, then SIGKILL) and reaps it, with a warning;
// call wait() or detach() to say otherwise. Between fork and exec the child
// makes only async-signal-safe calls and reports failure through a CLOEXEC pipe.
#pragma once

#include "util/fd.hpp"

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace strata {

// The way a process ended, as waitpid reports it.
class ExitStatus {
public:
    explicit ExitStatus(int wstatus) : m_raw(wstatus) {}
    bool exited() const noexcept;
    bool signaled() const noexcept;
    int code() const noexcept;   // exit status, valid when exited()
    int signal() const noexcept; // valid when signaled()
    bool success() const noexcept { return exited() && code() == 0; }
    // Shell convention: code, or 128 + signal.
    int shell_code() const noexcept;
    // "exited with status N" or "killed by signal N (SIGNAME)"
    std::string describe() const;
    int raw() const noexcept { return m_raw; }

private:
    int m_raw;
};

struct SpawnOptions {
    std::vector<std::string> argv;            // argv[0] is looked up in PATH when it has no '/'
    std::optional<std::vector<std::string>> env; // default: inherit
    std::string cwd;                          // default: inherit
    int stdin_fd = -1;                        // -1: inherit
    int stdout_fd = -1;
    int stderr_fd = -1;
    bool new_process_group = true;
    bool die_with_parent = true;              // PR_SET_PDEATHSIG(SIGKILL)
};

class Child {
public:
    Child() = default;
    Child(Child&& o) noexcept;
    Child& operator=(Child&& o) noexcept;
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child();

    // fork + exec. Throws SysError naming argv[0] if the exec fails.
    static Child spawn(const SpawnOptions& opts);
    // fork and run fn in the child; the child _exits with fn's result (or 127
    // when fn throws). fn must be careful: it runs after fork in a copy of a
    // possibly multi-threaded process.
    static Child fork_fn(const std::function<int()>& fn, bool new_process_group = true);
    // Adopts an existing pid (e.g. from clone3).
    static Child adopt(pid_t pid, bool process_group) { return Child(pid, process_group); }

    pid_t pid() const noexcept { return m_pid; }
    explicit operator bool() const noexcept { return m_pid > 0; }
    ExitStatus wait();
    std::optional<ExitStatus> try_wait();
    // Waits up to timeout; returns nullopt if still running.
    std::optional<ExitStatus> wait_for(std::chrono::milliseconds timeout);
    void kill(int sig);
    // Gives up ownership: the process is no longer waited for or killed.
    pid_t detach() noexcept;
    // SIGTERM, grace period, SIGKILL, reap.
    ExitStatus terminate(std::chrono::milliseconds grace = std::chrono::milliseconds(1000));

private:
    Child(pid_t pid, bool pg) : m_pid(pid), m_process_group(pg) {}
    pid_t m_pid = -1;
    bool m_process_group = false;
};

// Runs argv to completion, capturing stdout (stderr passes through unless
// capture_stderr). Throws SysError if it cannot be started.
struct RunResult {
    ExitStatus status;
    std::string out;
};
RunResult run_capture(const std::vector<std::string>& argv, bool capture_stderr = false,
                      const std::string& stdin_data = {});

// Looks a program up in PATH; nullopt when it is not found.
std::optional<std::string> find_program(const std::string& name);

} // namespace strata
