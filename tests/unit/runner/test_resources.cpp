// Resource limits (runner/resources.hpp, runner/cgroup.hpp): Docker's checks
// and warnings, runc's v2 conversions, and, as root, real cgroups: limits
// written and read back, a child in the cgroup frozen and thawed, its stats,
// an OOM kill counted, a fork beyond pids.max refused.
#include "fixture.hpp"
#include "runner/cgroup.hpp"
#include "runner/resources.hpp"
#include "runner/runner.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace strata;

namespace {

runner::HostSupport everything() {
    runner::HostSupport h;
    h.memory = h.swap = h.memory_reservation = h.oom_kill_disable = true;
    h.pids = h.cpu_shares = h.cpu_cfs = h.cpuset = h.blkio_weight = true;
    h.cpus = "0-3";
    h.mems = "0";
    h.ncpu = 4;
    return h;
}

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
        s.pop_back();
    }
    return s;
}

std::string unique_id(const char* what) {
    return std::string("test-") + what + "-" + std::to_string(::getpid()) + "-" +
           std::to_string(::time(nullptr));
}

// A child that joins cg and runs body; killed and reaped by the destructor.
struct InCgroup {
    pid_t pid = -1;
    InCgroup(const runner::Cgroup& cg, void (*body)()) {
        int ready[2];
        REQUIRE(::pipe(ready) == 0);
        pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            for (int fd : cg.procs_fds()) {
                if (::write(fd, "0", 1) != 1) {
                    _exit(200);
                }
            }
            ::close(ready[0]);
            ::close(ready[1]); // joined
            body();
            _exit(0);
        }
        ::close(ready[1]);
        char c;
        (void)::read(ready[0], &c, 1);
        ::close(ready[0]);
    }
    int wait() {
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        pid = -1;
        return status;
    }
    ~InCgroup() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    }
};

bool v1_host() {
    return runner::cgroup_version() != runner::CgroupVersion::v2;
}

} // namespace

TEST_CASE("Docker's checks: minimums, swap's default, ranges, with Docker's messages",
          "[resources]") {
    auto host = everything();
    runner::Resources r;
    r.memory = 1 << 20;
    CHECK_THROWS_WITH(runner::verify_resources(r, host), "Minimum memory limit allowed is 6MB");

    r = {};
    r.memory = 32 << 20;
    CHECK(runner::verify_resources(r, host).empty());
    CHECK(r.memory_swap == 64 << 20); // docker: twice the memory by default

    r = {};
    r.memory = 32 << 20;
    r.memory_swap = 16 << 20;
    CHECK_THROWS_WITH(runner::verify_resources(r, host),
                      "Minimum memoryswap limit should be larger than memory limit, see usage");
    r = {};
    r.memory_swap = 16 << 20;
    CHECK_THROWS_WITH(
        runner::verify_resources(r, host),
        "You should always set the Memory limit when using Memoryswap limit, see usage");
    r = {};
    r.memory = 32 << 20;
    r.memory_reservation = 64 << 20;
    CHECK_THROWS_WITH(
        runner::verify_resources(r, host),
        "Minimum memory limit can not be less than memory reservation limit, see usage");
    r = {};
    r.memory_reservation = 1024;
    CHECK_THROWS_WITH(runner::verify_resources(r, host),
                      "Minimum memory reservation allowed is 6MB");
    r = {};
    r.nano_cpus = 5'000'000'000;
    CHECK_THROWS_WITH(runner::verify_resources(r, host),
                      "Range of CPUs is from 0.01 to 4.00, as there are only 4 CPUs available");
    r = {};
    r.blkio_weight = 5;
    CHECK_THROWS_WITH(runner::verify_resources(r, host),
                      "Range of blkio weight is from 10 to 1000");
    r = {};
    r.cpuset_cpus = "2-7";
    CHECK_THROWS_WITH(runner::verify_resources(r, host),
                      "Requested CPUs are not available - requested 2-7, available: 0-3");
    r = {};
    r.cpuset_cpus = "1-x";
    CHECK_THROWS_WITH(runner::verify_resources(r, host),
                      "Invalid value 1-x for cpuset cpus: invalid format: 1-x");
    r = {};
    r.cpuset_mems = "1";
    CHECK_THROWS_WITH(runner::verify_resources(r, host),
                      "Requested memory nodes are not available - requested 1, available: 0");
    r = {};
    r.cpu_shares = 1;
    runner::verify_resources(r, host);
    CHECK(r.cpu_shares == 2); // clamped to the kernel's minimum, as moby
}

