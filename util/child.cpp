#include "util/child.hpp"

#include "util/error.hpp"
#include "util/log.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace strata {

bool ExitStatus::exited() const noexcept {
    return WIFEXITED(m_raw);
}
bool ExitStatus::signaled() const noexcept {
    return WIFSIGNALED(m_raw);
}
int ExitStatus::code() const noexcept {
    return WEXITSTATUS(m_raw);
}
int ExitStatus::signal() const noexcept {
    return WTERMSIG(m_raw);
}
int ExitStatus::shell_code() const noexcept {
    return exited() ? code() : signaled() ? 128 + signal() : 255;
}

std::string ExitStatus::describe() const {
    if (exited()) {
        return "exited with status " + std::to_string(code());
    }
    if (signaled()) {
        const char* abbrev = sigabbrev_np(signal());
        std::string s = "killed by signal " + std::to_string(signal());
        if (abbrev != nullptr) {
            s += " (SIG";
            s += abbrev;
            s += ')';
        }
        return s;
    }
    return "ended with wait status " + std::to_string(m_raw);
}

Child::Child(Child&& o) noexcept
    : m_pid(std::exchange(o.m_pid, -1)), m_process_group(o.m_process_group) {}

Child& Child::operator=(Child&& o) noexcept {
    if (this != &o) {
        if (m_pid > 0) {
            terminate();
        }
        m_pid = std::exchange(o.m_pid, -1);
        m_process_group = o.m_process_group;
    }
    return *this;
}

Child::~Child() {
    if (m_pid > 0) {
        STRATA_LOG_WARN("child process {} still running at destruction; killing it", m_pid);
        try {
            terminate();
        } catch (...) {
        }
    }
}

namespace {

// Writes errno to the pipe and exits; async-signal-safe.
[[noreturn]] void child_fail(int fd, int stage) {
    int payload[2] = {stage, errno};
    ssize_t ignored = ::write(fd, payload, sizeof payload);
    (void)ignored;
    _exit(127);
}

int redirect(int from, int to) {
    if (from < 0 || from == to) {
        if (from == to && from >= 0) {
            // Clear CLOEXEC so it survives exec.
            int flags = ::fcntl(from, F_GETFD);
            return flags < 0 ? -1 : ::fcntl(from, F_SETFD, flags & ~FD_CLOEXEC);
        }
        return 0;
    }
    return ::dup2(from, to) < 0 ? -1 : 0;
}

} // namespace

Child Child::spawn(const SpawnOptions& opts) {
    if (opts.argv.empty()) {
        throw Error("spawn: empty argv");
    }
    // Everything the child needs is prepared before fork.
    std::vector<char*> argv;
    for (const auto& a : opts.argv) {
        argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    std::vector<char*> envp;
    if (opts.env) {
        for (const auto& e : *opts.env) {
            envp.push_back(const_cast<char*>(e.c_str()));
        }
        envp.push_back(nullptr);
    }
    std::string path = opts.argv[0];
    if (path.find('/') == std::string::npos) {
        auto found = find_program(path);
        if (!found) {
            throw SysError("exec", path, ENOENT);
        }
        path = *found;
    }
    Pipe report = Pipe::create();
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) {
        throw_errno("fork");
    }
    if (pid == 0) {
        int fd = report.write.get();
        if (opts.new_process_group) {
            ::setpgid(0, 0);
        }
        if (opts.die_with_parent) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) {
                _exit(127);
            }
        }
        // Restore default signal dispositions and an empty mask.
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        if (redirect(opts.stdin_fd, 0) != 0 || redirect(opts.stdout_fd, 1) != 0 ||
            redirect(opts.stderr_fd, 2) != 0) {
            child_fail(fd, 1);
        }
        if (!opts.cwd.empty() && ::chdir(opts.cwd.c_str()) != 0) {
            child_fail(fd, 2);
        }
        if (opts.env) {
            ::execve(path.c_str(), argv.data(), envp.data());
        } else {
            ::execv(path.c_str(), argv.data());
        }
        child_fail(fd, 3);
    }
    Child child(pid, opts.new_process_group);
    report.write.reset();
    int payload[2];
    ssize_t n;
    do {
        n = ::read(report.read.get(), payload, sizeof payload);
    } while (n < 0 && errno == EINTR);
    if (n == sizeof payload) {
        child.wait();
        static constexpr const char* stages[] = {"", "dup2", "chdir", "exec"};
        std::string what = payload[0] == 2 ? opts.cwd : opts.argv[0];
        throw SysError(stages[payload[0] & 3], what, payload[1]);
    }
    return child;
}

