#include "layer_test_util.hpp"

#include "tests/support/support.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

namespace strata::test {

using formats::EntryType;
using formats::TarEntry;

namespace {
TarEntry make(const std::string& path, EntryType t, std::uint32_t mode) {
    TarEntry e;
    e.path = path;
    e.type = t;
    e.mode = mode;
    e.mtime_sec = 1600000000;
    return e;
}
} // namespace

TarEntry file_entry(const std::string& path, std::uint32_t mode) {
    return make(path, EntryType::file, mode);
}
TarEntry dir_entry(const std::string& path, std::uint32_t mode) {
    return make(path, EntryType::dir, mode);
}
TarEntry symlink_entry(const std::string& path, const std::string& target) {
    TarEntry e = make(path, EntryType::symlink, 0777);
    e.linkname = target;
    return e;
}
TarEntry hardlink_entry(const std::string& path, const std::string& target) {
    TarEntry e = make(path, EntryType::hardlink, 0644);
    e.linkname = target;
    return e;
}

formats::LayerDigests write_layer(const std::string& path, const std::vector<LayerEntry>& entries,
                                  formats::Compression c) {
    UniqueFd out = fs::open(path, O_WRONLY | O_CREAT | O_TRUNC);
    formats::TarWriter::Options opts;
    opts.compression = c;
    formats::TarWriter w(out.get(), opts);
    for (const auto& le : entries) {
        w.add_data(le.entry, le.content);
    }
    auto d = w.finish();
    out.close();
    return d;
}

snapshot::ApplyStats apply(const std::string& layer, const std::string& dir,
                           snapshot::WhiteoutMode mode, bool userxattr) {
    UniqueFd in = fs::open(layer, O_RDONLY);
    snapshot::ApplyOptions opts;
    opts.mode = mode;
    opts.userxattr = userxattr;
    opts.layer_name = fs::basename(layer);
    return snapshot::apply_layer(in.get(), dir, opts);
}

void set_mtime(const std::string& path, std::int64_t sec) {
    struct timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = static_cast<time_t>(sec);
    ts[0].tv_nsec = ts[1].tv_nsec = 0;
    if (::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
        throw_errno("utimensat", path);
    }
}

void set_xattr(const std::string& path, const std::string& name, const std::string& value) {
    if (::lsetxattr(path.c_str(), name.c_str(), value.data(), value.size(), 0) != 0) {
        throw_errno("setxattr " + name, path);
    }
}

std::string get_xattr(const std::string& path, const std::string& name) {
    char buf[256];
    ssize_t n = ::lgetxattr(path.c_str(), name.c_str(), buf, sizeof buf);
    if (n < 0) {
        return {};
    }
    return std::string(buf, static_cast<std::size_t>(n));
}

void build_sample_tree(const std::string& r) {
    write_file(r + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
    write_file(r + "/etc/motd", "");
    write_file(r + "/bin/busybox", std::string(70000, 'b'), 0755);
    write_file(r + "/bin/su", "su", 0755);
    ::chmod((r + "/bin/su").c_str(), 04755);
    ::link((r + "/bin/busybox").c_str(), (r + "/bin/ls").c_str());
    ::link((r + "/bin/busybox").c_str(), (r + "/usr-ls").c_str());
    ::symlink("busybox", (r + "/bin/sh").c_str());
    ::symlink("/etc/passwd", (r + "/passwd-abs").c_str());
    ::symlink("../nowhere", (r + "/bin/dangling").c_str());
    fs::mkdirs(r + "/a/b/c/d/e");
    write_file(r + "/a/b/c/d/e/deep", "deep");
    write_file(r + "/a/name with spaces and ünïcödé", "u");
    write_file(r + "/a/" + std::string(200, 'L'), "long name");
    fs::mkdirs(r + "/empty");
    ::chmod((r + "/empty").c_str(), 0700);
    write_file(r + "/ro/inside", "in a read-only dir");
    ::chmod((r + "/ro").c_str(), 0555);
    fs::mkdirs(r + "/tmp");
    ::chmod((r + "/tmp").c_str(), 01777);
    ::mkfifo((r + "/run-fifo").c_str(), 0600);
    set_xattr(r + "/etc/passwd", "user.checksum", "abc");
    set_xattr(r + "/a", "user.dir", std::string("\0\1\2", 3));
    std::vector<std::string> all = {"etc/passwd", "etc/motd", "bin/busybox", "bin/su", "bin/sh",
                                    "passwd-abs", "bin/dangling", "a/b/c/d/e/deep",
                                    "a/name with spaces and ünïcödé", "a/" + std::string(200, 'L'),
                                    "ro/inside", "run-fifo", "a/b/c/d/e", "a/b/c/d", "a/b/c",
                                    "a/b", "a", "etc", "bin", "empty", "ro", "tmp"};
    std::int64_t t = 1500000000;
    for (const auto& p : all) {
        set_mtime(r + "/" + p, t += 1000);
    }
}

std::vector<std::string> list_layer(const std::string& path) {
    UniqueFd in = fs::open(path, O_RDONLY);
    formats::TarReader reader(in.get(), path);
    std::vector<std::string> out;
    while (auto e = reader.next()) {
        std::string t;
        switch (e->type) {
        case EntryType::file: t = "f"; break;
        case EntryType::dir: t = "d"; break;
        case EntryType::symlink: t = "l"; break;
        case EntryType::hardlink: t = "h"; break;
        case EntryType::chardev: t = "c"; break;
        case EntryType::blockdev: t = "b"; break;
        case EntryType::fifo: t = "p"; break;
        }
        std::string line = t + " " + e->path;
        if (!e->linkname.empty()) {
            line += " -> " + e->linkname;
        }
        out.push_back(line);
    }
    reader.finish();
    return out;
}

} // namespace strata::test
