// The rootless id map: parsing /etc/subuid and /etc/subgid, and the maps
// built from them (no privileges needed).
#include "runner/idmap.hpp"

#include <catch2/catch.hpp>

using namespace strata::runner;

TEST_CASE("subordinate ranges are found by user name or numeric id, in file order") {
    const char* file = "# comment\n"
                       "alice:100000:65536\n"
                       "bob:165536:65536\n"
                       "1001:300000:10\n"
                       "alice:500000:1000\n"
                       "alice:bad:10\n"
                       "alice:1:\n"
                       "alice:600000:0\n"
                       "alice\n";
    auto a = subordinate_ranges(file, "alice", 1000);
    REQUIRE(a.size() == 2);
    CHECK(a[0].start == 100000);
    CHECK(a[0].count == 65536);
    CHECK(a[1].start == 500000);
    CHECK(a[1].count == 1000);
    auto b = subordinate_ranges(file, "", 1001);
    REQUIRE(b.size() == 1);
    CHECK(b[0].start == 300000);
    CHECK(subordinate_ranges(file, "carol", 1002).empty());
    CHECK(subordinate_ranges("", "alice", 1000).empty());
    // A prefix of a name is not the name.
    CHECK(subordinate_ranges("alicex:1:2\n", "alice", 7).empty());
}

TEST_CASE("the full map puts the caller at 0 and the ranges from 1 on, as podman") {
    auto m = make_id_map(1000, 1000, {{100000, 65536}, {500000, 1000}}, {{200000, 65536}},
                         "/usr/bin/newuidmap", "/usr/bin/newgidmap");
    CHECK(m.full());
    CHECK(id_map_text(m.uid) == "0 1000 1\n1 100000 65536\n65537 500000 1000\n");
    CHECK(id_map_text(m.gid) == "0 1000 1\n1 200000 65536\n");
    CHECK(m.uid_count() == 66537);
    CHECK(m.gid_count() == 65537);
}

TEST_CASE("without ranges or helpers only the caller's own ids are mapped, at 0") {
    for (auto m : {make_id_map(1000, 100, {}, {{200000, 10}}, "a", "b"),
                   make_id_map(1000, 100, {{100000, 10}}, {}, "a", "b"),
                   make_id_map(1000, 100, {{100000, 10}}, {{200000, 10}}, "", "b"),
                   make_id_map(1000, 100, {{100000, 10}}, {{200000, 10}}, "a", "")}) {
        CHECK_FALSE(m.full());
        CHECK(id_map_text(m.uid) == "0 1000 1\n");
        CHECK(id_map_text(m.gid) == "0 100 1\n");
        CHECK(m.uid_count() == 1);
    }
}
