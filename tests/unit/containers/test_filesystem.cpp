// containers/filesystem: docker diff, commit and export on synthetic
// container uppers (overlay form: 0:0 character-device whiteouts, opaque
// directories) over an image made in a temporary store.
#include "containers/filesystem.hpp"

#include "formats/tar.hpp"
#include "formats/whiteout.hpp"
#include "snapshot/flatten.hpp"
#include "snapshot/stack_order.hpp"
#include "snapshot/upper_layer.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <map>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

using namespace strata;
using containers::Change;
using containers::ChangeKind;

namespace {

void write(const std::string& path, const std::string& data, mode_t mode = 0644) {
    UniqueFd fd = fs::open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    fs::write_all(fd.get(), data);
}

void set_mtime(const std::string& path, std::int64_t sec) {
    struct timespec ts[2] = {{sec, 0}, {sec, 0}};
    REQUIRE(::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW) == 0);
}

void whiteout(const std::string& path) {
    REQUIRE(::mknod(path.c_str(), formats::whiteout::k_device_mode, formats::whiteout::device()) ==
            0);
}

void opaque(const std::string& path) {
    REQUIRE(::setxattr(path.c_str(), formats::whiteout::k_trusted_opaque, "y", 1, 0) == 0);
}

// A directory in the upper as overlayfs copies it up: same mode and mtime.
void copy_up_dir(const std::string& lower, const std::string& upper) {
    struct stat st = fs::lstat(lower);
    fs::mkdirs(upper, st.st_mode & 07777);
    REQUIRE(::chmod(upper.c_str(), st.st_mode & 07777) == 0);
}

struct Fixture {
    TempDir t;
    snapshot::Store store{t.path() + "/store"};
    snapshot::Image image;
    std::vector<std::string> lowers; // topmost first
    std::string upper;

    Fixture() {
        // The image: two layers; the top one deletes /var/old.
        std::string l1 = t.path() + "/l1";
        for (const auto* d : {"/etc", "/tmp", "/usr/bin", "/opt/keep", "/var"}) {
            fs::mkdirs(l1 + d, 0755);
        }
        write(l1 + "/etc/passwd", "root:x:0:0::/root:/bin/sh\n");
        write(l1 + "/etc/group", "root:x:0:\n");
        write(l1 + "/tmp/gone", "bye\n");
        write(l1 + "/usr/bin/tool", "#!/bin/sh\n", 0755);
        write(l1 + "/opt/keep/a", "a\n");
        write(l1 + "/var/old", "old\n");
        std::string l2 = t.path() + "/l2";
        fs::mkdirs(l2 + "/var", 0755);
        whiteout(l2 + "/var/old");
        for (const auto& dir : {l1, l2}) {
            for (const auto* d :
                 {"", "/etc", "/tmp", "/usr", "/usr/bin", "/opt", "/opt/keep", "/var"}) {
                if (fs::exists(dir + d)) {
                    set_mtime(dir + d, 1000000);
                }
            }
        }
        formats::TarWriter::Options to;
        to.compression = formats::Compression::gzip;
        formats::ImageConfig config;
        config.architecture = "amd64";
        config.os = "linux";
        config.config.cmd = std::vector<std::string>{"/bin/sh"};
        std::vector<formats::Descriptor> layers;
        for (const auto& dir : {l1, l2}) {
            auto packed = snapshot::put_upper_layer(store, dir, to);
            REQUIRE(packed);
            layers.push_back(packed->layer);
            config.diff_ids.push_back(packed->diff_id);
            config.history.push_back(
                formats::History{"2024-01-01T00:00:00Z", "layer", "", "", false});
        }
        image = store.load(store.put_image(config, layers));
        lowers = snapshot::top_first(store.ensure_snapshots(image));
        upper = t.path() + "/upper";
        fs::mkdirs(upper, 0755);
    }

