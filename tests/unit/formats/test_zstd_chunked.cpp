#include "formats/compression.hpp"
#include "formats/digest.hpp"
#include "formats/tar.hpp"
#include "formats/zstd_chunked.hpp"
#include "util/child.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/mapped_file.hpp"
#include "util/sha256_resumable.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <fcntl.h>
#include <set>
#include <string>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <vector>
#include <zstd.h>

using namespace strata;
using namespace strata::formats;

namespace {

// Incompressible bytes (an LCG's high bits), deterministic per seed.
std::string noise(std::size_t n, std::uint32_t seed) {
    std::string s(n, '\0');
    std::uint64_t x = seed * 2654435761u + 1;
    for (auto& c : s) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        c = static_cast<char>(x >> 56);
    }
    return s;
}

struct Item {
    TarEntry entry;
    std::string content;
};

TarEntry entry(const std::string& path, EntryType t, std::uint32_t mode = 0644) {
    TarEntry e;
    e.path = path;
    e.type = t;
    e.mode = mode;
    e.mtime_sec = 1700000000;
    return e;
}

std::vector<Item> sample_items(const std::string& changed = "v1") {
    std::vector<Item> items;
    items.push_back({entry("app", EntryType::dir, 0755), {}});
    items.push_back({entry("app/a.txt", EntryType::file), "hello " + changed + "\n"});
    TarEntry x = entry("app/attrs", EntryType::file, 04755);
    x.uid = 1000;
    x.gid = 100;
    x.uname = "alice";
    x.mtime_nsec = 123456789;
    x.xattrs["user.note"] = std::string("bin\0ary", 7);
    items.push_back({x, std::string(5000, 'z')});
    items.push_back(
        {entry("app/big.bin", EntryType::file), noise(2 * k_chunked_chunk_size + 12345, 7)});
    items.push_back({entry("app/empty", EntryType::file), {}});
    TarEntry hl = entry("app/hl", EntryType::hardlink);
    hl.linkname = "app/a.txt";
    items.push_back({hl, {}});
    TarEntry sl = entry("app/sl", EntryType::symlink, 0777);
    sl.linkname = "../etc/passwd";
    items.push_back({sl, {}});
    TarEntry cd = entry("dev/null", EntryType::chardev, 0666);
    cd.devmajor = 1;
    cd.devminor = 3;
    items.push_back({cd, {}});
    for (int i = 0; i < 50; ++i) {
        items.push_back({entry("many/f" + std::to_string(i), EntryType::file),
                         "small file " + std::to_string(i) + "\n"});
    }
    items.push_back({entry("z/exact", EntryType::file), noise(k_chunked_chunk_size, 9)});
    return items;
}

UniqueFd memfd(const char* name) {
    int fd = ::memfd_create(name, MFD_CLOEXEC);
    REQUIRE(fd >= 0);
    return UniqueFd(fd);
}

std::string fd_bytes(int fd) {
    off_t size = ::lseek(fd, 0, SEEK_END);
    std::string s(static_cast<std::size_t>(size), '\0');
    REQUIRE(::pread(fd, s.data(), s.size(), 0) == size);
    return s;
}

std::string plain_tar(const std::vector<Item>& items, LayerDigests* d = nullptr) {
    UniqueFd fd = memfd("plain");
    TarWriter::Options o;
    o.compression = Compression::none;
    TarWriter w(fd.get(), o);
    for (const auto& it : items) {
        w.add_data(it.entry, it.content);
    }
    LayerDigests r = w.finish();
    if (d != nullptr) {
        *d = r;
    }
    return fd_bytes(fd.get());
}

struct Chunked {
    std::string blob;
    ChunkedLayerInfo info;
};

Chunked chunked(const std::vector<Item>& items, int threads = 2, const Chunked* old = nullptr,
                const std::string* old_blob_override = nullptr) {
    UniqueFd fd = memfd("chunked");
    ChunkedWriter::Options o;
    o.threads = threads;
    ChunkedWriter w(fd.get(), o);
    UniqueFd old_fd;
    if (old != nullptr) {
        old_fd = memfd("old");
        const std::string& b = old_blob_override != nullptr ? *old_blob_override : old->blob;
        fs::write_all(old_fd.get(), "old", b.data(), b.size());
        auto toc = read_chunked_toc(old_fd.get(), b.size(), "old");
        REQUIRE(toc);
        w.reuse_from(old_fd.get(), *toc, "old");
    }
    for (const auto& it : items) {
        w.add_data(it.entry, it.content);
    }
    Chunked c;
    c.info = w.finish();
    c.blob = fd_bytes(fd.get());
    return c;
}

std::string zstd_decode(const std::string& blob) {
    std::string out;
    auto d = Decompressor::create(Compression::zstd, [&](const void* p, std::size_t n) {
        out.append(static_cast<const char*>(p), n);
    });
    d->feed(blob.data(), blob.size());
    d->finish();
    return out;
}

ChunkedToc toc_of(const std::string& blob, const std::string& what = "sha256:test") {
    UniqueFd fd = memfd("toc");
    fs::write_all(fd.get(), "toc", blob.data(), blob.size());
    auto t = read_chunked_toc(fd.get(), blob.size(), what);
    REQUIRE(t);
    return *t;
}

void append_skippable(std::string& s, const std::string& data) {
    std::uint32_t magic = 0x184D2A50, n = static_cast<std::uint32_t>(data.size());
    s.append(reinterpret_cast<const char*>(&magic), 4); // little endian host (x86/arm64)
    s.append(reinterpret_cast<const char*>(&n), 4);
    s += data;
}

