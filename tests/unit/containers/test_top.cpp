// `top`: ps output filtered to a container's processes, Docker's table.
#include "containers/top.hpp"
#include "util/error.hpp"

#include <catch2/catch.hpp>

using namespace strata;
using containers::parse_ps_output;

TEST_CASE("ps output keeps only the container's rows, CMD with its spaces") {
    std::string ps =
        "UID          PID    PPID  C STIME TTY          TIME CMD\n"
        "root           1       0  0 07:00 ?        00:00:01 /sbin/init splash\n"
        "root        4242    4200  0 07:01 ?        00:00:00 sh -c while true; do sleep 1; done\n"
        "nobody      4250    4242  0 07:01 ?        00:00:00 sleep 1\n";
    auto r = parse_ps_output(ps, {4242, 4250});
    REQUIRE(r.titles ==
            std::vector<std::string>{"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"});
    REQUIRE(r.processes.size() == 2);
    CHECK(r.processes[0][1] == "4242");
    CHECK(r.processes[0][7] == "sh -c while true; do sleep 1; done");
    CHECK(r.processes[1][0] == "nobody");
    CHECK(parse_ps_output(ps, {}).processes.empty());
}

TEST_CASE("thread rows (PID -) follow the process they belong to") {
    std::string ps = "USER PID %CPU CMD\n"
                     "root 10 0.0 app\n"
                     "root - 0.0 -\n"
                     "root 11 0.0 other\n"
                     "root - 0.0 -\n";
    auto r = parse_ps_output(ps, {10});
    REQUIRE(r.processes.size() == 2);
    CHECK(r.processes[1][1] == "-");
}

TEST_CASE("ps output without a PID column or with a bad pid is an error") {
    CHECK_THROWS_WITH(parse_ps_output("UID CMD\nroot x\n", {1}),
                      Catch::Contains("Couldn't find PID field in ps output"));
    CHECK_THROWS_WITH(parse_ps_output("PID CMD\nabc x\n", {1}), Catch::Contains("Unexpected pid"));
}

TEST_CASE("ps options may rename only pid to PID") {
    CHECK_NOTHROW(containers::validate_ps_args("-ef"));
    CHECK_NOTHROW(containers::validate_ps_args("-o pid=PID,comm"));
    CHECK_THROWS_WITH(containers::validate_ps_args("-o ppid=PID"),
                      Catch::Contains("specifying \"ppid=PID\" is not allowed"));
}

TEST_CASE("top's table is Docker's tabwriter layout") {
    containers::TopResult r;
    r.titles = {"UID", "PID", "CMD"};
    r.processes = {{"root", "123", "sleep 30"}, {"averyveryverylongusername", "7", "sh"}};
    // The first column is 25 + 3 wide; the others at least 20.
    std::string want = "UID" + std::string(25, ' ') + "PID" + std::string(17, ' ') + "CMD\n" +
                       "root" + std::string(24, ' ') + "123" + std::string(17, ' ') + "sleep 30\n" +
                       "averyveryverylongusername   7" + std::string(19, ' ') + "sh\n";
    CHECK(containers::format_top(r) == want);
}
