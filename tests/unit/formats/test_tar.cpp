#include "formats/tar.hpp"
#include "tests/support/support.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>
#include <filesystem>
#include <fcntl.h>
#include <unistd.h>
#include <vector>

using namespace strata;
using namespace strata::formats;

namespace {

TarEntry entry(std::string path, EntryType type, std::uint32_t mode = 0644) {
    TarEntry e;
    e.path = std::move(path);
    e.type = type;
    e.mode = mode;
    e.mtime_sec = 1700000000;
    return e;
}

struct Written {
    std::string bytes;
    LayerDigests digests;
};

// The entries every writer test uses: one of each type, and the awkward ones.
Written write_sample(const std::string& path, TarWriter::Options opts) {
    UniqueFd out = fs::open(path, O_WRONLY | O_CREAT | O_TRUNC);
    TarWriter w(out.get(), opts);
    w.add(entry("etc", EntryType::dir, 0755));
    TarEntry f = entry("etc/passwd", EntryType::file);
    f.uid = 1000;
    f.gid = 100;
    f.uname = "alice";
    f.gname = "users";
    f.xattrs["user.note"] = std::string("bin\0ary", 7);
    f.xattrs["security.capability"] = "caps";
    w.add_data(f, "root:x:0:0::/root:/bin/sh\n");
    TarEntry suid = entry("bin/su", EntryType::file, 04755);
    suid.mtime_sec = 4000000000; // after 2038 and after the clamp
    suid.mtime_nsec = 123456789;
    w.add_data(suid, std::string(100000, 'x'));
    TarEntry hl = entry("bin/su2", EntryType::hardlink, 04755);
    hl.linkname = "bin/su";
    w.add(hl);
    TarEntry sl = entry("bin/sh", EntryType::symlink, 0777);
    sl.linkname = "/bin/busybox";
    w.add(sl);
    TarEntry cd = entry("dev/null", EntryType::chardev, 0666);
    cd.devmajor = 1;
    cd.devminor = 3;
    w.add(cd);
    TarEntry bd = entry("dev/sda", EntryType::blockdev, 0660);
    bd.devmajor = 8;
    bd.devminor = 0;
    w.add(bd);
    w.add(entry("run/fifo", EntryType::fifo, 0600));
    std::string longname = "deep/" + std::string(120, 'n') + "/" + std::string(150, 'f');
    TarEntry big = entry(longname, EntryType::file);
    big.uid = 3000000000u; // does not fit ustar's octal field
    w.add_data(big, "long");
    LayerDigests d = w.finish();
    out.close();
    return Written{fs::read_file(path), d};
}

std::vector<TarEntry> read_all(const std::string& path, LayerDigests* digests = nullptr,
                               std::vector<std::string>* contents = nullptr) {
    UniqueFd in = fs::open(path, O_RDONLY);
    TarReader r(in.get(), path);
    std::vector<TarEntry> out;
    while (auto e = r.next()) {
        if (contents != nullptr) {
            std::string c;
            char buf[7000];
            while (std::size_t n = r.read(buf, sizeof buf)) {
                c.append(buf, n);
            }
            contents->push_back(c);
        }
        out.push_back(*e);
    }
    LayerDigests d = r.finish();
    if (digests != nullptr) {
        *digests = d;
    }
    return out;
}

} // namespace

