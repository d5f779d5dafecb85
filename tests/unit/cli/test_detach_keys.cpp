// strata serve's detach keys (cli/serve/routes.hpp): dockerd's key syntax
// and the matcher that holds a prefix back until it knows.
#include "cli/serve/routes.hpp"

#include <catch2/catch.hpp>

using strata::cli::serve::DetachMatcher;
using strata::cli::serve::parse_detach_keys;

TEST_CASE("detach keys parse as dockerd's", "[detach]") {
    CHECK(parse_detach_keys("") == "\x10\x11"); // ctrl-p,ctrl-q
    CHECK(parse_detach_keys("ctrl-p,ctrl-q") == "\x10\x11");
    CHECK(parse_detach_keys("ctrl-x,y") == "\x18y");
    CHECK(parse_detach_keys("ctrl-@,ctrl-_") == std::string("\x00\x1f", 2));
    CHECK(parse_detach_keys("a") == "a");
    CHECK_THROWS_AS(parse_detach_keys("ctrl-1"), strata::api::HttpError);
    CHECK_THROWS_AS(parse_detach_keys("ab"), strata::api::HttpError);
    CHECK_THROWS_AS(parse_detach_keys("ctrl-p,"), strata::api::HttpError);
}

TEST_CASE("the matcher passes other bytes and stops at the keys", "[detach]") {
    DetachMatcher m{"\x10\x11"};
    CHECK(m.feed("ls\r") == "ls\r");
    CHECK_FALSE(m.detached);
    // A lone first key is held, then given back when the next byte differs.
    CHECK(m.feed("a\x10") == "a");
    CHECK(m.feed("b") == "\x10"
                         "b");
    // Split across reads.
    CHECK(m.feed("x\x10") == "x");
    CHECK_FALSE(m.detached);
    CHECK(m.feed("\x11"
                 "after")
              .empty());
    CHECK(m.detached);
}

TEST_CASE("a repeated first key keeps the match going", "[detach]") {
    DetachMatcher m{"\x10\x11"};
    CHECK(m.feed("\x10\x10\x11") == "\x10");
    CHECK(m.detached);
}
