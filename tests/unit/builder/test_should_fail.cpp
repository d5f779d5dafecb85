// The should-fail corpus: each should-fail/*.Dockerfile carries a line
// "# expect LINE:COLUMN MESSAGE" and must fail in parse() or plan() with a
// DockerfileError at exactly that place whose message contains MESSAGE and which
// shows the offending line. Fuzz crashes join this folder.
#include "builder/dockerfile/error.hpp"
#include "builder/dockerfile/plan.hpp"
#include "tests/support/support.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>

using namespace strata::dockerfile;

TEST_CASE("every should-fail Dockerfile fails at its expected line and column") {
    const std::string dir = strata::test::source_dir() + "/tests/unit/builder/should-fail";
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    REQUIRE(files.size() >= 18);
    for (const auto& f : files) {
        DYNAMIC_SECTION(f.filename().string()) {
            const std::string src = strata::test::read_file(f.string());
            const auto at = src.find("# expect ");
            REQUIRE(at != std::string::npos);
            const std::string spec = src.substr(at + 9, src.find('\n', at) - at - 9);
            const auto colon = spec.find(':');
            const auto space = spec.find(' ');
            const int line = std::stoi(spec.substr(0, colon));
            const int column = std::stoi(spec.substr(colon + 1, space - colon - 1));
            const std::string message = spec.substr(space + 1);
            try {
                plan(parse(src, f.string()));
                FAIL("no error");
            } catch (const DockerfileError& e) {
                INFO(e.what());
                CHECK(e.file() == f.string());
                CHECK(e.line() == line);
                CHECK(e.column() == column);
                CHECK(e.message().find(message) != std::string::npos);
                CHECK_FALSE(e.text().empty());
                CHECK(std::string(e.what()).find(e.text().substr(0, 40)) != std::string::npos);
            }
        }
    }
}
