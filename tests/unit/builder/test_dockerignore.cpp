#include "builder/dockerfile/dockerignore.hpp"
#include "builder/dockerfile/error.hpp"
#include "tests/support/support.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <sys/stat.h>
#include <unistd.h>

using namespace strata::dockerfile;

TEST_CASE("patterns are cleaned like Docker's ignorefile.ReadAll") {
    auto ig =
        DockerIgnore::parse("# comment\n  \n/abs/path\n./rel//x/../y\n! keep \n #notcomment\n");
    CHECK(ig.patterns() == std::vector<std::string>{"abs/path", "rel/y", "!keep", "#notcomment"});
}

TEST_CASE("*, ? and [...] do not cross /") {
    auto ig = DockerIgnore::parse("*.o\na?c\n[0-9]*.log\ndir/*/deep\n");
    CHECK(ig.excluded("x.o"));
    CHECK_FALSE(ig.excluded("sub/x.o"));
    CHECK(ig.excluded("abc"));
    CHECK_FALSE(ig.excluded("a/c"));
    CHECK(ig.excluded("1.log"));
    CHECK_FALSE(ig.excluded("x1.log"));
    CHECK(ig.excluded("dir/a/deep"));
    CHECK(ig.excluded("dir/a/deep/file")); // a parent matches
    CHECK_FALSE(ig.excluded("dir/a/b/deep"));
}

TEST_CASE("** matches any number of directories") {
    auto ig = DockerIgnore::parse("**/*.tmp\nbuild/**\n**/node_modules\n");
    CHECK(ig.excluded("a.tmp"));
    CHECK(ig.excluded("x/y/z.tmp"));
    CHECK(ig.excluded("build/out"));
    CHECK_FALSE(ig.excluded("build")); // "build/**" does not match the directory itself
    CHECK(ig.excluded("node_modules"));
    CHECK(ig.excluded("a/b/node_modules/x"));
}

TEST_CASE("! exceptions re-include and the last matching pattern wins") {
    auto ig = DockerIgnore::parse("*.md\n!README.md\nREADME*\n!docs\n");
    CHECK(ig.excluded("CHANGES.md"));
    CHECK(ig.excluded("README.md"));
    auto ig2 = DockerIgnore::parse("docs\n!docs/keep.txt\n");
    CHECK(ig2.excluded("docs"));
    CHECK(ig2.excluded("docs/other"));
    CHECK_FALSE(ig2.excluded("docs/keep.txt"));
    CHECK(ig2.may_reinclude_under("docs"));
    auto ig3 = DockerIgnore::parse("docs\n!*.md\n");
    CHECK_FALSE(ig3.may_reinclude_under("docs"));
    CHECK_FALSE(DockerIgnore::parse("docs\n").may_reinclude_under("docs"));
    CHECK(DockerIgnore::parse("a\n!**/x\n").may_reinclude_under("a"));
}

TEST_CASE("paths are cleaned before matching and the root is never excluded") {
    auto ig = DockerIgnore::parse("*\n");
    CHECK(ig.excluded("./x"));
    CHECK(ig.excluded("a/../b"));
    CHECK_FALSE(ig.excluded("."));
    CHECK_FALSE(ig.excluded(""));
}

TEST_CASE("escapes and bad patterns") {
    auto ig = DockerIgnore::parse("a\\*b\n");
    CHECK(ig.excluded("a*b"));
    CHECK_FALSE(ig.excluded("axb"));
    for (const char* bad : {"[abc\n", "x\\\n", "[]\n", "!\n"}) {
        try {
            DockerIgnore::parse(std::string("ok\n") + bad, "ctx/.dockerignore");
            FAIL("no error for " << bad);
        } catch (const DockerfileError& e) {
            CHECK(e.line() == 2);
            CHECK(e.file() == "ctx/.dockerignore");
        }
    }
}

TEST_CASE("<Dockerfile>.dockerignore wins over the context's .dockerignore") {
    strata::TempDir dir;
    const std::string ctx = dir.path();
    CHECK_FALSE(DockerIgnore::load_for(ctx, ctx + "/Dockerfile"));
    strata::test::write_file(ctx + "/.dockerignore", "a\n");
    auto common = DockerIgnore::load_for(ctx, ctx + "/Dockerfile");
    REQUIRE(common);
    CHECK(common->excluded("a"));
    strata::test::write_file(ctx + "/sub/app.Dockerfile.dockerignore", "b\n");
    auto specific = DockerIgnore::load_for(ctx, ctx + "/sub/app.Dockerfile");
    REQUIRE(specific);
    CHECK(specific->excluded("b"));
    CHECK_FALSE(specific->excluded("a"));
}

TEST_CASE("a .dockerignore symlink is followed inside the context and refused out of it") {
    strata::TempDir dir;
    const std::string ctx = dir.path() + "/ctx";
    strata::test::write_file(ctx + "/lists/ignore", "secret\n");
    strata::test::write_file(dir.path() + "/outside", "secret\n");
    REQUIRE(::symlink("lists/ignore", (ctx + "/.dockerignore").c_str()) == 0);
    auto inside = DockerIgnore::load_for(ctx, ctx + "/Dockerfile");
    REQUIRE(inside);
    CHECK(inside->excluded("secret"));
    REQUIRE(::unlink((ctx + "/.dockerignore").c_str()) == 0);
    REQUIRE(::symlink("../outside", (ctx + "/.dockerignore").c_str()) == 0);
    CHECK_THROWS_WITH(DockerIgnore::load_for(ctx, ctx + "/Dockerfile"),
                      Catch::Matchers::Contains("is a symlink to " + dir.path() + "/outside") &&
                          Catch::Matchers::Contains("outside " + ctx));
}

TEST_CASE("an ignore file that cannot be read is an error, never nothing ignored") {
    strata::TempDir dir;
    const std::string ctx = dir.path();
    REQUIRE(::symlink("nowhere", (ctx + "/.dockerignore").c_str()) == 0);
    CHECK_THROWS_WITH(DockerIgnore::load_for(ctx, ctx + "/Dockerfile"),
                      Catch::Matchers::Contains("a symlink that leads nowhere"));
    REQUIRE(::unlink((ctx + "/.dockerignore").c_str()) == 0);
    REQUIRE(::mkdir((ctx + "/.dockerignore").c_str(), 0755) == 0);
    CHECK_THROWS_WITH(DockerIgnore::load_for(ctx, ctx + "/Dockerfile"),
                      Catch::Matchers::Contains("cannot read the ignore file"));
}
