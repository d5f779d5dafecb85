// runner::exec into a running container: the same namespaces, cgroups and
// confinement as the container's own process. [root]: each case starts a
// container with Container::start and execs into its PID 1.
#include "fixture.hpp"
#include "runner/exec.hpp"
#include "runner/runner.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <pty.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

using namespace strata;
using namespace strata::test;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

std::string read_memfd(int fd) {
    ::lseek(fd, 0, SEEK_SET);
    return fs::read_fd(fd);
}

// A container running `probe sleep 60`, started and ready.
struct Running {
    Rootfs root;
    Pipe out = Pipe::create();
    runner::Security security;
    runner::Container c;

    explicit Running(runner::Security sec = {}, std::vector<runner::Rlimit> rlimits = {},
                     bool userns = false)
        : security(std::move(sec)), c(start(root, out, security, std::move(rlimits), userns)) {
        char buf[6] = {};
        REQUIRE(fs::read_full(out.read.get(), buf, 5) == 5);
        REQUIRE(std::string(buf) == "ready");
    }
    ~Running() {
        c.kill(SIGKILL);
        c.wait();
    }

    static runner::Container start(const Rootfs& root, Pipe& out, const runner::Security& sec,
                                   std::vector<runner::Rlimit> rlimits, bool userns = false) {
        auto spec = probe_spec(root, {"sleep", "60"});
        if (userns) {
            spec.user_namespace = runner::UserNamespace::always;
        }
        spec.stdout_fd = out.write.get();
        spec.security = sec;
        spec.rlimits = std::move(rlimits);
        spec.env = {"FROM_IMAGE=1"};
        return runner::Container::start(spec);
    }

    runner::ExecSpec spec(std::vector<std::string> argv) const {
        runner::ExecSpec s;
        s.pid = c.pid();
        s.argv = std::move(argv);
        s.security = security;
        return s;
    }
};

Output exec_captured(runner::ExecSpec spec) {
    UniqueFd out(::memfd_create("exec-out", MFD_CLOEXEC));
    UniqueFd err(::memfd_create("exec-err", MFD_CLOEXEC));
    if (spec.stdout_fd < 0) {
        spec.stdout_fd = out.get();
    }
    if (spec.stderr_fd < 0) {
        spec.stderr_fd = err.get();
    }
    Output o;
    o.status = runner::exec(spec);
    o.out = read_memfd(out.get());
    o.err = read_memfd(err.get());
    return o;
}

std::string host_file(pid_t pid, const std::string& what) {
    return fs::read_file("/proc/" + std::to_string(pid) + "/" + what);
}

} // namespace

TEST_CASE("exec runs in the container's namespaces with its confinement", "[root]") {
    Running r;
    auto o = exec_captured(r.spec({"/bin/probe", "info"}));
    INFO(o.out << o.err);
    CHECK(o.status.success());
    // A member of the container's PID namespace (not PID 1), its parent
    // outside it (strata), as `docker exec`.
    CHECK(o.get("pid") != "1");
    CHECK(o.get("ppid") == "0");
    CHECK(o.get("hostname") == "box");
    CHECK(o.get("cwd") == "/");
    CHECK(o.get("uid") == "0");
    CHECK(o.get("CapEff") == "00000000a80425fb");
    CHECK(o.get("CapBnd") == "00000000a80425fb");
    CHECK(o.get("CapAmb") == "0000000000000000");
    CHECK(o.get("NoNewPrivs") == "1");
    CHECK(o.get("Seccomp") == "2");
    CHECK(o.get("fds") == "0,1,2");
    // Only the container's mounts: never the host's mount namespace.
    for (const auto& m : o.all("mount")) {
        std::string mp = m.substr(0, m.find(' '));
        bool ok = mp == "/" || mp.rfind("/proc", 0) == 0 || mp.rfind("/dev", 0) == 0 ||
                  mp.rfind("/sys", 0) == 0 || mp.rfind("/etc/", 0) == 0;
        INFO("mount " << m);
        CHECK(ok);
    }
    // Its /proc is the container's: PID 1 is the container's command.
    o = exec_captured(r.spec({"/bin/sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"}));
    CHECK(o.out == "/bin/probe sleep 60 ");
}

