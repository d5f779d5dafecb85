#include "layer_test_util.hpp"
#include "snapshot/layer_apply.hpp"
#include "snapshot/layer_diff.hpp"
#include "snapshot/tree_diff.hpp"
#include "tests/support/support.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <map>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

using namespace strata;
using namespace strata::test;
using formats::Compression;
using snapshot::WhiteoutMode;

namespace {

bool has(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

} // namespace

TEST_CASE("a diff layer against a parent holds exactly the changes and reproduces the child") {
    TempDir parent, child, target, out;
    build_sample_tree(parent.path());
    build_sample_tree(child.path());
    build_sample_tree(target.path());
    const std::string& c = child.path();
    // Same size and same whole-second mtime, different bytes: found by content.
    write_file(c + "/etc/passwd", "ROOT:x:0:0:root:/root:/bin/sh\n");
    set_xattr(c + "/etc/passwd", "user.checksum", "abc");
    set_mtime(c + "/etc/passwd", 1500001000);
    ::chmod((c + "/bin/su").c_str(), 0700); // mode change
    ::unlink((c + "/etc/motd").c_str());    // removed file
    fs::remove_all(c + "/a/b");             // removed tree
    write_file(c + "/etc/new", "new");      // added file
    ::unlink((c + "/bin/sh").c_str());      // symlink retargeted
    ::symlink("/bin/busybox", (c + "/bin/sh").c_str());
    ::unlink((c + "/run-fifo").c_str()); // file -> directory
    write_file(c + "/run-fifo/inside", "x");
    set_xattr(c + "/bin/busybox", "user.new", "1"); // xattr change (hard-linked)
    set_mtime(c + "/etc", 1500018000);
    set_mtime(c + "/bin", 1500019000);
    set_mtime(c + "/a", 1500017000);

    std::string layer = out.path() + "/l";
    snapshot::DiffStats ds;
    {
        UniqueFd fd = fs::open(layer, O_WRONLY | O_CREAT | O_TRUNC);
        formats::TarWriter::Options opts;
        snapshot::write_diff_layer(c, parent.path(), fd.get(), opts, &ds);
    }
    auto names = list_layer(layer);
    CHECK(has(names, "f etc/passwd"));
    CHECK(has(names, "f bin/su"));
    CHECK(has(names, "f etc/.wh.motd"));
    CHECK(has(names, "f a/.wh.b"));
    CHECK(has(names, "f etc/new"));
    CHECK(has(names, "l bin/sh -> /bin/busybox"));
    CHECK(has(names, "d run-fifo"));
    CHECK(has(names, "f run-fifo/inside"));
    CHECK(has(names, "f bin/busybox"));
    // Unchanged entries are not in the layer.
    CHECK_FALSE(has(names, "f ro/inside"));
    CHECK_FALSE(has(names, "d ro"));
    CHECK_FALSE(has(names, "l passwd-abs -> /etc/passwd"));
    CHECK_FALSE(has(names, "d empty"));
    CHECK(ds.whiteouts == 2);

    apply(layer, target.path(), WhiteoutMode::flatten);
    CHECK(dump_tree(target.path(), true) == dump_tree(c, true));
}

TEST_CASE("a parent directory with unchanged metadata is still written before a changed child") {
    TempDir parent, child, out;
    write_file(parent.path() + "/d/f", "1");
    write_file(child.path() + "/d/f", "2");
    set_mtime(parent.path() + "/d/f", 1000);
    set_mtime(child.path() + "/d/f", 2000);
    set_mtime(parent.path() + "/d", 5000);
    set_mtime(child.path() + "/d", 5000);
    std::string layer = out.path() + "/l";
    {
        UniqueFd fd = fs::open(layer, O_WRONLY | O_CREAT | O_TRUNC);
        snapshot::write_diff_layer(child.path(), parent.path(), fd.get(), {});
    }
    CHECK(list_layer(layer) == std::vector<std::string>{"d d", "f d/f"});
    // No change at all: an empty layer.
    {
        UniqueFd fd = fs::open(layer, O_WRONLY | O_CREAT | O_TRUNC);
        snapshot::write_diff_layer(parent.path(), parent.path(), fd.get(), {});
    }
    CHECK(list_layer(layer).empty());
}

TEST_CASE("an overlay upper directory becomes a layer with OCI whiteouts and back", "[root]") {
    TempDir upper, snap, out;
    const std::string& u = upper.path();
    REQUIRE(::mknod((u + "/gone").c_str(), S_IFCHR, makedev(0, 0)) == 0);
    write_file(u + "/d/f", "f");
    set_xattr(u + "/d", "trusted.overlay.opaque", "y");
    write_file(u + "/e/newfile", "n");
    REQUIRE(::mknod((u + "/e/old").c_str(), S_IFCHR, makedev(0, 0)) == 0);
    // xattr-style whiteout (kernel 6.7+, userxattr overlays).
    write_file(u + "/e/xw", "");
    set_xattr(u + "/e/xw", "user.overlay.whiteout", "");
    set_xattr(u + "/e", "trusted.overlay.impure", "y"); // overlay bookkeeping: not in the layer
    std::string layer = out.path() + "/l";
    snapshot::DiffStats ds;
    {
        UniqueFd fd = fs::open(layer, O_WRONLY | O_CREAT | O_TRUNC);
        snapshot::write_upper_layer(u, fd.get(), {}, &ds);
    }
    CHECK(list_layer(layer) == std::vector<std::string>{"d d", "f d/.wh..wh..opq", "f d/f", "d e",
                                                        "f e/newfile", "f e/.wh.old", "f e/.wh.xw",
                                                        "f .wh.gone"});
    CHECK(ds.whiteouts == 3);
    CHECK(ds.opaque_dirs == 1);
    auto raw = fs::read_file(layer);
    // zstd: look at the tar itself.
    TempDir check;
    apply(layer, snap.path(), WhiteoutMode::overlay);
    CHECK(get_xattr(snap.path() + "/d", "trusted.overlay.opaque") == "y");
    CHECK(get_xattr(snap.path() + "/e", "trusted.overlay.impure").empty());
    struct stat st = fs::lstat(snap.path() + "/gone");
    CHECK(S_ISCHR(st.st_mode));
    CHECK(st.st_rdev == makedev(0, 0));
    CHECK(S_ISCHR(fs::lstat(snap.path() + "/e/xw").st_mode));
}

TEST_CASE("an upper directory made with redirect_dir is refused, naming the path", "[root]") {
    TempDir upper, out;
    fs::mkdirs(upper.path() + "/moved");
    set_xattr(upper.path() + "/moved", "trusted.overlay.redirect", "/orig");
    UniqueFd fd = fs::open(out.path() + "/l", O_WRONLY | O_CREAT | O_TRUNC);
    CHECK_THROWS_WITH(snapshot::write_upper_layer(upper.path(), fd.get(), {}),
                      Catch::Contains(upper.path() + "/moved") && Catch::Contains("redirect_dir"));
}

TEST_CASE("a layer carries the xattrs Docker and buildah write, a namespaced capability as "
          "revision 2, and no host attributes",
          "[root]") {
    TempDir parent, child, out;
    const std::string& c = child.path();
    write_file(c + "/ping", "elf");
    write_file(c + "/plain", "p");
    // VFS_CAP_REVISION_3 (cap_net_raw permitted and effective) with root id
    // 100000, as a setcap inside a rootless build's user namespace leaves it.
    const std::string caps_v3("\x01\x00\x00\x03\x00\x20\x00\x00\x00\x00\x00\x00"
                              "\x00\x00\x00\x00\x00\x00\x00\x00\xa0\x86\x01\x00",
                              24);
    set_xattr(c + "/ping", "security.capability", caps_v3);
    set_xattr(c + "/ping", "user.note", "kept");
    set_xattr(c + "/plain", "trusted.host-tool", "host");
    set_xattr(c + "/plain", "user.containers.override_stat", "0:0:0755");
    set_xattr(c + "/plain", "user.overlay.origin", "x");
    bool labelled =
        ::lsetxattr((c + "/plain").c_str(), "security.selinux", "system_u:x", 10, 0) == 0;

    std::string layer = out.path() + "/l";
    {
        UniqueFd fd = fs::open(layer, O_WRONLY | O_CREAT | O_TRUNC);
        formats::TarWriter::Options opts;
        snapshot::write_diff_layer(c, parent.path(), fd.get(), opts, nullptr);
    }
    std::map<std::string, std::map<std::string, std::string>> xattrs;
    {
        UniqueFd in = fs::open(layer, O_RDONLY);
        formats::TarReader reader(in.get(), layer);
        while (auto e = reader.next()) {
            xattrs[e->path] = {e->xattrs.begin(), e->xattrs.end()};
        }
        reader.finish();
    }
    REQUIRE(xattrs.contains("ping"));
    REQUIRE(xattrs.contains("plain"));
    const std::string caps_v2 = std::string(caps_v3.data(), 20).replace(3, 1, "\x02");
    CHECK(xattrs["ping"] == std::map<std::string, std::string>{{"security.capability", caps_v2},
                                                               {"user.note", "kept"}});
    CHECK(xattrs["plain"].empty());
    if (!labelled) {
        WARN("security.selinux could not be set here: the label part was not exercised");
    }

    // The tree comparison sees the directory as the layer would carry it.
    auto listing = snapshot::listing_of_directory(c);
    auto it = std::find_if(listing.entries.begin(), listing.entries.end(),
                           [](const auto& kv) { return kv.first == "ping"; });
    REQUIRE(it != listing.entries.end());
    CHECK(it->second.xattrs.at("security.capability") == caps_v2);
}
