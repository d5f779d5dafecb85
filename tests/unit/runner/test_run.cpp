// Containers for real. Every case here needs root ([root]) or user
// namespaces ([userns]) and runs in its own CTest entry behind a probe, so
// that it is reported as skipped, never passed, when it cannot run.
#include "fixture.hpp"
#include "runner/idmap.hpp"
#include "runner/runner.hpp"
#include "runner/terminal.hpp"
#include "tests/support/support.hpp"
#include "util/child.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/sys/process.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <functional>
#include <grp.h>
#include <linux/capability.h>
#include <net/if.h>
#include <pwd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace strata;
using namespace strata::test;
using runner::RunSpec;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

// Reads one line from fd (blocking).
std::string read_line(int fd) {
    std::string line;
    char c;
    while (::read(fd, &c, 1) == 1 && c != '\n') {
        line += c;
    }
    return line;
}

bool process_exists(pid_t pid) {
    return ::kill(pid, 0) == 0 || errno != ESRCH;
}

// The PID namespace of a process ("pid:[4026532...]").
std::string pid_ns_of(pid_t pid) {
    std::error_code ec;
    return std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/ns/pid", ec);
}

// Pids of host processes in the PID namespace ns.
std::vector<pid_t> processes_in(const std::string& ns) {
    std::vector<pid_t> out;
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
        std::string name = e.path().filename();
        if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) {
            continue;
        }
        if (pid_ns_of(std::stoi(name)) == ns) {
            out.push_back(std::stoi(name));
        }
    }
    return out;
}

// True when this process has no child left (nothing running, no zombie).
bool no_children() {
    int status;
    return ::waitpid(-1, &status, WNOHANG) < 0 && errno == ECHILD;
}

// Runs body in a forked child as uid:gid (the test process itself keeps
// root, STYLE rule 23); 0 from body means every check passed, 20 that it
// threw (printed).
ExitStatus as_user(uid_t uid, gid_t gid, const std::function<int()>& body) {
    Child c = Child::fork_fn([&]() -> int {
        if (::getuid() == 0 && (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 ||
                                ::setresuid(uid, uid, uid) != 0)) {
            return 10;
        }
        // Changing credentials cleared "dumpable", which would make /proc/PID
        // (where the id maps are written) root's; a user starting strata
        // directly keeps it.
        ::prctl(PR_SET_DUMPABLE, 1);
        try {
            return body();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "rootless run failed: %s\n", e.what());
            return 20;
        }
    });
    return c.wait();
}

} // namespace

TEST_CASE("the command is PID 1 and sees its own hostname", "[root]") {
    Rootfs root;
    auto o = run_captured(probe_spec(root, {"info"}));
    INFO(o.out << o.err);
    CHECK(o.status.success());
    CHECK(o.get("pid") == "1");
    CHECK(o.get("ppid") == "0");
    CHECK(o.get("hostname") == "box");
    CHECK(o.get("cwd") == "/");
    CHECK(o.get("uid") == "0");
    CHECK(o.get("groups") == "0,10");
}

TEST_CASE("the host's processes, mounts and files are invisible", "[root]") {
    Rootfs root;
    TempDir host;
    write_file(host.path() + "/marker", "host file");
    auto spec = probe_spec(root, {});
    spec.argv = {"/bin/sh", "-c",
                 "ls /proc | grep -c '^[0-9]'; ls /; probe stat " + host.path() +
                     "/marker; probe info"};
    auto o = run_captured(spec);
    INFO(o.out << o.err);
    CHECK(o.status.code() == 0);
    // sh, ls and grep at most: no host process.
    CHECK(std::stoi(o.out.substr(0, o.out.find('\n'))) <= 3);
    CHECK(contains(o.out, "error=No such file or directory"));
    CHECK_FALSE(contains(o.out, "rootfs"));
    // Only the container's own mounts.
    for (const auto& m : o.all("mount")) {
        std::string mp = m.substr(0, m.find(' '));
        bool ok = mp == "/" || mp.rfind("/proc", 0) == 0 || mp.rfind("/dev", 0) == 0 ||
                  mp.rfind("/sys", 0) == 0 || mp.rfind("/etc/", 0) == 0;
        INFO("mount " << m);
        CHECK(ok);
    }
    CHECK_FALSE(contains(o.out, "mount=" + host.path()));
}

TEST_CASE("writes to /etc/hosts, /etc/hostname and /etc/resolv.conf never reach the root",
          "[root]") {
    Rootfs root;
    std::string before = dump_tree(root.path);
    auto spec = probe_spec(root, {});
    spec.argv = {"/bin/sh", "-c",
                 "cat /etc/hosts /etc/hostname; echo changed > /etc/hosts; "
                 "echo changed > /etc/resolv.conf; echo changed > /etc/hostname; cat /etc/hosts"};
    auto o = run_captured(spec);
    INFO(o.out << o.err);
    CHECK(o.status.code() == 0);
    CHECK(contains(o.out, "127.0.0.1\tlocalhost"));
    CHECK(contains(o.out, "box\n"));
    CHECK(contains(o.out, "changed\n"));
    CHECK(read_file(root.path + "/etc/hosts") == "original hosts\n");
    CHECK(read_file(root.path + "/etc/hostname") == "original hostname\n");
    CHECK(read_file(root.path + "/etc/resolv.conf") == "original resolv\n");
    CHECK(dump_tree(root.path) == before);
}

TEST_CASE("the capabilities are Docker's default set, with no_new_privs", "[root]") {
    Rootfs root;
    auto o = run_captured(probe_spec(root, {"info"}));
    INFO(o.out << o.err);
    CHECK(o.get("CapEff") == "00000000a80425fb");
    CHECK(o.get("CapPrm") == "00000000a80425fb");
    CHECK(o.get("CapBnd") == "00000000a80425fb");
    CHECK(o.get("CapInh") == "0000000000000000");
    CHECK(o.get("CapAmb") == "0000000000000000");
    CHECK(o.get("NoNewPrivs") == "1");
}

