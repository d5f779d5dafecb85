#include "runner/cgroup.hpp"

#include "util/error.hpp"
#include "util/log.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <sstream>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>

namespace strata::runner {

namespace {

constexpr const char* kCgroupRoot = "/sys/fs/cgroup";

bool fs_is(const char* path, long magic) {
    struct statfs sf {};
    return ::statfs(path, &sf) == 0 && static_cast<long>(sf.f_type) == magic;
}

// The mount point of the v1 hierarchy that holds controller (its super
// options in /proc/self/mountinfo list it: "rw,devices", "rw,cpu,cpuacct").
std::string v1_mount_of(const std::string& controller) {
    std::ifstream in("/proc/self/mountinfo");
    if (!in) {
        throw_errno("open", "/proc/self/mountinfo");
    }
    std::string line;
    while (std::getline(in, line)) {
        auto dash = line.find(" - ");
        if (dash == std::string::npos) {
            continue;
        }
        std::istringstream head(line.substr(0, dash));
        std::string id, parent, devno, root, mount_point;
        head >> id >> parent >> devno >> root >> mount_point;
        std::istringstream tail(line.substr(dash + 3));
        std::string fstype, source, options;
        tail >> fstype >> source >> options;
        if (fstype != "cgroup") {
            continue;
        }
        std::istringstream opts(options);
        std::string o;
        while (std::getline(opts, o, ',')) {
            if (o == controller) {
                return mount_point;
            }
        }
    }
    return {};
}

void write_file(const std::string& path, const std::string& text) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) {
        throw_errno("open", path);
    }
    ssize_t n = ::write(fd.get(), text.data(), text.size());
    if (n != static_cast<ssize_t>(text.size())) {
        throw SysError("write \"" + text + "\"", path, n < 0 ? errno : EIO);
    }
}

long bpf(int cmd, union bpf_attr* attr) {
    return ::syscall(SYS_bpf, cmd, attr, sizeof *attr);
}

struct Insn {
    std::vector<std::uint64_t> out;
    void add(std::uint8_t code, std::uint8_t dst, std::uint8_t src, std::int16_t off,
             std::int32_t imm) {
        struct bpf_insn i {};
        i.code = code;
        i.dst_reg = dst & 0xf;
        i.src_reg = src & 0xf;
        i.off = off;
        i.imm = imm;
        std::uint64_t w;
        static_assert(sizeof w == sizeof i);
        std::memcpy(&w, &i, sizeof w);
        out.push_back(w);
    }
};

int access_bits(const std::string& access) {
    int bits = 0;
    for (char c : access) {
        bits |= c == 'm'   ? BPF_DEVCG_ACC_MKNOD
                : c == 'r' ? BPF_DEVCG_ACC_READ
                : c == 'w' ? BPF_DEVCG_ACC_WRITE
                           : 0;
    }
    return bits;
}

} // namespace

CgroupVersion cgroup_version() {
    if (fs_is(kCgroupRoot, CGROUP2_SUPER_MAGIC)) {
        return CgroupVersion::v2;
    }
    if (fs_is("/sys/fs/cgroup/unified", CGROUP2_SUPER_MAGIC)) {
        return CgroupVersion::hybrid;
    }
    return CgroupVersion::v1;
}

const char* cgroup_version_name(CgroupVersion v) {
    switch (v) {
    case CgroupVersion::v1:
        return "v1";
    case CgroupVersion::hybrid:
        return "hybrid";
    case CgroupVersion::v2:
        return "v2";
    }
    return "?";
}

std::string DeviceRule::text() const {
    auto num = [](std::int64_t n) { return n < 0 ? std::string("*") : std::to_string(n); };
    return std::string(1, type) + " " + num(major) + ":" + num(minor) + " " + access;
}

std::string device_access(const std::string& perms) {
    if (perms.empty() || perms.size() > 3 || perms.find_first_not_of("rwm") != std::string::npos) {
        throw UsageError("invalid device permissions \"" + perms +
                         "\": expected a combination of r, w and m");
    }
    std::string out;
    for (char c : {'r', 'w', 'm'}) {
        if (perms.find(c) != std::string::npos) {
            out += c;
        }
    }
    return out;
}

std::vector<DeviceRule> default_device_rules() {
    std::vector<DeviceRule> rules;
    rules.push_back({'a', -1, -1, "rwm", false});
    rules.push_back({'c', -1, -1, "m", true});
    rules.push_back({'b', -1, -1, "m", true});
    for (auto [major, minor] : {std::pair{1, 3},
                                {1, 5},
                                {1, 7},
                                {1, 8},
                                {1, 9},
                                {5, 0},
                                {5, 1},
                                {5, 2},
                                {136, -1},
                                {10, 200}}) {
        rules.push_back({'c', major, minor, "rwm", true});
    }
    return rules;
}

