// A whiteout and an entry of the same name in one layer: the whiteout hides
// what lower layers have, never what its own layer brings, in whichever
// order the tar holds them (OCI image spec, "Whiteouts"). A ".wh." that
// starts a directory name is no whiteout.
#include "layer_test_util.hpp"
#include "snapshot/layer_apply.hpp"
#include "tests/support/support.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <sys/stat.h>
#include <sys/sysmacros.h>

using namespace strata;
using namespace strata::test;
using snapshot::WhiteoutMode;

namespace {

bool is_whiteout(const std::string& p) {
    struct stat st {};
    return ::lstat(p.c_str(), &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

std::vector<LayerEntry> same_layer_entries() {
    return {
        {file_entry("f"), "file of this layer, before its whiteout"},
        {file_entry(".wh.f"), ""},
        {file_entry(".wh.g"), ""},
        {file_entry("g"), "file of this layer, after its whiteout"},
        {file_entry(".wh.d"), ""},
        {dir_entry("d"), ""},
        {file_entry("d/new"), "n"},
        {dir_entry("e"), ""},
        {file_entry("e/new"), "n"},
        {file_entry(".wh.e"), ""},
        {file_entry(".wh.gone"), ""},
        {file_entry("a.wh.b/c"), "c"},
        {file_entry(".wh.x/c"), "c"},
    };
}

} // namespace

TEST_CASE("same-layer whiteouts hide lower layers only (flatten)") {
    TempDir lower, out;
    write_file(lower.path() + "/f", "lower f");
    write_file(lower.path() + "/g", "lower g");
    write_file(lower.path() + "/d/old", "o");
    write_file(lower.path() + "/e/old", "o");
    write_file(lower.path() + "/gone", "o");
    write_file(lower.path() + "/x", "lower x");
    std::string layer = out.path() + "/l";
    write_layer(layer, same_layer_entries());
    apply(layer, lower.path(), WhiteoutMode::flatten);
    CHECK(fs::read_file(lower.path() + "/f") == "file of this layer, before its whiteout");
    CHECK(fs::read_file(lower.path() + "/g") == "file of this layer, after its whiteout");
    CHECK(fs::read_file(lower.path() + "/d/new") == "n");
    CHECK_FALSE(fs::exists(lower.path() + "/d/old"));
    CHECK(fs::read_file(lower.path() + "/e/new") == "n");
    CHECK_FALSE(fs::exists(lower.path() + "/e/old"));
    CHECK_FALSE(fs::exists(lower.path() + "/gone"));
    CHECK(fs::read_file(lower.path() + "/a.wh.b/c") == "c");
    // ".wh.x/c" is a file c in a directory named ".wh.x": x is not whited out.
    CHECK(fs::read_file(lower.path() + "/x") == "lower x");
    CHECK(fs::read_file(lower.path() + "/.wh.x/c") == "c");
}

TEST_CASE("same-layer whiteouts hide lower layers only (overlay form)") {
    TempDir snap, out;
    std::string layer = out.path() + "/l";
    write_layer(layer, same_layer_entries());
    auto stats = apply(layer, snap.path(), WhiteoutMode::overlay, true);
    CHECK(fs::read_file(snap.path() + "/f") == "file of this layer, before its whiteout");
    CHECK(fs::read_file(snap.path() + "/g") == "file of this layer, after its whiteout");
    // A directory of this layer over a lower one of the same name it whites
    // out: opaque, so nothing of the lower one shows through.
    CHECK(fs::read_file(snap.path() + "/d/new") == "n");
    CHECK(get_xattr(snap.path() + "/d", "user.overlay.opaque") == "y");
    CHECK(get_xattr(snap.path() + "/e", "user.overlay.opaque") == "y");
    CHECK(is_whiteout(snap.path() + "/gone"));
    CHECK(fs::read_file(snap.path() + "/a.wh.b/c") == "c");
    CHECK(fs::read_file(snap.path() + "/.wh.x/c") == "c");
    CHECK_FALSE(fs::exists(snap.path() + "/x"));
    CHECK(stats.whiteouts == 5);
}