TEST_CASE("exec joins the container's cgroups and keeps its limits", "[root]") {
    runner::Rlimit nofile{RLIMIT_NOFILE, 200, 300};
    Running r({}, {nofile});
    auto spec = r.spec({"/bin/sh", "-c", "cat /proc/self/cgroup; ulimit -n; ulimit -Hn"});
    auto o = exec_captured(spec);
    INFO(o.out << o.err);
    CHECK(o.status.success());
    CHECK(contains(o.out, "200\n300\n"));
    // From the host: the exec'd process's cgroups are PID 1's.
    Pipe out = Pipe::create();
    spec = r.spec({"/bin/probe", "sleep", "30"});
    spec.stdout_fd = out.write.get();
    runner::Exec e = runner::Exec::start(spec);
    char buf[6] = {};
    REQUIRE(fs::read_full(out.read.get(), buf, 5) == 5);
    CHECK(host_file(e.pid(), "cgroup") == host_file(r.c.pid(), "cgroup"));
    for (const char* ns : {"mnt", "pid", "uts", "ipc", "net", "cgroup"}) {
        auto a = std::filesystem::read_symlink("/proc/" + std::to_string(e.pid()) + "/ns/" + ns);
        auto b = std::filesystem::read_symlink("/proc/" + std::to_string(r.c.pid()) + "/ns/" + ns);
        INFO(ns);
        CHECK(a == b);
    }
    auto members = runner::pid_namespace_members(r.c.pid());
    CHECK(std::find(members.begin(), members.end(), e.pid()) != members.end());
    CHECK(std::find(members.begin(), members.end(), r.c.pid()) != members.end());
    CHECK(std::find(members.begin(), members.end(), ::getpid()) == members.end());
    e.kill(SIGTERM);
    auto st = e.wait();
    CHECK(st.signaled());
    CHECK(st.signal() == SIGTERM);
}

TEST_CASE("exec has the container's capabilities, never more", "[root]") {
    runner::Security sec;
    sec.cap_drop = {"CHOWN", "NET_RAW"};
    Running r(sec);
    auto o = exec_captured(r.spec({"/bin/probe", "info"}));
    INFO(o.out << o.err);
    CHECK(o.get("CapBnd") == "00000000a80405fa");
    CHECK(o.get("CapEff") == "00000000a80405fa");
    // The seccomp filter is the container's: unshare and keyctl are refused.
    o = exec_captured(r.spec({"/bin/sh", "-c", "unshare -U true; echo rc=$?"}));
    CHECK(contains(o.out, "rc=1"));
    // --privileged gives every capability, the seccomp filter stays.
    auto spec = r.spec({"/bin/probe", "info"});
    spec.privileged = true;
    o = exec_captured(spec);
    CHECK(o.get("CapEff") != "00000000a80405fa");
    CHECK(o.get("Seccomp") == "2");
}

TEST_CASE("exec resolves the user in the container, with env and working directory", "[root]") {
    Running r;
    auto spec = r.spec({"/bin/probe", "info"});
    spec.user = "user";
    spec.cwd = "/tmp";
    auto o = exec_captured(spec);
    INFO(o.out << o.err);
    CHECK(o.get("uid") == "1000");
    CHECK(o.get("gid") == "1000");
    CHECK(o.get("groups") == "1000,2000");
    CHECK(o.get("CapEff") == "0000000000000000");
    CHECK(o.get("cwd") == "/tmp");
    spec.user = "ghost";
    CHECK_THROWS_WITH(exec_captured(spec), Catch::Contains("unable to find user ghost"));

    spec = r.spec({"/bin/sh", "-c", "env | sort"});
    spec.env = {"FROM_IMAGE=1", "A=b", "FROM_IMAGE=2"};
    spec.hostname = "box";
    o = exec_captured(spec);
    CHECK(contains(o.out, "A=b\n"));
    CHECK(contains(o.out, "FROM_IMAGE=2\n"));
    CHECK_FALSE(contains(o.out, "FROM_IMAGE=1\n"));
    CHECK(contains(o.out, "HOME=/root\n"));
    CHECK(contains(o.out, "HOSTNAME=box\n"));
    CHECK(contains(o.out, "PATH=/usr/local/sbin:"));
}

