// `strata verify` on unpacked snapshots: every kind of damage to a snapshot
// is reported with the chain ID and the path, and removing the snapshot
// repairs it (ensure_snapshots unpacks it again).
#include "formats/media_types.hpp"
#include "snapshot/store.hpp"
#include "tests/support/support.hpp"
#include "tests/unit/snapshot/layer_test_util.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

using namespace strata;
using namespace strata::snapshot;
using formats::Digest;
using formats::EntryType;
using formats::TarEntry;

namespace {

formats::Descriptor add_layer(Store& store, const std::string& path,
                              const formats::LayerDigests& d) {
    formats::Descriptor ld;
    ld.media_type = formats::media::oci_layer;
    ld.digest = store.ingest(fs::open(path, O_RDONLY).get());
    ld.size = static_cast<std::int64_t>(d.blob_size);
    return ld;
}

TarEntry node(const std::string& path, EntryType t, std::uint32_t major, std::uint32_t minor) {
    TarEntry e = test::file_entry(path, 0640);
    e.type = t;
    e.devmajor = major;
    e.devminor = minor;
    return e;
}

struct Fixture {
    TempDir t;
    Store store{t.path() + "/store"};
    Image img;
    std::vector<std::string> dirs;

    Fixture() {
        // Layer 1: what layer 2 deletes, hides and hard-links to.
        std::vector<test::LayerEntry> l1 = {
            {test::dir_entry("etc"), ""}, {test::file_entry("etc/old"), "old"},
            {test::dir_entry("var"), ""}, {test::file_entry("var/lower-file"), "lower file\n"},
            {test::dir_entry("opq"), ""}, {test::file_entry("opq/hidden"), "hidden"},
        };
        // Layer 2: one of every kind of entry.
        TarEntry owned = test::file_entry("etc/owned", 04755);
        owned.uid = 1000;
        owned.gid = 50;
        TarEntry xattr = test::file_entry("etc/xattr");
        xattr.xattrs["user.comment"] = "hello";
        xattr.xattrs["security.capability"] = std::string(
            "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20);
        TarEntry replaced = test::file_entry("etc/replaced");
        std::vector<test::LayerEntry> l2 = {
            {test::dir_entry("etc", 0750), ""},
            {test::file_entry("etc/passwd"), "root:x:0:0::/root:/bin/sh\n"},
            {owned, "#!/bin/sh\n"},
            {xattr, "x"},
            {test::symlink_entry("etc/link", "passwd"), ""},
            {test::hardlink_entry("etc/hard", "etc/passwd"), ""},
            {test::hardlink_entry("var/up", "var/lower-file"), ""},
            {node("dev/null", EntryType::chardev, 1, 3), ""},
            {node("dev/sda", EntryType::blockdev, 8, 0), ""},
            {node("run/fifo", EntryType::fifo, 0, 0), ""},
            {test::file_entry("etc/.wh.old"), ""},
            {test::dir_entry("opq"), ""},
            {test::file_entry("opq/.wh..wh..opq"), ""},
            {test::file_entry("opq/new"), "new"},
            {replaced, "first"},
            {test::dir_entry("gone"), ""},
            {test::file_entry("gone/child"), "child"},
            {test::file_entry("gone"), "now a file"},
            {replaced, "second"},
        };
        auto d1 = test::write_layer(t.path() + "/l1.tar", l1, formats::Compression::gzip);
        auto d2 = test::write_layer(t.path() + "/l2.tar", l2, formats::Compression::zstd);
        formats::ImageConfig config;
        config.architecture = "amd64";
        config.os = "linux";
        config.diff_ids = {d1.diff_id, d2.diff_id};
        auto m = store.put_image(config, {add_layer(store, t.path() + "/l1.tar", d1),
                                          add_layer(store, t.path() + "/l2.tar", d2)});
        store.add_untagged(m);
        img = store.load(m);
        dirs = store.ensure_snapshots(img);
    }

    Digest top() const { return img.chain_ids().back(); }
    std::string at(const std::string& rel) const { return dirs.back() + "/" + rel; }

    std::vector<VerifyProblem> problems() const { return store.verify(); }
};

void check_one_problem(const Fixture& f, const std::string& path, const std::string& what) {
    auto problems = f.problems();
    INFO("expected a problem at " << path << ": " << what);
    for (const auto& p : problems) {
        INFO(p.what);
        CHECK(p.snapshot);
    }
    REQUIRE(problems.size() == 1);
    CHECK_THAT(problems[0].what,
               Catch::Contains("snapshot " + f.top().str() + ": " + path + ": ") &&
                   Catch::Contains(what));
    REQUIRE(problems[0].snapshot);
    CHECK(*problems[0].snapshot == f.top());
}

} // namespace

TEST_CASE("snapshots just unpacked verify clean") {
    Fixture f;
    auto r = f.store.verify_all();
    std::string all;
    for (const auto& p : r.problems) {
        all += p.what + "\n";
    }
    INFO(all);
    CHECK(r.problems.empty());
    CHECK(r.snapshots == 2);
    CHECK(r.snapshots_skipped == 0);
    // The fixture has what it claims.
    struct stat st;
    REQUIRE(::lstat(f.at("etc/old").c_str(), &st) == 0);
    CHECK((S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)));
    CHECK(test::get_xattr(f.at("opq"), "trusted.overlay.opaque") == "y");
    CHECK(fs::read_file(f.at("var/lower-file")) == "lower file\n");
    CHECK(fs::read_file(f.at("etc/replaced")) == "second");
    CHECK(fs::read_file(f.at("gone")) == "now a file");
}