TEST_CASE("a non-root user gets its ids, groups and no effective capabilities", "[root]") {
    Rootfs root;
    auto spec = probe_spec(root, {"info"});
    spec.user = "user";
    auto o = run_captured(spec);
    INFO(o.out << o.err);
    CHECK(o.get("uid") == "1000");
    CHECK(o.get("euid") == "1000");
    CHECK(o.get("gid") == "1000");
    CHECK(o.get("groups") == "1000,2000");
    CHECK(o.get("CapEff") == "0000000000000000");
    CHECK(o.get("CapBnd") == "00000000a80425fb");
    spec.user = "1000:10";
    o = run_captured(spec);
    CHECK(o.get("gid") == "10");
    spec.user = "ghost";
    CHECK_THROWS_WITH(run_captured(spec), Catch::Contains("unable to find user ghost"));
}

TEST_CASE("no fd of strata leaks into the container", "[root]") {
    Rootfs root;
    // Deliberately inheritable fds in the caller.
    UniqueFd leak1(::open("/dev/null", O_RDONLY));
    UniqueFd leak2(::dup(leak1.get()));
    REQUIRE(leak2.get() > 2);
    for (bool init : {false, true}) {
        auto spec = probe_spec(root, {"fds"});
        spec.init = init;
        auto o = run_captured(spec);
        INFO("init " << init << ": " << o.out << o.err);
        CHECK(o.get("fds") == "0,1,2");
    }
}

TEST_CASE("orphaned zombies are reaped with init, and are not without it", "[root]") {
    Rootfs root;
    auto spec = probe_spec(root, {"zombies", "5"});
    spec.init = true;
    auto o = run_captured(spec);
    INFO(o.out << o.err);
    CHECK(o.status.success());
    CHECK(o.get("zombies") == "0");
    // The same without init shows that the check can fail: the probe is
    // PID 1 and reaps nothing.
    spec.init = false;
    o = run_captured(spec);
    CHECK(std::stoi(o.get("zombies")) > 0);
}

TEST_CASE("with init, the command is PID 2 and docker-init is PID 1", "[root]") {
    Rootfs root;
    auto spec = probe_spec(root, {"info"});
    spec.init = true;
    auto o = run_captured(spec);
    INFO(o.out << o.err);
    CHECK(o.get("pid") == "2");
    CHECK(o.get("ppid") == "1");
    CHECK(o.get("CapEff") == "00000000a80425fb");
}

TEST_CASE("signals reach the command, as PID 1 and through init", "[root]") {
    Rootfs root;
    for (bool init : {false, true}) {
        INFO("init " << init);
        Pipe out = Pipe::create();
        auto spec = probe_spec(root, {"wait-signal"});
        spec.init = init;
        spec.stdout_fd = out.write.get();
        auto c = runner::Container::start(spec);
        out.write.reset();
        REQUIRE(read_line(out.read.get()) == "ready");
        c.kill(SIGUSR1);
        auto st = c.wait();
        CHECK(st.exited());
        CHECK(st.code() == 100 + SIGUSR1);
        CHECK(read_line(out.read.get()) == "signal=" + std::to_string(SIGUSR1));
    }
    // Through a Control, as the CLI's signal handler does.
    Pipe out = Pipe::create();
    auto spec = probe_spec(root, {"wait-signal"});
    spec.stdout_fd = out.write.get();
    auto c = runner::Container::start(spec);
    out.write.reset();
    REQUIRE(read_line(out.read.get()) == "ready");
    runner::Control control;
    control.forward(SIGTERM);
    auto st = c.wait(&control);
    CHECK(st.code() == 100 + SIGTERM);
}

TEST_CASE("exit codes and deaths by signal are reported exactly", "[root]") {
    Rootfs root;
    CHECK(run_captured(probe_spec(root, {"exit", "42"})).status.code() == 42);
    CHECK(run_captured(probe_spec(root, {"exit", "0"})).status.success());
    // Under docker-init (tini) a death by signal N is its exit status 128+N,
    // as `docker run --init` reports it.
    auto spec = probe_spec(root, {"kill", std::to_string(SIGSEGV)});
    spec.init = true;
    auto st = run_captured(spec).status;
    CHECK(st.exited());
    CHECK(st.code() == 128 + SIGSEGV);
    spec = probe_spec(root, {"sleep", "100"});
    UniqueFd null(::open("/dev/null", O_WRONLY | O_CLOEXEC));
    spec.stdout_fd = null.get();
    auto c = runner::Container::start(spec);
    c.kill(SIGKILL);
    st = c.wait();
    CHECK(st.signaled());
    CHECK(st.signal() == SIGKILL);
    spec.init = true;
    spec.argv = {"/bin/sh", "-c", "exit 7"};
    CHECK(run_captured(spec).status.code() == 7);
}

TEST_CASE("a command that cannot start fails with 127 or 126, naming it", "[root]") {
    Rootfs root;
    auto fails_with = [&](std::vector<std::string> argv, int code, std::string message, bool init) {
        auto spec = probe_spec(root, {});
        spec.argv = std::move(argv);
        spec.init = init;
        try {
            run_captured(spec);
            FAIL("started");
        } catch (const runner::StartError& e) {
            CHECK(e.exit_code() == code);
            CHECK(std::string(e.what()) == message);
        }
    };
    for (bool init : {false, true}) {
        INFO("init " << init);
        fails_with({"nosuch"}, 127, "exec: \"nosuch\": executable file not found in $PATH", init);
        fails_with({"/bin/nosuch"}, 127, "exec: \"/bin/nosuch\": no such file or directory", init);
        fails_with({"/etc/passwd"}, 126, "exec: \"/etc/passwd\": permission denied", init);
        fails_with({"/bin"}, 126, "exec: \"/bin\": permission denied", init);
    }
    // Nothing is left running after a failed start.
    CHECK(no_children());
}