// A blob of `frames` followed by the given TOC JSON and a footer, optionally
// with footer fields overridden.
std::string craft(const std::string& frames, const std::string& json,
                  std::optional<std::uint64_t> offset = {}, std::optional<std::uint64_t> len = {},
                  std::optional<std::uint64_t> raw = {}, std::uint64_t type = 1) {
    std::string comp(ZSTD_compressBound(json.size()), '\0');
    comp.resize(ZSTD_compress(comp.data(), comp.size(), json.data(), json.size(), 3));
    std::string s = frames;
    std::uint64_t toc_off = s.size() + 8;
    append_skippable(s, comp);
    std::string footer;
    auto put = [&](std::uint64_t v) { footer.append(reinterpret_cast<const char*>(&v), 8); };
    put(offset.value_or(toc_off));
    put(len.value_or(comp.size()));
    put(raw.value_or(json.size()));
    put(type);
    put(0);
    put(0);
    put(0);
    footer += "GNUlInUx";
    append_skippable(s, footer);
    return s;
}

std::string zframe(const std::string& data) {
    std::string comp(ZSTD_compressBound(data.size()), '\0');
    comp.resize(ZSTD_compress(comp.data(), comp.size(), data.data(), data.size(), 3));
    return comp;
}

std::string refusal(const std::string& blob, const std::string& what = "sha256:hostile") {
    UniqueFd fd = memfd("hostile");
    fs::write_all(fd.get(), "hostile", blob.data(), blob.size());
    try {
        auto t = read_chunked_toc(fd.get(), blob.size(), what);
        return t ? "accepted" : "nullopt";
    } catch (const Error& e) {
        return e.what();
    }
}

} // namespace

TEST_CASE("zstd:chunked: the blob decodes to the plain writer's tar, with its diff ID") {
    auto items = sample_items();
    LayerDigests plain{Digest::of(""), 0, Digest::of(""), 0};
    std::string tar = plain_tar(items, &plain);
    Chunked c = chunked(items);
    CHECK(c.info.digests.diff_id == plain.diff_id);
    CHECK(c.info.digests.diff_size == tar.size());
    CHECK(c.info.digests.blob_digest == Digest::of(c.blob));
    CHECK(c.info.digests.blob_size == c.blob.size());
    CHECK(zstd_decode(c.blob) == tar);
    if (auto zstd = find_program("zstd")) {
        TempDir dir;
        fs::write_file_atomic(dir.path() + "/blob.zst", c.blob);
        RunResult r = run_capture({*zstd, "-d", "-c", "-q", dir.path() + "/blob.zst"});
        REQUIRE(r.status.success());
        CHECK(r.out == tar);
    }
}

TEST_CASE("zstd:chunked: the TOC describes every entry and each range decodes to its bytes") {
    auto items = sample_items();
    Chunked c = chunked(items);
    UniqueFd fd = memfd("blob");
    fs::write_all(fd.get(), "blob", c.blob.data(), c.blob.size());
    auto toc = read_chunked_toc(fd.get(), c.blob.size(), "sha256:x");
    REQUIRE(toc);
    CHECK(toc->digest == c.info.toc_digest);
    auto ann = chunked_annotations(c.info);
    CHECK(ann.at("io.github.containers.zstd-chunked.manifest-checksum") == toc->digest);
    CHECK(ann.at("io.github.containers.zstd-chunked.manifest-position") ==
          std::to_string(c.info.toc_offset) + ":" + std::to_string(c.info.toc_size) + ":" +
              std::to_string(c.info.toc_raw_size) + ":1");
    // The TOC's digest is the sha256 of its compressed bytes at that position.
    CHECK(Digest::of(c.blob.substr(c.info.toc_offset, c.info.toc_size)).str() == toc->digest);
    CHECK(read_chunked_toc(fd.get(), c.blob.size(), "x", toc->digest));

    std::size_t i = 0;
    std::size_t chunks_seen = 0;
    for (const auto& it : items) {
        INFO(it.entry.path);
        REQUIRE(i < toc->entries.size());
        const ChunkedEntry& e = toc->entries[i];
        CHECK(e.name == it.entry.path);
        CHECK(e.mode == (it.entry.mode & 07777));
        CHECK(e.uid == it.entry.uid);
        CHECK(e.gid == it.entry.gid);
        CHECK(e.mtime_sec == it.entry.mtime_sec);
        CHECK(e.mtime_nsec == it.entry.mtime_nsec);
        CHECK(e.xattrs == it.entry.xattrs);
        CHECK(e.link_name == it.entry.linkname);
        CHECK(e.devmajor == it.entry.devmajor);
        CHECK(e.devminor == it.entry.devminor);
        ++i;
        if (it.entry.type != EntryType::file) {
            CHECK(e.type != "reg");
            continue;
        }
        CHECK(e.type == "reg");
        CHECK(e.size == it.content.size());
        if (it.content.empty()) {
            CHECK(e.offset == 0);
            CHECK(e.end_offset == 0);
            continue;
        }
        CHECK(e.digest == Digest::of(it.content).str());
        std::string got = read_chunked_range(fd.get(), e.offset, e.end_offset, e.chunk_size, "x");
        while (i < toc->entries.size() && toc->entries[i].type == "chunk") {
            const ChunkedEntry& ch = toc->entries[i];
            CHECK(ch.name == e.name);
            CHECK(ch.chunk_offset == got.size());
            got += read_chunked_range(fd.get(), ch.offset, ch.end_offset, ch.chunk_size, "x");
            ++chunks_seen;
            ++i;
        }
        CHECK(got == it.content);
    }
    CHECK(i == toc->entries.size());
    CHECK(chunks_seen == 2); // big.bin: 3 chunks; z/exact: exactly one
}

TEST_CASE("zstd:chunked: the output does not depend on the thread count") {
    auto items = sample_items();
    Chunked one = chunked(items, 1);
    for (int t : {2, 3, 8}) {
        INFO(t);
        Chunked c = chunked(items, t);
        CHECK(c.blob == one.blob);
    }
}

