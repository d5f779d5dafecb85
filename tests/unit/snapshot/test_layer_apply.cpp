#include "layer_test_util.hpp"
#include "snapshot/layer_apply.hpp"
#include "snapshot/layer_diff.hpp"
#include "tests/support/support.hpp"
#include "util/child.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

using namespace strata;
using namespace strata::test;
using formats::Compression;
using snapshot::WhiteoutMode;

namespace {

formats::LayerDigests make_layer(const std::string& dir, const std::string& parent,
                                 const std::string& out, Compression c = Compression::zstd) {
    UniqueFd fd = fs::open(out, O_WRONLY | O_CREAT | O_TRUNC);
    formats::TarWriter::Options opts;
    opts.compression = c;
    auto d = snapshot::write_diff_layer(dir, parent, fd.get(), opts);
    fd.close();
    return d;
}

ino_t ino(const std::string& p) {
    return fs::lstat(p).st_ino;
}

bool is_whiteout(const std::string& p) {
    struct stat st;
    return ::lstat(p.c_str(), &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

} // namespace

TEST_CASE("a tree survives layer create and apply, in every compression") {
    for (auto c : {Compression::zstd, Compression::gzip, Compression::none}) {
        INFO(formats::to_string(c));
        TempDir src, dst, out;
        build_sample_tree(src.path());
        std::string layer = out.path() + "/layer";
        auto made = make_layer(src.path(), "", layer, c);
        auto stats = apply(layer, dst.path(), WhiteoutMode::flatten);
        CHECK(dump_tree(dst.path(), true) == dump_tree(src.path(), true));
        CHECK(ino(dst.path() + "/bin/ls") == ino(dst.path() + "/bin/busybox"));
        CHECK(ino(dst.path() + "/usr-ls") == ino(dst.path() + "/bin/busybox"));
        CHECK(fs::lstat(dst.path() + "/bin/busybox").st_nlink == 3);
        CHECK(get_xattr(dst.path() + "/a", "user.dir") == std::string("\0\1\2", 3));
        CHECK((fs::lstat(dst.path() + "/bin/su").st_mode & 07777) == 04755);
        CHECK(S_ISFIFO(fs::lstat(dst.path() + "/run-fifo").st_mode));
        REQUIRE(stats.digests.has_value());
        CHECK(stats.digests->diff_id == made.diff_id);
        CHECK(stats.digests->blob_digest == made.blob_digest);
        CHECK(stats.compression == c);
        CHECK(stats.hardlinks == 2);
        CHECK(stats.symlinks == 3);
        CHECK(stats.fifos == 1);
        CHECK(stats.bytes ==
              70000 + 2 + 4 + 1 + 9 + 18 + std::string("root:x:0:0:root:/root:/bin/sh\n").size());
    }
}

TEST_CASE("the same tree gives the same layer bytes and digests") {
    TempDir a, b, out;
    build_sample_tree(a.path());
    build_sample_tree(b.path());
    auto d1 = make_layer(a.path(), "", out.path() + "/1");
    auto d2 = make_layer(a.path(), "", out.path() + "/2");
    auto d3 = make_layer(b.path(), "", out.path() + "/3");
    CHECK(fs::read_file(out.path() + "/1") == fs::read_file(out.path() + "/2"));
    CHECK(d1.blob_digest == d2.blob_digest);
    // A second tree with the same content and times: the same layer.
    CHECK(d1.diff_id == d3.diff_id);
    CHECK(d1.blob_digest == d3.blob_digest);
    // Entries are in walk order with names sorted, parents first.
    auto names = list_layer(out.path() + "/1");
    REQUIRE(names.size() > 5);
    CHECK(names[0] == "d a");
    CHECK(names[1] == "f a/" + std::string(200, 'L'));
    CHECK(std::find(names.begin(), names.end(), "h bin/ls -> bin/busybox") != names.end());
    CHECK(std::find(names.begin(), names.end(), "h usr-ls -> bin/busybox") != names.end());
}

TEST_CASE("SOURCE_DATE_EPOCH clamping makes layers independent of recent mtimes") {
    TempDir a, out;
    build_sample_tree(a.path());
    auto layer = [&](const std::string& name) {
        UniqueFd fd = fs::open(out.path() + "/" + name, O_WRONLY | O_CREAT | O_TRUNC);
        formats::TarWriter::Options opts;
        opts.clamp_mtime = 1500005000;
        auto d = snapshot::write_diff_layer(a.path(), "", fd.get(), opts);
        return d;
    };
    set_mtime(a.path() + "/etc/passwd", 1700000000);
    auto d1 = layer("1");
    set_mtime(a.path() + "/etc/passwd", 1800000000); // touched again: clamped anyway
    auto d2 = layer("2");
    CHECK(d1.diff_id == d2.diff_id);
    TempDir dst;
    apply(out.path() + "/2", dst.path(), WhiteoutMode::flatten);
    CHECK(fs::lstat(dst.path() + "/etc/passwd").st_mtim.tv_sec == 1500005000);
    CHECK(fs::lstat(dst.path() + "/etc/motd").st_mtim.tv_sec == 1500002000);
}

TEST_CASE("owners and device nodes round-trip when running as root", "[root]") {
    TempDir src, dst, out;
    build_sample_tree(src.path());
    REQUIRE(::lchown((src.path() + "/etc/passwd").c_str(), 1000, 1001) == 0);
    REQUIRE(::lchown((src.path() + "/bin/sh").c_str(), 7, 8) == 0);
    REQUIRE(::chown((src.path() + "/a").c_str(), 65534, 65534) == 0);
    REQUIRE(::mknod((src.path() + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0);
    REQUIRE(::mknod((src.path() + "/loop9").c_str(), S_IFBLK | 0660, makedev(7, 9)) == 0);
    // chown clears setuid; the applier must set the mode after the owner.
    REQUIRE(::chown((src.path() + "/bin/su").c_str(), 0, 42) == 0);
    REQUIRE(::chmod((src.path() + "/bin/su").c_str(), 06755) == 0);
    // A file capability (revision 2: cap_net_raw permitted and effective).
    set_xattr(src.path() + "/bin/busybox", "security.capability",
              std::string("\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00"
                          "\x00\x00\x00\x00\x00\x00\x00\x00",
                          20));
    std::string layer = out.path() + "/l";
    make_layer(src.path(), "", layer);
    auto stats = apply(layer, dst.path(), WhiteoutMode::flatten);
    CHECK(dump_tree(dst.path(), true) == dump_tree(src.path(), true));
    CHECK(stats.devices == 2);
    CHECK(stats.devices_skipped == 0);
    CHECK(stats.owners_skipped == 0);
    CHECK((fs::lstat(dst.path() + "/bin/su").st_mode & 07777) == 06755);
}

TEST_CASE("flatten mode: whiteouts delete lower entries and opaque markers empty directories") {
    TempDir lower, out;
    write_file(lower.path() + "/a/keep", "k");
    write_file(lower.path() + "/a/drop", "d");
    write_file(lower.path() + "/b/x/y", "y");
    write_file(lower.path() + "/opq/old1", "o");
    write_file(lower.path() + "/opq/sub/old2", "o");
    write_file(lower.path() + "/opq2/old", "o");
    write_file(lower.path() + "/opq2/new2", "old content");
    std::string layer = out.path() + "/l";
    write_layer(layer, {
                           {file_entry("a/.wh.drop"), ""},
                           {file_entry(".wh.b"), ""},
                           {file_entry("a/.wh.never-existed"), ""},
                           {dir_entry("opq"), ""},
                           {file_entry("opq/.wh..wh..opq"), ""},
                           {file_entry("opq/new"), "n"},
                           // A file of this layer before the marker stays.
                           {file_entry("opq2/new2"), "new"},
                           {file_entry("opq2/.wh..wh..opq"), ""},
                           {file_entry("nodir/.wh..wh..opq"), ""},
                           {file_entry(".wh..wh.plnk"), ""},
                       });
    auto stats = apply(layer, lower.path(), WhiteoutMode::flatten);
    CHECK(stats.whiteouts == 3);
    CHECK(stats.opaque_dirs == 3);
    std::string o = " " + std::to_string(::getuid()) + ":" + std::to_string(::getgid());
    CHECK(dump_tree(lower.path()) == "/a d 0755" + o +
                                         "\n"
                                         "/a/keep f 0644" +
                                         o + " 1 " + Sha256::hex_of("k") +
                                         "\n"
                                         "/opq d 0755" +
                                         o +
                                         "\n"
                                         "/opq/new f 0644" +
                                         o + " 1 " + Sha256::hex_of("n") +
                                         "\n"
                                         "/opq2 d 0755" +
                                         o +
                                         "\n"
                                         "/opq2/new2 f 0644" +
                                         o + " 3 " + Sha256::hex_of("new") + "\n");
}

TEST_CASE("an entry replaces a directory with a file and a file with a directory") {
    TempDir lower, out;
    write_file(lower.path() + "/d/child", "c");
    write_file(lower.path() + "/f", "f");
    REQUIRE(::symlink("/etc", (lower.path() + "/s").c_str()) == 0);
    write_file(lower.path() + "/same/old", "o");
    std::string layer = out.path() + "/l";
    write_layer(layer, {
                           {file_entry("d"), "now a file"},
                           {dir_entry("f"), ""},
                           {file_entry("f/inside"), "i"},
                           {dir_entry("s"), ""}, // replaces the symlink; never followed
                           {file_entry("s/x"), "x"},
                           {dir_entry("same", 0700), ""}, // a directory over a directory merges
                           {file_entry("same/new"), "n"},
                       });
    apply(layer, lower.path(), WhiteoutMode::flatten);
    CHECK(fs::read_file(lower.path() + "/d") == "now a file");
    CHECK(fs::read_file(lower.path() + "/f/inside") == "i");
    CHECK(S_ISDIR(fs::lstat(lower.path() + "/s").st_mode));
    CHECK(fs::read_file(lower.path() + "/s/x") == "x");
    CHECK(fs::read_file(lower.path() + "/same/old") == "o");
    CHECK(fs::read_file(lower.path() + "/same/new") == "n");
    CHECK((fs::lstat(lower.path() + "/same").st_mode & 07777) == 0700);
}

TEST_CASE("overlay mode turns OCI whiteouts into user.overlay whiteouts under userxattr") {
    TempDir snap, out;
    std::string layer = out.path() + "/l";
    write_layer(layer, {
                           {dir_entry("d"), ""},
                           {file_entry("d/.wh..wh..opq"), ""},
                           {file_entry("d/new"), "n"},
                           {file_entry(".wh.gone"), ""},
                           {file_entry("x/.wh.y"), ""},
                       });
    auto stats = apply(layer, snap.path(), WhiteoutMode::overlay, true);
    CHECK(stats.whiteouts == 2);
    CHECK(stats.opaque_dirs == 1);
    CHECK(is_whiteout(snap.path() + "/gone"));
    CHECK(is_whiteout(snap.path() + "/x/y"));
    CHECK(get_xattr(snap.path() + "/d", "user.overlay.opaque") == "y");
    CHECK(get_xattr(snap.path() + "/d", "trusted.overlay.opaque").empty());
    CHECK(fs::read_file(snap.path() + "/d/new") == "n");
}

TEST_CASE("overlay mode marks opaque directories with trusted.overlay.opaque", "[root]") {
    TempDir snap, out;
    std::string layer = out.path() + "/l";
    write_layer(layer, {{dir_entry("d"), ""}, {file_entry("d/.wh..wh..opq"), ""}});
    apply(layer, snap.path(), WhiteoutMode::overlay);
    CHECK(get_xattr(snap.path() + "/d", "trusted.overlay.opaque") == "y");
}

TEST_CASE("a layer cannot set overlayfs xattrs itself") {
    TempDir snap, out;
    std::string layer = out.path() + "/l";
    formats::TarEntry d = dir_entry("d");
    d.xattrs["trusted.overlay.redirect"] = "/etc";
    d.xattrs["user.overlay.opaque"] = "y";
    d.xattrs["user.fine"] = "ok";
    write_layer(layer, {{d, ""}});
    auto stats = apply(layer, snap.path(), WhiteoutMode::overlay, true);
    CHECK(stats.xattrs_skipped == 2);
    CHECK(get_xattr(snap.path() + "/d", "user.overlay.opaque").empty());
    CHECK(get_xattr(snap.path() + "/d", "user.fine") == "ok");
}

TEST_CASE("applied overlay snapshots stack in a kernel overlay mount", "[overlay]") {
    TempDir base, l1, out, work;
    write_file(base.path() + "/keep", "k");
    write_file(base.path() + "/gone", "g");
    write_file(base.path() + "/dir/old", "o");
    std::string layer = out.path() + "/l";
    write_layer(layer, {
                           {file_entry(".wh.gone"), ""},
                           {dir_entry("dir"), ""},
                           {file_entry("dir/.wh..wh..opq"), ""},
                           {file_entry("dir/new"), "n"},
                       });
    apply(layer, l1.path(), WhiteoutMode::overlay);
    fs::mkdirs(work.path() + "/merged");
    // The mount lives in a private mount namespace that dies with the shell.
    std::string script = "mount -t overlay overlay -o lowerdir=" + l1.path() + ":" + base.path() +
                         " " + work.path() + "/merged && cd " + work.path() +
                         "/merged && find . | sort";
    auto r = run_capture({"unshare", "-m", "sh", "-c", script});
    REQUIRE(r.status.success());
    CHECK(r.out == ".\n./dir\n./dir/new\n./keep\n");
}

TEST_CASE("layer create and layer apply work from the command line") {
    TempDir src, dst, out;
    build_sample_tree(src.path());
    std::string layer = out.path() + "/l.tar.gz";
    auto r = run_capture({"env", "SOURCE_DATE_EPOCH=1500003000", strata_binary(), "layer", "create",
                          src.path(), "-o", layer, "--compression", "gzip"});
    REQUIRE(r.status.success());
    CHECK(r.out.find("diff-id sha256:") != std::string::npos);
    CHECK(
        r.out.find("digest  sha256:" + formats::Digest::of(fs::read_file(layer)).str().substr(7)) !=
        std::string::npos);
    auto a = run_capture({strata_binary(), "layer", "apply", layer, dst.path() + "/new"});
    REQUIRE(a.status.success());
    CHECK(a.out.find("from a gzip layer") != std::string::npos);
    CHECK(fs::lstat(dst.path() + "/new/bin/su").st_mtim.tv_sec == 1500003000);
    CHECK(fs::read_file(dst.path() + "/new/bin/busybox") == std::string(70000, 'b'));
    auto bad = run_capture(
        {strata_binary(), "layer", "create", src.path(), "-o", layer, "--compression", "lz4"},
        true);
    CHECK(bad.status.code() == 2);
    CHECK(bad.out.find("unknown compression \"lz4\"") != std::string::npos);
}