TEST_CASE("the working directory is created when missing and may not lead out", "[root]") {
    Rootfs root;
    auto spec = probe_spec(root, {"info"});
    spec.cwd = "/work/here";
    auto o = run_captured(spec);
    CHECK(o.get("cwd") == "/work/here");
    CHECK(std::filesystem::is_directory(root.path + "/work/here"));

    // A WORKDIR of /proc/self/fd/N (CVE-2024-21626): the runner must not
    // run, or write, in the host directory behind an inherited fd.
    TempDir host;
    UniqueFd hostfd(::open(host.path().c_str(), O_RDONLY | O_DIRECTORY)); // inheritable
    for (int n = 3; n < 12; ++n) {
        spec = probe_spec(root, {"write", "escaped", "x"});
        spec.cwd = "/proc/self/fd/" + std::to_string(n);
        INFO("cwd " << spec.cwd);
        try {
            auto r = run_captured(spec);
            FAIL("ran in " << spec.cwd << ": " << r.out << r.err);
        } catch (const runner::StartError& e) {
            CHECK(e.exit_code() == 125);
            CHECK(contains(e.what(), "working directory /proc/self/fd/"));
        }
    }
    CHECK(dump_tree(host.path()).empty());
}

TEST_CASE("a root whose /etc or /dev is a symlink out of it cannot touch host paths", "[root]") {
    Rootfs root;
    TempDir host_etc;
    TempDir host_dev;
    write_file(host_etc.path() + "/hosts", "host hosts\n");
    std::string etc_before = dump_tree(host_etc.path());
    std::filesystem::remove_all(root.path + "/etc");
    std::filesystem::create_symlink(host_etc.path(), root.path + "/etc");
    auto spec = probe_spec(root, {});
    spec.argv = {"/bin/sh", "-c", "cat /etc/hosts; echo x > /etc/hosts; ls /dev"};
    auto o = run_captured(spec);
    INFO(o.out << o.err);
    CHECK(o.status.success());
    CHECK(contains(o.out, "127.0.0.1\tlocalhost"));
    CHECK(contains(o.out, "null"));
    CHECK(dump_tree(host_etc.path()) == etc_before);
    // A symlinked /dev is refused outright (runc's rule for /proc, /sys, /dev).
    std::filesystem::remove_all(root.path + "/dev");
    std::filesystem::create_symlink(host_dev.path(), root.path + "/dev");
    try {
        runner::run(spec);
        FAIL("a /dev that is a symlink must be refused");
    } catch (const runner::StartError& e) {
        CHECK(e.exit_code() == 125);
        CHECK(contains(e.what(), "\"/dev\" in the image is a symlink (\"" + host_dev.path() +
                                     "\"): refusing to mount a tmpfs through it"));
    }
    CHECK(dump_tree(host_dev.path()).empty());
}

TEST_CASE("procfs is never mounted through a symlink; the masks fail closed", "[root]") {
    Rootfs root;
    std::filesystem::remove_all(root.path + "/proc");
    std::filesystem::create_directories(root.path + "/dev/x");
    std::filesystem::create_directories(root.path + "/etc/p");
    std::filesystem::create_symlink("/dev/x/../../etc/p", root.path + "/proc");
    auto spec = probe_spec(root, {});
    spec.argv = {"/bin/sh", "-c", "echo x > /etc/p/sys/kernel/core_pattern"};
    try {
        runner::run(spec);
        FAIL("a /proc that is a symlink must be refused");
    } catch (const runner::StartError& e) {
        CHECK(e.exit_code() == 125);
        CHECK(contains(e.what(), "\"/proc\" in the image is a symlink (\"/dev/x/../../etc/p\"): "
                                 "refusing to mount procfs through it"));
    }
    // With a real /proc the same command meets a read-only /proc/sys.
    std::filesystem::remove(root.path + "/proc");
    std::filesystem::create_directories(root.path + "/proc");
    spec.argv = {"/bin/sh", "-c", "echo x > /proc/sys/kernel/core_pattern"};
    auto o = run_captured(spec);
    CHECK_FALSE(o.status.success());
    CHECK(contains(o.err, "Read-only file system"));
}

TEST_CASE("privileged: every host device, no masks, /sys writable", "[root]") {
    Rootfs root;
    auto spec = probe_spec(root, {});
    spec.security.privileged = true;
    spec.argv = {"/bin/sh", "-c",
                 "ls /dev; wc -c < /proc/timer_list; grep -c ' /proc/sys ' /proc/self/mountinfo;"
                 "grep ' /sys ' /proc/self/mountinfo | cut -d' ' -f6"};
    auto o = run_captured(spec);
    INFO(o.out << o.err);
    REQUIRE(o.status.success());
    if (std::filesystem::exists("/dev/loop-control")) {
        CHECK(contains(o.out, "loop-control\n"));
    }
    CHECK(contains(o.out, "kmsg\n"));
    CHECK_FALSE(contains(o.out, "\n0\n0\n")); // timer_list not masked, /proc/sys not read-only
    CHECK(contains(o.out, "rw,"));
    // Without it, a device is reachable only when given (--device, here
    // write-only), others stay refused by the device cgroup.
    spec.security.privileged = false;
    spec.security.devices = {runner::Device{"/dev/kmsg", "/dev/kmsg", "w"}};
    spec.argv = {"/bin/sh", "-c",
                 "(echo strata-runner-test > /dev/kmsg) && echo kmsg-write; "
                 "mknod /tmp/lc c 10 237 && ((exec 3</tmp/lc) 2>/dev/null || echo lc-denied)"};
    o = run_captured(spec);
    INFO(o.out << o.err);
    CHECK(contains(o.out, "kmsg-write"));
    CHECK(contains(o.out, "lc-denied"));
}

