// containers/copy: docker cp's path rules, and copies that stay inside the
// container's root and the destination whatever symlinks and tar names say.
#include "containers/copy.hpp"

#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace strata;
using containers::CopySource;
using containers::CopyTarget;
using containers::TreeWriter;

namespace {

void write(const std::string& path, const std::string& data, mode_t mode = 0644) {
    UniqueFd fd = fs::open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    fs::write_all(fd.get(), data);
}

// A container root with hostile symlinks: /evil -> /, /up -> ../../..,
// /etc/link -> /etc/passwd.
struct Root {
    TempDir t;
    std::string root = t.path() + "/root";
    std::string host = t.path() + "/host";
    UniqueFd root_fd;
    UniqueFd host_fd;
    Root() {
        fs::mkdirs(root + "/etc", 0755);
        fs::mkdirs(root + "/data/sub", 0755);
        fs::mkdirs(root + "/tmp", 01777);
        fs::mkdirs(host, 0755);
        write(root + "/etc/passwd", "container\n");
        write(root + "/data/a", "a\n", 0600);
        write(root + "/data/sub/b", "b\n");
        REQUIRE(::link((root + "/data/a").c_str(), (root + "/data/hard").c_str()) == 0);
        REQUIRE(::symlink("/", (root + "/evil").c_str()) == 0);
        REQUIRE(::symlink("../../..", (root + "/up").c_str()) == 0);
        REQUIRE(::symlink("/etc/passwd", (root + "/etc/link").c_str()) == 0);
        root_fd = fs::open(root, O_PATH | O_DIRECTORY);
        host_fd = fs::open("/", O_PATH | O_DIRECTORY);
    }
    // cp ROOT:src host-dest (host paths absolute).
    void copy_out(const std::string& src_path, const std::string& dest, bool follow = false,
                  bool keep_owner = false) {
        CopySource src =
            containers::open_copy_source(root_fd.get(), src_path, follow, "container c");
        CopyTarget t = containers::resolve_copy_target(host_fd.get(), dest, src.is_dir,
                                                       src.contents_only, src.base);
        TreeWriter w(t.dir.get(), t.shown, keep_owner);
        containers::walk_copy_source(src, t.name,
                                     [&](const formats::TarEntry& e, int fd) { w.add(e, fd); });
        w.finish();
    }
    // cp host-src ROOT:dest.
    void copy_in(const std::string& src_path, const std::string& dest) {
        CopySource src = containers::open_copy_source(host_fd.get(), src_path, false);
        CopyTarget t = containers::resolve_copy_target(root_fd.get(), dest, src.is_dir,
                                                       src.contents_only, src.base, "c:");
        TreeWriter w(t.dir.get(), t.shown, false);
        containers::walk_copy_source(src, t.name,
                                     [&](const formats::TarEntry& e, int fd) { w.add(e, fd); });
        w.finish();
    }
};

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

} // namespace

TEST_CASE("cp from a container: Docker's path rules", "[root]") {
    Root r;
    // A directory into an existing directory: under its name.
    r.copy_out("/data", r.host);
    CHECK(fs::read_file(r.host + "/data/a") == "a\n");
    CHECK(fs::read_file(r.host + "/data/sub/b") == "b\n");
    CHECK((fs::lstat(r.host + "/data/a").st_mode & 07777) == 0600);
    CHECK(fs::lstat(r.host + "/data/a").st_ino == fs::lstat(r.host + "/data/hard").st_ino);
    // DIR/. : the contents.
    fs::mkdirs(r.host + "/contents", 0755);
    r.copy_out("/data/.", r.host + "/contents");
    CHECK(fs::read_file(r.host + "/contents/sub/b") == "b\n");
    CHECK_FALSE(fs::exists(r.host + "/contents/data"));
    // A missing destination is the new name.
    r.copy_out("/data", r.host + "/renamed");
    CHECK(fs::read_file(r.host + "/renamed/a") == "a\n");
    r.copy_out("/etc/passwd", r.host + "/pw");
    CHECK(fs::read_file(r.host + "/pw") == "container\n");
    // An existing file is overwritten by a file.
    r.copy_out("/data/sub/b", r.host + "/pw");
    CHECK(fs::read_file(r.host + "/pw") == "b\n");
    // Errors.
    CHECK(error_of([&] { r.copy_out("/etc/passwd", r.host + "/nodir/"); }) ==
          "destination directory " + r.host + "/nodir/ does not exist");
    CHECK(error_of([&] { r.copy_out("/etc/passwd", r.host + "/nodir/x"); }) ==
          "destination directory " + r.host + "/nodir does not exist");
    CHECK(error_of([&] { r.copy_out("/data", r.host + "/pw"); }) ==
          "cannot copy directory data onto " + r.host + "/pw, which exists and is not a directory");
    CHECK(error_of([&] { r.copy_out("/missing", r.host); }) ==
          "Could not find the file /missing in container c");
    CHECK(error_of([&] { r.copy_out("/etc/passwd/", r.host); }) == "/etc/passwd/: not a directory");
    // -L follows the symlink at the source, inside the root.
    r.copy_out("/etc/link", r.host + "/l");
    CHECK(fs::lstat(r.host + "/l").st_mode == (S_IFLNK | 0777));
    r.copy_out("/etc/link", r.host + "/followed", true);
    CHECK(fs::read_file(r.host + "/followed") == "container\n");
}