TEST_CASE("zstd:chunked: thousands of small files each get their range and digest") {
    // The TOC grows (and moves in memory) while the output thread places the
    // frames: each file's offsets and digest must still land in the TOC.
    std::vector<Item> items;
    for (int i = 0; i < 20000; ++i) {
        items.push_back({entry("d/f" + std::to_string(i), EntryType::file),
                         noise(64 + static_cast<std::size_t>(i % 50) * 40,
                               static_cast<std::uint32_t>(i))});
    }
    Chunked c = chunked(items, 4);
    // Its TOC's JSON is several MiB, compressed as it is rendered, a MiB at
    // a time: the same bytes every time and for any thread count.
    CHECK(chunked(items, 1).blob == c.blob);
    ChunkedToc toc = toc_of(c.blob);
    REQUIRE(toc.entries.size() == items.size());
    std::size_t bad = 0;
    for (std::size_t i = 0; i < items.size(); ++i) {
        const ChunkedEntry& e = toc.entries[i];
        if (e.end_offset <= e.offset || e.digest != Digest::of(items[i].content).str()) {
            ++bad;
        }
    }
    CHECK(bad == 0);
    UniqueFd fd = memfd("blob");
    fs::write_all(fd.get(), "blob", c.blob.data(), c.blob.size());
    const ChunkedEntry& last = toc.entries.back();
    CHECK(read_chunked_range(fd.get(), last.offset, last.end_offset, last.chunk_size, "x") ==
          items.back().content);
}

TEST_CASE("zstd:chunked: an empty layer and blobs without a footer") {
    Chunked c = chunked({});
    CHECK(zstd_decode(c.blob) == plain_tar({}));
    CHECK(toc_of(c.blob).entries.empty());
    CHECK(refusal(zframe("plain zstd stream, no footer")) == "nullopt");
    CHECK(refusal("tiny") == "nullopt");
    CHECK(refusal(std::string(200, '\0')) == "nullopt");
}

TEST_CASE("zstd:chunked: the TOC's JSON says names with quotes, backslashes and control bytes") {
    std::vector<std::string> names = {"d/q\"uote", "d/back\\slash", "d/new\nline",
                                      "d/tab\tctl\x01\x1f", "d/\xc3\xa9", "d/\x7f"};
    std::vector<Item> items = {{entry("d", EntryType::dir, 0755), {}}};
    for (const auto& n : names) {
        items.push_back({entry(n, EntryType::file), "x\n"});
    }
    TarEntry x = entry("d/attrs", EntryType::file);
    x.xattrs["user.k\"ey"] = "v\"al\n";
    items.push_back({x, "y\n"});
    Chunked c = chunked(items);
    ChunkedToc t = toc_of(c.blob);
    REQUIRE(t.entries.size() == items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
        CHECK(t.entries[i].name == items[i].entry.path);
    }
    CHECK(t.entries.back().xattrs == x.xattrs);
}

TEST_CASE("zstd:chunked: a layer with a name that is not UTF-8 has no TOC") {
    // A TOC's names are JSON strings: such a name would be read back as
    // another. The frames are written as ever, with no TOC and no footer.
    std::vector<Item> items = {{entry("d", EntryType::dir, 0755), {}},
                               {entry("d/bad\xffname", EntryType::file), "x\n"},
                               {entry("d/ok\xc3\xa9", EntryType::file), "y\n"}};
    LayerDigests plain{Digest::of(""), 0, Digest::of(""), 0};
    std::string tar = plain_tar(items, &plain);
    Chunked c = chunked(items);
    CHECK(zstd_decode(c.blob) == tar);
    CHECK(c.info.digests.diff_id == plain.diff_id);
    CHECK(c.info.digests.blob_digest == Digest::of(c.blob));
    CHECK(c.info.toc_digest.empty());
    CHECK(chunked_annotations(c.info).empty());
    CHECK(refusal(c.blob) == "nullopt");
    // Valid UTF-8 keeps its TOC.
    items.erase(items.begin() + 1);
    Chunked ok = chunked(items);
    CHECK(!chunked_annotations(ok.info).empty());
    CHECK(toc_of(ok.blob).entries.size() == 2);
}

