#include "inspect_fixture.hpp"

#include "snapshot/analyze.hpp"

#include <catch2/catch.hpp>

using namespace strata;
using namespace strata::snapshot;

namespace {
std::string path_of(const LayerIndex& idx, std::uint32_t node) { return idx.trie().path(node); }
} // namespace

TEST_CASE("analyze computes dive's efficiency and wasted bytes on the reference image",
          "[analyze]") {
    auto idx = test::reference_image(false);
    auto a = analyze_layers(idx);
    // Paths: a/f 100+200+300 (min 100), a/g 50+0 (a whiteout of a file adds 0),
    // h 30+30 (chmod only), d/x 10, d/y 20, d/z 5, a/hl 0.
    CHECK(a.size_bytes == 210 + 230 + 305);
    CHECK(a.user_size_bytes == 230 + 305);
    CHECK(a.wasted_bytes == 600 + 50 + 60);
    CHECK(a.efficiency == Approx(165.0 / 745.0).epsilon(1e-12));
    CHECK(a.wasted_user_percent == Approx(710.0 / 535.0).epsilon(1e-12));
    REQUIRE(a.inefficiencies.size() == 3);
    CHECK(path_of(idx, a.inefficiencies[0].node) == "a/f");
    CHECK(a.inefficiencies[0].count == 3);
    CHECK(a.inefficiencies[0].cumulative == 600);
    CHECK(a.inefficiencies[0].min_size == 100);
    CHECK(path_of(idx, a.inefficiencies[1].node) == "h");
    CHECK(path_of(idx, a.inefficiencies[2].node) == "a/g");
    CHECK(a.inefficiencies[2].min_size == 0);

    // The exact figures: what each layer wrote that the final image does not show.
    REQUIRE(a.layers.size() == 3);
    CHECK(a.layers[0].hidden_bytes == 100 + 50 + 10 + 20 + 30);
    CHECK(a.layers[0].hidden_files == 5);
    CHECK(a.layers[1].hidden_bytes == 200);
    CHECK(a.layers[2].hidden_bytes == 0); // a/f is still seen, also through a/hl
    CHECK(a.hidden_bytes == 410);
    REQUIRE(a.largest.size() == 3);
    CHECK(path_of(idx, a.largest[0].node) == "a/f");
    CHECK(a.largest[0].size == 300);
    CHECK(a.largest[0].layer == 2);
    CHECK(path_of(idx, a.largest[1].node) == "h");
    CHECK(path_of(idx, a.largest[2].node) == "d/z");
}

TEST_CASE("a file written then deleted is entirely wasted", "[analyze]") {
    LayerIndex idx;
    test::add_layer(idx, "base", {{test::file("keep", 1000)}});
    test::add_layer(idx, "add", {{test::dir("tmp")}, {test::file("tmp/big", 4000)}});
    test::add_layer(idx, "rm", {{test::dir("tmp")}, {test::marker("tmp/.wh.big")}});
    auto a = analyze_layers(idx);
    CHECK(a.wasted_bytes == 4000);
    // keep: 1000 once; tmp/big: 4000 then 0 (the whiteout of a file); tmp is never a leaf
    CHECK(a.efficiency == Approx(1000.0 / 5000.0));
    CHECK(a.user_size_bytes == 4000);
    CHECK(a.wasted_user_percent == Approx(1.0));
    CHECK(a.layers[1].hidden_bytes == 4000);
    CHECK(a.hidden_bytes == 4000);
}

TEST_CASE("dive does not count a deleted directory or an opaque directory as waste",
          "[analyze]") {
    LayerIndex idx;
    test::add_layer(idx, "L1", {{test::dir("cache")}, {test::file("cache/a", 300)},
                                {test::file("cache/b", 700)}, {test::dir("o")},
                                {test::file("o/old", 50)}});
    test::add_layer(idx, "L2", {{test::marker(".wh.cache")}, {test::dir("o")},
                                {test::marker("o/.wh..wh..opq")}, {test::file("o/new", 5)}});
    auto a = analyze_layers(idx);
    // cache: visited once, by the whiteout, with the 1000 bytes below it.
    CHECK(a.wasted_bytes == 0);
    CHECK(a.efficiency == Approx(1.0));
    // strata's exact count sees all of it.
    CHECK(a.hidden_bytes == 1050);
    CHECK(a.layers[0].hidden_files == 3);
}

TEST_CASE("a whiteout of a directory only implied below adds nothing, as in dive", "[analyze]") {
    LayerIndex idx;
    test::add_layer(idx, "L1", {{test::dir("x")}, {test::file("x/f", 10)}});
    test::add_layer(idx, "L2", {{test::file("x/g", 20)}}); // x implied: dive empties its metadata
    test::add_layer(idx, "L3", {{test::marker(".wh.x")}});
    auto a = analyze_layers(idx);
    CHECK(a.wasted_bytes == 0);
    CHECK(a.efficiency == Approx(1.0));
    CHECK(a.hidden_bytes == 30);
}

TEST_CASE("one layer has no waste and an efficiency of 1", "[analyze]") {
    LayerIndex idx;
    test::add_layer(idx, "L1", {{test::file("a", 5)}});
    auto a = analyze_layers(idx);
    CHECK(a.efficiency == 1.0);
    CHECK(a.wasted_bytes == 0);
    CHECK(a.wasted_user_percent == 0.0);
}
