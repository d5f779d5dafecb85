#include "runner/cgroup.hpp"

#include "util/error.hpp"
#include "util/log.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <functional>
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

constexpr const char* k_cgroup_root = "/sys/fs/cgroup";

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

// Whether a comma-separated list of controllers has c.
bool lists(const std::string& list, const std::string& c) {
    std::istringstream in(list);
    std::string item;
    while (std::getline(in, item, ',')) {
        if (item == c) {
            return true;
        }
    }
    return false;
}

std::string read_text(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        throw_errno("open", path);
    }
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw_errno("read", path);
        }
        if (n == 0) {
            break;
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
        s.pop_back();
    }
    return s;
}

bool fs_is_dir(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool file_exists(const std::string& path) {
    return ::access(path.c_str(), F_OK) == 0;
}

// "key value" lines (memory.stat, memory.events, cpu.stat, oom_control).
std::uint64_t keyed(const std::string& text, const std::string& key, bool* found = nullptr) {
    std::istringstream in(text);
    std::string k;
    std::uint64_t v = 0;
    while (in >> k >> v) {
        if (k == key) {
            if (found) {
                *found = true;
            }
            return v;
        }
    }
    if (found) {
        *found = false;
    }
    return 0;
}

void enable_v2_controllers(const std::string& dir) {
    std::string have;
    try {
        have = read_text(dir + "/cgroup.controllers");
    } catch (const std::exception&) {
        return;
    }
    std::istringstream in(have);
    for (std::string c; in >> c;) {
        if (c == "cpu" || c == "cpuset" || c == "memory" || c == "pids" || c == "io") {
            UniqueFd fd(::open((dir + "/cgroup.subtree_control").c_str(), O_WRONLY | O_CLOEXEC));
            std::string text = "+" + c;
            if (fd) {
                // Refused when already on, or when the directory has
                // processes of its own: the limit's write then says so.
                [[maybe_unused]] ssize_t n = ::write(fd.get(), text.data(), text.size());
            }
        }
    }
}

void inherit_cpuset(const std::string& parent, const std::string& dir) {
    for (const char* f : {"/cpuset.cpus", "/cpuset.mems"}) {
        if (trimmed(read_text(dir + f)).empty()) {
            std::string v = trimmed(read_text(parent + f));
            if (!v.empty()) {
                write_file(dir + f, v);
            }
        }
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

std::string cgroup_v1_mount(const std::string& controller) {
    return v1_mount_of(controller);
}

const std::vector<std::string>& container_controllers() {
    static const std::vector<std::string> list = {"devices", "memory", "cpu",   "cpuacct",
                                                  "cpuset",  "pids",   "blkio", "freezer"};
    return list;
}

CgroupVersion cgroup_version() {
    if (fs_is(k_cgroup_root, CGROUP2_SUPER_MAGIC)) {
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
                      const std::vector<std::string>& controllers,
                      const std::vector<std::string>& optional) {
    return create_at(cgroup_version(), k_cgroup_root, parent, id, controllers, optional);
}

Cgroup Cgroup::create_at(CgroupVersion version, const std::string& mount_root,
                         const std::string& parent, const std::string& id,
                         const std::vector<std::string>& controllers,
                         const std::vector<std::string>& optional) {
    Cgroup cg;
    cg.m_version = version;
    auto make = [&](const std::string& hierarchy, const std::string& controller) {
        std::string base = hierarchy + "/" + parent;
        if (::mkdir(base.c_str(), 0755) != 0 && errno != EEXIST) {
            throw_errno("mkdir (the containers' cgroup)", base);
        }
        if (version == CgroupVersion::v2) {
            // The controllers must be enabled for the children of the
            // root and of the parent; those the host lacks stay off (a
            // limit that needs one then fails naming its file).
            enable_v2_controllers(hierarchy);
            enable_v2_controllers(base);
        } else if (controller == "cpuset") {
            // A new v1 cpuset starts with no cpus and no memory nodes: the
            // parent's are copied, or nothing could run in it.
            inherit_cpuset(hierarchy, base);
        }
        std::string dir = base + "/" + id;
        if (::mkdir(dir.c_str(), 0755) != 0) {
            // A stale one (its container's strata was killed) goes if empty.
            if (errno != EEXIST || ::rmdir(dir.c_str()) != 0 || ::mkdir(dir.c_str(), 0755) != 0) {
                throw_errno("mkdir (the container's cgroup)", dir);
            }
        }
        if (version != CgroupVersion::v2 && controller == "cpuset") {
            inherit_cpuset(base, dir);
        }
        cg.m_dirs.push_back(dir);
        cg.m_controllers.push_back(controller);
        std::string procs = dir + "/cgroup.procs";
        UniqueFd fd(::open(procs.c_str(), O_WRONLY | O_CLOEXEC));
        if (!fd) {
            throw_errno("open", procs);
        }
        cg.m_procs.push_back(std::move(fd));
    };
    if (version == CgroupVersion::v2) {
        make(mount_root, "");
        return cg;
    }
    std::vector<std::string> all = controllers;
    all.insert(all.end(), optional.begin(), optional.end());
    for (std::size_t k = 0; k < all.size(); ++k) {
        const std::string& c = all[k];
        std::string mount = mount_root == k_cgroup_root ? v1_mount_of(c) : mount_root + "/" + c;
        if (mount_root != k_cgroup_root && k >= controllers.size() && !fs_is_dir(mount)) {
            mount.clear();
        }
        if (mount.empty() && k >= controllers.size()) {
            continue;
        }
        if (mount.empty()) {
            throw Error("cgroup " + std::string(cgroup_version_name(version)) +
                        ": no hierarchy with the " + c + " controller is mounted (" +
                        std::string(k_cgroup_root) + "/" + c +
                        "); the container cannot be confined");
        }
        bool seen = false;
        for (std::size_t i = 0; i < cg.m_dirs.size(); ++i) {
            if (cg.m_dirs[i].rfind(mount + "/", 0) == 0) {
                seen = true;
                cg.m_controllers[i] += "," + c; // a hierarchy with several ("cpu,cpuacct")
            }
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
        m_version = o.m_version;
        m_dirs = std::move(o.m_dirs);
        m_controllers = std::move(o.m_controllers);
        m_procs = std::move(o.m_procs);
        m_device_prog = std::move(o.m_device_prog);
        o.m_dirs.clear();
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
    if (m_version == CgroupVersion::v2) {
        UniqueFd prog = load_device_filter(rules);
        UniqueFd dir(::open(m_dirs.at(0).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!dir) {
            throw_errno("open", m_dirs.at(0));
        }
        union bpf_attr attr;
        std::memset(&attr, 0, sizeof attr);
        attr.target_fd = static_cast<__u32>(dir.get());
        attr.attach_bpf_fd = static_cast<__u32>(prog.get());
        attr.attach_type = BPF_CGROUP_DEVICE;
        attr.attach_flags = BPF_F_ALLOW_MULTI;
        if (bpf(BPF_PROG_ATTACH, &attr) != 0) {
            throw_errno("bpf(BPF_PROG_ATTACH) of the device filter", m_dirs.at(0));
        }
        m_device_prog = std::move(prog);
        return;
    }
    for (std::size_t i = 0; i < m_dirs.size(); ++i) {
        if (!lists(m_controllers[i], "devices")) {
            continue;
        }
        // One rule per write(2), as the devices controller wants.
        write_file(m_dirs[i] + "/devices.deny", "a");
        for (const auto& r : rules) {
            if (r.type == 'a' && !r.allow) {
                write_file(m_dirs[i] + "/devices.deny", "a");
            } else {
                write_file(m_dirs[i] + (r.allow ? "/devices.allow" : "/devices.deny"), r.text());
            }
        }
        return;
    }
    throw Error("cgroup: no devices hierarchy among " + std::to_string(m_dirs.size()) +
                " cgroup directories");
}

std::vector<int> Cgroup::procs_fds() const {
    std::vector<int> out;
    for (const auto& fd : m_procs) {
        out.push_back(fd.get());
    }
    return out;
}

void Cgroup::remove() {
    m_procs.clear();
    m_device_prog.reset();
    std::string failed;
    int err = 0;
    for (auto it = m_dirs.rbegin(); it != m_dirs.rend(); ++it) {
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
    m_dirs.clear();
    m_controllers.clear();
    if (!failed.empty()) {
        throw SysError("rmdir (the container's cgroup)", failed, err);
    }
}

// ---------------------------------------------------------------------------
// Limits, OOM, paths by name, freezer, stats

std::string CgroupPaths::dir_of(const std::string& controller) const {
    for (const auto& [c, d] : dirs) {
        if (version == CgroupVersion::v2 || lists(c, controller)) {
            return d;
        }
    }
    return {};
}

CgroupPaths Cgroup::where() const {
    CgroupPaths p;
    p.version = m_version;
    for (std::size_t i = 0; i < m_dirs.size(); ++i) {
        p.dirs.emplace_back(m_controllers[i], m_dirs[i]);
    }
    return p;
}

namespace {

std::string need_dir(const CgroupPaths& p, const std::string& controller, const char* file) {
    std::string d = p.dir_of(controller);
    if (d.empty()) {
        throw Error("cgroup: the container's cgroup has no " + controller +
                    " hierarchy, needed for " + file);
    }
    return d;
}

} // namespace

void Cgroup::apply(const Resources& r) {
    CgroupPaths p = where();
    auto put = [&](const std::string& controller, const char* file, const std::string& value) {
        write_file(need_dir(p, controller, file) + "/" + file, value);
    };
    const std::int64_t period = 100000;
    std::int64_t quota = r.nano_cpus * period / 1000000000;
    if (m_version == CgroupVersion::v2) {
        if (r.memory_reservation > 0) {
            put("memory", "memory.low", std::to_string(r.memory_reservation));
        }
        if (r.memory > 0) {
            put("memory", "memory.max", std::to_string(r.memory));
            if (r.memory_swap > 0) {
                put("memory", "memory.swap.max", std::to_string(r.memory_swap - r.memory));
            } else if (r.memory_swap == -1) {
                put("memory", "memory.swap.max", "max");
            }
        }
        if (r.oom_kill_disable) {
            throw Error("cgroup v2 cannot disable the OOM killer (--oom-kill-disable)");
        }
        if (r.nano_cpus > 0) {
            put("cpu", "cpu.max", std::to_string(quota) + " " + std::to_string(period));
        }
        if (r.cpu_shares > 0) {
            put("cpu", "cpu.weight", std::to_string(cpu_shares_to_weight(r.cpu_shares)));
        }
        if (!r.cpuset_cpus.empty()) {
            put("cpuset", "cpuset.cpus", r.cpuset_cpus);
        }
        if (!r.cpuset_mems.empty()) {
            put("cpuset", "cpuset.mems", r.cpuset_mems);
        }
        if (r.pids_limit > 0) {
            put("pids", "pids.max", std::to_string(r.pids_limit));
        }
        if (r.blkio_weight > 0) {
            std::string d = need_dir(p, "io", "io.weight");
            if (file_exists(d + "/io.bfq.weight")) {
                write_file(d + "/io.bfq.weight", std::to_string(r.blkio_weight));
            } else {
                write_file(d + "/io.weight",
                           "default " + std::to_string(blkio_weight_to_io_weight(r.blkio_weight)));
            }
        }
        return;
    }
    if (r.memory_reservation > 0) {
        put("memory", "memory.soft_limit_in_bytes", std::to_string(r.memory_reservation));
    }
    if (r.memory > 0) {
        put("memory", "memory.limit_in_bytes", std::to_string(r.memory));
        if (r.memory_swap > 0) {
            put("memory", "memory.memsw.limit_in_bytes", std::to_string(r.memory_swap));
        }
    }
    if (r.oom_kill_disable) {
        put("memory", "memory.oom_control", "1");
    }
    if (r.nano_cpus > 0) {
        put("cpu", "cpu.cfs_period_us", std::to_string(period));
        put("cpu", "cpu.cfs_quota_us", std::to_string(quota));
    }
    if (r.cpu_shares > 0) {
        put("cpu", "cpu.shares", std::to_string(r.cpu_shares));
    }
    if (!r.cpuset_cpus.empty()) {
        put("cpuset", "cpuset.cpus", r.cpuset_cpus);
    }
    if (!r.cpuset_mems.empty()) {
        put("cpuset", "cpuset.mems", r.cpuset_mems);
    }
    if (r.pids_limit > 0) {
        put("pids", "pids.max", std::to_string(r.pids_limit));
    }
    if (r.blkio_weight > 0) {
        put("blkio", "blkio.weight", std::to_string(r.blkio_weight));
    }
}

bool Cgroup::oom_killed() const {
    std::string d = where().dir_of("memory");
    if (d.empty()) {
        return false;
    }
    if (m_version == CgroupVersion::v2) {
        return keyed(read_text(d + "/memory.events"), "oom_kill") > 0;
    }
    std::string text = read_text(d + "/memory.oom_control");
    bool found = false;
    std::uint64_t kills = keyed(text, "oom_kill", &found);
    if (found) {
        return kills > 0;
    }
    // Kernels before 4.13 count no kills: under_oom, or a limit that was hit.
    return keyed(text, "under_oom") > 0 ||
           std::stoull("0" + trimmed(read_text(d + "/memory.failcnt"))) > 0;
}

CgroupPaths cgroup_paths(const std::string& name) {
    CgroupPaths p;
    p.version = cgroup_version();
    if (p.version == CgroupVersion::v2) {
        std::string d = std::string(k_cgroup_root) + "/strata/" + name;
        if (fs_is_dir(d)) {
            p.dirs.emplace_back("", d);
        }
        return p;
    }
    for (const auto& c : container_controllers()) {
        std::string mount = v1_mount_of(c);
        if (mount.empty()) {
            continue;
        }
        std::string d = mount + "/strata/" + name;
        if (!fs_is_dir(d)) {
            continue;
        }
        bool merged = false;
        for (auto& [cs, dir] : p.dirs) {
            if (dir == d) {
                cs += "," + c;
                merged = true;
            }
        }
        if (!merged) {
            p.dirs.emplace_back(c, d);
        }
    }
    return p;
}

CgroupPaths cgroup_paths_of(pid_t pid) {
    std::string file = "/proc/" + std::to_string(pid) + "/cgroup";
    std::istringstream in(read_text(file));
    CgroupPaths p;
    p.version = cgroup_version();
    std::string line;
    while (std::getline(in, line)) {
        // "4:memory:/strata/ID", "1:cpu,cpuacct:/x", "0::/strata/ID"
        auto a = line.find(':');
        auto b = a == std::string::npos ? a : line.find(':', a + 1);
        if (b == std::string::npos) {
            continue;
        }
        std::string controllers = line.substr(a + 1, b - a - 1);
        std::string path = line.substr(b + 1);
        if (p.version == CgroupVersion::v2) {
            if (controllers.empty()) {
                p.dirs.emplace_back("", std::string(k_cgroup_root) + (path == "/" ? "" : path));
            }
            continue;
        }
        if (controllers.empty() || controllers.rfind("name=", 0) == 0) {
            continue;
        }
        std::istringstream cs(controllers);
        std::string first;
        std::getline(cs, first, ',');
        std::string mount = v1_mount_of(first);
        if (!mount.empty()) {
            p.dirs.emplace_back(controllers, mount + (path == "/" ? "" : path));
        }
    }
    return p;
}

namespace {

// Polls until done() or about 10 s have passed.
bool settle(const std::function<bool()>& done) {
    for (int i = 0; i < 2000; ++i) {
        if (done()) {
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(i < 100 ? 1 : 5));
    }
    return done();
}

void set_frozen(const CgroupPaths& cg, bool freeze_it) {
    if (cg.version == CgroupVersion::v2) {
        std::string d = need_dir(cg, "", "cgroup.freeze");
        write_file(d + "/cgroup.freeze", freeze_it ? "1" : "0");
        std::string want = freeze_it ? "1" : "0";
        bool ok = settle([&] {
            bool found = false;
            std::uint64_t v = keyed(read_text(d + "/cgroup.events"), "frozen", &found);
            return found && std::to_string(v) == want;
        });
        if (!ok) {
            if (freeze_it) {
                write_file(d + "/cgroup.freeze", "0");
            }
            throw Error("cgroup: " + d + "/cgroup.events did not report frozen " + want);
        }
        return;
    }
    std::string d = need_dir(cg, "freezer", "freezer.state");
    std::string file = d + "/freezer.state";
    const char* want = freeze_it ? "FROZEN" : "THAWED";
    write_file(file, want);
    // FREEZING can stay while a task is in an uninterruptible sleep: the
    // write is repeated, as runc does.
    int n = 0;
    bool ok = settle([&] {
        if (trimmed(read_text(file)) == want) {
            return true;
        }
        if (++n % 50 == 0) {
            write_file(file, want);
        }
        return false;
    });
    if (!ok) {
        if (freeze_it) {
            write_file(file, "THAWED");
        }
        throw Error(std::string("cgroup: ") + file + " did not become " + want);
    }
}

std::uint64_t read_u64(const std::string& path) {
    std::string t = trimmed(read_text(path));
    if (t == "max" || t.empty()) {
        return 0;
    }
    try {
        return std::stoull(t);
    } catch (const std::exception&) {
        throw Error("cgroup: " + path + ": not a number: \"" + t + "\"");
    }
}

} // namespace

void freeze(const CgroupPaths& cg) {
    set_frozen(cg, true);
}

void thaw(const CgroupPaths& cg) {
    set_frozen(cg, false);
}

bool frozen(const CgroupPaths& cg) {
    if (cg.version == CgroupVersion::v2) {
        std::string d = need_dir(cg, "", "cgroup.events");
        return keyed(read_text(d + "/cgroup.events"), "frozen") == 1;
    }
    std::string d = need_dir(cg, "freezer", "freezer.state");
    return trimmed(read_text(d + "/freezer.state")) != "THAWED";
}

std::uint64_t host_memory_bytes() {
    std::string text = read_text("/proc/meminfo");
    auto at = text.find("MemTotal:");
    if (at == std::string::npos) {
        throw Error("/proc/meminfo: no MemTotal line");
    }
    return std::stoull(text.substr(at + 9)) * 1024;
}

std::uint64_t system_cpu_usage_ns() {
    std::istringstream in(read_text("/proc/stat"));
    std::string label;
    in >> label;
    if (label != "cpu") {
        throw Error("/proc/stat: the first line is not the cpu line");
    }
    std::uint64_t ticks = 0;
    for (int i = 0; i < 7; ++i) { // user nice system idle iowait irq softirq
        std::uint64_t v = 0;
        in >> v;
        ticks += v;
    }
    long hz = ::sysconf(_SC_CLK_TCK);
    return ticks * (1000000000ULL / static_cast<std::uint64_t>(hz > 0 ? hz : 100));
}

CgroupStats read_cgroup_stats(const CgroupPaths& cg) {
    CgroupStats s;
    std::uint64_t host_mem = host_memory_bytes();
    if (cg.version == CgroupVersion::v2) {
        std::string d = need_dir(cg, "", "cpu.stat");
        s.cpu_usage_ns = keyed(read_text(d + "/cpu.stat"), "usage_usec") * 1000;
        if (file_exists(d + "/memory.current")) {
            s.memory_usage = read_u64(d + "/memory.current");
            s.memory_cache = keyed(read_text(d + "/memory.stat"), "inactive_file");
            s.memory_limit = read_u64(d + "/memory.max");
        }
        if (file_exists(d + "/pids.current")) {
            s.pids_current = read_u64(d + "/pids.current");
        }
        if (file_exists(d + "/io.stat")) {
            std::istringstream in(read_text(d + "/io.stat"));
            std::string tok;
            while (in >> tok) {
                if (tok.rfind("rbytes=", 0) == 0) {
                    s.blkio_read += std::stoull(tok.substr(7));
                } else if (tok.rfind("wbytes=", 0) == 0) {
                    s.blkio_write += std::stoull(tok.substr(7));
                }
            }
        }
    } else {
        std::string acct = cg.dir_of("cpuacct");
        if (!acct.empty()) {
            s.cpu_usage_ns = read_u64(acct + "/cpuacct.usage");
        }
        std::string mem = cg.dir_of("memory");
        if (!mem.empty()) {
            s.memory_usage = read_u64(mem + "/memory.usage_in_bytes");
            std::string stat = read_text(mem + "/memory.stat");
            bool found = false;
            s.memory_cache = keyed(stat, "total_inactive_file", &found);
            if (!found) {
                s.memory_cache = keyed(stat, "inactive_file");
            }
            s.memory_limit = read_u64(mem + "/memory.limit_in_bytes");
        }
        std::string pids = cg.dir_of("pids");
        if (!pids.empty()) {
            s.pids_current = read_u64(pids + "/pids.current");
        }
        std::string blkio = cg.dir_of("blkio");
        if (!blkio.empty()) {
            std::string file = blkio + "/blkio.io_service_bytes_recursive";
            if (!file_exists(file)) {
                file = blkio + "/blkio.throttle.io_service_bytes_recursive";
            }
            if (file_exists(file)) {
                std::istringstream in(read_text(file));
                std::string dev, op;
                std::uint64_t v = 0;
                std::string line;
                while (std::getline(in, line)) {
                    std::istringstream l(line);
                    if (l >> dev >> op >> v) {
                        if (op == "Read") {
                            s.blkio_read += v;
                        } else if (op == "Write") {
                            s.blkio_write += v;
                        }
                    }
                }
            }
        }
    }
    // An unlimited cgroup (or one above the host's memory) shows the host's, as docker.
    if (s.memory_limit == 0 || s.memory_limit > host_mem) {
        s.memory_limit = host_mem;
    }
    return s;
}

NetIO read_net_io(pid_t pid) {
    std::string file = "/proc/" + std::to_string(pid) + "/net/dev";
    std::istringstream in(read_text(file));
    NetIO io;
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
        if (++n <= 2) {
            continue; // the two header lines
        }
        auto colon = line.find(':');
        if (colon == std::string::npos) {
            continue;
        }
        std::string name = line.substr(0, colon);
        name.erase(0, name.find_first_not_of(' '));
        if (name == "lo") {
            continue;
        }
        std::istringstream f(line.substr(colon + 1));
        std::uint64_t v[9] = {};
        for (auto& x : v) {
            f >> x;
        }
        io.rx += v[0]; // receive bytes
        io.tx += v[8]; // transmit bytes (after 8 receive fields)
    }
    return io;
}

} // namespace strata::runner