TEST_CASE("zstd:chunked: hostile footers and TOCs are refused naming the blob") {
    const std::string good_json =
        R"({"version":1,"entries":[{"type":"reg","name":"a","size":3,"offset":0,"endOffset":12}]})";
    std::string frames = zframe("abc");
    REQUIRE(frames.size() == 12);
    REQUIRE(refusal(craft(frames, good_json)) == "accepted");
    struct Case {
        const char* name;
        std::string blob;
        const char* expect;
    };
    std::vector<Case> cases = {
        {"toc offset past the blob", craft(frames, good_json, std::uint64_t{1} << 40), "outside"},
        {"toc offset inside the footer", craft(frames, good_json, 12 + 8 + 100), "outside"},
        {"huge toc length", craft(frames, good_json, {}, std::uint64_t{1} << 62), "out of range"},
        {"huge uncompressed length", craft(frames, good_json, {}, {}, std::uint64_t{1} << 60),
         "out of range"},
        {"wrong uncompressed length", craft(frames, good_json, {}, {}, 10), "decompress"},
        {"unknown manifest type", craft(frames, good_json, {}, {}, {}, 2), "manifest type"},
        {"toc not in a skippable frame", craft(frames, good_json, 8), "skippable"},
        {"bad json", craft(frames, "{\"version\":1,\"entries\":[{"), "invalid JSON"},
        {"wrong version", craft(frames, R"({"version":2,"entries":[]})"), "version"},
        {"dot-dot name",
         craft(frames, R"({"version":1,"entries":[{"type":"dir","name":"a/../../x"}]})"),
         "unsafe name"},
        {"root name", craft(frames, R"({"version":1,"entries":[{"type":"dir","name":"./"}]})"),
         "unsafe name"},
        {"hardlink escaping",
         craft(
             frames,
             R"({"version":1,"entries":[{"type":"hardlink","name":"x","linkName":"../etc/shadow"}]})"),
         "unsafe name"},
        {"unknown type", craft(frames, R"({"version":1,"entries":[{"type":"socket","name":"x"}]})"),
         "unknown type"},
        {"negative size",
         craft(frames, R"({"version":1,"entries":[{"type":"reg","name":"a","size":-1}]})"),
         "non-negative"},
        {"range past the TOC",
         craft(
             frames,
             R"({"version":1,"entries":[{"type":"reg","name":"a","size":3,"offset":0,"endOffset":5000}]})"),
         "out of range"},
        {"empty range for content",
         craft(
             frames,
             R"({"version":1,"entries":[{"type":"reg","name":"a","size":3,"offset":4,"endOffset":4}]})"),
         "bad offsets"},
        {"orphan chunk",
         craft(frames, R"({"version":1,"entries":[{"type":"chunk","name":"a","chunkOffset":5}]})"),
         "follows no regular file"},
        {"chunks that do not tile the file",
         craft(
             frames,
             R"({"version":1,"entries":[{"type":"reg","name":"a","size":3,"offset":0,"endOffset":12,"chunkSize":1},{"type":"chunk","name":"a","offset":6,"chunkOffset":2,"chunkSize":1}]})"),
         "starts at"},
        {"bad xattr",
         craft(frames,
               R"({"version":1,"entries":[{"type":"dir","name":"d","xattrs":{"user.x":"***"}}]})"),
         "base64"},
        {"bad digest",
         craft(
             frames,
             R"({"version":1,"entries":[{"type":"reg","name":"a","size":3,"offset":0,"endOffset":12,"digest":"md5:x"}]})"),
         "bad digest"},
        {"bad modtime",
         craft(frames,
               R"({"version":1,"entries":[{"type":"dir","name":"d","modtime":"yesterday"}]})"),
         "modtime"},
    };
    for (const auto& c : cases) {
        INFO(c.name);
        std::string msg = refusal(c.blob);
        CHECK(msg.find("sha256:hostile") != std::string::npos);
        CHECK(msg.find(c.expect) != std::string::npos);
    }
    // A TOC whose digest is not the annotation's.
    std::string blob = craft(frames, good_json);
    UniqueFd fd = memfd("digest");
    fs::write_all(fd.get(), "d", blob.data(), blob.size());
    const std::string other = Digest::of("other").str();
    try {
        read_chunked_toc(fd.get(), blob.size(), "sha256:named", other);
        FAIL("a TOC with another digest was accepted");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("sha256:named") != std::string::npos);
        CHECK(std::string(e.what()).find("does not match") != std::string::npos);
    }
}

// The layer writer gives back the previous blob's pages behind it
// (MappedFile::drop): the range leaves the page cache, and reads of it
// still give the file's bytes (from the disk again).
TEST_CASE("MappedFile::drop gives a range's pages back and loses no byte") {
    // On the build tree's filesystem (a disk's: tmpfs keeps its pages).
    TempDir dir(fs::absolute("."), "drop-");
    struct statfs sf {};
    REQUIRE(::statfs(dir.path().c_str(), &sf) == 0);
    REQUIRE(sf.f_type != 0x01021994); // TMPFS_MAGIC: the test could not see a drop
    const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    const std::size_t n = 1024 * page;
    std::string bytes(n, '\0');
    for (std::size_t i = 0; i < n; ++i) {
        bytes[i] = static_cast<char>((i * 131) ^ (i >> 12));
    }
    std::string path = dir.path() + "/blob";
    fs::write_file_atomic(path, bytes);
    UniqueFd fd = fs::open(path, O_RDONLY);
    REQUIRE(::fsync(fd.get()) == 0); // clean pages: the only ones a drop can give back
    MappedFile m;
    REQUIRE(m.map(fd.get()));
    REQUIRE(std::string(m.data(), m.size()) == bytes); // every page read in
    auto resident = [&](std::size_t from, std::size_t to) {
        std::vector<unsigned char> v((to - from) / page);
        REQUIRE(::mincore(const_cast<char*>(m.data()) + from, to - from, v.data()) == 0);
        std::size_t in = 0;
        for (unsigned char c : v) {
            in += c & 1;
        }
        return in;
    };
    REQUIRE(resident(0, n) == n / page);
    // Past the end, or empty: nothing happens.
    m.drop(fd.get(), n + page, page);
    m.drop(fd.get(), 0, 0);
    CHECK(resident(0, n) == n / page);
    // A part (the page cache may hold the file in folios of many pages: a
    // folio goes only when all of it is in the range), then all of it.
    m.drop(fd.get(), 100 * page + page / 2, 600 * page);
    CHECK(std::string(m.data(), m.size()) == bytes);
    m.drop(fd.get(), 0, n);
    CHECK(resident(0, n) == 0);
    CHECK(std::string(m.data(), m.size()) == bytes);
}

