#include "runner/resources.hpp"

#include "runner/cgroup.hpp"
#include "util/error.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>
#include <unistd.h>

namespace strata::runner {

namespace {

bool exists(const std::string& path) {
    return ::access(path.c_str(), F_OK) == 0;
}

std::string first_line(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return line;
}

bool all_digits(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c)) != 0;
    });
}

int to_int(const std::string& s, const std::string& list) {
    if (!all_digits(s) || s.size() > 6) {
        throw UsageError("invalid format: " + list);
    }
    return std::stoi(s);
}

// Whether every cpu (or node) of requested is in available (moby's
// isCpusetListAvailable).
bool list_available(const std::string& requested, const std::string& available) {
    if (requested.empty()) {
        return true;
    }
    std::vector<int> want = parse_cpu_list(requested);
    std::vector<int> have = parse_cpu_list(available);
    std::set<int> set(have.begin(), have.end());
    return std::all_of(want.begin(), want.end(), [&](int c) { return set.count(c) != 0; });
}

} // namespace

bool Resources::any() const noexcept {
    return memory != 0 || memory_swap != 0 || memory_reservation != 0 || nano_cpus != 0 ||
           cpu_shares != 0 || !cpuset_cpus.empty() || !cpuset_mems.empty() || pids_limit > 0 ||
           blkio_weight != 0 || oom_kill_disable;
}