    // The container: changed /etc/passwd, added /etc/new, deleted
    // /tmp/gone, changed /usr/bin/tool (its directories copied up
    // untouched), /opt/keep replaced by a new directory (opaque), a new
    // directory /newdir, /var/old (deleted by the image) created again.
    void make_changes() {
        const std::string& low = lowers.back(); // bottom layer has them all
        copy_up_dir(low + "/etc", upper + "/etc");
        write(upper + "/etc/passwd", "root:x:0:0::/root:/bin/ash\n");
        write(upper + "/etc/new", "new\n");
        set_mtime(upper + "/etc", 2000000);
        copy_up_dir(low + "/tmp", upper + "/tmp");
        whiteout(upper + "/tmp/gone");
        set_mtime(upper + "/tmp", 2000000);
        copy_up_dir(low + "/usr", upper + "/usr");
        copy_up_dir(low + "/usr/bin", upper + "/usr/bin");
        write(upper + "/usr/bin/tool", "#!/bin/sh\necho\n", 0755);
        set_mtime(upper + "/usr/bin", 1000000);
        set_mtime(upper + "/usr", 1000000);
        copy_up_dir(low + "/opt", upper + "/opt");
        fs::mkdirs(upper + "/opt/keep", 0700);
        opaque(upper + "/opt/keep");
        write(upper + "/opt/keep/b", "b\n");
        set_mtime(upper + "/opt", 2000000);
        fs::mkdirs(upper + "/newdir", 0755);
        write(upper + "/newdir/f", "f\n");
        fs::mkdirs(upper + "/var", 0755);
        write(upper + "/var/old", "again\n");
        set_mtime(upper + "/var", 1000000);
    }
};

std::map<std::string, std::string> tar_files(const std::string& path) {
    UniqueFd fd = fs::open(path, O_RDONLY);
    formats::TarReader r(fd.get(), path);
    std::map<std::string, std::string> out;
    while (auto e = r.next()) {
        std::string content;
        char buf[4096];
        std::size_t n;
        while ((n = r.read(buf, sizeof buf)) > 0) {
            content.append(buf, n);
        }
        std::string kind = e->type == formats::EntryType::dir ? "dir" : content;
        out[e->path] = kind;
    }
    return out;
}

} // namespace

TEST_CASE("list_changes: Docker's C/A/D of an upper over the image's snapshots", "[root]") {
    Fixture f;
    CHECK(containers::list_changes(f.lowers, f.upper).empty());
    f.make_changes();
    std::vector<Change> want = {
        {"/etc", ChangeKind::modify},          {"/etc/new", ChangeKind::add},
        {"/etc/passwd", ChangeKind::modify},   {"/newdir", ChangeKind::add},
        {"/newdir/f", ChangeKind::add},        {"/opt", ChangeKind::modify},
        {"/opt/keep", ChangeKind::remove},     {"/opt/keep/b", ChangeKind::add},
        {"/tmp", ChangeKind::modify},          {"/tmp/gone", ChangeKind::remove},
        {"/usr/bin/tool", ChangeKind::modify}, {"/var/old", ChangeKind::add},
    };
    // /var is the same directory as below it: not listed by itself, but as
    // the parent of an added entry.
    want.insert(want.end() - 1, Change{"/var", ChangeKind::modify});
    CHECK(containers::list_changes(f.lowers, f.upper) == want);
    CHECK(containers::change_letter(ChangeKind::modify) == 'C');
    CHECK(containers::change_letter(ChangeKind::add) == 'A');
    CHECK(containers::change_letter(ChangeKind::remove) == 'D');
}

TEST_CASE("list_changes: a path below a symlink in a lower is not followed", "[root]") {
    Fixture f;
    // The image's /etc becomes a symlink to / in a container that then
    // writes /etc/x: the lookup of /etc/x in the lowers stops at the link.
    std::string evil = f.t.path() + "/evil";
    fs::mkdirs(evil, 0755);
    REQUIRE(::symlink("/", (evil + "/link").c_str()) == 0);
    std::vector<std::string> lowers = {evil};
    fs::mkdirs(f.upper + "/link", 0755);
    write(f.upper + "/link/etc", "x\n"); // /etc exists on the host
    auto changes = containers::list_changes(lowers, f.upper);
    REQUIRE(changes.size() == 2);
    CHECK(changes[0] == Change{"/link", ChangeKind::modify});
    CHECK(changes[1] == Change{"/link/etc", ChangeKind::add});
}

