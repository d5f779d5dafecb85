// docker stats' numbers and formats (cli/stats.hpp).
#include "cli/stats.hpp"

#include <catch2/catch.hpp>

using namespace strata::cli;

TEST_CASE("BytesSize is go-units': binary units, four significant digits", "[stats]") {
    CHECK(bytes_size(0) == "0B");
    CHECK(bytes_size(1023) == "1023B");
    CHECK(bytes_size(1024) == "1KiB");
    CHECK(bytes_size(1536 * 1024) == "1.5MiB");
    CHECK(bytes_size(32 << 20) == "32MiB");
    CHECK(bytes_size(1234567) == "1.177MiB");
    CHECK(bytes_size(24ULL * 1024 * 1024 * 1024) == "24GiB");
}

TEST_CASE("a stats row: docker's CPU %, MEM USAGE / LIMIT, MEM %, NET I/O, BLOCK I/O, PIDS",
          "[stats]") {
    StatsSample before, now;
    before.system_ns = 1'000'000'000;
    before.cgroup.cpu_usage_ns = 100'000'000;
    now.system_ns = 3'000'000'000; // 2 s of the host's (2 cpus' worth: 1 s each)
    now.cgroup.cpu_usage_ns = 600'000'000;
    now.online_cpus = 2;
    CHECK(cpu_percent(before, now) == Approx(50.0)); // 0.5 s of 2 s, times 2 cpus
    now.cgroup.memory_usage = (3 << 19) + (1 << 20);
    now.cgroup.memory_cache = 1 << 20; // inactive file: not shown
    now.cgroup.memory_limit = 32 << 20;
    now.cgroup.pids_current = 3;
    now.cgroup.blkio_read = 1'500'000;
    now.net.rx = 1234;
    now.net.tx = 0;
    auto row = stats_row("web", std::string(64, 'a'), "web", false, before, now);
    CHECK(row["ID"] == std::string(12, 'a'));
    CHECK(row["Name"] == "web");
    CHECK(row["CPUPerc"] == "50.00%");
    CHECK(row["MemUsage"] == "1.5MiB / 32MiB");
    CHECK(row["MemPerc"] == "4.69%");
    CHECK(row["NetIO"] == "1.23kB / 0B");
    CHECK(row["BlockIO"] == "1.5MB / 0B");
    CHECK(row["PIDs"] == "3");
    CHECK(stats_row("x", std::string(64, 'a'), "", true, before, now)["ID"] ==
          std::string(64, 'a'));
    std::string table = format_rows("", stats_format(), {row});
    // docker's columns, through Go's tabwriter (3 spaces of padding).
    CHECK(table == "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     "
                   "NET I/O       BLOCK I/O    PIDS\n"
                   "aaaaaaaaaaaa   web       50.00%    1.5MiB / 32MiB      4.69%     "
                   "1.23kB / 0B   1.5MB / 0B   3\n");
    StatsSample zero;
    auto stopped = stats_row("x", std::string(64, 'b'), "x", false, zero, zero);
    CHECK(stopped["CPUPerc"] == "0.00%");
    CHECK(stopped["MemUsage"] == "0B / 0B");
    CHECK(stopped["MemPerc"] == "0.00%");
}