Child Child::fork_fn(const std::function<int()>& fn, bool new_process_group) {
    pid_t pid = ::fork();
    if (pid < 0) {
        throw_errno("fork");
    }
    if (pid == 0) {
        if (new_process_group) {
            ::setpgid(0, 0);
        }
        int rc = 127;
        try {
            rc = fn();
        } catch (...) {
            rc = 127;
        }
        _exit(rc);
    }
    return Child(pid, new_process_group);
}

ExitStatus Child::wait() {
    if (m_pid <= 0) {
        throw Error("wait: no child process");
    }
    int status = 0;
    while (::waitpid(m_pid, &status, 0) < 0) {
        if (errno != EINTR) {
            pid_t pid = std::exchange(m_pid, -1);
            throw SysError("waitpid", std::to_string(pid), errno);
        }
    }
    m_pid = -1;
    return ExitStatus(status);
}

std::optional<ExitStatus> Child::try_wait() {
    if (m_pid <= 0) {
        throw Error("wait: no child process");
    }
    int status = 0;
    pid_t r = ::waitpid(m_pid, &status, WNOHANG);
    if (r < 0) {
        throw_errno("waitpid", std::to_string(m_pid));
    }
    if (r == 0) {
        return std::nullopt;
    }
    m_pid = -1;
    return ExitStatus(status);
}

std::optional<ExitStatus> Child::wait_for(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto delay = std::chrono::microseconds(200);
    while (true) {
        if (auto st = try_wait()) {
            return st;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return std::nullopt;
        }
        std::this_thread::sleep_for(delay);
        delay = std::min(delay * 2, std::chrono::microseconds(20000));
    }
}

void Child::kill(int sig) {
    if (m_pid <= 0) {
        return;
    }
    if (m_process_group) {
        ::kill(-m_pid, sig);
    }
    ::kill(m_pid, sig);
}

pid_t Child::detach() noexcept {
    return std::exchange(m_pid, -1);
}

ExitStatus Child::terminate(std::chrono::milliseconds grace) {
    kill(SIGTERM);
    if (auto st = wait_for(grace)) {
        return *st;
    }
    kill(SIGKILL);
    return wait();
}

RunResult run_capture(const std::vector<std::string>& argv, bool capture_stderr,
                      const std::string& stdin_data) {
    Pipe out = Pipe::create();
    Pipe in = Pipe::create();
    SpawnOptions opts;
    opts.argv = argv;
    opts.stdout_fd = out.write.get();
    opts.stdin_fd = in.read.get();
    if (capture_stderr) {
        opts.stderr_fd = out.write.get();
    }
    Child child = Child::spawn(opts);
    out.write.reset();
    in.read.reset();
    std::thread feeder;
    if (!stdin_data.empty()) {
        feeder = std::thread([&] {
            std::size_t off = 0;
            while (off < stdin_data.size()) {
                ssize_t n = ::write(in.write.get(), stdin_data.data() + off, stdin_data.size() - off);
                if (n <= 0) {
                    if (n < 0 && errno == EINTR) {
                        continue;
                    }
                    break;
                }
                off += static_cast<std::size_t>(n);
            }
            in.write.reset();
        });
    } else {
        in.write.reset();
    }
    std::string result;
    char buf[65536];
    while (true) {
        ssize_t n = ::read(out.read.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        result.append(buf, static_cast<std::size_t>(n));
    }
    if (feeder.joinable()) {
        feeder.join();
    }
    return RunResult{child.wait(), std::move(result)};
}

std::optional<std::string> find_program(const std::string& name) {
    if (name.find('/') != std::string::npos) {
        return ::access(name.c_str(), X_OK) == 0 ? std::optional(name) : std::nullopt;
    }
    const char* path = std::getenv("PATH");
    std::string_view dirs = path != nullptr ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    while (true) {
        auto colon = dirs.find(':');
        std::string dir(dirs.substr(0, colon));
        if (dir.empty()) {
            dir = ".";
        }
        std::string candidate = dir + "/" + name;
        struct stat st;
        if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
            ::access(candidate.c_str(), X_OK) == 0) {
            return candidate;
        }
        if (colon == std::string_view::npos) {
            return std::nullopt;
        }
        dirs.remove_prefix(colon + 1);
    }
}

} // namespace strata