TEST_CASE("what the host cannot do is dropped with Docker's warning", "[resources]") {
    runner::HostSupport host = everything();
    host.swap = false;
    host.blkio_weight = false;
    host.oom_kill_disable = false;
    runner::Resources r;
    r.memory = 32 << 20;
    r.blkio_weight = 500;
    r.oom_kill_disable = true;
    auto w = runner::verify_resources(r, host);
    REQUIRE(w.size() == 3);
    CHECK(w[0] == "Your kernel does not support swap limit capabilities or the cgroup is not "
                  "mounted. Memory limited without swap.");
    CHECK(w[1] == "Your kernel does not support OomKillDisable. OomKillDisable discarded.");
    CHECK(w[2] == "Your kernel does not support Block I/O weight or the cgroup is not mounted. "
                  "Weight discarded.");
    CHECK(r.memory == 32 << 20);
    CHECK(r.memory_swap == -1);
    CHECK(r.blkio_weight == 0);
    CHECK_FALSE(r.oom_kill_disable);

    r = {};
    r.oom_kill_disable = true;
    w = runner::verify_resources(r, everything());
    REQUIRE(w.size() == 1);
    CHECK(w[0] == "OOM killer is disabled for the container, but no memory limit is set, this "
                  "can result in the system running out of resources.");
}

TEST_CASE("cpu lists and runc's cgroup v2 conversions", "[resources]") {
    CHECK(runner::parse_cpu_list("0-2,4") == std::vector<int>{0, 1, 2, 4});
    CHECK(runner::parse_cpu_list("3,1,1") == std::vector<int>{1, 3});
    CHECK_THROWS_AS(runner::parse_cpu_list("2-1"), UsageError);
    CHECK_THROWS_AS(runner::parse_cpu_list("1,"), UsageError);
    CHECK_THROWS_AS(runner::parse_cpu_list("a"), UsageError);
    CHECK(runner::cpu_shares_to_weight(0) == 0);
    CHECK(runner::cpu_shares_to_weight(2) == 1);
    CHECK(runner::cpu_shares_to_weight(1024) == 39);
    CHECK(runner::cpu_shares_to_weight(262144) == 10000);
    CHECK(runner::blkio_weight_to_io_weight(10) == 1);
    CHECK(runner::blkio_weight_to_io_weight(500) == 4950);
    CHECK(runner::blkio_weight_to_io_weight(1000) == 10000);
}

TEST_CASE("the host's cpu time and memory", "[resources]") {
    std::uint64_t a = runner::system_cpu_usage_ns();
    CHECK(a > 0);
    CHECK(runner::host_memory_bytes() > (64ULL << 20));
    auto io = runner::read_net_io(::getpid());
    (void)io; // lo is left out; a host without other interfaces reads 0
    CHECK_THROWS_WITH(runner::read_net_io(999999999), Catch::Contains("/proc/999999999/net/dev"));
}