std::vector<int> parse_cpu_list(const std::string& list) {
    std::vector<int> out;
    if (list.empty()) {
        return out;
    }
    std::stringstream in(list);
    std::string part;
    while (std::getline(in, part, ',')) {
        auto dash = part.find('-');
        if (dash == std::string::npos) {
            out.push_back(to_int(part, list));
            continue;
        }
        int lo = to_int(part.substr(0, dash), list);
        int hi = to_int(part.substr(dash + 1), list);
        if (hi < lo) {
            throw UsageError("invalid format: " + list);
        }
        for (int i = lo; i <= hi; ++i) {
            out.push_back(i);
        }
    }
    if (list.back() == ',') {
        throw UsageError("invalid format: " + list);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

std::uint64_t cpu_shares_to_weight(std::int64_t shares) noexcept {
    if (shares <= 0) {
        return 0;
    }
    return static_cast<std::uint64_t>(1 + ((shares - 2) * 9999) / 262142);
}

std::uint64_t blkio_weight_to_io_weight(std::uint16_t weight) noexcept {
    if (weight == 0) {
        return 0;
    }
    return 1 + (static_cast<std::uint64_t>(weight) - 10) * 9999 / 990;
}

HostSupport host_support() {
    HostSupport h;
    long n = ::sysconf(_SC_NPROCESSORS_ONLN);
    h.ncpu = n > 0 ? static_cast<int>(n) : 1;
    if (cgroup_version() == CgroupVersion::v2) {
        std::string controllers = first_line("/sys/fs/cgroup/cgroup.controllers");
        std::set<std::string> have;
        std::istringstream in(controllers);
        for (std::string c; in >> c;) {
            have.insert(c);
        }
        h.memory = h.swap = h.memory_reservation = have.count("memory") != 0;
        h.oom_kill_disable = false; // v2 has no way to turn the OOM killer off
        h.pids = have.count("pids") != 0;
        h.cpu_shares = h.cpu_cfs = have.count("cpu") != 0;
        h.blkio_weight = have.count("io") != 0;
        h.cpuset = have.count("cpuset") != 0;
        if (h.cpuset) {
            h.cpus = first_line("/sys/fs/cgroup/cpuset.cpus.effective");
            h.mems = first_line("/sys/fs/cgroup/cpuset.mems.effective");
        }
        return h;
    }
    std::string mem = cgroup_v1_mount("memory");
    if (!mem.empty()) {
        h.memory = exists(mem + "/memory.limit_in_bytes");
        h.swap = exists(mem + "/memory.memsw.limit_in_bytes");
        h.memory_reservation = exists(mem + "/memory.soft_limit_in_bytes");
        h.oom_kill_disable = exists(mem + "/memory.oom_control");
    }
    h.pids = !cgroup_v1_mount("pids").empty();
    std::string cpu = cgroup_v1_mount("cpu");
    if (!cpu.empty()) {
        h.cpu_shares = exists(cpu + "/cpu.shares");
        h.cpu_cfs = exists(cpu + "/cpu.cfs_quota_us");
    }
    std::string blkio = cgroup_v1_mount("blkio");
    h.blkio_weight = !blkio.empty() && exists(blkio + "/blkio.weight");
    std::string cpuset = cgroup_v1_mount("cpuset");
    if (!cpuset.empty()) {
        h.cpuset = true;
        h.cpus = first_line(cpuset + "/cpuset.cpus");
        h.mems = first_line(cpuset + "/cpuset.mems");
    }
    return h;
}

std::vector<std::string> verify_resources(Resources& r, const HostSupport& host) {
    std::vector<std::string> warnings;
    if (r.memory < 0 || r.memory_reservation < 0 || r.cpu_shares < 0 || r.nano_cpus < 0 ||
        r.memory_swap < -1) {
        // docker's flags never produce these; the HostConfig of a record can.
        throw UsageError("invalid resources: a negative limit");
    }
    if (r.memory != 0 && r.memory < k_min_memory) {
        throw UsageError("Minimum memory limit allowed is 6MB");
    }
    if (r.memory > 0 && r.memory_swap == 0) {
        r.memory_swap = r.memory * 2; // Docker's default
    }
    if (r.memory > 0 && !host.memory) {
        warnings.push_back("Your kernel does not support memory limit capabilities or the cgroup "
                           "is not mounted. Limitation discarded.");
        r.memory = 0;
        r.memory_swap = -1;
    }
    if (r.memory > 0 && r.memory_swap != -1 && !host.swap) {
        warnings.push_back("Your kernel does not support swap limit capabilities or the cgroup is "
                           "not mounted. Memory limited without swap.");
        r.memory_swap = -1;
    }
    if (r.memory > 0 && r.memory_swap > 0 && r.memory_swap < r.memory) {
        throw UsageError("Minimum memoryswap limit should be larger than memory limit, see usage");
    }
    if (r.memory == 0 && r.memory_swap > 0) {
        throw UsageError(
            "You should always set the Memory limit when using Memoryswap limit, see usage");
    }
    if (r.memory_reservation > 0 && !host.memory_reservation) {
        warnings.push_back("Your kernel does not support memory soft limit capabilities or the "
                           "cgroup is not mounted. Limitation discarded.");
        r.memory_reservation = 0;
    }
    if (r.memory_reservation > 0 && r.memory_reservation < k_min_memory) {
        throw UsageError("Minimum memory reservation allowed is 6MB");
    }
    if (r.memory > 0 && r.memory_reservation > 0 && r.memory < r.memory_reservation) {
        throw UsageError(
            "Minimum memory limit can not be less than memory reservation limit, see usage");
    }
    if (r.oom_kill_disable && !host.oom_kill_disable) {
        warnings.push_back(
            "Your kernel does not support OomKillDisable. OomKillDisable discarded.");
        r.oom_kill_disable = false;
    }
    if (r.oom_kill_disable && r.memory == 0) {
        warnings.push_back("OOM killer is disabled for the container, but no memory limit is set, "
                           "this can result in the system running out of resources.");
    }
    if (r.pids_limit > 0 && !host.pids) {
        warnings.push_back("Your kernel does not support PIDs limit capabilities or the cgroup is "
                           "not mounted. PIDs limit discarded.");
        r.pids_limit = 0;
    }
    if (r.nano_cpus > 0 && !host.cpu_cfs) {
        throw UsageError("NanoCPUs can not be set, as your kernel does not support CPU CFS "
                         "scheduler or the cgroup is not mounted");
    }
    if (r.nano_cpus > static_cast<std::int64_t>(host.ncpu) * 1000000000LL) {
        std::string n = std::to_string(host.ncpu);
        throw UsageError("Range of CPUs is from 0.01 to " + n + ".00, as there are only " + n +
                         " CPUs available");
    }
    if (r.cpu_shares > 0 && !host.cpu_shares) {
        warnings.push_back("Your kernel does not support CPU shares or the cgroup is not mounted. "
                           "Shares discarded.");
        r.cpu_shares = 0;
    }
    if ((!r.cpuset_cpus.empty() || !r.cpuset_mems.empty()) && !host.cpuset) {
        warnings.push_back(
            "Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.");
        r.cpuset_cpus.clear();
        r.cpuset_mems.clear();
    }
    auto check_list = [](const std::string& list, const std::string& available,
                         const std::string& what, const std::string& unavailable) {
        bool ok = false;
        try {
            ok = list_available(list, available);
        } catch (const UsageError& e) {
            throw UsageError("Invalid value " + list + " for cpuset " + what + ": " + e.what());
        }
        if (!ok) {
            throw UsageError("Requested " + unavailable + " are not available - requested " + list +
                             ", available: " + available);
        }
    };
    check_list(r.cpuset_cpus, host.cpus, "cpus", "CPUs");
    check_list(r.cpuset_mems, host.mems, "mems", "memory nodes");
    if (r.blkio_weight > 0 && !host.blkio_weight) {
        warnings.push_back("Your kernel does not support Block I/O weight or the cgroup is not "
                           "mounted. Weight discarded.");
        r.blkio_weight = 0;
    }
    if (r.blkio_weight > 0 && (r.blkio_weight < 10 || r.blkio_weight > 1000)) {
        throw UsageError("Range of blkio weight is from 10 to 1000");
    }
    // moby's adaptContainerSettings: shares outside the kernel's range are clamped.
    if (r.cpu_shares > 0 && r.cpu_shares < 2) {
        r.cpu_shares = 2;
    } else if (r.cpu_shares > 262144) {
        r.cpu_shares = 262144;
    }
    return warnings;
}

} // namespace strata::runner