TEST_CASE("cp from a container: symlinks to / and ../../.. stay inside its root", "[root]") {
    Root r;
    // Through /evil (-> /) and /up (-> ../../..) the container's own
    // /etc/passwd is read, never the host's.
    r.copy_out("/evil/etc/passwd", r.host + "/a");
    CHECK(fs::read_file(r.host + "/a") == "container\n");
    r.copy_out("/up/etc/passwd", r.host + "/b");
    CHECK(fs::read_file(r.host + "/b") == "container\n");
    r.copy_out("/up/up/evil/etc/./passwd", r.host + "/c");
    CHECK(fs::read_file(r.host + "/c") == "container\n");
    r.copy_out("/../../../etc/passwd", r.host + "/d");
    CHECK(fs::read_file(r.host + "/d") == "container\n");
    // -L on a link to / copies the container's root.
    r.copy_out("/evil", r.host + "/root", true);
    CHECK(fs::read_file(r.host + "/root/etc/passwd") == "container\n");
}

TEST_CASE("cp into a container: writes through hostile symlinks land inside its root", "[root]") {
    Root r;
    std::string marker = "strata-cp-attack-" + std::to_string(::getpid());
    write(r.host + "/" + marker, "payload\n");
    // /evil/tmp is the container's /tmp, not the host's.
    r.copy_in(r.host + "/" + marker, "/evil/tmp/");
    CHECK(fs::read_file(r.root + "/tmp/" + marker) == "payload\n");
    CHECK_FALSE(fs::exists("/tmp/" + marker));
    r.copy_in(r.host + "/" + marker, "/up/up/tmp/x");
    CHECK(fs::read_file(r.root + "/tmp/x") == "payload\n");
    CHECK_FALSE(fs::exists("/tmp/x-" + marker));
    // A file over the symlink /etc/link replaces the link, not /etc/passwd.
    r.copy_in(r.host + "/" + marker, "/etc/link");
    CHECK(fs::read_file(r.root + "/etc/link") == "payload\n");
    CHECK(fs::read_file(r.root + "/etc/passwd") == "container\n");
}

TEST_CASE("cp - into a container: a hostile tar stays in the destination", "[root]") {
    Root r;
    std::string tar = r.t.path() + "/evil.tar";
    auto make_tar = [&](const std::vector<std::pair<formats::TarEntry, std::string>>& entries) {
        UniqueFd fd = fs::open(tar, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        formats::TarWriter::Options o;
        o.compression = formats::Compression::none;
        formats::TarWriter w(fd.get(), o);
        for (const auto& [e, data] : entries) {
            formats::TarEntry x = e;
            x.size = data.size();
            w.add_data(x, data);
        }
        w.finish();
    };
    auto extract = [&](const std::string& dir) {
        UniqueFd dfd = fs::open(r.root + dir, O_RDONLY | O_DIRECTORY);
        TreeWriter w(dfd.get(), "c:" + dir, false);
        UniqueFd in = fs::open(tar, O_RDONLY);
        formats::TarReader reader(in.get(), tar);
        containers::extract_tar(reader, w);
        w.finish();
    };
    formats::TarEntry up;
    up.path = "../../../../tmp/strata-cp-escape";
    make_tar({{up, "x"}});
    CHECK_THAT(error_of([&] { extract("/data"); }), Catch::Contains("leaves the destination"));
    CHECK_FALSE(fs::exists("/tmp/strata-cp-escape"));
    // A symlink to / and then a file through it: lands in the destination.
    formats::TarEntry link;
    link.path = "l";
    link.type = formats::EntryType::symlink;
    link.linkname = "/";
    formats::TarEntry through;
    through.path = "l/strata-cp-through";
    formats::TarEntry hard;
    hard.path = "h";
    hard.type = formats::EntryType::hardlink;
    hard.linkname = "../../etc/passwd";
    make_tar({{link, ""}, {through, "in\n"}});
    extract("/data");
    CHECK(fs::read_file(r.root + "/data/strata-cp-through") == "in\n");
    CHECK_FALSE(fs::exists("/strata-cp-through"));
    make_tar({{hard, ""}});
    CHECK_THAT(error_of([&] { extract("/data"); }), Catch::Contains("leaves the destination"));
}