TEST_CASE("mounts: read-only and read-write binds, tmpfs, cache directories", "[root]") {
    Rootfs root;
    TempDir host;
    write_file(host.path() + "/ro/file", "ro content");
    std::filesystem::create_directories(host.path() + "/rw");
    std::string cache = host.path() + "/cache/dir";
    std::filesystem::create_directories(host.path() + "/cache");
    auto spec = probe_spec(root, {});
    using M = runner::Mount;
    spec.mounts = {
        M{M::Type::bind, host.path() + "/ro", "/mnt/ro", true, ""},
        M{M::Type::bind, host.path() + "/rw", "/mnt/rw", false, ""},
        M{M::Type::tmpfs, "", "/scratch", false, "size=1m,mode=1777"},
        M{M::Type::cache, cache, "/root/.cache", false, ""},
        M{M::Type::bind, host.path() + "/ro/file", "/etc/config", true, ""},
    };
    spec.argv = {"/bin/sh", "-c",
                 "cat /mnt/ro/file; echo; echo a > /mnt/ro/new || echo ro-refused; "
                 "echo b > /mnt/rw/new; echo c > /scratch/f && cat /scratch/f; "
                 "echo d > /root/.cache/f; cat /etc/config; echo; "
                 "echo e > /etc/config || echo file-ro-refused"};
    auto o = run_captured(spec);
    INFO(o.out << o.err);
    CHECK(o.status.success());
    CHECK(contains(o.out, "ro content\n"));
    CHECK(contains(o.out, "ro-refused"));
    CHECK(contains(o.out, "c\n"));
    CHECK(contains(o.out, "file-ro-refused"));
    CHECK_FALSE(std::filesystem::exists(host.path() + "/ro/new"));
    CHECK(read_file(host.path() + "/rw/new") == "b\n");
    CHECK(read_file(cache + "/f") == "d\n");
    CHECK_FALSE(std::filesystem::exists(root.path + "/scratch/f"));

    spec.mounts = {M{M::Type::bind, host.path() + "/rw", "relative", false, ""}};
    CHECK_THROWS_AS(run_captured(spec), UsageError);
    spec.mounts = {M{M::Type::tmpfs, "", "/t", false, "size=bogus"}};
    try {
        run_captured(spec);
        FAIL("a bad tmpfs size was accepted");
    } catch (const runner::StartError& e) {
        CHECK(e.exit_code() == 125);
        CHECK(contains(e.what(), "mounting tmpfs on /t in " + root.path + ": Invalid argument"));
    }
    CHECK_FALSE(std::filesystem::exists(root.path + "/t"));
    spec.mounts = {M{M::Type::bind, host.path() + "/missing", "/x", false, ""}};
    CHECK_THROWS_WITH(run_captured(spec), Catch::Contains(host.path() + "/missing"));
}

TEST_CASE("a mount target that is a symlink out of the root stays inside it", "[root]") {
    Rootfs root;
    TempDir host;
    TempDir outside;
    write_file(host.path() + "/data", "data");
    std::filesystem::create_symlink(outside.path(), root.path + "/escape");
    auto spec = probe_spec(root, {"cat", "/escape/data"});
    spec.mounts = {runner::Mount{runner::Mount::Type::bind, host.path(), "/escape", false, ""}};
    auto o = run_captured(spec);
    INFO(o.out << o.err);
    CHECK(o.out == "data");
    CHECK(dump_tree(outside.path()).empty());
    CHECK(host_mountinfo().find(outside.path()) == std::string::npos);
}

TEST_CASE("a read-only root refuses writes outside its mounts", "[root]") {
    Rootfs root;
    auto spec = probe_spec(root, {});
    spec.read_only = true;
    spec.mounts = {runner::Mount{runner::Mount::Type::tmpfs, "", "/tmp", false, ""}};
    spec.argv = {"/bin/sh", "-c", "probe write /newfile x; probe write /tmp/ok x"};
    auto o = run_captured(spec);
    INFO(o.out << o.err);
    CHECK(contains(o.out, "error=Read-only file system"));
    CHECK(contains(o.out, "written"));
    CHECK_FALSE(std::filesystem::exists(root.path + "/newfile"));
}

TEST_CASE("the environment has Docker's defaults and the caller's variables", "[root]") {
    Rootfs root;
    auto spec = probe_spec(root, {});
    spec.argv = {"/bin/sh", "-c", "env | sort"};
    spec.env = {"FOO=bar"};
    spec.user = "user";
    auto o = run_captured(spec);
    INFO(o.out << o.err);
    CHECK(contains(o.out, std::string("PATH=") + runner::k_default_path + "\n"));
    CHECK(contains(o.out, "HOME=/home/user\n"));
    CHECK(contains(o.out, "HOSTNAME=box\n"));
    CHECK(contains(o.out, "FOO=bar\n"));
    spec.argv = {"probe", "exit", "3"}; // found through PATH
    CHECK(run_captured(spec).status.code() == 3);
}

TEST_CASE("network none has only the loopback interface, up; host has the host's", "[root]") {
    Rootfs root;
    auto spec = probe_spec(root, {});
    spec.argv = {"/bin/sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/flags"};
    auto o = run_captured(spec);
    INFO(o.out << o.err);
    CHECK(o.out == "lo\n0x9\n");
    spec.network = runner::Network::host;
    spec.argv = {"/bin/sh", "-c", "ls /sys/class/net"};
    o = run_captured(spec);
    // The caller's own namespace (the suite runs in one of its own, whose
    // /sys still shows the host's): counted by the kernel, not from /sys.
    long host_ifaces = 0;
    if (struct if_nameindex* ifs = ::if_nameindex()) {
        for (auto* i = ifs; i->if_index != 0; ++i) {
            ++host_ifaces;
        }
        ::if_freenameindex(ifs);
    }
    CHECK(std::count(o.out.begin(), o.out.end(), '\n') == host_ifaces);
}