TEST_CASE("every kind of snapshot damage is reported with the chain ID and the path") {
    Fixture f;
    REQUIRE(f.problems().empty());
    SECTION("truncated file") {
        REQUIRE(::truncate(f.at("etc/passwd").c_str(), 4) == 0);
        // etc/hard is the same inode: both are reported.
        auto problems = f.problems();
        REQUIRE(problems.size() == 2);
        CHECK_THAT(problems[0].what, Catch::Contains("/etc/hard: size is 4, the layer has 26"));
        CHECK_THAT(problems[1].what, Catch::Contains("/etc/passwd: size is 4, the layer has 26"));
    }
    SECTION("file edited in place, same size") {
        test::write_file(f.at("opq/new"), "NEW");
        check_one_problem(f, "/opq/new", "content hashes to sha256:");
    }
    SECTION("hard link broken into a copy") {
        std::string content = fs::read_file(f.at("etc/hard"));
        REQUIRE(::unlink(f.at("etc/hard").c_str()) == 0);
        test::write_file(f.at("etc/hard"), content);
        REQUIRE(::chmod(f.at("etc/hard").c_str(), 0644) == 0);
        check_one_problem(f, "/etc/hard", "is not a hard link to /etc/passwd");
    }
    SECTION("mode") {
        REQUIRE(::chmod(f.at("etc/owned").c_str(), 0755) == 0);
        check_one_problem(f, "/etc/owned", "mode is 0755, the layer has 4755");
    }
    SECTION("directory mode") {
        REQUIRE(::chmod(f.at("etc").c_str(), 0755) == 0);
        check_one_problem(f, "/etc", "mode is 0755, the layer has 0750");
    }
    SECTION("owner") {
        REQUIRE(::lchown(f.at("etc/link").c_str(), 7, 7) == 0);
        check_one_problem(f, "/etc/link", "owner is 7:7, the layer has 0:0");
    }
    SECTION("symlink target") {
        REQUIRE(::unlink(f.at("etc/link").c_str()) == 0);
        REQUIRE(::symlink("/etc/shadow", f.at("etc/link").c_str()) == 0);
        check_one_problem(f, "/etc/link",
                          "symlink target is \"/etc/shadow\", the layer has \"passwd\"");
    }
    SECTION("device numbers") {
        REQUIRE(::unlink(f.at("dev/sda").c_str()) == 0);
        REQUIRE(::mknod(f.at("dev/sda").c_str(), S_IFBLK | 0640, makedev(8, 1)) == 0);
        check_one_problem(f, "/dev/sda", "device is 8:1, the layer has 8:0");
    }
    SECTION("type") {
        REQUIRE(::unlink(f.at("run/fifo").c_str()) == 0);
        test::write_file(f.at("run/fifo"), "");
        check_one_problem(f, "/run/fifo", "is a regular file, the layer has a FIFO");
    }
    SECTION("xattr changed, removed, added") {
        test::set_xattr(f.at("etc/xattr"), "user.comment", "bye");
        REQUIRE(::removexattr(f.at("etc/xattr").c_str(), "security.capability") == 0);
        test::set_xattr(f.at("etc/passwd"), "user.extra", "1");
        auto problems = f.problems();
        std::string all;
        for (const auto& p : problems) {
            all += p.what + "\n";
        }
        INFO(all);
        CHECK(problems.size() == 4); // etc/hard shares etc/passwd's inode
        CHECK_THAT(all, Catch::Contains(
                            "/etc/xattr: xattr user.comment is \"bye\", the layer has \"hello\""));
        CHECK_THAT(all, Catch::Contains("/etc/xattr: xattr security.capability is missing"));
        CHECK_THAT(
            all, Catch::Contains("/etc/passwd: has xattr user.extra that the layer does not set"));
    }
    SECTION("missing entry") {
        REQUIRE(::unlink(f.at("etc/xattr").c_str()) == 0);
        check_one_problem(f, "/etc/xattr", "missing (the layer has it)");
    }
    SECTION("whiteout removed") {
        REQUIRE(::unlink(f.at("etc/old").c_str()) == 0);
        check_one_problem(f, "/etc/old", "whiteout is missing");
    }
    SECTION("whiteout replaced by a file") {
        REQUIRE(::unlink(f.at("etc/old").c_str()) == 0);
        test::write_file(f.at("etc/old"), "old");
        check_one_problem(f, "/etc/old", "is a regular file, the layer has a whiteout");
    }
    SECTION("opaque mark removed") {
        REQUIRE(::removexattr(f.at("opq").c_str(), "trusted.overlay.opaque") == 0);
        check_one_problem(f, "/opq", "is not marked opaque");
    }
    SECTION("opaque mark added") {
        test::set_xattr(f.at("etc"), "trusted.overlay.opaque", "y");
        check_one_problem(f, "/etc", "is marked opaque, the layer has no opaque marker");
    }
    SECTION("extra file") {
        test::write_file(f.at("etc/extra"), "x");
        check_one_problem(f, "/etc/extra", "a regular file the layer does not have");
    }
    SECTION("extra directory tree is reported once") {
        fs::mkdirs(f.at("new/a/b"), 0755);
        test::write_file(f.at("new/a/b/c"), "x");
        auto problems = f.problems();
        REQUIRE(problems.size() == 1);
        CHECK_THAT(problems[0].what,
                   Catch::Contains("/new: a directory the layer does not have (3 entries in it)"));
    }
    SECTION("copied-up hard-link target edited") {
        test::write_file(f.at("var/lower-file"), "LOWER FILE\n");
        auto problems = f.problems();
        REQUIRE(problems.size() == 2); // var/lower-file and var/up (one inode)
        CHECK_THAT(problems[0].what, Catch::Contains("/var/lower-file: content hashes to") &&
                                         Catch::Contains("the file below it (/var/lower-file)"));
    }
    SECTION("the lower snapshot is checked too") {
        REQUIRE(::unlink((f.dirs[0] + "/opq/hidden").c_str()) == 0);
        auto problems = f.problems();
        REQUIRE(problems.size() == 1);
        CHECK_THAT(problems[0].what, Catch::Contains("snapshot " + f.img.chain_ids()[0].str() +
                                                     ": /opq/hidden: missing"));
    }
}