TEST_CASE("tar writer and reader round-trip every entry type and attribute") {
    for (auto c : {Compression::none, Compression::gzip, Compression::zstd}) {
        INFO(to_string(c));
        TempDir dir;
        std::string p = dir.path() + "/layer";
        TarWriter::Options opts;
        opts.compression = c;
        Written w = write_sample(p, opts);
        LayerDigests rd{Digest::of(""), 0, Digest::of(""), 0};
        std::vector<std::string> contents;
        auto es = read_all(p, &rd, &contents);
        REQUIRE(es.size() == 9);
        CHECK(es[0].path == "etc");
        CHECK(es[0].type == EntryType::dir);
        CHECK(es[0].mode == 0755);
        CHECK(es[1].path == "etc/passwd");
        CHECK(es[1].uid == 1000);
        CHECK(es[1].gid == 100);
        CHECK(es[1].uname == "alice");
        CHECK(es[1].gname == "users");
        CHECK(es[1].mtime_sec == 1700000000);
        CHECK(es[1].xattrs.at("user.note") == std::string("bin\0ary", 7));
        CHECK(es[1].xattrs.at("security.capability") == "caps");
        CHECK(contents[1] == "root:x:0:0::/root:/bin/sh\n");
        CHECK(es[2].mode == 04755);
        CHECK(es[2].size == 100000);
        CHECK(es[2].mtime_sec == 4000000000);
        CHECK(es[2].mtime_nsec == 123456789);
        CHECK(contents[2] == std::string(100000, 'x'));
        CHECK(es[3].type == EntryType::hardlink);
        CHECK(es[3].linkname == "bin/su");
        CHECK(es[4].type == EntryType::symlink);
        CHECK(es[4].linkname == "/bin/busybox");
        CHECK(es[5].type == EntryType::chardev);
        CHECK(es[5].devmajor == 1);
        CHECK(es[5].devminor == 3);
        CHECK(es[6].type == EntryType::blockdev);
        CHECK(es[6].devmajor == 8);
        CHECK(es[7].type == EntryType::fifo);
        CHECK(es[8].path.size() > 250);
        CHECK(es[8].uid == 3000000000u);
        CHECK(contents[8] == "long");
        // Digests agree between writer, reader and the bytes.
        CHECK(rd.diff_id == w.digests.diff_id);
        CHECK(rd.blob_digest == w.digests.blob_digest);
        CHECK(rd.diff_size == w.digests.diff_size);
        CHECK(w.digests.blob_digest == Digest::of(w.bytes));
        CHECK(w.digests.blob_size == w.bytes.size());
        if (c == Compression::none) {
            CHECK(w.digests.diff_id == w.digests.blob_digest);
        } else {
            CHECK(w.digests.diff_id != w.digests.blob_digest);
        }
    }
}

TEST_CASE("tar output is deterministic PAX without atime, ctime or libarchive's own headers") {
    TempDir dir;
    TarWriter::Options opts;
    opts.compression = Compression::none;
    Written a = write_sample(dir.path() + "/a", opts);
    Written b = write_sample(dir.path() + "/b", opts);
    CHECK(a.bytes == b.bytes);
    CHECK(a.digests.diff_id == b.digests.diff_id);
    CHECK(a.bytes.find("atime") == std::string::npos);
    CHECK(a.bytes.find("ctime") == std::string::npos);
    CHECK(a.bytes.find("LIBARCHIVE.") == std::string::npos);
    CHECK(a.bytes.find("SCHILY.xattr.user.note") != std::string::npos);
    CHECK(a.bytes.find("ustar") != std::string::npos);
    // Unblocked: header blocks + data + two zero blocks, a multiple of 512.
    CHECK(a.bytes.size() % 512 == 0);
    CHECK(a.bytes.size() < 10240 * 12);
    // zstd output is deterministic too, with any number of threads.
    opts.compression = Compression::zstd;
    opts.threads = 1;
    Written z1 = write_sample(dir.path() + "/z1", opts);
    opts.threads = 4;
    Written z4 = write_sample(dir.path() + "/z4", opts);
    CHECK(z1.digests.diff_id == a.digests.diff_id);
    CHECK(z4.digests.diff_id == a.digests.diff_id);
    opts.threads = 4;
    CHECK(write_sample(dir.path() + "/z4b", opts).bytes == z4.bytes);
    CHECK(z1.bytes == z4.bytes);
    CHECK(z1.digests.blob_digest == z4.digests.blob_digest);
}

TEST_CASE("clamp_mtime clamps later mtimes only (SOURCE_DATE_EPOCH)") {
    TempDir dir;
    TarWriter::Options opts;
    opts.compression = Compression::none;
    opts.clamp_mtime = 1800000000;
    write_sample(dir.path() + "/l", opts);
    auto es = read_all(dir.path() + "/l");
    CHECK(es[1].mtime_sec == 1700000000); // earlier: kept
    CHECK(es[2].mtime_sec == 1800000000); // later: clamped
    CHECK(es[2].mtime_nsec == 0);
}

TEST_CASE("truncated compressed layers are errors naming the codec, the layer and the entry") {
    for (auto c : {Compression::gzip, Compression::zstd}) {
        TempDir dir;
        TarWriter::Options opts;
        opts.compression = c;
        Written w = write_sample(dir.path() + "/l", opts);
        std::string cut = dir.path() + "/cut";
        fs::write_file_atomic(cut, w.bytes.substr(0, w.bytes.size() * 2 / 3));
        std::string codec(to_string(c));
        CHECK_THROWS_WITH(read_all(cut), Catch::Contains("unexpected end of " + codec + " stream") &&
                                             Catch::Contains(cut));
        // Cut right at the end: every entry reads, the stream does not end.
        fs::write_file_atomic(cut, w.bytes.substr(0, w.bytes.size() - 3));
        CHECK_THROWS_WITH(read_all(cut), Catch::Contains("unexpected end of " + codec + " stream"));
    }
}