TEST_CASE("zstd:chunked: the TOC's JSON is read as a JSON object is, errors in order") {
    std::string frames = zframe("abc");
    auto read = [&](const std::string& json) {
        std::string blob = craft(frames, json);
        UniqueFd fd = memfd("toc");
        fs::write_all(fd.get(), "toc", blob.data(), blob.size());
        return read_chunked_toc(fd.get(), blob.size(), "sha256:shape");
    };
    SECTION("a later duplicate key replaces an earlier one") {
        auto t = read(R"({"version":2,"version":1,"entries":[{"type":"socket"}],)"
                      R"("entries":[{"type":"dir","name":"x","name":"d","mode":1,"mode":493}]})");
        REQUIRE(t);
        REQUIRE(t->entries.size() == 1);
        CHECK(t->entries[0].name == "d");
        CHECK(t->entries[0].mode == 0755);
    }
    SECTION("unknown keys are skipped, whatever they hold") {
        auto t = read(
            R"({"x":{"version":5,"entries":7},"entries":[{"type":"dir","name":"d",)"
            R"("extra":{"name":"zz","type":"q","xattrs":5},"more":[1,{"a":[]}],)"
            R"("linkName":null,"xattrs":null,"size":null},)"
            R"({"type":"symlink","name":"l","linkName":"d","xattrs":{"user.a":"eA==","user.a":"eQ=="}}],)"
            R"("tail":[{"type":"bad"}],"version":1})");
        REQUIRE(t);
        REQUIRE(t->entries.size() == 2);
        CHECK(t->entries[0].name == "d");
        CHECK(t->entries[0].xattrs.empty());
        CHECK(t->entries[1].link_name == "d");
        CHECK(t->entries[1].xattrs.at("user.a") == "y");
    }
    struct Case {
        const char* name;
        const char* json;
        const char* expect;
    };
    std::vector<Case> cases = {
        {"an array", "[1,2]", "not a JSON object"},
        {"a number", "5", "not a JSON object"},
        {"no entries", R"({"version":1})", R"(no "entries" array)"},
        {"entries an object", R"({"version":1,"entries":{}})", R"(no "entries" array)"},
        {"entries last a string", R"({"version":1,"entries":[],"entries":"x"})",
         R"(no "entries" array)"},
        {"version an object", R"({"version":{"a":1},"entries":[]})", "version is not 1"},
        {"version a float", R"({"version":1.0,"entries":[]})", "version is not 1"},
        {"an entry not an object", R"({"version":1,"entries":[{"type":"dir","name":"d"},5]})",
         "entry 1: not an object"},
        {"an entry an array", R"({"version":1,"entries":[[]]})", "entry 0: not an object"},
        {"a size as a string", R"({"version":1,"entries":[{"type":"reg","name":"a","size":"3"}]})",
         R"(entry 0: "size" is not a non-negative integer)"},
        {"a mode as a float", R"({"version":1,"entries":[{"type":"dir","name":"a","mode":1.5}]})",
         R"("mode" is not a non-negative integer)"},
        {"a name as an object", R"({"version":1,"entries":[{"type":"dir","name":{"a":"b"}}]})",
         R"("name" is not a string)"},
        {"xattrs an array", R"({"version":1,"entries":[{"type":"dir","name":"d","xattrs":[]}]})",
         R"("xattrs" is not an object)"},
        {"an xattr not a string",
         R"({"version":1,"entries":[{"type":"dir","name":"d","xattrs":{"user.b":"eA==","user.a":{}}}]})",
         "xattr user.a is not a string"},
        {"the first bad entry is named",
         R"({"version":1,"entries":[{"type":"dir","name":"d"},{"type":"x"},{"type":"dir","name":"../e"}]})",
         "entry 1: unknown type"},
        {"an unsafe name before a later fault",
         R"({"version":1,"entries":[{"type":"dir","name":"../e"},{"type":"x"}]})",
         "TOC entry 0 has an unsafe name"},
        {"the shape before the entries", R"({"entries":[5],"version":2})", "version is not 1"},
        {"the syntax before everything", R"({"entries":[5],"version":2,)", "invalid JSON"},
    };
    for (const auto& c : cases) {
        INFO(c.name);
        std::string msg = refusal(craft(frames, c.json), "sha256:shape");
        CHECK(msg.find("sha256:shape") != std::string::npos);
        CHECK(msg.find(c.expect) != std::string::npos);
    }
}

TEST_CASE("zstd:chunked: hostile ranges are refused naming the blob") {
    std::string frames = zframe("abc") + zframe(std::string(100, 'q'));
    UniqueFd fd = memfd("ranges");
    fs::write_all(fd.get(), "r", frames.data(), frames.size());
    CHECK(read_chunked_range(fd.get(), 0, 12, 3, "b") == "abc");
    auto refused = [&](std::uint64_t off, std::uint64_t end, std::uint64_t size) {
        try {
            read_chunked_range(fd.get(), off, end, size, "sha256:rng");
            return std::string("accepted");
        } catch (const Error& e) {
            return std::string(e.what());
        }
    };
    for (auto [off, end, size] :
         std::vector<std::tuple<std::uint64_t, std::uint64_t, std::uint64_t>>{
             {12, 0, 3},                      // ends before it starts
             {0, std::uint64_t{1} << 50, 3},  // past the blob
             {0, 12, std::uint64_t{1} << 40}, // absurd size
             {0, 12, 2},                      // too much output
             {0, 12, 4},                      // too little output
             {0, 6, 3},                       // a cut frame
             {1, 12, 3},                      // not a frame start
             {0, frames.size(), 3},           // more frames than the entry
             {5, 5, 3},                       // empty range with content
         }) {
        INFO(off << ".." << end << " size " << size);
        std::string msg = refused(off, end, size);
        CHECK(msg.find("sha256:rng") != std::string::npos);
    }
}

TEST_CASE("zstd:chunked: unchanged files reuse the previous layer's frames verbatim") {
    auto v1 = sample_items("v1");
    auto v2 = sample_items("v2"); // app/a.txt changed
    Chunked old = chunked(v1);
    LayerDigests plain{Digest::of(""), 0, Digest::of(""), 0};
    std::string tar2 = plain_tar(v2, &plain);
    Chunked fresh = chunked(v2);
    Chunked reused = chunked(v2, 2, &old);
    CHECK(reused.info.digests.diff_id == plain.diff_id);
    CHECK(zstd_decode(reused.blob) == tar2);
    // Same frames as compressing afresh: the blob is the same either way.
    CHECK(reused.blob == fresh.blob);
    CHECK(reused.info.reused_files == 53); // every non-empty file but app/a.txt
    CHECK(fresh.info.reused_files == 0);
    ChunkedToc t_old = toc_of(old.blob), t_new = toc_of(reused.blob);
    auto range = [](const std::string& blob, const ChunkedToc& t, const std::string& name) {
        std::string s;
        for (const auto& e : t.entries) {
            if (e.name == name && (e.type == "reg" || e.type == "chunk")) {
                s += blob.substr(e.offset, e.end_offset - e.offset);
            }
        }
        return s;
    };
    CHECK(range(reused.blob, t_new, "app/big.bin") == range(old.blob, t_old, "app/big.bin"));
    CHECK(range(reused.blob, t_new, "many/f3") == range(old.blob, t_old, "many/f3"));
    CHECK(range(reused.blob, t_new, "app/a.txt") != range(old.blob, t_old, "app/a.txt"));
}