TEST_CASE("/dev has the standard nodes and links, /sys is read-only", "[root]") {
    Rootfs root;
    auto spec = probe_spec(root, {});
    spec.argv = {"/bin/sh", "-c",
                 "ls /dev | tr '\\n' ' '; echo; readlink /dev/fd; readlink /dev/ptmx; "
                 "echo x > /sys/kernel/profiling || echo sys-ro; "
                 "head -c 4 /dev/zero | wc -c; cat /proc/timer_list | wc -c; "
                 "echo 1 > /proc/sys/kernel/ns_last_pid || echo proc-sys-ro"};
    auto o = run_captured(spec);
    INFO(o.out << o.err);
    for (const char* name : {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm",
                             "mqueue", "fd", "stdin", "stdout", "stderr", "ptmx"}) {
        CHECK(contains(o.out, std::string(name) + " "));
    }
    CHECK(contains(o.out, "/proc/self/fd\npts/ptmx\n"));
    CHECK(contains(o.out, "sys-ro"));
    CHECK(contains(o.out, "4\n0\n")); // /proc/timer_list is masked by /dev/null
    CHECK(contains(o.out, "proc-sys-ro"));
}

TEST_CASE("rlimits can be lowered; one that cannot be set is a clear error", "[root]") {
    Rootfs root;
    auto spec = probe_spec(root, {"limit"});
    spec.rlimits = {runner::Rlimit{RLIMIT_NOFILE, 512, 1024}};
    auto o = run_captured(spec);
    CHECK(o.get("nofile") == "512:1024");
    struct rlimit cur;
    ::getrlimit(RLIMIT_NOFILE, &cur);
    std::uint64_t eff = 0, prm = 0, inh = 0;
    REQUIRE(sys::capget_self(&eff, &prm, &inh) == 0);
    const bool can_raise = (eff & (std::uint64_t{1} << CAP_SYS_RESOURCE)) != 0;
    if (cur.rlim_max != RLIM_INFINITY) {
        spec.rlimits = {runner::Rlimit{RLIMIT_NOFILE, cur.rlim_max + 1, cur.rlim_max + 1}};
        try {
            o = run_captured(spec);
            // Only a caller with CAP_SYS_RESOURCE may raise a hard limit.
            CHECK(can_raise);
            CHECK(o.get("nofile") ==
                  std::to_string(cur.rlim_max + 1) + ":" + std::to_string(cur.rlim_max + 1));
        } catch (const runner::StartError& e) {
            CHECK_FALSE(can_raise);
            CHECK(e.exit_code() == 125);
            CHECK(contains(e.what(), "RLIMIT_NOFILE"));
            CHECK(contains(e.what(), "limits can only be lowered"));
        }
    }
    spec.rlimits = {runner::Rlimit{RLIMIT_NOFILE, 10, 5}};
    CHECK_THROWS_AS(run_captured(spec), UsageError);
}

TEST_CASE("a tty gives the command a terminal and copies its output", "[root]") {
    Rootfs root;
    for (bool init : {false, true}) {
        INFO("init " << init);
        Pipe in = Pipe::create();
        UniqueFd out(::memfd_create("tty-out", MFD_CLOEXEC));
        auto spec = probe_spec(root, {});
        spec.argv = {"/bin/sh", "-c",
                     "probe info | grep -E '^(tty|fds)='; read line; echo got $line; "
                     "tty; stty size"};
        spec.tty = true;
        spec.init = init;
        spec.stdin_fd = in.read.get();
        spec.stdout_fd = out.get();
        auto c = runner::Container::start(spec);
        c.resize(33, 99);
        REQUIRE(::write(in.write.get(), "hello\n", 6) == 6);
        auto st = c.wait();
        CHECK(st.success());
        ::lseek(out.get(), 0, SEEK_SET);
        std::string text(8192, '\0');
        text.resize(static_cast<std::size_t>(::read(out.get(), text.data(), text.size())));
        INFO(text);
        CHECK(contains(text, "tty=1"));
        CHECK(contains(text, "fds=0,1,2\r\n"));
        CHECK(contains(text, "got hello"));
        CHECK(contains(text, "/dev/pts/0"));
        CHECK(contains(text, "33 99"));
    }
}

TEST_CASE("cancelling leaves no process and no mount behind", "[root]") {
    Rootfs root;
    std::string tree_before = dump_tree(root.path);
    for (bool init : {false, true}) {
        INFO("init " << init);
        auto spec = probe_spec(root, {});
        spec.init = init;
        spec.argv = {"/bin/sh", "-c", "sleep 100 & sleep 100 & probe sleep 100"};
        Pipe out = Pipe::create();
        spec.stdout_fd = out.write.get();
        runner::Control control;
        auto c = runner::Container::start(spec);
        out.write.reset();
        pid_t pid = c.pid();
        REQUIRE(read_line(out.read.get()) == "ready");
        std::string ns = pid_ns_of(pid);
        REQUIRE(!ns.empty());
        CHECK(ns != pid_ns_of(::getpid()));
        CHECK(processes_in(ns).size() >= 3);
        std::thread canceller([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            control.cancel();
        });
        CHECK_THROWS_AS(c.wait(&control), runner::Cancelled);
        canceller.join();
        CHECK_FALSE(process_exists(pid));
        CHECK(processes_in(ns).empty());
        CHECK(no_children());
        CHECK(host_mounts_under(root.dir.path()).empty());
    }
    CHECK(dump_tree(root.path) == tree_before);
}

TEST_CASE("a strata killed by SIGKILL takes its container with it", "[root]") {
    Rootfs root;
    Pipe report = Pipe::create();
    int wfd = report.write.get();
    Child strata = Child::fork_fn([&]() -> int {
        auto spec = probe_spec(root, {"sleep", "100"});
        spec.stdout_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
        auto c = runner::Container::start(spec);
        pid_t pid = c.pid();
        if (::write(wfd, &pid, sizeof pid) != sizeof pid) {
            return 1;
        }
        ::pause();
        return 0;
    });
    report.write.reset();
    pid_t pid = 0;
    REQUIRE(::read(report.read.get(), &pid, sizeof pid) == sizeof pid);
    REQUIRE(process_exists(pid));
    std::string ns = pid_ns_of(pid);
    REQUIRE(!ns.empty());
    strata.kill(SIGKILL);
    strata.wait();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!processes_in(ns).empty() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(processes_in(ns).empty());
}