TEST_CASE("v1 limits are written where docker writes them and read back", "[root]") {
    if (!v1_host()) {
        WARN("cgroup v2 host: the v1 case does not apply");
        return;
    }
    auto host = runner::host_support();
    runner::Resources r;
    r.memory = 32 << 20;
    r.memory_reservation = 16 << 20;
    r.nano_cpus = 1'500'000'000;
    r.cpu_shares = 512;
    r.pids_limit = 20;
    r.cpuset_cpus = "0";
    auto warnings = runner::verify_resources(r, host);
    std::string name = unique_id("limits");
    {
        auto opt = runner::container_controllers();
        opt.erase(opt.begin());
        auto cg = runner::Cgroup::create("strata", name, {"devices"}, opt);
        cg.apply(r);
        auto p = runner::cgroup_paths(name); // as another process finds it
        REQUIRE_FALSE(p.empty());
        CHECK(p.dir_of("memory") == cg.where().dir_of("memory"));
        std::string mem = p.dir_of("memory");
        REQUIRE_FALSE(mem.empty());
        CHECK(trim(fs::read_file(mem + "/memory.limit_in_bytes")) == std::to_string(32 << 20));
        CHECK(trim(fs::read_file(mem + "/memory.soft_limit_in_bytes")) == std::to_string(16 << 20));
        if (host.swap) {
            CHECK(trim(fs::read_file(mem + "/memory.memsw.limit_in_bytes")) ==
                  std::to_string(64 << 20));
        }
        std::string cpu = p.dir_of("cpu");
        CHECK(trim(fs::read_file(cpu + "/cpu.cfs_quota_us")) == "150000");
        CHECK(trim(fs::read_file(cpu + "/cpu.cfs_period_us")) == "100000");
        CHECK(trim(fs::read_file(cpu + "/cpu.shares")) == "512");
        CHECK(trim(fs::read_file(p.dir_of("pids") + "/pids.max")) == "20");
        CHECK(trim(fs::read_file(p.dir_of("cpuset") + "/cpuset.cpus")) == "0");
        CHECK_FALSE(trim(fs::read_file(p.dir_of("cpuset") + "/cpuset.mems")).empty());

        // A child in it: its stats, and the freezer.
        InCgroup child(cg, [] {
            volatile unsigned long n = 0;
            for (;;) {
                n = n + 1;
            }
        });
        auto of = runner::cgroup_paths_of(child.pid);
        CHECK(of.dir_of("memory") == mem);
        CHECK(of.dir_of("freezer") == p.dir_of("freezer"));
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        auto s1 = runner::read_cgroup_stats(p);
        CHECK(s1.pids_current == 1);
        CHECK(s1.memory_limit == static_cast<std::uint64_t>(32 << 20));
        CHECK(s1.cpu_usage_ns > 0);

        runner::freeze(p);
        CHECK(runner::frozen(p));
        CHECK(trim(fs::read_file(p.dir_of("freezer") + "/freezer.state")) == "FROZEN");
        auto f1 = runner::read_cgroup_stats(p).cpu_usage_ns;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        auto f2 = runner::read_cgroup_stats(p).cpu_usage_ns;
        CHECK(f2 - f1 < 5'000'000); // frozen: (almost) no cpu time
        runner::thaw(p);
        CHECK_FALSE(runner::frozen(p));
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        auto f3 = runner::read_cgroup_stats(p).cpu_usage_ns;
        CHECK(f3 - f2 > 50'000'000); // running again
        CHECK_FALSE(cg.oom_killed());
    }
    CHECK(runner::cgroup_paths(name).empty()); // removed with the Cgroup
}

TEST_CASE("a hog over the memory limit is OOM-killed and counted", "[root]") {
    runner::Resources r;
    r.memory = 16 << 20;
    r.memory_swap = 16 << 20; // no swap to escape to
    auto host = runner::host_support();
    runner::verify_resources(r, host);
    auto opt = runner::container_controllers();
    opt.erase(opt.begin());
    auto cg = runner::Cgroup::create("strata", unique_id("oom"), {"devices"}, opt);
    cg.apply(r);
    InCgroup hog(cg, [] {
        for (int i = 0; i < 256; ++i) {
            void* p = ::mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                             -1, 0);
            if (p == MAP_FAILED) {
                _exit(3);
            }
            std::memset(p, 1, 1 << 20);
        }
        _exit(0);
    });
    int status = hog.wait();
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    CHECK(cg.oom_killed());
}

TEST_CASE("a fork beyond pids.max fails with EAGAIN and the process lives on", "[root]") {
    runner::Resources r;
    r.pids_limit = 5;
    auto opt = runner::container_controllers();
    opt.erase(opt.begin());
    auto cg = runner::Cgroup::create("strata", unique_id("pids"), {"devices"}, opt);
    cg.apply(r);
    InCgroup parent(cg, [] {
        int forked = 0;
        int err = 0;
        for (int i = 0; i < 10; ++i) {
            pid_t c = ::fork();
            if (c == 0) {
                ::pause();
                _exit(0);
            }
            if (c < 0) {
                err = errno;
                break;
            }
            ++forked;
        }
        // 1 (this one) + 4 children = pids.max 5; the fifth fork fails.
        _exit(forked == 4 && err == EAGAIN ? 42 : 100 + forked);
    });
    int status = parent.wait();
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 42);
    // The children stay (paused) until the group is killed.
    auto p = cg.where();
    for (const auto& [c, d] : p.dirs) {
        if (c.find("pids") != std::string::npos) {
            std::string procs = fs::read_file(d + "/cgroup.procs");
            std::size_t n = 0;
            for (std::size_t at = 0; (at = procs.find('\n', at)) != std::string::npos; ++at) {
                ++n;
            }
            CHECK(n == 4);
            for (std::size_t at = 0; at < procs.size();) {
                auto nl = procs.find('\n', at);
                ::kill(std::stoi(procs.substr(at, nl - at)), SIGKILL);
                at = nl + 1;
            }
        }
    }
}

