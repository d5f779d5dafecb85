#include "inspect_fixture.hpp"

#include "snapshot/layer_index.hpp"

#include <catch2/catch.hpp>

using namespace strata;
using namespace strata::snapshot;
using strata::test::dump;
using strata::test::reference_image;

TEST_CASE("ls after each layer follows whiteouts, opaque directories and hard links",
          "[layer_index]") {
    auto idx = reference_image();
    REQUIRE(idx.layer_count() == 3);
    CHECK(dump(MergedTree(idx, 0)) == "");
    CHECK(dump(MergedTree(idx, 1)) == "a/\na/f\na/g\nd/\nd/x\nd/y\nh\n");
    CHECK(dump(MergedTree(idx, 2)) == "a/\na/f\nd/\nd/x\nd/y\nh\n");
    CHECK(dump(MergedTree(idx, 3)) == "a/\na/f\na/hl\nd/\nd/z\nh\n");
    CHECK_THROWS_WITH(MergedTree(idx, 4), Catch::Contains("has 3 layers"));
}

TEST_CASE("the final version of a path and the record holding its bytes are found",
          "[layer_index]") {
    auto idx = reference_image();
    MergedTree t(idx, 3);
    auto f = t.resolve("/a/f", true);
    REQUIRE(f);
    auto rf = t.data_record(*f);
    REQUIRE(rf);
    CHECK(idx.record(*rf).layer == 2);
    CHECK(idx.record(*rf).size == 300);
    auto hl = t.resolve("a/hl", true);
    REQUIRE(hl);
    CHECK(t.type_of(*hl) == formats::EntryType::hardlink);
    REQUIRE(t.data_record(*hl) == rf);
    auto h = t.resolve("h", true);
    REQUIRE(h);
    CHECK(idx.record(*t.record_of(*h)).layer == 1);
    CHECK(idx.record(*t.record_of(*h)).mode == 0755);
    CHECK_FALSE(t.resolve("a/g", true));
    CHECK_FALSE(t.resolve("d/x", true));
    // After layer 2 the hard link does not exist yet and a/f is layer 2's.
    MergedTree t2(idx, 2);
    CHECK_FALSE(t2.resolve("a/hl", true));
    CHECK(idx.record(*t2.data_record(*t2.resolve("a/f", true))).size == 200);
}

TEST_CASE("per-layer changes count added, modified and removed paths", "[layer_index]") {
    auto idx = reference_image();
    MergedTree t(idx, 3);
    REQUIRE(t.changes().size() == 3);
    CHECK(t.changes()[0].added == 7);
    CHECK(t.changes()[0].modified == 0);
    CHECK(t.changes()[0].removed == 0);
    CHECK(t.changes()[1].added == 0);
    CHECK(t.changes()[1].modified == 2); // a/f rewritten, h chmod
    CHECK(t.changes()[1].removed == 1);  // a/g
    CHECK(t.changes()[2].added == 2);    // d/z, a/hl
    CHECK(t.changes()[2].modified == 1); // a/f
    CHECK(t.changes()[2].removed == 2);  // d/x, d/y hidden by the opaque d
}

TEST_CASE("a whiteout applies only to the layers below it", "[layer_index]") {
    LayerIndex idx;
    test::add_layer(idx, "L1", {{test::file("x", 1)}, {test::dir("dir")}, {test::file("dir/a", 1)}});
    // The layer deletes x from below and adds a new x; it deletes dir and
    // re-creates dir/b (an implicit parent).
    test::add_layer(idx, "L2", {{test::file("x", 2)}, {test::marker(".wh.x")},
                                {test::file("dir/b", 3)}, {test::marker(".wh.dir")}});
    MergedTree t(idx, 2);
    CHECK(dump(t) == "dir/\ndir/b\nx\n");
    CHECK(idx.record(*t.record_of(*t.resolve("x", true))).size == 2);
    CHECK_FALSE(t.record_of(*t.resolve("dir", true))); // implicit directory
}

TEST_CASE("an opaque directory keeps what its own layer adds", "[layer_index]") {
    LayerIndex idx;
    test::add_layer(idx, "L1", {{test::dir("d")}, {test::file("d/old", 1)}, {test::dir("d/sub")},
                                {test::file("d/sub/deep", 1)}});
    test::add_layer(idx, "L2", {{test::dir("d")}, {test::file("d/new", 1)},
                                {test::marker("d/.wh..wh..opq")}, {test::file("d/sub/other", 1)}});
    MergedTree t(idx, 2);
    CHECK(dump(t) == "d/\nd/new\nd/sub/\nd/sub/other\n");
}

TEST_CASE("a file replacing a directory removes the directory's subtree", "[layer_index]") {
    LayerIndex idx;
    test::add_layer(idx, "L1", {{test::dir("p")}, {test::file("p/q", 1)}});
    test::add_layer(idx, "L2", {{test::file("p", 4)}});
    test::add_layer(idx, "L3", {{test::file("p/r", 1)}}); // p becomes an implied directory again
    CHECK(dump(MergedTree(idx, 2)) == "p\n");
    CHECK(dump(MergedTree(idx, 3)) == "p/\np/r\n");
}