TEST_CASE("a user namespace with an identity map runs the same container", "[root]") {
    Rootfs root;
    auto spec = probe_spec(root, {"info"});
    spec.user_namespace = runner::UserNamespace::always;
    auto o = run_captured(spec);
    INFO(o.out << o.err);
    CHECK(o.status.success());
    CHECK(o.get("pid") == "1");
    CHECK(o.get("uid") == "0");
    CHECK(o.get("CapEff") == "00000000a80425fb");
}

TEST_CASE("without root, the container runs in a user namespace as uid 0", "[userns]") {
    Rootfs root;
    // As nobody, who has no /etc/subuid range: only uid 0 is mapped.
    auto st = as_user(65534, 65534, [&]() -> int {
        {
            auto spec = probe_spec(root, {"info"});
            auto o = run_captured(spec);
            if (!o.status.success())
                return 11;
            if (o.get("uid") != "0")
                return 12;
            if (o.get("pid") != "1")
                return 13;
            if (o.get("hostname") != "box")
                return 14;
            if (o.get("fds") != "0,1,2")
                return 15;
            // The host's network: /sys is then bound from the host, read-only.
            spec.network = runner::Network::host;
            spec.argv = {"/bin/sh", "-c", "ls /sys/class/net | grep -q lo && ! touch /sys/x"};
            if (!run_captured(spec).status.success())
                return 17;
            // A terminal from the container's own devpts.
            spec.network = runner::Network::none;
            spec.tty = true;
            spec.argv = {"/bin/sh", "-c", "tty"};
            auto t = run_captured(spec);
            if (t.out.find("/dev/pts/0") == std::string::npos)
                return 18;
            spec.tty = false;
            spec.user = "user";
            try {
                run_captured(spec);
                return 16;
            } catch (const UsageError&) {
            }
            return 0;
        }
    });
    INFO(st.describe());
    CHECK(st.success());
}

namespace {

// A user of the test suite's own with subordinate id ranges (created when
// missing, as `useradd` does for people: /etc/subuid and /etc/subgid).
struct SubidUser {
    uid_t uid = 0;
    gid_t gid = 0;
    runner::IdRange uids;
    runner::IdRange gids;
};

SubidUser subid_user() {
    const std::string name = "strata-subuid";
    if (!run_capture({"getent", "passwd", name}).status.success()) {
        auto r = run_capture({"useradd", "--no-create-home", "--shell", "/usr/sbin/nologin",
                              "--comment", "strata runner tests", name},
                             true);
        if (!r.status.success() && !run_capture({"getent", "passwd", name}).status.success()) {
            throw Error("useradd " + name + ": " + r.out);
        }
    }
    struct passwd* pw = ::getpwnam(name.c_str());
    REQUIRE(pw != nullptr);
    SubidUser u;
    u.uid = pw->pw_uid;
    u.gid = pw->pw_gid;
    auto ranges = [&](const char* file) {
        return runner::subordinate_ranges(read_file(file), name, u.uid);
    };
    if (ranges("/etc/subuid").empty() || ranges("/etc/subgid").empty()) {
        auto r = run_capture({"usermod", "--add-subuids", "3000000-3065535", "--add-subgids",
                              "3000000-3065535", name},
                             true);
        if (!r.status.success()) {
            throw Error("usermod --add-subuids " + name + ": " + r.out);
        }
    }
    auto su = ranges("/etc/subuid");
    auto sg = ranges("/etc/subgid");
    REQUIRE(!su.empty());
    REQUIRE(!sg.empty());
    REQUIRE(su[0].count >= 65536);
    REQUIRE(sg[0].count >= 65536);
    u.uids = su[0];
    u.gids = sg[0];
    return u;
}

} // namespace

TEST_CASE("without root, /etc/subuid ranges are mapped: files and USER 1000 work", "[subuid]") {
    SubidUser u = subid_user();
    Rootfs root;
    // What a rootless store holds: the image's root-owned files belong to
    // the user, its uid-1000 files to the user's subordinate id 999.
    REQUIRE(
        run_capture({"chown", "-R", std::to_string(u.uid) + ":" + std::to_string(u.gid), root.path})
            .status.success());
    write_file(root.path + "/home/user/owned", "mine\n");
    const uid_t sub1000 = u.uids.start + 999;
    const gid_t subg1000 = u.gids.start + 999;
    REQUIRE(::lchown((root.path + "/home/user/owned").c_str(), sub1000, subg1000) == 0);
    REQUIRE(::lchown((root.path + "/home/user").c_str(), sub1000, subg1000) == 0);

    auto st = as_user(u.uid, u.gid, [&]() -> int {
        {
            auto spec = probe_spec(root, {"info"});
            spec.user = "1000";
            auto o = run_captured(spec);
            std::fprintf(stderr, "-u 1000: %s%s\n", o.out.c_str(), o.err.c_str());
            if (!o.status.success() || o.get("uid") != "1000" || o.get("gid") != "1000" ||
                o.get("groups") != "1000,2000") {
                return 11;
            }
            // The image's files show their owners; uid 1000 owns its home.
            spec.argv = {"/bin/sh", "-c",
                         "stat -c %u:%g /home/user/owned /bin/busybox && "
                         "echo more >> /home/user/owned && touch /home/user/new && "
                         "stat -c %u:%g /home/user/new && ! touch /bin/x"};
            o = run_captured(spec);
            std::fprintf(stderr, "files: %s%s\n", o.out.c_str(), o.err.c_str());
            if (!o.status.success() || o.out != "1000:1000\n0:0\n1000:1000\n") {
                return 12;
            }
            // Container root is the user: setgroups is allowed, the map is podman's.
            spec.user = "";
            spec.argv = {"/bin/sh", "-c", "cat /proc/self/uid_map /proc/self/setgroups; id -G"};
            o = run_captured(spec);
            std::fprintf(stderr, "root: %s%s\n", o.out.c_str(), o.err.c_str());
            if (!o.status.success() || o.out.find("allow") == std::string::npos ||
                o.out.find(" 1 ") == std::string::npos) {
                return 13;
            }
            // An id beyond the ranges is refused, naming the mapped span.
            spec.user = "4000000";
            try {
                run_captured(spec);
                return 14;
            } catch (const UsageError& e) {
                if (std::string(e.what()).find("only uids 0-") == std::string::npos) {
                    return 15;
                }
            }
            return 0;
        }
    });
    INFO(st.describe());
    REQUIRE(st.success());
    // On the host, what uid 1000 created belongs to the subordinate id.
    struct stat sb;
    REQUIRE(::lstat((root.path + "/home/user/new").c_str(), &sb) == 0);
    CHECK(sb.st_uid == sub1000);
    CHECK(sb.st_gid == subg1000);
}