TEST_CASE("exec's exit status is exact; 126/127 when the command cannot run", "[root]") {
    Running r;
    CHECK(exec_captured(r.spec({"/bin/probe", "exit", "7"})).status.code() == 7);
    auto st = exec_captured(r.spec({"/bin/probe", "kill", "9"})).status;
    CHECK(st.signaled());
    CHECK(st.signal() == 9);
    try {
        exec_captured(r.spec({"nosuchcommand"}));
        FAIL("no error");
    } catch (const runner::StartError& e) {
        CHECK(e.exit_code() == 127);
        CHECK(contains(e.what(), "executable file not found in $PATH"));
    }
    try {
        exec_captured(r.spec({"/etc/passwd"}));
        FAIL("no error");
    } catch (const runner::StartError& e) {
        CHECK(e.exit_code() == 126);
        CHECK(contains(e.what(), "permission denied"));
    }
    auto spec = r.spec({"/bin/true"});
    spec.cwd = "/no/such/dir";
    try {
        exec_captured(spec);
        FAIL("no error");
    } catch (const runner::StartError& e) {
        CHECK(e.exit_code() == 126);
        CHECK(contains(e.what(), "/no/such/dir"));
    }
    // A process that is gone is not a container.
    spec = r.spec({"/bin/true"});
    r.c.kill(SIGKILL);
    r.c.wait();
    CHECK_THROWS_WITH(exec_captured(spec), Catch::Contains("not running"));
    r.c = Running::start(r.root, r.out, r.security, {});
}

TEST_CASE("exec joins a container's own user namespace", "[root]") {
    Running r({}, {}, true);
    auto o = exec_captured(r.spec({"/bin/probe", "info"}));
    INFO(o.out << o.err);
    CHECK(o.status.success());
    CHECK(o.get("uid") == "0");
    CHECK(o.get("CapEff") == "00000000a80425fb");
    Pipe out = Pipe::create();
    auto spec = r.spec({"/bin/probe", "sleep", "30"});
    spec.stdout_fd = out.write.get();
    runner::Exec e = runner::Exec::start(spec);
    char buf[6] = {};
    REQUIRE(fs::read_full(out.read.get(), buf, 5) == 5);
    auto a = std::filesystem::read_symlink("/proc/" + std::to_string(e.pid()) + "/ns/user");
    auto b = std::filesystem::read_symlink("/proc/" + std::to_string(r.c.pid()) + "/ns/user");
    auto self = std::filesystem::read_symlink("/proc/self/ns/user");
    CHECK(a == b);
    CHECK(a != self);
}

TEST_CASE("no fd of strata reaches an exec'd process", "[root]") {
    Running r;
    UniqueFd leak1(::open("/dev/null", O_RDONLY));
    UniqueFd leak2(::dup(leak1.get()));
    REQUIRE(leak2.get() > 2);
    auto o = exec_captured(r.spec({"/bin/probe", "fds"}));
    CHECK(o.get("fds") == "0,1,2");
}

TEST_CASE("a detached exec is adopted by the container's PID 1", "[root]") {
    Running r;
    auto spec = r.spec({"/bin/sh", "-c", "echo $PPID > /tmp/ppid; sleep 1"});
    spec.detach = true;
    auto start = std::chrono::steady_clock::now();
    CHECK(runner::exec(spec).success());
    // It returned without waiting for the command.
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(900));
    std::string ppid;
    for (int i = 0; i < 100 && ppid.empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (fs::exists(r.root.path + "/tmp/ppid")) {
            ppid = fs::read_file(r.root.path + "/tmp/ppid");
        }
    }
    CHECK(ppid == "1\n");
    auto missing = r.spec({"nosuchcommand"});
    missing.detach = true;
    CHECK_THROWS_AS(runner::exec(missing), runner::StartError);
}

TEST_CASE("exec with a tty gets a terminal from the container's devpts", "[root]") {
    Running r;
    int master = -1, slave = -1;
    REQUIRE(::openpty(&master, &slave, nullptr, nullptr, nullptr) == 0);
    UniqueFd m(master), s(slave);
    UniqueFd out(::memfd_create("exec-out", MFD_CLOEXEC));
    auto spec = r.spec({"/bin/sh", "-c", "tty; echo tty=$TERM; /bin/probe info"});
    spec.tty = true;
    spec.stdout_fd = out.get();
    auto st = runner::exec(spec);
    CHECK(st.success());
    std::string text = read_memfd(out.get());
    INFO(text);
    CHECK(contains(text, "/dev/pts/0"));
    CHECK(contains(text, "tty=xterm"));
    CHECK(contains(text, "tty=1"));
}