TEST_CASE("commit_image: the upper becomes a layer over the image's layers", "[root]") {
    Fixture f;
    f.make_changes();
    formats::ImageConfig config = f.image.config;
    config.config.cmd = std::vector<std::string>{"/bin/true"};
    formats::History h{"2026-01-02T03:04:05Z", "/bin/sh", "someone", "a message", false};
    auto res =
        containers::commit_image(f.store, f.image, f.upper, config, h, formats::Compression::gzip);
    CHECK_FALSE(res.empty_layer);
    snapshot::Image img = f.store.load(res.manifest);
    CHECK(img.id() == res.id);
    REQUIRE(img.manifest.layers.size() == 3);
    CHECK(img.manifest.layers[2].media_type == "application/vnd.oci.image.layer.v1.tar+gzip");
    REQUIRE(img.config.diff_ids.size() == 3);
    REQUIRE(img.config.history.size() == 3);
    CHECK(img.config.history[2].comment == "a message");
    CHECK(img.config.history[2].author == "someone");
    CHECK(img.config.history[2].created_by == "/bin/sh");
    CHECK_FALSE(img.config.history[2].empty_layer);
    CHECK(img.config.created == "2026-01-02T03:04:05Z");
    CHECK(img.config.config.cmd == std::vector<std::string>{"/bin/true"});
    // The new image has the container's files (and not what it deleted).
    std::string root = f.t.path() + "/flat";
    fs::mkdirs(root, 0755);
    snapshot::flatten_image(f.store, img, root);
    CHECK(fs::read_file(root + "/etc/passwd") == "root:x:0:0::/root:/bin/ash\n");
    CHECK(fs::read_file(root + "/etc/new") == "new\n");
    CHECK(fs::read_file(root + "/etc/group") == "root:x:0:\n");
    CHECK_FALSE(fs::exists(root + "/tmp/gone"));
    CHECK_FALSE(fs::exists(root + "/opt/keep/a"));
    CHECK(fs::read_file(root + "/opt/keep/b") == "b\n");
    CHECK(fs::read_file(root + "/var/old") == "again\n");

    // Nothing changed: no layer, an empty_layer history entry.
    TempDir empty(f.t.path(), "empty-");
    auto res2 = containers::commit_image(f.store, img, empty.path(), img.config, h,
                                         formats::Compression::gzip);
    CHECK(res2.empty_layer);
    snapshot::Image img2 = f.store.load(res2.manifest);
    CHECK(img2.manifest.layers.size() == 3);
    REQUIRE(img2.config.history.size() == 4);
    CHECK(img2.config.history[3].empty_layer);
}

TEST_CASE("write_container_tar: the image with the upper applied", "[root]") {
    Fixture f;
    f.make_changes();
    std::string out = f.t.path() + "/export.tar";
    {
        UniqueFd fd = fs::open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        containers::write_container_tar(f.store, f.image, f.upper, fd.get());
    }
    auto files = tar_files(out);
    std::map<std::string, std::string> want = {
        {"etc", "dir"},
        {"etc/group", "root:x:0:\n"},
        {"etc/new", "new\n"},
        {"etc/passwd", "root:x:0:0::/root:/bin/ash\n"},
        {"newdir", "dir"},
        {"newdir/f", "f\n"},
        {"opt", "dir"},
        {"opt/keep", "dir"},
        {"opt/keep/b", "b\n"},
        {"tmp", "dir"},
        {"usr", "dir"},
        {"usr/bin", "dir"},
        {"usr/bin/tool", "#!/bin/sh\necho\n"},
        {"var", "dir"},
        {"var/old", "again\n"},
    };
    CHECK(files == want);
}