std::vector<std::uint64_t> device_filter_program(const std::vector<DeviceRule>& rules) {
    // r1: struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
    // access_type: (access << 16) | type.
    Insn p;
    p.add(BPF_LDX | BPF_MEM | BPF_W, 2, 1, 0, 0);      // r2 = access_type
    p.add(BPF_ALU | BPF_AND | BPF_K, 2, 0, 0, 0xffff); // r2 = type
    p.add(BPF_LDX | BPF_MEM | BPF_W, 3, 1, 0, 0);      // r3 = access_type
    p.add(BPF_ALU | BPF_RSH | BPF_K, 3, 0, 0, 16);     // r3 = access
    p.add(BPF_LDX | BPF_MEM | BPF_W, 4, 1, 4, 0);      // r4 = major
    p.add(BPF_LDX | BPF_MEM | BPF_W, 5, 1, 8, 0);      // r5 = minor
    const int all = BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE;
    // The last matching rule decides: test them from the last one back.
    for (auto it = rules.rbegin(); it != rules.rend(); ++it) {
        const DeviceRule& r = *it;
        int acc = access_bits(r.access);
        bool check_type = r.type != 'a';
        bool check_access = acc != all;
        bool check_major = r.type != 'a' && r.major >= 0;
        bool check_minor = r.type != 'a' && r.minor >= 0;
        int len = (check_type ? 1 : 0) + (check_access ? 3 : 0) + (check_major ? 1 : 0) +
                  (check_minor ? 1 : 0) + 2;
        int at = 0; // instructions emitted so far in this block
        auto skip = [&] { return static_cast<std::int16_t>(len - at - 1); };
        if (check_type) {
            int t = r.type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR;
            p.add(BPF_JMP | BPF_JNE | BPF_K, 2, 0, skip(), t);
            ++at;
        }
        if (check_access) {
            // Every requested access bit must be in the rule's.
            p.add(BPF_ALU64 | BPF_MOV | BPF_X, 6, 3, 0, 0);
            ++at;
            p.add(BPF_ALU64 | BPF_AND | BPF_K, 6, 0, 0, ~acc & all);
            ++at;
            p.add(BPF_JMP | BPF_JNE | BPF_K, 6, 0, skip(), 0);
            ++at;
        }
        if (check_major) {
            p.add(BPF_JMP | BPF_JNE | BPF_K, 4, 0, skip(), static_cast<std::int32_t>(r.major));
            ++at;
        }
        if (check_minor) {
            p.add(BPF_JMP | BPF_JNE | BPF_K, 5, 0, skip(), static_cast<std::int32_t>(r.minor));
            ++at;
        }
        p.add(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, r.allow ? 1 : 0);
        p.add(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
        if (len == 2) {
            // It matches every access: the rules before it can never decide,
            // and the verifier refuses unreachable instructions.
            return p.out;
        }
    }
    p.add(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0);
    p.add(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    return p.out;
}

UniqueFd load_device_filter(const std::vector<DeviceRule>& rules) {
    std::vector<std::uint64_t> prog = device_filter_program(rules);
    static const char license[] = "Apache-2.0";
    char log[4096] = {};
    union bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insn_cnt = static_cast<__u32>(prog.size());
    attr.insns = reinterpret_cast<std::uintptr_t>(prog.data());
    attr.license = reinterpret_cast<std::uintptr_t>(license);
    long fd = bpf(BPF_PROG_LOAD, &attr);
    if (fd < 0) {
        int e = errno;
        // Again with the verifier's log, for the message (a log that does
        // not fit its buffer fails with ENOSPC, so not on the first try).
        attr.log_buf = reinterpret_cast<std::uintptr_t>(log);
        attr.log_size = sizeof log;
        attr.log_level = 1;
        long again = bpf(BPF_PROG_LOAD, &attr);
        if (again >= 0) {
            return UniqueFd(static_cast<int>(again));
        }
        std::string text(log);
        while (!text.empty() && text.back() == '\n') {
            text.pop_back();
        }
        throw SysError("bpf(BPF_PROG_LOAD) of the device filter" +
                           (text.empty() ? std::string() : " (verifier: " + text + ")"),
                       {}, e);
    }
    return UniqueFd(static_cast<int>(fd));
}

Cgroup Cgroup::create(const std::string& parent, const std::string& id,
                      const std::vector<std::string>& controllers) {
    return create_at(cgroup_version(), kCgroupRoot, parent, id, controllers);
}

Cgroup Cgroup::create_at(CgroupVersion version, const std::string& mount_root,
                         const std::string& parent, const std::string& id,
                         const std::vector<std::string>& controllers) {
    Cgroup cg;
    cg.version_ = version;
    auto make = [&](const std::string& hierarchy, const std::string& controller) {
        std::string base = hierarchy + "/" + parent;
        if (::mkdir(base.c_str(), 0755) != 0 && errno != EEXIST) {
            throw_errno("mkdir (the containers' cgroup)", base);
        }
        std::string dir = base + "/" + id;
        if (::mkdir(dir.c_str(), 0755) != 0) {
            throw_errno("mkdir (the container's cgroup)", dir);
        }
        cg.dirs_.push_back(dir);
        cg.controllers_.push_back(controller);
        std::string procs = dir + "/cgroup.procs";
        UniqueFd fd(::open(procs.c_str(), O_WRONLY | O_CLOEXEC));
        if (!fd) {
            throw_errno("open", procs);
        }
        cg.procs_.push_back(std::move(fd));
    };
    if (version == CgroupVersion::v2) {
        make(mount_root, "");
        return cg;
    }
    for (const auto& c : controllers) {
        std::string mount = mount_root == kCgroupRoot ? v1_mount_of(c) : mount_root + "/" + c;
        if (mount.empty()) {
            throw Error("cgroup " + std::string(cgroup_version_name(version)) +
                        ": no hierarchy with the " + c + " controller is mounted (" +
                        std::string(kCgroupRoot) + "/" + c + "); the container cannot be confined");
        }
        bool seen = false;
        for (const auto& d : cg.dirs_) {
            seen = seen || d.rfind(mount + "/", 0) == 0;
        }
        if (!seen) {
            make(mount, c);
        }
    }
    return cg;
}

Cgroup& Cgroup::operator=(Cgroup&& o) noexcept {
    if (this != &o) {
        try {
            remove();
        } catch (const std::exception& e) {
            STRATA_LOG_WARN("{}", e.what());
        }
        version_ = o.version_;
        dirs_ = std::move(o.dirs_);
        controllers_ = std::move(o.controllers_);
        procs_ = std::move(o.procs_);
        device_prog_ = std::move(o.device_prog_);
        o.dirs_.clear();
    }
    return *this;
}

Cgroup::~Cgroup() {
    try {
        remove();
    } catch (const std::exception& e) {
        STRATA_LOG_WARN("{}", e.what());
    }
}

void Cgroup::set_devices(const std::vector<DeviceRule>& rules) {
    if (version_ == CgroupVersion::v2) {
        UniqueFd prog = load_device_filter(rules);
        UniqueFd dir(::open(dirs_.at(0).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!dir) {
            throw_errno("open", dirs_.at(0));
        }
        union bpf_attr attr;
        std::memset(&attr, 0, sizeof attr);
        attr.target_fd = static_cast<__u32>(dir.get());
        attr.attach_bpf_fd = static_cast<__u32>(prog.get());
        attr.attach_type = BPF_CGROUP_DEVICE;
        attr.attach_flags = BPF_F_ALLOW_MULTI;
        if (bpf(BPF_PROG_ATTACH, &attr) != 0) {
            throw_errno("bpf(BPF_PROG_ATTACH) of the device filter", dirs_.at(0));
        }
        device_prog_ = std::move(prog);
        return;
    }
    for (std::size_t i = 0; i < dirs_.size(); ++i) {
        if (controllers_[i] != "devices") {
            continue;
        }
        // One rule per write(2), as the devices controller wants.
        write_file(dirs_[i] + "/devices.deny", "a");
        for (const auto& r : rules) {
            if (r.type == 'a' && !r.allow) {
                write_file(dirs_[i] + "/devices.deny", "a");
            } else {
                write_file(dirs_[i] + (r.allow ? "/devices.allow" : "/devices.deny"), r.text());
            }
        }
        return;
    }
    throw Error("cgroup: no devices hierarchy among " + std::to_string(dirs_.size()) +
                " cgroup directories");
}

std::vector<int> Cgroup::procs_fds() const {
    std::vector<int> out;
    for (const auto& fd : procs_) {
        out.push_back(fd.get());
    }
    return out;
}

void Cgroup::remove() {
    procs_.clear();
    device_prog_.reset();
    std::string failed;
    int err = 0;
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
        // The processes of a PID namespace whose init has been reaped are
        // gone, but the cgroup can take a moment to notice.
        int r = -1;
        for (int i = 0; i < 200; ++i) {
            r = ::rmdir(it->c_str());
            if (r == 0 || errno != EBUSY) {
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        if (r != 0 && errno != ENOENT) {
            err = errno;
            failed = *it;
        }
    }
    dirs_.clear();
    controllers_.clear();
    if (!failed.empty()) {
        throw SysError("rmdir (the container's cgroup)", failed, err);
    }
}

} // namespace strata::runner
