// A later layer's path through a symlink a lower layer brought: applied as
// Docker (containerd's applier) does, over the image's root, so Debian's
// `var/run -> /run` sends layer 2's `var/run/x` to `/run/x`. The snapshots
// (overlay form), the flattened root and `strata verify` agree.
#include "formats/media_types.hpp"
#include "snapshot/flatten.hpp"
#include "snapshot/store.hpp"
#include "tests/support/support.hpp"
#include "tests/unit/snapshot/layer_test_util.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace strata;
using namespace strata::snapshot;

namespace {

formats::TarEntry owned_dir(const std::string& path, std::uint32_t mode, std::uint32_t uid) {
    formats::TarEntry e = test::dir_entry(path, mode);
    e.uid = uid;
    e.gid = uid;
    return e;
}

struct Image2 {
    TempDir t;
    Store store{t.path() + "/store"};
    Image img;
    std::vector<std::string> dirs;

    // Layer 1 as Debian has it (var/run -> /run) and more links; unpacked.
    explicit Image2(const std::vector<test::LayerEntry>& l2) : Image2(debian_like(), l2) {
        dirs = store.ensure_snapshots(img);
    }

    // Two layers in the store, not unpacked yet.
    Image2(const std::vector<test::LayerEntry>& l1, const std::vector<test::LayerEntry>& l2) {
        auto d1 = test::write_layer(t.path() + "/l1.tar", l1);
        auto d2 = test::write_layer(t.path() + "/l2.tar", l2);
        formats::ImageConfig config;
        config.architecture = "amd64";
        config.os = "linux";
        config.diff_ids = {d1.diff_id, d2.diff_id};
        auto m =
            store.put_image(config, {add(t.path() + "/l1.tar", d1), add(t.path() + "/l2.tar", d2)});
        store.add_untagged(m);
        img = store.load(m);
    }

    static std::vector<test::LayerEntry> debian_like() {
        return {
            {test::dir_entry("var"), ""},
            {test::symlink_entry("var/run", "/run"), ""},
            {owned_dir("run", 0710, 5), ""},
            {test::file_entry("run/lower"), "lower"},
            {test::dir_entry("usr"), ""},
            {owned_dir("usr/lib", 0751, 7), ""},
            {test::symlink_entry("lib", "usr/lib"), ""},
            {test::symlink_entry("up", "../../.."), ""},
            {test::dir_entry("opq"), ""},
            {test::symlink_entry("opq/link", "/run"), ""},
        };
    }

    formats::Descriptor add(const std::string& path, const formats::LayerDigests& d) {
        formats::Descriptor ld;
        ld.media_type = formats::media::oci_layer;
        ld.digest = store.ingest(fs::open(path, O_RDONLY).get());
        ld.size = static_cast<std::int64_t>(d.blob_size);
        return ld;
    }

    std::string top(const std::string& rel) const { return dirs.back() + "/" + rel; }

    std::string problems() const {
        std::string all;
        for (const auto& p : store.verify_all().problems) {
            all += p.what + "\n";
        }
        return all;
    }
};

} // namespace

TEST_CASE("a later layer writes through a lower layer's absolute and relative symlinks") {
    Image2 f({
        {test::file_entry("var/run/x"), "through var/run"},
        {test::file_entry("lib/y"), "through lib"},
        {test::file_entry("up/z"), "through up"},
    });
    // The snapshot of layer 2 has the files where the links lead; the links'
    // directories are not copied up, the directories written into are, with
    // their owner and mode.
    CHECK(fs::read_file(f.top("run/x")) == "through var/run");
    CHECK(fs::read_file(f.top("usr/lib/y")) == "through lib");
    CHECK(fs::read_file(f.top("z")) == "through up");
    CHECK_FALSE(fs::exists(f.top("var")));
    CHECK_FALSE(fs::exists(f.top("lib")));
    struct stat st = fs::lstat(f.top("run"));
    CHECK((st.st_mode & 07777) == 0710);
    if (::geteuid() == 0) {
        CHECK(st.st_uid == 5);
        CHECK(fs::lstat(f.top("usr/lib")).st_uid == 7);
    }
    CHECK((fs::lstat(f.top("usr/lib")).st_mode & 07777) == 0751);
    INFO(f.problems());
    CHECK(f.problems().empty());

    // The flattened root agrees.
    std::string flat = f.t.path() + "/flat";
    fs::mkdirs(flat);
    flatten_image(f.store, f.img, flat);
    CHECK(fs::read_file(flat + "/run/x") == "through var/run");
    CHECK(fs::read_file(flat + "/run/lower") == "lower");
    CHECK(fs::read_file(flat + "/usr/lib/y") == "through lib");
    CHECK(fs::read_file(flat + "/z") == "through up");
    CHECK(S_ISLNK(fs::lstat(flat + "/var/run").st_mode));
    CHECK((fs::lstat(flat + "/run").st_mode & 07777) == 0710);
}

TEST_CASE("an explicit directory entry replaces a lower layer's symlink") {
    Image2 f({
        {test::dir_entry("var/run", 0755), ""},
        {test::file_entry("var/run/x"), "a real directory now"},
    });
    CHECK(S_ISDIR(fs::lstat(f.top("var/run")).st_mode));
    CHECK(fs::read_file(f.top("var/run/x")) == "a real directory now");
    CHECK_FALSE(fs::exists(f.top("run")));
    INFO(f.problems());
    CHECK(f.problems().empty());
}

TEST_CASE("a whited-out or opaque lower directory is not looked through") {
    // opq/link (a lower symlink) is hidden by the opaque marker: opq/link/f
    // makes a directory opq/link in this layer instead of writing into run/.
    Image2 f({
        {test::file_entry("opq/.wh..wh..opq"), ""},
        {test::file_entry("opq/link/f"), "in opq"},
    });
    CHECK(S_ISDIR(fs::lstat(f.top("opq/link")).st_mode));
    CHECK(fs::read_file(f.top("opq/link/f")) == "in opq");
    CHECK_FALSE(fs::exists(f.top("run")));
}

TEST_CASE("a lower symlink to a missing directory is refused as Docker's applier does") {
    Image2 f({{test::symlink_entry("dangling", "/nowhere"), ""}},
             {{test::file_entry("dangling/x"), "x"}});
    CHECK_THROWS_WITH(
        f.store.ensure_snapshots(f.img),
        Catch::Contains("entry \"dangling/x\"") &&
            Catch::Contains("\"dangling\" -> \"/nowhere\", whose target does not exist"));
    CHECK_FALSE(fs::exists(f.t.path() + "/nowhere"));
}