TEST_CASE("zstd:chunked: a previous layer whose frames lie is not trusted") {
    auto items = sample_items();
    Chunked old = chunked(items);
    // Swap the frames of two same-sized files in the old blob: its TOC now
    // points "many/f1" at the bytes of "many/f2" and back.
    ChunkedToc t = toc_of(old.blob);
    const ChunkedEntry *f1 = nullptr, *f2 = nullptr;
    for (const auto& e : t.entries) {
        if (e.name == "many/f1") {
            f1 = &e;
        } else if (e.name == "many/f2") {
            f2 = &e;
        }
    }
    REQUIRE(f1 != nullptr);
    REQUIRE(f2 != nullptr);
    std::string a = old.blob.substr(f1->offset, f1->end_offset - f1->offset);
    std::string b = old.blob.substr(f2->offset, f2->end_offset - f2->offset);
    REQUIRE(a.size() == b.size());
    std::string lying = old.blob;
    lying.replace(f1->offset, a.size(), b);
    lying.replace(f2->offset, b.size(), a);
    LayerDigests plain{Digest::of(""), 0, Digest::of(""), 0};
    std::string tar = plain_tar(items, &plain);
    Chunked c = chunked(items, 2, &old, &lying);
    CHECK(c.info.digests.diff_id == plain.diff_id);
    CHECK(zstd_decode(c.blob) == tar);
    CHECK(c.blob == old.blob);
    CHECK(c.info.reused_files == 52);
}

namespace {

// chunked() with the files named in `linked` given by add_linked (their
// content not handed over); taken gets the names add_linked accepted, the
// others are added with their content.
Chunked chunked_linked(const std::vector<Item>& items, const std::string& old_blob,
                       const std::set<std::string>& linked, std::set<std::string>& taken) {
    UniqueFd fd = memfd("chunked");
    ChunkedWriter::Options o;
    o.threads = 2;
    ChunkedWriter w(fd.get(), o);
    UniqueFd old_fd = memfd("old");
    fs::write_all(old_fd.get(), "old", old_blob.data(), old_blob.size());
    auto toc = read_chunked_toc(old_fd.get(), old_blob.size(), "old");
    REQUIRE(toc);
    w.reuse_from(old_fd.get(), *toc, "old");
    for (const auto& it : items) {
        TarEntry e = it.entry;
        if (e.type == EntryType::file) {
            e.size = it.content.size(); // as the layer writer gives it (add_data sets it)
        }
        if (linked.contains(e.path) && w.add_linked(e)) {
            taken.insert(it.entry.path);
            continue;
        }
        w.add_data(it.entry, it.content);
    }
    Chunked c;
    c.info = w.finish();
    c.blob = fd_bytes(fd.get());
    return c;
}

} // namespace

TEST_CASE("zstd:chunked: linked files take the previous layer's frames without their content") {
    auto v1 = sample_items("v1");
    auto v2 = sample_items("v2"); // app/a.txt changed
    Chunked old = chunked(v1);
    LayerDigests plain{Digest::of(""), 0, Digest::of(""), 0};
    std::string tar2 = plain_tar(v2, &plain);
    Chunked fresh = chunked(v2);
    std::set<std::string> linked = {"app/attrs", "app/big.bin", "many/f0", "many/f49", "z/exact"};
    std::set<std::string> taken;
    Chunked c = chunked_linked(v2, old.blob, linked, taken);
    CHECK(taken == linked);
    CHECK(c.info.digests.diff_id == plain.diff_id);
    CHECK(c.info.digests.blob_digest == fresh.info.digests.blob_digest);
    CHECK(c.blob == fresh.blob);
    CHECK(zstd_decode(c.blob) == tar2);
    CHECK(c.info.reused_files == 53);
    // The TOC's per-file digests are the previous layer's, which are the
    // content's.
    ChunkedToc t = toc_of(c.blob), tf = toc_of(fresh.blob);
    REQUIRE(t.entries.size() == tf.entries.size());
    for (std::size_t i = 0; i < t.entries.size(); ++i) {
        CHECK(t.entries[i].digest == tf.entries[i].digest);
    }
    CHECK(c.info.toc_digest == fresh.info.toc_digest);

    // Every many/ file linked: the header run between two of them is the
    // previous layer's frame, taken as it is (compared, not compressed).
    std::set<std::string> all_many;
    for (int i = 0; i < 50; ++i) {
        all_many.insert("many/f" + std::to_string(i));
    }
    taken.clear();
    Chunked m = chunked_linked(v2, old.blob, all_many, taken);
    CHECK(taken == all_many);
    CHECK(m.blob == fresh.blob);
    CHECK(m.info.reused_headers == 49);
    // attrs -> big.bin -> many/f0 and many/f49 -> z/exact: linked files
    // that are neighbours in both layers (the headers between them too).
    CHECK(c.info.reused_headers == 3);
    // A header that changed between two linked files: that run is
    // compressed (the old frame decodes to other bytes), the rest taken.
    std::vector<Item> v4 = v2;
    for (auto& it : v4) {
        if (it.entry.path == "many/f20") {
            it.entry.mode = 0600;
        }
    }
    taken.clear();
    Chunked m4 = chunked_linked(v4, old.blob, all_many, taken);
    CHECK(taken == all_many);
    CHECK(m4.blob == chunked(v4).blob);
    CHECK(zstd_decode(m4.blob) == plain_tar(v4));
    CHECK(m4.info.reused_headers == 48);

    // A changed size, an empty file, a file the old layer does not have:
    // refused, nothing written (the file is then added with its content).
    // A file of the same size is taken whatever its content: the caller
    // vouches for it (only the previous snapshot's inodes may be given), and
    // the layer then holds the previous layer's bytes.
    REQUIRE(v1[1].entry.path == "app/a.txt");
    REQUIRE(v1[1].content.size() == v2[1].content.size());
    taken.clear();
    Chunked c2 = chunked_linked(v2, old.blob, {"app/a.txt", "app/empty", "dev/null"}, taken);
    CHECK(taken == std::set<std::string>{"app/a.txt"});
    CHECK(zstd_decode(c2.blob) == plain_tar(v1));
    CHECK(c2.blob == old.blob);
    TarEntry longer = v2[1].entry;
    longer.size = v2[1].content.size() + 1;
    std::vector<Item> v3 = v2;
    v3[1].content += "!";
    v3[1].entry = longer;
    taken.clear();
    Chunked c3 = chunked_linked(v3, old.blob, {"app/a.txt"}, taken);
    CHECK(taken.empty());
    CHECK(zstd_decode(c3.blob) == plain_tar(v3));
}

