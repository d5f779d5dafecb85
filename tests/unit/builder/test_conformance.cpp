// Conformance with BuildKit's own test data (tests/data/buildkit-*; see
// /work/shared/conformance/README.md sections 1 and 2).
#include "builder/dockerfile/error.hpp"
#include "builder/dockerfile/parser.hpp"
#include "builder/dockerfile/shell.hpp"
#include "tests/support/support.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;
using namespace strata::dockerfile;

namespace {

std::string data_dir() {
    return strata::test::source_dir() + "/tests/data";
}

std::vector<fs::path> case_dirs(const std::string& dir) {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir)) {
        if (e.is_directory()) {
            out.push_back(e.path());
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string trim(std::string_view s) {
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) {
        return {};
    }
    const auto e = s.find_last_not_of(" \t\r\n");
    return std::string(s.substr(b, e - b + 1));
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::size_t b = 0;
    for (;;) {
        auto e = s.find(sep, b);
        if (e == std::string::npos) {
            out.push_back(s.substr(b));
            return out;
        }
        out.push_back(s.substr(b, e - b));
        b = e + 1;
    }
}

} // namespace

TEST_CASE("every positive BuildKit parser case dumps exactly its result file") {
    const auto dirs = case_dirs(data_dir() + "/buildkit-parser/testfiles");
    REQUIRE(dirs.size() == 33);
    for (const auto& dir : dirs) {
        DYNAMIC_SECTION(dir.filename().string()) {
            const std::string src = strata::test::read_file((dir / "Dockerfile").string());
            const std::string expected = strata::test::read_file((dir / "result").string());
            ParseResult r = parse(src, (dir / "Dockerfile").string());
            CHECK(dump(r.root) + "\n" == expected);
        }
    }
}

TEST_CASE("every negative BuildKit parser case is rejected") {
    const auto dirs = case_dirs(data_dir() + "/buildkit-parser/testfiles-negative");
    REQUIRE(dirs.size() == 4);
    for (const auto& dir : dirs) {
        DYNAMIC_SECTION(dir.filename().string()) {
            const std::string src = strata::test::read_file((dir / "Dockerfile").string());
            CHECK_THROWS_AS(parse(src, (dir / "Dockerfile").string()), DockerfileError);
        }
    }
}

TEST_CASE("testfile-line gives BuildKit's physical line ranges") {
    const std::string src =
        strata::test::read_file(data_dir() + "/buildkit-parser/testfile-line/Dockerfile");
    ParseResult r = parse(src);
    CHECK(r.root.start_line == 5);
    CHECK(r.root.end_line == 31);
    REQUIRE(r.root.children.size() == 3);
    CHECK(r.root.children[0].start_line == 5);
    CHECK(r.root.children[0].end_line == 5);
    CHECK(r.root.children[1].start_line == 11);
    CHECK(r.root.children[1].end_line == 12);
    CHECK(r.root.children[2].start_line == 17);
    CHECK(r.root.children[2].end_line == 31);
}

TEST_CASE("every envVarTest case expands as BuildKit expands it on Linux") {
    std::ifstream in(data_dir() + "/buildkit-shell/envVarTest");
    REQUIRE(in);
    Env env{{"PWD", "/home"}, {"SHELL", "bash"}, {"KOREAN", "한국어"}, {"NULL", ""}};
    ShellExpander sh;
    std::string line;
    int cases = 0;
    int lineno = 0;
    while (std::getline(in, line)) {
        ++lineno;
        if (line.starts_with("#")) {
            continue;
        }
        if (trim(line).empty()) {
            continue;
        }
        auto fields = split(line, '|');
        REQUIRE(fields.size() == 3);
        const std::string platform = trim(fields[0]);
        const std::string input = trim(fields[1]);
        const std::string expected = trim(fields[2]);
        REQUIRE((platform == "A" || platform == "U" || platform == "W"));
        if (platform == "W") {
            continue;
        }
        ++cases;
        std::string actual;
        try {
            actual = sh.word(input, env.lookup());
        } catch (const ExpansionError&) {
            actual = "error";
        }
        INFO("envVarTest:" << lineno << ": " << input);
        CHECK(actual == expected);
    }
    CHECK(cases == 228);
}

TEST_CASE("every wordsTest case splits into BuildKit's words") {
    std::ifstream in(data_dir() + "/buildkit-shell/wordsTest");
    REQUIRE(in);
    Env env;
    ShellExpander sh;
    std::string line;
    int cases = 0;
    int lineno = 0;
    while (std::getline(in, line)) {
        ++lineno;
        if (line.starts_with("#")) {
            continue;
        }
        if (line.starts_with("ENV ")) {
            std::string kv = line.substr(3);
            kv.erase(0, kv.find_first_not_of(' '));
            const auto eq = kv.find('=');
            REQUIRE(eq != std::string::npos);
            env.set(kv.substr(0, eq), kv.substr(eq + 1));
            continue;
        }
        auto fields = split(line, '|');
        REQUIRE(fields.size() == 2);
        const std::string input = trim(fields[0]);
        std::string want = fields[1];
        want.erase(0, want.find_first_not_of(" \t"));
        const auto expected = split(want, ',');
        ++cases;
        std::vector<std::string> actual;
        try {
            actual = sh.words(input, env.lookup());
        } catch (const ExpansionError&) {
            actual = {"error"};
        }
        INFO("wordsTest:" << lineno << ": " << input);
        CHECK(actual == expected);
    }
    CHECK(cases == 24);
}