TEST_CASE("a truncated plain tar is an error naming the entry") {
    TempDir dir;
    TarWriter::Options opts;
    opts.compression = Compression::none;
    Written w = write_sample(dir.path() + "/l", opts);
    std::string cut = dir.path() + "/cut";
    // Cut inside bin/su's 100000 bytes of content.
    std::size_t at = w.bytes.find(std::string(1000, 'x')) + 5000;
    fs::write_file_atomic(cut, w.bytes.substr(0, at));
    CHECK_THROWS_WITH(read_all(cut, nullptr, nullptr), Catch::Contains(cut));
    std::vector<std::string> contents;
    CHECK_THROWS_WITH(read_all(cut, nullptr, &contents), Catch::Contains("bin/su"));
}

TEST_CASE("garbage is not a tar layer") {
    TempDir dir;
    std::string p = dir.path() + "/junk";
    fs::write_file_atomic(p, std::string(4096, 'j'));
    CHECK_THROWS_WITH(read_all(p), Catch::Contains(p));
}

TEST_CASE("copy_to streams an entry's content to a file") {
    TempDir dir;
    TarWriter::Options opts;
    opts.compression = Compression::zstd;
    write_sample(dir.path() + "/l", opts);
    UniqueFd in = fs::open(dir.path() + "/l", O_RDONLY);
    TarReader r(in.get(), "l");
    CHECK(r.compression() == Compression::zstd);
    while (auto e = r.next()) {
        if (e->path == "bin/su") {
            UniqueFd out = fs::open(dir.path() + "/su", O_WRONLY | O_CREAT);
            r.copy_to(out.get());
        }
    }
    r.finish();
    CHECK(fs::read_file(dir.path() + "/su") == std::string(100000, 'x'));
}

TEST_CASE("a failing output is an error from the writer, never a hang, in every compression") {
    for (auto c : {Compression::none, Compression::gzip, Compression::zstd}) {
        INFO(to_string(c));
        // Writes to a read-only descriptor fail (EBADF) on the output stage.
        UniqueFd ro = fs::open("/dev/null", O_RDONLY);
        TarWriter::Options opts;
        opts.compression = c;
        TarWriter w(ro.get(), opts);
        std::string big(8 << 20, 'x');
        for (std::size_t i = 0; i < big.size(); i += 7) {
            big[i] = static_cast<char>(i * 2654435761u >> 24); // not too compressible
        }
        auto add_all = [&] {
            for (int i = 0; i < 4; ++i) {
                TarEntry e = entry("f" + std::to_string(i), EntryType::file);
                w.add_data(e, big);
            }
            w.finish();
        };
        CHECK_THROWS_AS(add_all(), SysError);
    }
}

namespace {

// The threads of this process (/proc/self/task).
std::size_t thread_count() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
        ++n;
    }
    return n;
}

// The thread count once it settles back to `want` (a joined thread may stay
// listed for a moment), or what it is after a second.
std::size_t settled_thread_count(std::size_t want) {
    std::size_t n = thread_count();
    for (int i = 0; i < 100 && n != want; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        n = thread_count();
    }
    return n;
}

} // namespace

TEST_CASE("a writer destroyed before finish stops its threads and writes no end of archive") {
    TempDir dir;
    const std::size_t before = thread_count();
    for (auto c : {Compression::none, Compression::gzip, Compression::zstd}) {
        INFO("compression " << static_cast<int>(c));
        std::string p = dir.path() + "/l";
        UniqueFd out = fs::open(p, O_WRONLY | O_CREAT | O_TRUNC);
        {
            TarWriter::Options opts;
            opts.compression = c;
            opts.threads = 2;
            TarWriter w(out.get(), opts);
            w.add_data(entry("a", EntryType::file), std::string(3 << 20, 'a'));
            if (c == Compression::zstd) {
                CHECK(thread_count() > before); // zstd's workers run now
            }
        }
        // Every thread the writer started is gone,
        CHECK(settled_thread_count(before) == before);
        // and what was written (if anything) is not a complete layer.
        CHECK_THROWS(read_all(p));
    }
}
