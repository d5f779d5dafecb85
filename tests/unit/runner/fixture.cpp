#include "fixture.hpp"

#include "tests/support/support.hpp"
#include "util/child.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <filesystem>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace strata::test {

namespace stdfs = std::filesystem;

std::string probe_binary() {
    return STRATA_PROBE_BIN;
}

Rootfs::Rootfs() : dir({}, "strata-runner-test-"), path(dir.path() + "/rootfs") {
    ::chmod(dir.path().c_str(), 0755);
    for (const char* d : {"", "/bin", "/etc", "/root", "/home/user", "/proc", "/dev", "/sys"}) {
        stdfs::create_directories(path + d);
    }
    stdfs::create_directories(path + "/tmp");
    ::chmod((path + "/tmp").c_str(), 01777);
    stdfs::copy_file("/bin/busybox", path + "/bin/busybox");
    ::chmod((path + "/bin/busybox").c_str(), 0755);
    stdfs::copy_file(probe_binary(), path + "/bin/probe");
    ::chmod((path + "/bin/probe").c_str(), 0755);
    auto list = run_capture({"/bin/busybox", "--list"});
    std::string applets = list.out;
    std::size_t i = 0;
    while (i < applets.size()) {
        std::size_t j = applets.find('\n', i);
        if (j == std::string::npos) {
            j = applets.size();
        }
        std::string name = applets.substr(i, j - i);
        i = j + 1;
        if (!name.empty() && name != "busybox" && !stdfs::exists(path + "/bin/" + name)) {
            stdfs::create_symlink("busybox", path + "/bin/" + name);
        }
    }
    write_file(path + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
                                     "user:x:1000:1000:A User:/home/user:/bin/sh\n"
                                     "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
    write_file(path + "/etc/group", "root:x:0:\n"
                                    "wheel:x:10:root\n"
                                    "tty:x:5:\n"
                                    "user:x:1000:\n"
                                    "extra:x:2000:user,other\n"
                                    "nogroup:x:65534:\n");
    write_file(path + "/etc/hosts", "original hosts\n");
    write_file(path + "/etc/hostname", "original hostname\n");
    write_file(path + "/etc/resolv.conf", "original resolv\n");
}

std::string Output::get(const std::string& key) const {
    auto v = all(key);
    return v.empty() ? std::string{} : v.front();
}

std::vector<std::string> Output::all(const std::string& key) const {
    std::vector<std::string> out;
    std::string prefix = key + "=";
    std::size_t i = 0;
    while (i < this->out.size()) {
        std::size_t j = this->out.find('\n', i);
        if (j == std::string::npos) {
            j = this->out.size();
        }
        std::string line = this->out.substr(i, j - i);
        if (line.rfind(prefix, 0) == 0) {
            out.push_back(line.substr(prefix.size()));
        }
        i = j + 1;
    }
    return out;
}

namespace {

std::string read_memfd(int fd) {
    std::string out;
    ::lseek(fd, 0, SEEK_SET);
    char buf[8192];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) {
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

} // namespace

Output run_captured(runner::RunSpec spec) {
    UniqueFd out(::memfd_create("probe-out", MFD_CLOEXEC));
    UniqueFd err(::memfd_create("probe-err", MFD_CLOEXEC));
    if (!out || !err) {
        throw_errno("memfd_create");
    }
    if (spec.stdout_fd < 0) {
        spec.stdout_fd = out.get();
    }
    if (spec.stderr_fd < 0) {
        spec.stderr_fd = err.get();
    }
    Output o;
    o.status = runner::run(spec);
    o.out = read_memfd(out.get());
    o.err = read_memfd(err.get());
    return o;
}

runner::RunSpec probe_spec(const Rootfs& root, std::vector<std::string> args) {
    runner::RunSpec spec;
    spec.rootfs = root.path;
    spec.argv = {"/bin/probe"};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.hostname = "box";
    return spec;
}

std::string host_mountinfo() {
    // Mount ids and the whole line: any added or removed mount shows.
    return fs::read_file("/proc/self/mountinfo");
}

std::vector<std::string> host_mounts_under(const std::string& dir) {
    // Field 5 of a mountinfo line is the mount point. Only mounts below the
    // test's own directory count: other engineers' and CI jobs' mounts come
    // and go on a shared machine.
    std::vector<std::string> out;
    std::string text = host_mountinfo();
    std::size_t i = 0;
    while (i < text.size()) {
        std::size_t j = text.find('\n', i);
        if (j == std::string::npos) {
            j = text.size();
        }
        std::string line = text.substr(i, j - i);
        i = j + 1;
        std::size_t pos = 0;
        for (int field = 0; field < 4 && pos != std::string::npos; ++field) {
            pos = line.find(' ', pos);
            if (pos != std::string::npos) {
                ++pos;
            }
        }
        if (pos == std::string::npos) {
            continue;
        }
        std::string point = line.substr(pos, line.find(' ', pos) - pos);
        if (point == dir || point.rfind(dir + "/", 0) == 0) {
            out.push_back(line);
        }
    }
    return out;
}

} // namespace strata::test
