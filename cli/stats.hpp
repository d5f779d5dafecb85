// `strata stats` as docker's: the numbers and their formatting (docker's
// CLI formatter: units.BytesSize for memory, HumanSizeWithPrecision(3) for
// network and block I/O, CPU % over the host's cpu time since the last
// sample, MEM % of the limit), kept apart from the command for tests.
#pragma once

#include "cli/template.hpp"
#include "containers/store.hpp"
#include "runner/cgroup.hpp"

#include <cstdint>
#include <string>

namespace strata::cli {

// go-units BytesSize: binary units, "%.4g" ("1.5MiB", "32MiB", "0B").
std::string bytes_size(std::uint64_t bytes);

// One reading of a container (all zeros for one that is not running).
struct StatsSample {
    runner::CgroupStats cgroup;
    runner::NetIO net;
    std::uint64_t system_ns = 0; // the host's cpu time at the reading
    int online_cpus = 1;
};

// A reading of a container now; zeros for one that is not running (or
// whose cgroup is gone: it has just ended).
StatsSample sample_container(const containers::State& st, const std::string& id);

// docker pause / unpause of one container: its cgroup frozen or thawed and
// its state "paused" / "running", under its lock. ContainerConflict (with
// dockerd's words) when it is not running, already paused, restarting, or
// (unpause) not paused.
void pause_container(containers::Store& cs, const std::string& id, bool pause);

// docker's calculateCPUPercentUnix: the container's share of the host's
// cpu time between two readings, times the online cpus, in percent.
double cpu_percent(const StatsSample& before, const StatsSample& now);

// A row for docker's stats formatter: Container, ID, Name, CPUPerc,
// MemUsage, MemPerc, NetIO, BlockIO, PIDs.
TemplateValue stats_row(const std::string& container, const std::string& id,
                        const std::string& name, bool no_trunc, const StatsSample& before,
                        const StatsSample& now);
// The table's default and its headers ("CONTAINER ID", "CPU %"...).
TableFormat stats_format();

} // namespace strata::cli
