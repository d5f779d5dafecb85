#include "builder/dockerfile/shell.hpp"

#include <catch2/catch.hpp>

using namespace strata::dockerfile;

TEST_CASE("every BuildKit substitution operator works") {
    Env env{{"A", "hello/world/x.tar.gz"}, {"E", ""}, {"N", "3"}};
    ShellExpander sh;
    auto w = [&](const char* s) { return sh.word(s, env.lookup()); };
    CHECK(w("${A#*/}") == "world/x.tar.gz");
    CHECK(w("${A##*/}") == "x.tar.gz");
    CHECK(w("${A%.*}") == "hello/world/x.tar");
    CHECK(w("${A%%.*}") == "hello/world/x");
    CHECK(w("${A/o/0}") == "hell0/world/x.tar.gz");
    CHECK(w("${A//o/0}") == "hell0/w0rld/x.tar.gz");
    CHECK(w("${U:-def}") == "def");
    CHECK(w("${E:-def}") == "def");
    CHECK(w("${E-def}") == "");
    CHECK(w("${N:+set}") == "set");
    CHECK(w("${E+set}") == "set");
    CHECK(w("${E:+set}") == "");
    CHECK_THROWS_AS(w("${U:?must be set}"), ExpansionError);
    CHECK_THROWS_AS(w("${E:?}"), ExpansionError);
    CHECK(w("${E?}") == "");
    CHECK(w("'$A' \"$N\" \\$N") == "$A 3 $N");
}

TEST_CASE("nesting deeper than the limit is an error, not a stack overflow") {
    std::string deep;
    for (int i = 0; i < 100000; ++i) {
        deep += "${X:-";
    }
    deep += "v";
    for (int i = 0; i < 100000; ++i) {
        deep += "}";
    }
    ShellExpander sh;
    Env env;
    try {
        sh.word(deep, env.lookup());
        FAIL("no error");
    } catch (const ExpansionError& e) {
        CHECK(std::string(e.what()).find("nested deeper than 64") != std::string::npos);
    }
    ShellExpander::Options o;
    o.max_depth = 200;
    std::string ok;
    for (int i = 0; i < 150; ++i) {
        ok += "${X:-";
    }
    ok += "v" + std::string(150, '}');
    CHECK(ShellExpander(o).word(ok, env.lookup()) == "v");
}

TEST_CASE("a result over the size limit is an error") {
    Env env{{"X", std::string(1000, 'a')}};
    ShellExpander::Options o;
    o.max_size = 100000;
    ShellExpander sh(o);
    std::string many;
    for (int i = 0; i < 200; ++i) {
        many += "$X";
    }
    CHECK_THROWS_AS(sh.word(many, env.lookup()), ExpansionError);
    // Replacement that grows quadratically is stopped too.
    CHECK_THROWS_AS(sh.word("${X//?/$X}", env.lookup()), ExpansionError);
    CHECK(sh.word("$X", env.lookup()).size() == 1000);
}

TEST_CASE("the backtick escape character works as the escape") {
    ShellExpander::Options o;
    o.escape = '`';
    Env env{{"V", "x"}};
    ShellExpander sh(o);
    CHECK(sh.word("`$V \\ $V", env.lookup()) == "$V \\ x");
}

TEST_CASE("used and unset variables are reported") {
    Env env{{"A", "1"}};
    auto r = ShellExpander().process("$A ${B:-x} $A", env.lookup());
    CHECK(r.word == "1 x 1");
    CHECK(r.used == std::set<std::string>{"A"});
    CHECK(r.unset == std::set<std::string>{"B"});
}

TEST_CASE("skip_unset leaves unset references as written") {
    ShellExpander::Options o;
    o.skip_unset = true;
    Env env{{"A", "1"}};
    CHECK(ShellExpander(o).word("$A $B ${C} ${D:-x}", env.lookup()) == "1 $B ${C} ${D:-x}");
}

TEST_CASE("Env keeps order and replaces in place") {
    Env env;
    env.set("B", "1");
    env.set("A", "2");
    env.set("B", "3");
    CHECK(env.to_list() == std::vector<std::string>{"B=3", "A=2"});
    env.unset("B");
    CHECK(env.to_list() == std::vector<std::string>{"A=2"});
    CHECK_FALSE(env.get("B"));
}
