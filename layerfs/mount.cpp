#include "layerfs/mount.hpp"

#include "layerfs/overlay.hpp"
#include "util/child.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/sha256.hpp"
#include "util/sys/mount.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <dirent.h>
#include <sstream>
#include <sys/mount.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace strata::layerfs {

const char* driver_name(Driver d) noexcept {
    switch (d) {
    case Driver::overlay:
        return "overlay";
    case Driver::fuse:
        return "fuse";
    }
    return "overlay";
}

Driver parse_driver(const std::string& name) {
    if (name == "overlay") {
        return Driver::overlay;
    }
    if (name == "fuse") {
        return Driver::fuse;
    }
    throw UsageError("unknown mount driver \"" + name + "\" (expected overlay or fuse)");
}

namespace {

std::string record_path(const std::string& state_dir, const std::string& target) {
    return fs::join(state_dir, Sha256::hex_of(target).substr(0, 24) + ".mount");
}

void check_path(const std::string& p) {
    if (p.find('\n') != std::string::npos) {
        throw UsageError("path with a newline cannot be mounted: \"" + p + "\"");
    }
}

// strata-lazy's command line for spec.lazy (foreground: -f).
std::vector<std::string> lazy_argv(const MountSpec& spec, const std::string& target,
                                   bool foreground) {
    std::vector<std::string> argv = {find_fuse_program(spec.fuse_program, "strata-lazy")};
    if (foreground) {
        argv.emplace_back("-f");
    }
    if (spec.lazy->suid_dev) {
        argv.emplace_back("--suid-dev");
    }
    if (!spec.fsname.empty()) {
        argv.emplace_back("--fsname");
        argv.push_back(spec.fsname);
    }
    argv.push_back(spec.lazy->store);
    argv.push_back(spec.lazy->manifest);
    argv.push_back(target);
    return argv;
}

void mount_fuse(const MountSpec& spec, const std::string& target) {
    if (spec.lazy) {
        std::vector<std::string> argv = lazy_argv(spec, target, false);
        RunResult r = run_capture(argv, true);
        if (!r.status.success()) {
            std::string out = r.out;
            while (!out.empty() && out.back() == '\n') {
                out.pop_back();
            }
            throw Error("lazy FUSE mount on \"" + target + "\" failed: " + argv[0] + " " +
                        r.status.describe() + (out.empty() ? "" : ": " + out));
        }
        return;
    }
    std::vector<std::string> lowers;
    for (const auto& l : spec.lowers) {
        lowers.push_back(fs::absolute(l));
    }
    std::string opts = layer_dirs_option(lowers, spec.upper.empty() ? "" : fs::absolute(spec.upper),
                                         spec.upper.empty() ? "" : fs::absolute(spec.work));
    std::vector<std::string> argv = {find_fuse_program(spec.fuse_program), "-o", opts, target};
    // The program daemonizes once the mount is live: its exit status is the
    // mount's outcome.
    RunResult r = run_capture(argv, true);
    if (!r.status.success()) {
        std::string out = r.out;
        while (!out.empty() && out.back() == '\n') {
            out.pop_back();
        }
        throw Error("FUSE mount on \"" + target + "\" failed: " + argv[0] + " " +
                    r.status.describe() + (out.empty() ? "" : ": " + out));
    }
}

// strata-overlay -f: the program stays in the foreground as our child, which
// dies with us. Returns it once the mount is live.
Child mount_fuse_foreground(const MountSpec& spec, const std::string& target) {
    if (::access("/dev/fuse", R_OK | W_OK) != 0) {
        throw SysError("open", "/dev/fuse", errno);
    }
    std::string opts;
    if (!spec.lazy) {
        std::vector<std::string> lowers;
        for (const auto& l : spec.lowers) {
            lowers.push_back(fs::absolute(l));
        }
        opts = layer_dirs_option(lowers, spec.upper.empty() ? "" : fs::absolute(spec.upper),
                                 spec.upper.empty() ? "" : fs::absolute(spec.work));
        if (!spec.fsname.empty()) {
            opts += ",fsname=" + spec.fsname;
        }
    }
    struct stat before {};
    if (::stat(target.c_str(), &before) != 0) {
        throw_errno("stat", target);
    }
    SpawnOptions so;
    so.argv = spec.lazy ? lazy_argv(spec, target, true)
                        : std::vector<std::string>{find_fuse_program(spec.fuse_program), "-f", "-o",
                                                   opts, target};
    so.die_with_parent = true;
    Child child = Child::spawn(so);
    // Live once the target is another filesystem (stat waits for the
    // program's answer); the program ending first is the failure.
    for (int i = 0;; ++i) {
        struct stat now {};
        if (::stat(target.c_str(), &now) == 0 && now.st_dev != before.st_dev) {
            return child;
        }
        if (auto st = child.try_wait()) {
            throw Error(so.argv[0] + " " + st->describe() + " before mounting on \"" + target +
                        "\"");
        }
        if (i > 10000) {
            throw Error(so.argv[0] + " did not mount \"" + target + "\" within 10 s");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

void write_record(const MountSpec& spec, const std::string& target) {
    std::string text = "target=" + target + "\ndriver=" + driver_name(spec.driver) + "\n";
    for (const auto& l : spec.lowers) {
        text += "lower=" + fs::absolute(l) + "\n";
    }
    if (!spec.upper.empty()) {
        text += "upper=" + fs::absolute(spec.upper) + "\nwork=" + fs::absolute(spec.work) + "\n";
    }
    if (spec.lazy) {
        text += "lazy=" + spec.lazy->manifest + "\n";
    }
    text += "label=" + spec.label + "\n";
    fs::mkdirs(spec.state_dir, 0700);
    fs::write_file_atomic(record_path(spec.state_dir, target), text, 0600);
}

MountRecord parse_record(const std::string& text) {
    MountRecord rec;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        auto eq = line.find('=');
        if (eq == std::string::npos) {
            continue;
        }
        std::string k = line.substr(0, eq);
        std::string v = line.substr(eq + 1);
        if (k == "target") {
            rec.target = v;
        } else if (k == "driver") {
            rec.driver = parse_driver(v);
        } else if (k == "lower") {
            rec.lowers.push_back(v);
        } else if (k == "upper") {
            rec.upper = v;
        } else if (k == "work") {
            rec.work = v;
        } else if (k == "label") {
            rec.label = v;
        }
    }
    return rec;
}

std::string normalize_target(const std::string& target) {
    std::string t = fs::absolute(target);
    while (t.size() > 1 && t.back() == '/') {
        t.pop_back();
    }
    return t;
}

} // namespace

MountHandle mount(const MountSpec& spec, const std::string& target_in) {
    if (spec.lowers.empty() && !spec.lazy) {
        throw UsageError("mount on \"" + target_in + "\": no layers given");
    }
    if (spec.lazy && (spec.driver != Driver::fuse || !spec.upper.empty())) {
        throw UsageError("mount on \"" + target_in + "\": a lazy image is a read-only FUSE mount");
    }
    if (spec.upper.empty() != spec.work.empty()) {
        throw UsageError("mount on \"" + target_in +
                         "\": upper and work directories must be given together");
    }
    std::string target = normalize_target(target_in);
    check_path(target);
    for (const auto& l : spec.lowers) {
        check_path(l);
    }
    check_path(spec.upper);
    check_path(spec.work);
    if (spec.foreground && spec.driver == Driver::fuse && !spec.state_dir.empty()) {
        throw UsageError("mount on \"" + target_in + "\": a foreground FUSE mount is not recorded");
    }
    if (!fs::is_dir(target)) {
        throw SysError("mount", target, ENOTDIR);
    }
    if (spec.driver == Driver::fuse && spec.foreground) {
        Child program = mount_fuse_foreground(spec, target);
        MountHandle handle(target, spec.driver, {}, Teardown::detach);
        handle.m_fuse = std::move(program);
        STRATA_LOG_DEBUG("mounted {} layers on \"{}\" with strata-overlay in the foreground",
                         spec.lowers.size(), target);
        return handle;
    }
    if (spec.driver == Driver::overlay) {
        OverlaySpec o{spec.lowers, spec.upper, spec.work};
        o.nosuid_nodev = spec.nosuid_nodev;
        o.volatile_upper = spec.volatile_upper && !spec.upper.empty();
        mount_overlay(o, target);
    } else {
        mount_fuse(spec, target);
    }
    MountHandle handle(target, spec.driver, spec.state_dir);
    if (!spec.state_dir.empty()) {
        write_record(spec, target); // on failure, the handle unmounts again
    }
    STRATA_LOG_DEBUG("mounted {} layers on \"{}\" with the {} driver", spec.lowers.size(), target,
                     driver_name(spec.driver));
    return handle;
}

void unmount(const std::string& target_in, const std::string& state_dir) {
    std::string target = normalize_target(target_in);
    bool had_record = false;
    std::string rec = state_dir.empty() ? "" : record_path(state_dir, target);
    if (!rec.empty() && fs::exists(rec)) {
        had_record = true;
    }
    if (sys::is_mount_point(target)) {
        int r = sys::umount_raw(target.c_str(), 0);
        if (r == -EBUSY) {
            // Busy (a shell sits in it): detach now, the kernel finishes when
            // the last user leaves, as `umount -l` does.
            STRATA_LOG_WARN("\"{}\" is busy; detaching it lazily", target);
            r = sys::umount_raw(target.c_str(), MNT_DETACH);
        }
        if (r == -EPERM && ::geteuid() != 0) {
            // A user's FUSE mount: fusermount3 is the setuid helper that may
            // unmount it (root unmounts with umount2 directly, no helper).
            // Busy: detached lazily, as above.
            RunResult fr = run_capture({"fusermount3", "-u", target}, true);
            if (!fr.status.success() && fr.out.find("busy") != std::string::npos) {
                STRATA_LOG_WARN("\"{}\" is busy; detaching it lazily", target);
                fr = run_capture({"fusermount3", "-u", "-z", target}, true);
            }
            if (!fr.status.success()) {
                while (!fr.out.empty() && fr.out.back() == '\n') {
                    fr.out.pop_back();
                }
                throw Error("fusermount3 -u \"" + target + "\" " + fr.status.describe() + ": " +
                            fr.out);
            }
            r = 0;
        }
        if (r < 0) {
            throw SysError("umount2", target, -r);
        }
    } else if (!had_record) {
        throw SysError("umount", target, EINVAL);
    }
    if (had_record && ::unlink(rec.c_str()) < 0 && errno != ENOENT) {
        throw_errno("unlink", rec);
    }
}

std::vector<MountRecord> list_mounts(const std::string& state_dir) {
    std::vector<MountRecord> out;
    DIR* d = ::opendir(state_dir.c_str());
    if (d == nullptr) {
        if (errno == ENOENT) {
            return out;
        }
        throw_errno("opendir", state_dir);
    }
    std::vector<std::string> names;
    while (auto* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n.size() > 6 && n.ends_with(".mount")) {
            names.push_back(n);
        }
    }
    ::closedir(d);
    for (const auto& n : names) {
        std::string text;
        try {
            text = fs::read_file(fs::join(state_dir, n));
        } catch (const SysError& e) {
            if (e.error_code() == ENOENT) {
                continue; // unmounted meanwhile
            }
            throw;
        }
        MountRecord r = with_context("mount record \"" + fs::join(state_dir, n) + "\"",
                                     [&] { return parse_record(text); });
        r.mounted = sys::is_mount_point(r.target);
        out.push_back(std::move(r));
    }
    std::sort(out.begin(), out.end(),
              [](const MountRecord& a, const MountRecord& b) { return a.target < b.target; });
    return out;
}

std::optional<MountRecord> maybe_mount_record(const std::string& state_dir,
                                              const std::string& target) {
    std::string p = record_path(state_dir, normalize_target(target));
    if (!fs::exists(p)) {
        return std::nullopt;
    }
    MountRecord r = parse_record(fs::read_file(p));
    r.mounted = sys::is_mount_point(r.target);
    return r;
}

MountHandle::MountHandle(MountHandle&& o) noexcept
    : m_target(std::exchange(o.m_target, {})), m_driver(o.m_driver),
      m_state_dir(std::move(o.m_state_dir)), m_teardown(o.m_teardown), m_fuse(std::move(o.m_fuse)) {
}

MountHandle& MountHandle::operator=(MountHandle&& o) noexcept {
    if (this != &o) {
        unmount_noexcept();
        m_target = std::exchange(o.m_target, {});
        m_driver = o.m_driver;
        m_state_dir = std::move(o.m_state_dir);
        m_teardown = o.m_teardown;
        m_fuse = std::move(o.m_fuse);
    }
    return *this;
}

MountHandle::~MountHandle() {
    unmount_noexcept();
}

void MountHandle::unmount_noexcept() noexcept {
    if (m_target.empty()) {
        return;
    }
    if (m_teardown == Teardown::detach) {
        std::string t = std::exchange(m_target, {});
        sys::umount_raw(t.c_str(), MNT_DETACH); // a throwaway mount: nothing to report
        reap_fuse(t);
        return;
    }
    std::string t = m_target;
    try {
        unmount();
    } catch (const std::exception& e) {
        STRATA_LOG_WARN("unmounting \"{}\": {}", t, e.what());
    }
}

void MountHandle::unmount() {
    std::string t = std::exchange(m_target, {});
    if (t.empty()) {
        return;
    }
    if (m_teardown == Teardown::normal) {
        layerfs::unmount(t, m_state_dir);
        return;
    }
    int r = sys::umount_raw(t.c_str(), MNT_DETACH);
    reap_fuse(t);
    if (r < 0) {
        throw SysError("umount2", t, -r);
    }
}

void MountHandle::reap_fuse(const std::string& target) noexcept {
    if (!m_fuse) {
        return;
    }
    // Detached, the program sees its connection end and exits.
    try {
        if (!m_fuse.wait_for(std::chrono::milliseconds(2000))) {
            m_fuse.terminate();
        }
    } catch (const std::exception& e) {
        STRATA_LOG_WARN("strata-overlay on {}: {}", target, e.what());
    }
}

std::string MountHandle::release() noexcept {
    m_fuse.detach(); // a foreground program serves on until this process ends
    return std::exchange(m_target, {});
}

std::string find_fuse_program(const std::string& configured, const std::string& name) {
    if (!configured.empty()) {
        return configured;
    }
    char exe[4096];
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        std::string dir = fs::dirname(std::string(exe, static_cast<std::size_t>(n)));
        // Installed side by side, or the build tree (cli/strata, layerfs/strata-overlay).
        for (const auto& c : {fs::join(dir, name), fs::join(fs::dirname(dir), "layerfs/" + name)}) {
            if (::access(c.c_str(), X_OK) == 0) {
                return c;
            }
        }
    }
    if (auto p = find_program(name)) {
        return *p;
    }
    throw Error("cannot find the " + name +
                " program (looked beside \"/proc/self/exe\" and "
                "in PATH) for a FUSE mount");
}

} // namespace strata::layerfs
