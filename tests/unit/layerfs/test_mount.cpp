// Mount records, unmount reliability, and strata-overlay as a mount helper.
#include "layerfs/mount.hpp"
#include "layerfs/overlay.hpp"
#include "tests/support/support.hpp"
#include "tests/unit/layerfs/stack.hpp"
#include "util/child.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/sys/mount.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <thread>

using namespace strata;
using layerfs::Driver;

namespace {

bool wait_gone(pid_t pid) {
    for (int i = 0; i < 500; ++i) {
        if (::kill(pid, 0) < 0 && errno == ESRCH) {
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

// Threads of a process, from /proc/PID/status.
int thread_count(pid_t pid) {
    std::string status = fs::read_file("/proc/" + std::to_string(pid) + "/status");
    auto at = status.find("\nThreads:");
    REQUIRE(at != std::string::npos);
    return std::stoi(status.substr(at + 9));
}

void check_records(Driver d) {
    TempDir t;
    test::write_file(t.path() + "/l1/f", "1");
    std::string state = t.path() + "/state";
    fs::mkdirs(t.path() + "/m");
    auto spec = test::spec_for({t.path() + "/l1"}, d);
    spec.state_dir = state;
    spec.label = "docker.io/library/alpine:3.20";
    auto h = layerfs::mount(spec, t.path() + "/m/");
    auto list = layerfs::list_mounts(state);
    REQUIRE(list.size() == 1);
    CHECK(list[0].target == t.path() + "/m");
    CHECK(list[0].driver == d);
    CHECK(list[0].mounted);
    CHECK(list[0].label == "docker.io/library/alpine:3.20");
    CHECK(list[0].lowers == std::vector<std::string>{t.path() + "/l1"});
    std::string target = h.release();
    // Another process (here: a later call) unmounts by target.
    layerfs::unmount(target, state);
    CHECK_FALSE(sys::is_mount_point(target));
    CHECK(layerfs::list_mounts(state).empty());
}

} // namespace

TEST_CASE("kernel overlay mounts are recorded, listed and unmounted by target", "[overlay]") {
    check_records(Driver::overlay);
}

TEST_CASE("FUSE mounts are recorded, listed and unmounted by target", "[fuse]") {
    check_records(Driver::fuse);
}

TEST_CASE("the FUSE process exits when its mount is unmounted", "[fuse]") {
    TempDir t;
    test::write_file(t.path() + "/l1/f", "1");
    fs::mkdirs(t.path() + "/m");
    auto h = layerfs::mount(test::spec_for({t.path() + "/l1"}, Driver::fuse), t.path() + "/m");
    pid_t pid = test::overlay_daemon_pid(t.path() + "/m");
    REQUIRE(pid > 0);
    CHECK(test::read_file(t.path() + "/m/f") == "1");
    h.unmount();
    CHECK(wait_gone(pid));
    CHECK_FALSE(sys::is_mount_point(t.path() + "/m"));
}

TEST_CASE("a FUSE mount whose process was killed unmounts cleanly", "[fuse]") {
    TempDir t;
    test::write_file(t.path() + "/l1/f", "1");
    std::string m = t.path() + "/m";
    std::string state = t.path() + "/state";
    fs::mkdirs(m);
    auto spec = test::spec_for({t.path() + "/l1"}, Driver::fuse);
    spec.state_dir = state;
    std::string target = layerfs::mount(spec, m).release();
    pid_t pid = test::overlay_daemon_pid(m);
    REQUIRE(pid > 0);
    REQUIRE(::kill(pid, SIGKILL) == 0);
    REQUIRE(wait_gone(pid));
    CHECK(test::lstat_errno(m + "/f") == ENOTCONN);
    auto rec = layerfs::maybe_mount_record(state, m);
    REQUIRE(rec.has_value());
    CHECK(rec->mounted);
    layerfs::unmount(target, state);
    CHECK_FALSE(sys::is_mount_point(m));
    CHECK(layerfs::list_mounts(state).empty());
    CHECK(fs::is_dir(m));
}

namespace {

// The /proc/self/mountinfo line of the mount on target ("" when none).
std::string mountinfo_line(const std::string& target) {
    std::string info = fs::read_file("/proc/self/mountinfo");
    std::size_t at = info.find(" " + target + " ");
    if (at == std::string::npos) {
        return {};
    }
    std::size_t begin = info.rfind('\n', at);
    begin = begin == std::string::npos ? 0 : begin + 1;
    return info.substr(begin, info.find('\n', at) - begin);
}

} // namespace

TEST_CASE("a foreground FUSE mount is the caller's child and goes with its handle", "[fuse]") {
    TempDir t;
    test::write_file(t.path() + "/l1/f", "1");
    std::string m = t.path() + "/m";
    fs::mkdirs(m);
    fs::mkdirs(t.path() + "/upper");
    fs::mkdirs(t.path() + "/work");
    auto spec =
        test::spec_for({t.path() + "/l1"}, Driver::fuse, t.path() + "/upper", t.path() + "/work");
    spec.foreground = true;
    spec.fsname = "strata-test";
    pid_t pid = -1;
    {
        auto h = layerfs::mount(spec, m);
        CHECK(h.target() == m);
        CHECK(sys::is_mount_point(m));
        CHECK(mountinfo_line(m).find(" strata-test ") != std::string::npos);
        pid = test::overlay_daemon_pid(m);
        REQUIRE(pid > 0);
        std::string stat = fs::read_file("/proc/" + std::to_string(pid) + "/stat");
        // Field 4 (after "pid (comm) state") is the parent: this process.
        std::size_t close = stat.rfind(')');
        CHECK(std::stol(stat.substr(close + 4)) == ::getpid());
        test::write_file(m + "/g", "2");
        CHECK(test::read_file(t.path() + "/upper/g") == "2");
    }
    CHECK_FALSE(sys::is_mount_point(m));
    // Reaped by the handle, not left a zombie.
    CHECK(::kill(pid, 0) < 0);
    CHECK(errno == ESRCH);
}

TEST_CASE("a foreground FUSE mount is not recorded") {
    TempDir t;
    fs::mkdirs(t.path() + "/l1");
    fs::mkdirs(t.path() + "/m");
    auto spec = test::spec_for({t.path() + "/l1"}, Driver::fuse);
    spec.foreground = true;
    spec.state_dir = t.path() + "/state";
    CHECK_THROWS_AS(layerfs::mount(spec, t.path() + "/m"), UsageError);
    CHECK_FALSE(fs::exists(t.path() + "/state"));
}

TEST_CASE("a handle with Teardown::detach detaches a mount it took over", "[overlay]") {
    TempDir t;
    test::write_file(t.path() + "/l1/f", "1");
    std::string m = t.path() + "/m";
    fs::mkdirs(m);
    layerfs::mount_overlay(layerfs::OverlaySpec{{t.path() + "/l1"}, "", ""}, m);
    {
        layerfs::MountHandle h(m, Driver::overlay, {}, layerfs::Teardown::detach);
        CHECK(test::read_file(m + "/f") == "1");
    }
    CHECK_FALSE(sys::is_mount_point(m));
    // Explicitly, a target that is no longer mounted is an error.
    layerfs::MountHandle gone(m, Driver::overlay, {}, layerfs::Teardown::detach);
    CHECK_THROWS_AS(gone.unmount(), SysError);
    CHECK(gone.target().empty());
}

TEST_CASE("SIGTERM to the FUSE process unmounts", "[fuse]") {
    TempDir t;
    test::write_file(t.path() + "/l1/f", "1");
    std::string m = t.path() + "/m";
    fs::mkdirs(m);
    std::string target =
        layerfs::mount(test::spec_for({t.path() + "/l1"}, Driver::fuse), m).release();
    pid_t pid = test::overlay_daemon_pid(m);
    REQUIRE(pid > 0);
    REQUIRE(::kill(pid, SIGTERM) == 0);
    CHECK(wait_gone(pid));
    CHECK_FALSE(sys::is_mount_point(m));
}

TEST_CASE("a FUSE mount serves on one thread until it gets busy, and its process ends either way",
          "[fuse]") {
    TempDir t;
    for (int i = 0; i < 200; ++i) {
        test::write_file(t.path() + "/l1/f" + std::to_string(i), std::to_string(i));
    }
    std::string m = t.path() + "/m";
    fs::mkdirs(m);
    bool busy = GENERATE(false, true);
    std::string target =
        layerfs::mount(test::spec_for({t.path() + "/l1"}, Driver::fuse), m).release();
    pid_t pid = test::overlay_daemon_pid(m);
    REQUIRE(pid > 0);
    // The mount was ready when mount() returned: the kernel's INIT is
    // answered before strata-overlay's parent exits.
    CHECK(test::read_file(m + "/f7") == "7");
    CHECK(thread_count(pid) == 1);
    if (busy) {
        // 200 lookups and reads: past the requests served inline, the
        // multi-threaded loop takes over.
        for (int i = 0; i < 200; ++i) {
            REQUIRE(test::read_file(m + "/f" + std::to_string(i)) == std::to_string(i));
        }
        CHECK(thread_count(pid) > 1);
    }
    INFO("busy: " << busy);
    REQUIRE(::kill(pid, SIGTERM) == 0);
    CHECK(wait_gone(pid));
    CHECK_FALSE(sys::is_mount_point(m));
    if (sys::is_mount_point(m)) {
        layerfs::unmount(target);
    }
}

TEST_CASE("mount.fuse3 runs strata-overlay for type fuse.strata-overlay", "[root]") {
    TempDir t;
    auto lowers = test::build_stack(t.path());
    test::build_expected(t.path() + "/expected");
    std::string m = t.path() + "/m";
    fs::mkdirs(m);
    std::string opts = "lowerdir=" + lowers[0] + ":" + lowers[1] + ":" + lowers[2];
    std::string dir = fs::dirname(STRATA_OVERLAY_PROGRAM);
    std::string path = dir + ":" + (std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin");
    // mount(8) runs mount.fuse3 with a sanitized PATH, which finds
    // strata-overlay once installed; here mount.fuse3 is run directly with
    // the build directory on PATH, exactly as mount(8) would run it.
    auto r = run_capture({"env", "PATH=" + path, "mount.fuse3", "strata", m, "-t",
                          "fuse.strata-overlay", "-o", opts},
                         true);
    INFO(r.out);
    REQUIRE(r.status.success());
    CHECK(test::dump_tree(m) == test::dump_tree(t.path() + "/expected"));
    layerfs::unmount(m);
    CHECK_FALSE(sys::is_mount_point(m));
}