namespace {

// blob with one byte flipped in the middle of the frame of name's second
// chunk (TOC t).
std::string second_chunk_damaged(const std::string& blob, const ChunkedToc& t,
                                 const std::string& name) {
    std::string damaged = blob;
    for (const auto& e : t.entries) {
        if (e.name == name && e.type == "chunk" && e.chunk_offset == k_chunked_chunk_size) {
            damaged[(e.offset + e.end_offset) / 2] ^= 0x55;
        }
    }
    return damaged;
}

} // namespace

TEST_CASE("zstd:chunked: a linked file whose previous frames are damaged stops the writer") {
    auto items = sample_items();
    Chunked old = chunked(items);
    ChunkedToc t = toc_of(old.blob);
    // One byte flipped in the middle of big.bin's second chunk's frame: its
    // checksum fails as it is decoded for the diff ID; the writer says so,
    // naming the old blob and the file (the builder then makes the step
    // again, copying every file).
    std::string damaged = second_chunk_damaged(old.blob, t, "app/big.bin");
    REQUIRE(damaged != old.blob);
    std::set<std::string> taken;
    CHECK_THROWS_AS(chunked_linked(items, damaged, {"many/f7", "app/big.bin"}, taken),
                    LinkedFramesDamaged);
    CHECK_THROWS_WITH(chunked_linked(items, damaged, {"many/f7", "app/big.bin"}, taken),
                      "old: the frames of app/big.bin do not decode to its content");
    // A small file's frames are decoded by the tar's hash thread: the same
    // refusal, from the writer's finish.
    std::string small = old.blob;
    for (const auto& e : t.entries) {
        if (e.name == "many/f7" && e.type == "reg") {
            REQUIRE(e.size < 64 * 1024);
            small[(e.offset + e.end_offset) / 2] ^= 0x55;
        }
    }
    REQUIRE(small != old.blob);
    taken.clear();
    CHECK_THROWS_AS(chunked_linked(items, small, {"many/f7", "app/big.bin"}, taken),
                    LinkedFramesDamaged);
    CHECK_THROWS_WITH(chunked_linked(items, small, {"many/f7", "app/big.bin"}, taken),
                      "old: the frames of many/f7 do not decode to its content");
    // Undamaged, both are taken.
    taken.clear();
    Chunked c = chunked_linked(items, old.blob, {"many/f7", "app/big.bin"}, taken);
    CHECK(taken == std::set<std::string>{"many/f7", "app/big.bin"});
    CHECK(c.blob == old.blob);
}

TEST_CASE("zstd:chunked: a big linked file that compresses is decoded and checked too") {
    // Frames of stored (raw) blocks go to the tar's hash thread, read in
    // place; frames that compress are decoded by the calling thread. Both
    // must refuse damaged frames and take good ones.
    auto items = sample_items();
    std::string text;
    for (int i = 0; text.size() < 2 * k_chunked_chunk_size + 777; ++i) {
        text += "text line " + std::to_string(i % 1000) + " that compresses well\n";
    }
    items.push_back({entry("app/text.log", EntryType::file), text});
    Chunked old = chunked(items);
    ChunkedToc t = toc_of(old.blob);
    std::uint64_t frames = 0;
    for (const auto& e : t.entries) {
        if (e.name == "app/text.log") {
            frames += e.end_offset - e.offset;
        }
    }
    REQUIRE(frames * 4 < text.size()); // compressed, not stored
    LayerDigests plain{Digest::of(""), 0, Digest::of(""), 0};
    std::string tar = plain_tar(items, &plain);
    std::set<std::string> taken;
    Chunked c = chunked_linked(items, old.blob, {"app/text.log", "app/big.bin"}, taken);
    CHECK(taken == std::set<std::string>{"app/text.log", "app/big.bin"});
    CHECK(c.blob == old.blob);
    CHECK(c.info.digests.diff_id == plain.diff_id);
    CHECK(zstd_decode(c.blob) == tar);
    // One byte of its second chunk's frame flipped.
    std::string damaged = second_chunk_damaged(old.blob, t, "app/text.log");
    REQUIRE(damaged != old.blob);
    taken.clear();
    CHECK_THROWS_WITH(chunked_linked(items, damaged, {"app/text.log", "app/big.bin"}, taken),
                      "old: the frames of app/text.log do not decode to its content");
}