TEST_CASE("a removed damaged snapshot is unpacked again on next use") {
    Fixture f;
    test::write_file(f.at("etc/passwd"), "root::0:0::/root:/bin/sh\nevil::0:0::/:/bin/sh\n");
    auto problems = f.problems();
    REQUIRE_FALSE(problems.empty());
    REQUIRE(problems[0].snapshot);
    CHECK(f.store.remove_snapshot(*problems[0].snapshot));
    CHECK_FALSE(f.store.has_snapshot(f.top()));
    CHECK(f.store.has_snapshot(f.img.chain_ids()[0]));
    CHECK(f.problems().empty());
    auto dirs = f.store.ensure_snapshots(f.img);
    CHECK(fs::read_file(dirs.back() + "/etc/passwd") == "root:x:0:0::/root:/bin/sh\n");
    CHECK(f.problems().empty());
    CHECK_FALSE(f.store.remove_snapshot(Digest::parse("sha256:" + std::string(64, '0'))));
}

TEST_CASE("a snapshot whose layer blob is corrupt is not compared, the blob is reported") {
    Fixture f;
    const auto& layer = f.img.manifest.layers.back().digest;
    std::string path = f.store.blob_path(layer);
    REQUIRE(::chmod(path.c_str(), 0644) == 0);
    std::string bytes = fs::read_file(path);
    bytes[bytes.size() / 2] ^= 1;
    test::write_file(path, bytes);
    auto problems = f.problems();
    REQUIRE(problems.size() == 2);
    CHECK_THAT(problems[0].what, Catch::Contains("blob " + layer.str()));
    CHECK_FALSE(problems[0].snapshot);
    CHECK_THAT(problems[1].what, Catch::Contains("snapshot " + f.top().str() + ": not checked"));
    CHECK_FALSE(problems[1].snapshot);
}
