// A container's resource limits, with Docker's names and meanings
// (HostConfig's Memory, MemorySwap, ..., `docker run --memory` etc.), and
// Docker's daemon-side checks of them (moby's
// verifyPlatformContainerResources): a value out of range is an error with
// Docker's message; a limit this host cannot apply at all (no swap
// accounting, no blkio weight...) is dropped with Docker's warning.
//
//   runner::Resources r;
//   r.memory = 32 << 20;
//   std::vector<std::string> warnings = runner::verify_resources(r, runner::host_support());
//   spec.resources = r;                    // the runner's Cgroup::apply writes them
//
// The runner applies them (runner/cgroup.hpp) before the container's command
// runs, and fails closed: a limit that cannot be written stops the container.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace strata::runner {

struct Resources {
    std::int64_t memory = 0;      // --memory: bytes; 0 = unlimited
    std::int64_t memory_swap = 0; // --memory-swap: memory+swap; 0 = 2x memory, -1 = unlimited
    std::int64_t memory_reservation = 0; // --memory-reservation: the soft limit
    std::int64_t nano_cpus = 0;          // --cpus x 1e9 (CFS quota over a 100 ms period)
    std::int64_t cpu_shares = 0;         // --cpu-shares (v2: cpu.weight, converted as runc)
    std::string cpuset_cpus;             // --cpuset-cpus "0-2,4"
    std::string cpuset_mems;             // --cpuset-mems
    std::int64_t pids_limit = 0;         // --pids-limit: <= 0 = unlimited
    std::uint16_t blkio_weight = 0;      // --blkio-weight 10..1000, 0 = unset
    bool oom_kill_disable = false;       // --oom-kill-disable

    // Whether any limit is set (a cgroup is needed for it).
    bool any() const noexcept;
    bool operator==(const Resources&) const = default;
};

// What this host's cgroups can do (moby's sysinfo), probed from the files
// of the mounted hierarchies (v1) or the root's cgroup.controllers (v2).
struct HostSupport {
    bool memory = false;             // memory.limit_in_bytes / memory.max
    bool swap = false;               // memory.memsw.limit_in_bytes / memory.swap.max
    bool memory_reservation = false; // memory.soft_limit_in_bytes / memory.low
    bool oom_kill_disable = false;   // memory.oom_control (v1 only)
    bool pids = false;               // pids.max
    bool cpu_shares = false;         // cpu.shares / cpu.weight
    bool cpu_cfs = false;            // cpu.cfs_quota_us / cpu.max
    bool cpuset = false;             // cpuset.cpus
    bool blkio_weight = false;       // blkio.weight / io.weight
    std::string cpus = "";           // the cpus and memory nodes containers may use ("0-3")
    std::string mems = "";
    int ncpu = 1; // online cpus (the --cpus range)
};
HostSupport host_support();

// moby's minimum for --memory and --memory-reservation.
inline constexpr std::int64_t k_min_memory = 6 * 1024 * 1024;

// Docker's checks: throws UsageError with Docker's message for an invalid
// combination; returns Docker's warnings for what it dropped from r.
// Fills memory_swap's default (2x memory) as Docker's daemon does.
std::vector<std::string> verify_resources(Resources& r, const HostSupport& host);

// "0-2,4" -> {0,1,2,4}; throws UsageError (Docker's "invalid format: ...").
std::vector<int> parse_cpu_list(const std::string& list);

// cgroup v2's cpu.weight for v1 cpu.shares (runc's conversion: 2..262144 ->
// 1..10000; 0 stays 0 = unset).
std::uint64_t cpu_shares_to_weight(std::int64_t shares) noexcept;
// cgroup v2's io.weight for blkio.weight (runc's: 10..1000 -> 1..10000).
std::uint64_t blkio_weight_to_io_weight(std::uint16_t weight) noexcept;

} // namespace strata::runner