TEST_CASE("the v2 freezer of a cgroup2 tree stops and resumes a child", "[root]") {
    std::string root = runner::cgroup_version() == runner::CgroupVersion::v2
                           ? "/sys/fs/cgroup"
                           : "/sys/fs/cgroup/unified";
    struct statfs sf {};
    if (::statfs(root.c_str(), &sf) != 0 || sf.f_type != CGROUP2_SUPER_MAGIC) {
        WARN("no cgroup2 tree on this host");
        return;
    }
    auto cg = runner::Cgroup::create_at(runner::CgroupVersion::v2, root, "strata-test",
                                        unique_id("freeze2"), {});
    InCgroup child(cg, [] {
        for (;;) {
            ::usleep(1000);
        }
    });
    auto p = cg.where();
    runner::freeze(p);
    CHECK(runner::frozen(p));
    CHECK(fs::read_file(p.dirs.at(0).second + "/cgroup.events").find("frozen 1") !=
          std::string::npos);
    runner::thaw(p);
    CHECK_FALSE(runner::frozen(p));
}

TEST_CASE("a limit the kernel refuses is an error naming its file", "[root]") {
    if (!v1_host()) {
        WARN("cgroup v2 host: the v1 case does not apply");
        return;
    }
    if (!runner::host_support().swap) {
        WARN("no swap accounting: memory.memsw.limit_in_bytes cannot be refused here");
        return;
    }
    runner::Resources r; // not verified: memory+swap below memory
    r.memory = 32 << 20;
    r.memory_swap = 16 << 20;
    auto cg = runner::Cgroup::create("strata", unique_id("refused"), {"devices"}, {"memory"});
    CHECK_THROWS_WITH(cg.apply(r), Catch::Contains("memory.memsw.limit_in_bytes"));
}

TEST_CASE("a named container's cgroup is found from its name; an OOM kill is told", "[root]") {
    test::Rootfs root;
    std::string name = unique_id("named");
    runner::RunSpec spec = test::probe_spec(root, {});
    spec.argv = {"/bin/busybox", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"};
    spec.cgroup_name = name;
    spec.resources.memory = 32 << 20;
    spec.stderr_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    auto c = runner::Container::start(spec);
    auto p = runner::cgroup_paths(name);
    REQUIRE_FALSE(p.empty());
    ExitStatus st = c.wait();
    ::close(spec.stderr_fd);
    CHECK(st.shell_code() == 137);
    CHECK(c.oom_killed());
    CHECK(runner::cgroup_paths(name).empty()); // gone with the container

    spec = test::probe_spec(root, {});
    spec.argv = {"/bin/busybox", "true"};
    spec.cgroup_name = name; // the same name again: a fresh cgroup
    spec.resources.memory = 32 << 20;
    auto again = runner::Container::start(spec);
    CHECK(again.wait().shell_code() == 0);
    CHECK_FALSE(again.oom_killed());
}

TEST_CASE("limits Docker refuses stop the container before it starts", "[root]") {
    test::Rootfs root;
    runner::RunSpec spec = test::probe_spec(root, {});
    spec.argv = {"/bin/busybox", "true"};
    spec.resources.memory = 1 << 20;
    try {
        runner::run(spec);
        FAIL("a 1 MiB memory limit must be refused");
    } catch (const runner::StartError& e) {
        CHECK(e.exit_code() == 125);
        CHECK(std::string(e.what()).find("Minimum memory limit allowed is 6MB") !=
              std::string::npos);
    }
}