TEST_CASE("paths resolve through symlinks inside the image root", "[layer_index]") {
    LayerIndex idx;
    test::add_layer(idx, "L1", {{test::dir("usr")}, {test::dir("usr/bin")},
                                {test::file("usr/bin/sh", 9)}, {test::symlink("bin", "usr/bin")},
                                {test::symlink("abs", "/usr/bin/sh")},
                                {test::symlink("up", "../../../usr")},
                                {test::symlink("loop1", "loop2")}, {test::symlink("loop2", "loop1")}});
    MergedTree t(idx, 1);
    auto sh = t.resolve("/usr/bin/sh", true);
    REQUIRE(sh);
    CHECK(t.resolve("bin/sh", true) == sh);
    CHECK(t.resolve("/abs", true) == sh);
    CHECK(t.resolve("up/bin/sh", true) == sh); // ".." stops at the root
    CHECK(t.resolve("/../../usr/./bin//sh", true) == sh);
    CHECK(t.type_of(*t.resolve("abs", false)) == formats::EntryType::symlink);
    CHECK_FALSE(t.resolve("usr/bin/sh/x", true));
    CHECK_THROWS_WITH(t.resolve("loop1", true), Catch::Contains("too many levels of symbolic links"));
}

TEST_CASE("a later layer's entries go where a lower layer's symlinks lead", "[layer_index]") {
    LayerIndex idx;
    test::add_layer(idx, "L1", {{test::dir("var")}, {test::symlink("var/run", "/run")},
                                {test::dir("run")}, {test::dir("usr")}, {test::dir("usr/lib")},
                                {test::symlink("lib", "usr/lib")}, {test::symlink("up", "../..")},
                                {test::file("run/old", 1)}});
    test::add_layer(idx, "L2", {{test::file("var/run/x", 2)}, {test::file("lib/sub/y", 3)},
                                {test::file("up/z", 4)}, {test::marker("var/run/.wh.old")}});
    MergedTree t(idx, 2);
    CHECK(dump(t) == "lib\nrun/\nrun/x\nup\nusr/\nusr/lib/\nusr/lib/sub/\nusr/lib/sub/y\nvar/\nvar/run\nz\n");
    CHECK(t.type_of(*t.resolve("var/run", false)) == formats::EntryType::symlink);
    CHECK(idx.record(*t.record_of(*t.resolve("/var/run/x", true))).size == 2);
    CHECK(t.changes()[1].added == 4); // run/x, usr/lib/sub, usr/lib/sub/y, z; run/old removed
    CHECK(t.changes()[1].removed == 1);
}

TEST_CASE("unsafe entry names are rejected naming the layer and the entry", "[layer_index]") {
    LayerIndex idx;
    idx.begin_layer("sha256:abc");
    CHECK_THROWS_WITH(idx.add_entry(test::file("a/../../etc/passwd", 1)),
                      Catch::Contains("sha256:abc") && Catch::Contains("a/../../etc/passwd"));
    CHECK_THROWS_WITH(idx.add_entry(test::marker("dir/.wh.")), Catch::Contains("bad whiteout"));
    CHECK_THROWS_WITH(idx.add_entry(test::hardlink("x", "../y")), Catch::Contains("hard link"));
    idx.add_entry(test::marker("dir/.wh..wh.plnk")); // AUFS metadata: ignored
    idx.end_layer();
    CHECK(idx.records().empty());
}

TEST_CASE("the index of 100,000 files stays compact", "[layer_index]") {
    LayerIndex idx;
    idx.begin_layer("big");
    for (int d = 0; d < 100; ++d) {
        idx.add_entry(test::dir("usr/share/dir" + std::to_string(d)));
        for (int f = 0; f < 1000; ++f) {
            idx.add_entry(test::file("usr/share/dir" + std::to_string(d) + "/file-" +
                                     std::to_string(f) + ".txt", 10));
        }
    }
    idx.end_layer();
    MergedTree t(idx, 1);
    CHECK(t.children(*t.resolve("usr/share", true)).size() == 100);
    // ~100 bytes per file for records and trie together.
    CHECK(idx.memory_bytes() < 100'000 * 200);
}

TEST_CASE("mode strings read like ls -l", "[layer_index]") {
    CHECK(mode_string(formats::EntryType::dir, 0755) == "drwxr-xr-x");
    CHECK(mode_string(formats::EntryType::file, 04755) == "-rwsr-xr-x");
    CHECK(mode_string(formats::EntryType::dir, 01777) == "drwxrwxrwt");
    CHECK(mode_string(formats::EntryType::symlink, 0777) == "lrwxrwxrwx");
    CHECK(mode_string(formats::EntryType::file, 02644) == "-rw-r-Sr--");
}

TEST_CASE("deep paths, repeated entries and non-UTF-8 names are handled", "[layer_index]") {
    LayerIndex idx;
    std::string deep;
    for (int i = 0; i < 5000; ++i) {
        deep += (i ? "/d" : "d");
    }
    test::add_layer(idx, "L1", {{test::file(deep + "/leaf", 1)}, {test::file("dup", 1)},
                                {test::file("dup", 2)}, {test::file("caf\xe9", 3)}});
    MergedTree t(idx, 1);
    auto leaf = t.resolve(deep + "/leaf", true);
    REQUIRE(leaf);
    std::size_t n = 0;
    t.walk(PathTrie::k_root, [&](std::uint32_t) { ++n; });
    CHECK(n == 1 + 5000 + 1 + 1 + 1);
    CHECK(idx.record(*t.record_of(*t.resolve("dup", true))).size == 2); // the later entry wins
    CHECK(t.resolve("caf\xe9", true));
    // Deleting the top of the deep chain removes all of it.
    test::add_layer(idx, "L2", {{test::marker(".wh.d")}});
    MergedTree t2(idx, 2);
    CHECK(dump(t2) == "caf\xe9\ndup\n");
    CHECK(t2.changes()[1].removed == 5001);
}
