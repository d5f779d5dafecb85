// layerfs checks that need no privileges: option parsing, spec validation,
// mount records.
#include "layerfs/mount.hpp"
#include "layerfs/overlay.hpp"
#include "layerfs/union_fs.hpp"
#include "tests/support/support.hpp"
#include "util/child.hpp"
#include "util/error.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <cerrno>

using namespace strata;

TEST_CASE("layer lists split on colons, with backslash escapes, top-most first") {
    using V = std::vector<std::string>;
    CHECK(layerfs::split_layer_list("/a:/b:/c") == V{"/a", "/b", "/c"});
    CHECK(layerfs::split_layer_list("/with\\:colon:/b") == V{"/with:colon", "/b"});
    CHECK(layerfs::split_layer_list("/back\\\\slash") == V{"/back\\slash"});
    CHECK(layerfs::split_layer_list("/a::/b:") == V{"/a", "/b"});
    CHECK(layerfs::split_layer_list("").empty());
}

TEST_CASE("drivers are named overlay and fuse; anything else is a usage error") {
    CHECK(layerfs::parse_driver("overlay") == layerfs::Driver::overlay);
    CHECK(layerfs::parse_driver("fuse") == layerfs::Driver::fuse);
    CHECK(std::string(layerfs::driver_name(layerfs::Driver::fuse)) == "fuse");
    CHECK_THROWS_AS(layerfs::parse_driver("aufs"), UsageError);
}

TEST_CASE("a mount without layers or with an upper but no work dir is refused before mounting") {
    TempDir t;
    layerfs::MountSpec spec;
    CHECK_THROWS_AS(layerfs::mount(spec, t.path()), UsageError);
    spec.lowers = {t.path()};
    spec.upper = t.path();
    CHECK_THROWS_AS(layerfs::mount(spec, t.path()), UsageError);
    CHECK_THROWS_AS(layerfs::mount_overlay({{}, "", ""}, t.path()), UsageError);
}

TEST_CASE("a missing lower layer is reported by path") {
    TempDir t;
    try {
        layerfs::mount_overlay({{t.path() + "/nope"}, "", ""}, t.path());
        FAIL("mount_overlay accepted a missing layer");
    } catch (const SysError& e) {
        CHECK(std::string(e.what()).find(t.path() + "/nope") != std::string::npos);
    }
}

TEST_CASE("list_mounts of a missing state directory is empty") {
    TempDir t;
    CHECK(layerfs::list_mounts(t.path() + "/state").empty());
    CHECK_FALSE(layerfs::maybe_mount_record(t.path() + "/state", t.path()).has_value());
}

TEST_CASE("unmounting a directory that is neither mounted nor recorded fails with EINVAL") {
    TempDir t;
    try {
        layerfs::unmount(t.path(), t.path() + "/state");
        FAIL("unmount succeeded");
    } catch (const SysError& e) {
        CHECK(e.error_code() == EINVAL);
    }
}

TEST_CASE("strata-overlay rejects a command line without lowerdir or mountpoint") {
    auto r = run_capture({STRATA_OVERLAY_PROGRAM}, true);
    CHECK(r.status.exited());
    CHECK(r.status.code() == 2);
    TempDir t;
    r = run_capture({STRATA_OVERLAY_PROGRAM, "-o", "upperdir=/x", t.path()}, true);
    CHECK(r.status.code() == 2);
    CHECK(r.out.find("lowerdir") != std::string::npos);
    r = run_capture({STRATA_OVERLAY_PROGRAM, "-o", "lowerdir=" + t.path() + ",upperdir=" + t.path(),
                     "-f", t.path()},
                    true);
    CHECK(r.status.code() == 2);
    CHECK(r.out.find("workdir") != std::string::npos);
}
