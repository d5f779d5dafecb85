// `strata parse` end to end: the plan output against a golden file, --dump against
// BuildKit's result files, and exit status 1 with file:line:column on errors.
#include "tests/support/support.hpp"
#include "util/child.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>

#include <filesystem>

namespace {

std::string golden(const std::string& name) {
    return strata::test::source_dir() + "/tests/unit/builder/golden/" + name;
}

// The plan `strata parse` prints for the golden Dockerfile, from its 2nd line
// (the first names the file, whose path depends on the checkout).
std::string multistage_plan() {
    const std::string df = golden("multistage.Dockerfile");
    auto r = strata::run_capture({strata::test::strata_binary(), "parse", df, "--build-arg",
                                  "VERSION=2.0", "--platform", "linux/amd64"});
    REQUIRE(r.status.success());
    return r.out.substr(r.out.find('\n') + 1);
}

} // namespace

TEST_CASE("strata parse prints the plan as the golden file says") {
    CHECK(multistage_plan() == strata::test::read_file(golden("multistage.plan")));
}

// Hidden, never part of a test run: regenerates the golden file after an
// intended change of the plan output (strata_cli_tests "[accept]").
TEST_CASE("regenerate golden/multistage.plan", "[.accept]") {
    strata::test::write_file(golden("multistage.plan"), multistage_plan());
}

TEST_CASE("strata parse --target plans only what the target needs") {
    auto r = strata::run_capture({strata::test::strata_binary(), "parse",
                                  golden("multistage.Dockerfile"), "--target", "tools"});
    REQUIRE(r.status.success());
    CHECK(r.out.find("build order: #1 \"tools\"\n") != std::string::npos);
    CHECK(r.out.find("stage #0 \"build\"  (skipped") != std::string::npos);
}

TEST_CASE("strata parse --dump prints BuildKit's dump") {
    const std::string dir =
        strata::test::source_dir() + "/tests/data/buildkit-parser/testfiles/brimstone-consuldock";
    auto r = strata::run_capture(
        {strata::test::strata_binary(), "parse", "--dump", dir + "/Dockerfile"});
    REQUIRE(r.status.success());
    CHECK(r.out == strata::test::read_file(dir + "/result"));
}

TEST_CASE("strata parse exits 1 and names file, line and column on errors") {
    strata::TempDir tmp;
    const std::string df = tmp.path() + "/Dockerfile";
    strata::test::write_file(df, "FROM a\nCOPY --chmod=abc x /y\n");
    auto r = strata::run_capture({strata::test::strata_binary(), "parse", df}, true);
    CHECK(r.status.exited());
    CHECK(r.status.code() == 1);
    CHECK(r.out.find(df + ":2:1: COPY: invalid --chmod \"abc\"") != std::string::npos);
    CHECK(r.out.find("COPY --chmod=abc x /y") != std::string::npos);

    auto missing =
        strata::run_capture({strata::test::strata_binary(), "parse", df + ".nope"}, true);
    CHECK(missing.status.code() == 1);
    auto target = strata::run_capture(
        {strata::test::strata_binary(), "parse", golden("multistage.Dockerfile"), "--target", "x"},
        true);
    CHECK(target.status.code() == 1);
    CHECK(target.out.find("target stage \"x\" could not be found") != std::string::npos);
}

TEST_CASE("strata parse shows the automatic TARGETARCH for a global ARG redeclared in a stage") {
    strata::TempDir dir;
    strata::test::write_file(
        dir.path() + "/Dockerfile",
        "ARG TARGETARCH\nARG BUILDPLATFORM\nFROM busybox\nARG TARGETARCH\n"
        "ARG BUILDPLATFORM\nENV A=\"arch=$TARGETARCH build=$BUILDPLATFORM\"\n");
    auto r = strata::run_capture({strata::test::strata_binary(), "parse",
                                  dir.path() + "/Dockerfile", "--platform", "linux/arm64"});
    REQUIRE(r.status.success());
    CHECK(r.out.find("arch=arm64 build=linux/") != std::string::npos);
}