TEST_CASE("mount points the runner creates in the root are removed afterwards", "[root]") {
    Rootfs root;
    for (const char* p :
         {"/proc", "/dev", "/sys", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}) {
        std::filesystem::remove_all(root.path + p);
    }
    std::string before = dump_tree(root.path);
    TempDir host;
    auto spec = probe_spec(root, {});
    spec.mounts = {runner::Mount{runner::Mount::Type::bind, host.path(), "/mnt/a/b", true, ""},
                   runner::Mount{runner::Mount::Type::tmpfs, "", "/mnt/t/u", false, ""}};
    spec.argv = {"/bin/sh", "-c", "cat /etc/hostname; ls /proc/self/fd >/dev/null && ls /mnt/a/b"};
    auto o = run_captured(spec);
    INFO(o.out << o.err);
    CHECK(o.status.success());
    CHECK(contains(o.out, "box\n"));
    CHECK(dump_tree(root.path) == before);

    // What the command wrote next to a created mount point stays.
    std::filesystem::remove_all(root.path + "/etc");
    spec.mounts.clear();
    spec.argv = {"/bin/sh", "-c", "echo kept > /etc/written"};
    o = run_captured(spec);
    CHECK(o.status.success());
    CHECK(read_file(root.path + "/etc/written") == "kept\n");
    CHECK_FALSE(std::filesystem::exists(root.path + "/etc/hosts"));
    CHECK_FALSE(std::filesystem::exists(root.path + "/proc"));

    // Also after a cancelled run and a failed start.
    std::filesystem::remove_all(root.path + "/etc");
    before = dump_tree(root.path);
    spec.argv = {"nosuch"};
    CHECK_THROWS_AS(run_captured(spec), runner::StartError);
    CHECK(dump_tree(root.path) == before);
}

TEST_CASE("run reports the mount points it created and the times their parents had before",
          "[root]") {
    Rootfs root;
    std::filesystem::remove(root.path + "/etc/hosts");
    std::filesystem::remove_all(root.path + "/sys");
    struct timespec old[2] = {{1000, 0}, {2000, 0}};
    REQUIRE(::utimensat(AT_FDCWD, (root.path + "/etc").c_str(), old, 0) == 0);
    TempDir host;
    auto spec = probe_spec(root, {});
    spec.mounts = {runner::Mount{runner::Mount::Type::bind, host.path(), "/etc/x/y", true, ""}};
    spec.argv = {"/bin/sh", "-c", "true"};
    runner::CreatedMountPoints created;
    CHECK(runner::run(spec, nullptr, &created).success());

    auto at = [&](const std::string& p) {
        return std::find(created.paths.begin(), created.paths.end(), p) - created.paths.begin();
    };
    auto n = static_cast<std::ptrdiff_t>(created.paths.size());
    CHECK(at("/sys") < n);
    CHECK(at("/etc/hosts") < n);
    CHECK(at("/etc/x") < at("/etc/x/y")); // outermost first
    CHECK(at("/etc/x/y") < n);
    // /etc once, as it was before anything was made in it; "/" and what
    // the runner made are no parents.
    int etc = 0;
    for (const auto& [path, st] : created.parents) {
        CHECK(path != "/");
        CHECK(at(path) == n);
        if (path == "/etc") {
            ++etc;
            CHECK(st.st_mtim.tv_sec == 2000);
            CHECK(st.st_atim.tv_sec == 1000);
        }
    }
    CHECK(etc == 1);
    CHECK_FALSE(std::filesystem::exists(root.path + "/etc/x")); // removed again
}

TEST_CASE("SIGTERM to strata stops the whole container through SignalRouting", "[root]") {
    Rootfs root;
    runner::Control control;
    runner::SignalRouting routing(control);
    auto spec = probe_spec(root, {});
    spec.init = true;
    spec.argv = {"/bin/sh", "-c", "sleep 100 & probe sleep 100"};
    Pipe out = Pipe::create();
    spec.stdout_fd = out.write.get();
    auto c = runner::Container::start(spec);
    out.write.reset();
    REQUIRE(read_line(out.read.get()) == "ready");
    std::string ns = pid_ns_of(c.pid());
    std::thread killer([] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        ::kill(::getpid(), SIGTERM);
    });
    CHECK_THROWS_AS(c.wait(&control), runner::Cancelled);
    killer.join();
    CHECK(runner::SignalRouting::last_signal() == SIGTERM);
    CHECK(processes_in(ns).empty());
    CHECK(no_children());
    CHECK(host_mounts_under(root.dir.path()).empty());
}

