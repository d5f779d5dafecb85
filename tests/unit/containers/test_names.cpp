#include "containers/names.hpp"
#include "util/error.hpp"

#include <catch2/catch.hpp>

#include <set>

using namespace strata::containers;

TEST_CASE("container ids are 64 hex digits, unique, never all digits in the short form",
          "[names]") {
    std::set<std::string> seen;
    for (int i = 0; i < 200; ++i) {
        std::string id = new_id();
        REQUIRE(id.size() == 64);
        REQUIRE(id.find_first_not_of("0123456789abcdef") == std::string::npos);
        REQUIRE(short_id(id).find_first_not_of("0123456789") != std::string::npos);
        REQUIRE(short_id(id) == id.substr(0, 12));
        REQUIRE(seen.insert(id).second);
    }
}

TEST_CASE("container names follow Docker's rule", "[names]") {
    CHECK(valid_name("web"));
    CHECK(valid_name("/web"));
    CHECK(valid_name("a1_b.c-d"));
    CHECK_FALSE(valid_name("a"));
    CHECK_FALSE(valid_name(""));
    CHECK_FALSE(valid_name("-web"));
    CHECK_FALSE(valid_name("_web"));
    CHECK_FALSE(valid_name("we b"));
    CHECK_FALSE(valid_name("web/x"));
    CHECK_THROWS_WITH(check_name("a b"),
                      "Invalid container name (a b), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
    for (int i = 0; i < 50; ++i) {
        CHECK(valid_name(random_name()));
    }
}