namespace {

// A layer of 14 MiB and more: big files first, then small files, so that a
// change among the small files comes after several hash checkpoints.
std::vector<Item> checkpoint_items(const std::string& first, const std::string& middle,
                                   const std::string& last) {
    std::vector<Item> items;
    items.push_back({entry("a", EntryType::dir, 0755), {}});
    items.push_back({entry("a/first.txt", EntryType::file), "first " + first + "\n"});
    for (int i = 0; i < 7; ++i) {
        items.push_back({entry("b/big" + std::to_string(i), EntryType::file),
                         noise(2 * k_chunked_chunk_size + 1000 * static_cast<std::size_t>(i),
                               static_cast<std::uint32_t>(100 + i))});
    }
    items.push_back({entry("m/middle.txt", EntryType::file), "middle " + middle + "\n"});
    for (int i = 0; i < 3; ++i) {
        items.push_back({entry("n/big" + std::to_string(i), EntryType::file),
                         noise(3 * k_chunked_chunk_size, static_cast<std::uint32_t>(200 + i))});
    }
    for (int i = 0; i < 200; ++i) {
        items.push_back({entry("s/f" + std::to_string(i), EntryType::file),
                         "small " + std::to_string(i) + "\n"});
    }
    items.push_back({entry("z/last.txt", EntryType::file), "last " + last + "\n"});
    return items;
}

Chunked chunked_resumed(const std::vector<Item>& items, const std::string& old_blob,
                        const std::vector<HashCheckpoint>& checkpoints) {
    UniqueFd fd = memfd("chunked");
    ChunkedWriter::Options o;
    o.threads = 2;
    ChunkedWriter w(fd.get(), o);
    UniqueFd old_fd = memfd("old");
    fs::write_all(old_fd.get(), "old", old_blob.data(), old_blob.size());
    auto toc = read_chunked_toc(old_fd.get(), old_blob.size(), "old");
    REQUIRE(toc);
    w.reuse_from(old_fd.get(), *toc, "old", checkpoints);
    for (const auto& it : items) {
        w.add_data(it.entry, it.content);
    }
    Chunked c;
    c.info = w.finish();
    c.blob = fd_bytes(fd.get());
    return c;
}

} // namespace

TEST_CASE("zstd:chunked: hashing goes on from the previous layer's checkpoints") {
    auto v1 = checkpoint_items("v1", "v1", "v1");
    Chunked old = chunked(v1);
    REQUIRE(old.info.checkpoints.size() >= 3);
    for (const auto& c : old.info.checkpoints) {
        CHECK(ResumableSha256::state_bytes(c.diff_state) == c.tar_offset);
        CHECK(ResumableSha256::state_bytes(c.blob_state) == c.blob_offset);
    }
    // The same checkpoints whatever the thread count.
    Chunked one = chunked(v1, 1);
    REQUIRE(one.info.checkpoints.size() == old.info.checkpoints.size());
    CHECK(one.info.checkpoints.back().blob_state == old.info.checkpoints.back().blob_state);

    struct Case {
        const char* what;
        std::vector<Item> items;
        bool resumed; // a checkpoint lies before the first difference
    };
    std::vector<Case> cases = {
        {"first file changed", checkpoint_items("v2", "v1", "v1"), false},
        {"middle file changed", checkpoint_items("v1", "v2", "v1"), true},
        {"last file changed", checkpoint_items("v1", "v1", "v2"), true},
        {"a longer last file", checkpoint_items("v1", "v1", "version 2"), true},
        {"nothing changed", checkpoint_items("v1", "v1", "v1"), true},
    };
    for (const auto& c : cases) {
        SECTION(c.what) {
            LayerDigests plain{Digest::of(""), 0, Digest::of(""), 0};
            std::string tar = plain_tar(c.items, &plain);
            Chunked fresh = chunked(c.items);
            Chunked r = chunked_resumed(c.items, old.blob, old.info.checkpoints);
            CHECK(r.info.digests.diff_id == plain.diff_id);
            CHECK(r.info.digests.diff_id == fresh.info.digests.diff_id);
            CHECK(r.info.digests.blob_digest == fresh.info.digests.blob_digest);
            CHECK(r.info.digests.blob_digest == Digest::of(r.blob));
            CHECK(r.blob == fresh.blob);
            CHECK((r.info.hashed_from > 0) == c.resumed);
            // Its own checkpoints are a fresh writer's.
            REQUIRE(r.info.checkpoints.size() >= 1);
            for (const auto& k : r.info.checkpoints) {
                CHECK(ResumableSha256::state_bytes(k.diff_state) == k.tar_offset);
                CHECK(ResumableSha256::state_bytes(k.blob_state) == k.blob_offset);
                ResumableSha256 h = ResumableSha256::resume(k.blob_state);
                h.update(r.blob.data() + k.blob_offset, r.blob.size() - k.blob_offset);
                CHECK("sha256:" + h.finish_hex() == r.info.digests.blob_digest.str());
                ResumableSha256 t = ResumableSha256::resume(k.diff_state);
                t.update(tar.data() + k.tar_offset, tar.size() - k.tar_offset);
                CHECK("sha256:" + t.finish_hex() == r.info.digests.diff_id.str());
            }
        }
    }
}

TEST_CASE("zstd:chunked: checkpoint documents are checked") {
    auto v1 = checkpoint_items("v1", "v1", "v1");
    Chunked old = chunked(v1);
    Digest d = Digest::of(old.blob);
    std::string doc = checkpoints_document(old.info.checkpoints, d, old.blob.size());
    auto back = parse_checkpoints_document(doc, d, old.blob.size());
    REQUIRE(back);
    REQUIRE(back->size() == old.info.checkpoints.size());
    CHECK(back->back().blob_state == old.info.checkpoints.back().blob_state);
    // Another blob, another size, a changed state, not JSON.
    CHECK(!parse_checkpoints_document(doc, Digest::of("other"), old.blob.size()));
    CHECK(!parse_checkpoints_document(doc, d, old.blob.size() + 1));
    // One hex digit of the first state's chaining words flipped: still a
    // well-formed state, caught by the document's check.
    std::string changed = doc;
    auto at = changed.find('"', changed.find("[[")) + 1 + 40;
    REQUIRE(at < changed.size());
    changed[at] = changed[at] == '0' ? '1' : '0';
    CHECK(!parse_checkpoints_document(changed, d, old.blob.size()));
    CHECK(!parse_checkpoints_document("not json", d, old.blob.size()));
}