TEST_CASE("an /etc/hosts that is a symlink to a host file leaves the host file alone", "[root]") {
    Rootfs root;
    TempDir host;
    write_file(host.path() + "/secret", "host secret\n");
    std::filesystem::remove(root.path + "/etc/hosts");
    std::filesystem::create_symlink(host.path() + "/secret", root.path + "/etc/hosts");
    auto spec = probe_spec(root, {});
    spec.argv = {"/bin/sh", "-c", "cat /etc/hosts; echo overwritten > /etc/hosts"};
    auto o = run_captured(spec);
    INFO(o.out << o.err);
    CHECK(o.status.success());
    CHECK(contains(o.out, "127.0.0.1\tlocalhost"));
    CHECK(read_file(host.path() + "/secret") == "host secret\n");
    CHECK(std::filesystem::is_symlink(root.path + "/etc/hosts"));
}

TEST_CASE("stdin is /dev/null unless given, and passes through when given", "[root]") {
    Rootfs root;
    auto spec = probe_spec(root, {});
    spec.argv = {"/bin/sh", "-c", "cat; echo end"};
    auto o = run_captured(spec);
    CHECK(o.out == "end\n");
    Pipe in = Pipe::create();
    REQUIRE(::write(in.write.get(), "piped\n", 6) == 6);
    in.write.reset();
    spec.stdin_fd = in.read.get();
    o = run_captured(spec);
    CHECK(o.out == "piped\nend\n");
    CHECK(o.err.empty());
}

TEST_CASE("extra hosts and a default random hostname", "[root]") {
    Rootfs root;
    auto spec = probe_spec(root, {});
    spec.hostname.clear();
    spec.extra_hosts = {{"db.local", "10.1.2.3"}};
    spec.argv = {"/bin/sh", "-c", "hostname; cat /etc/hosts"};
    auto o = run_captured(spec);
    INFO(o.out << o.err);
    std::string name = o.out.substr(0, o.out.find('\n'));
    CHECK(name.size() == 12);
    CHECK(name.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(contains(o.out, "10.1.2.3\tdb.local\n"));
    CHECK(contains(o.out, "127.0.0.1\t" + name + "\n"));
}

TEST_CASE("UserNamespace::joined needs enter_user_namespace first") {
    REQUIRE(runner::joined_user_namespace() == nullptr);
    Rootfs root;
    auto spec = probe_spec(root, {"info"});
    spec.user_namespace = runner::UserNamespace::joined;
    CHECK_THROWS_AS(runner::run(spec), UsageError);
}

TEST_CASE("a user without subordinate ids that joined a user namespace runs containers as root "
          "there",
          "[userns]") {
    Rootfs root;
    REQUIRE(run_capture({"chown", "-R", "65534:65534", root.path}).status.success());
    auto st = as_user(65534, 65534, [&]() -> int {
        // (nobody has no /etc/subuid range; a user running the suite may.)
        runner::RootlessIdMap m = runner::rootless_id_map();
        runner::enter_user_namespace(m);
        if (::geteuid() != 0 || runner::joined_user_namespace() == nullptr) {
            return 10;
        }
        auto spec = probe_spec(root, {"info"});
        spec.user_namespace = runner::UserNamespace::joined;
        auto o = run_captured(spec);
        std::fprintf(stderr, "joined: %s%s\n", o.out.c_str(), o.err.c_str());
        if (!o.status.success() || o.get("uid") != "0" || o.get("pid") != "1") {
            return 11;
        }
        // Only 0 is mapped: another user is refused before anything starts.
        spec.user = "1000";
        try {
            run_captured(spec);
            if (!m.full()) {
                return 12;
            }
        } catch (const UsageError& e) {
            if (std::string(e.what()).find("only uids 0-0") == std::string::npos) {
                return 13;
            }
        }
        // A second namespace is refused.
        try {
            runner::enter_user_namespace(m);
            return 14;
        } catch (const Error&) {
        }
        return 0;
    });
    INFO(st.describe());
    CHECK(st.success());
}

TEST_CASE("a user with /etc/subuid ranges that joined a user namespace has them mapped",
          "[subuid]") {
    SubidUser u = subid_user();
    Rootfs root;
    REQUIRE(
        run_capture({"chown", "-R", std::to_string(u.uid) + ":" + std::to_string(u.gid), root.path})
            .status.success());
    write_file(root.path + "/home/user/owned", "mine\n");
    REQUIRE(::lchown((root.path + "/home/user/owned").c_str(), u.uid, u.gid) == 0);
    REQUIRE(::lchown((root.path + "/home/user").c_str(), u.uids.start + 999, u.gids.start + 999) ==
            0);
    auto st = as_user(u.uid, u.gid, [&]() -> int {
        runner::RootlessIdMap m = runner::rootless_id_map();
        if (!m.full()) {
            return 9;
        }
        runner::enter_user_namespace(m);
        // This process is root of the namespace: chown to a mapped id works.
        if (::geteuid() != 0 ||
            ::lchown((root.path + "/home/user/owned").c_str(), 1000, 1000) != 0) {
            std::fprintf(stderr, "euid %d, lchown: %s\n", static_cast<int>(::geteuid()),
                         std::strerror(errno));
            return 10;
        }
        auto spec = probe_spec(root, {"info"});
        spec.user_namespace = runner::UserNamespace::joined;
        spec.user = "1000";
        auto o = run_captured(spec);
        std::fprintf(stderr, "joined -u 1000: %s%s\n", o.out.c_str(), o.err.c_str());
        if (!o.status.success() || o.get("uid") != "1000" || o.get("groups") != "1000,2000") {
            return 11;
        }
        spec.user = "";
        spec.argv = {"/bin/sh", "-c", "stat -c %u:%g /home/user/owned /bin/busybox; id -u"};
        o = run_captured(spec);
        std::fprintf(stderr, "joined: %s%s\n", o.out.c_str(), o.err.c_str());
        if (!o.status.success() || o.out != "1000:1000\n0:0\n0\n") {
            return 12;
        }
        return 0;
    });
    INFO(st.describe());
    REQUIRE(st.success());
    struct stat sb;
    REQUIRE(::lstat((root.path + "/home/user/owned").c_str(), &sb) == 0);
    CHECK(sb.st_uid == u.uids.start + 999);
}
