#include "snapshot/lazy_index.hpp"

#include "formats/compression.hpp"
#include "formats/tar.hpp"
#include "snapshot/store.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <map>
#include <unistd.h>

using namespace strata;
using namespace strata::snapshot;

namespace {

// Content that compresses, but not to nothing (so deflate makes many blocks).
std::string content(std::size_t size, unsigned seed) {
    std::string s(size, '\0');
    std::uint32_t x = seed * 2654435761u + 1;
    for (std::size_t i = 0; i < size; ++i) {
        x = x * 1103515245u + 12345u;
        s[i] = static_cast<char>('a' + ((x >> 16) % 13));
    }
    return s;
}

struct Layer {
    std::string blob;                         // as stored
    std::map<std::string, std::string> files; // path -> content
};

formats::TarEntry file_entry(const std::string& path, std::size_t size) {
    formats::TarEntry e;
    e.path = path;
    e.size = size;
    e.mode = 0644;
    return e;
}

// A layer with small and big files; uncompressed, gzip or zstd as the tar
// writer makes them.
Layer make_layer(formats::Compression c, std::vector<std::pair<std::string, std::size_t>> spec) {
    TempDir t;
    std::string p = t.path() + "/layer";
    Layer l;
    {
        UniqueFd fd = fs::open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        formats::TarWriter::Options o;
        o.compression = c;
        formats::TarWriter w(fd.get(), o);
        formats::TarEntry d;
        d.path = "dir";
        d.type = formats::EntryType::dir;
        d.mode = 0755;
        w.add_data(d, "");
        unsigned seed = 1;
        for (const auto& [path, size] : spec) {
            std::string data = content(size, seed++);
            w.add_data(file_entry(path, size), data);
            l.files[path] = data;
        }
        w.finish();
    }
    l.blob = fs::read_file(p);
    return l;
}

UniqueFd blob_fd(const TempDir& t, const std::string& data) {
    std::string p = t.path() + "/blob-" + std::to_string(data.size());
    fs::write_file_atomic(p, data, 0600);
    return fs::open(p, O_RDONLY | O_CLOEXEC);
}

// Reads every file back through the index at offsets around every seek
// point and at the file's edges, and compares with the content.
void check_reads(const Layer& l, const std::string& blob_path_dir, std::uint64_t span,
                 std::size_t* points_out = nullptr) {
    TempDir t(blob_path_dir);
    formats::Digest d = formats::Digest::of(l.blob);
    UniqueFd fd = blob_fd(t, l.blob);
    auto idx = std::make_shared<const BlobIndex>(build_blob_index(fd.get(), d, span));
    if (points_out != nullptr) {
        *points_out = idx->points.size();
    }
    ContentReader reader(blob_fd(t, l.blob), idx);
    std::size_t checked = 0;
    for (const auto& ie : idx->entries) {
        if (ie.entry.type != formats::EntryType::file) {
            continue;
        }
        const std::string& want = l.files.at(ie.entry.path);
        REQUIRE(ie.entry.size == want.size());
        std::vector<std::uint64_t> offsets{0, 1, want.size() / 2};
        if (want.size() > 4096) {
            offsets.push_back(want.size() - 4096);
        }
        for (const auto& p : idx->points) {
            for (std::int64_t delta : {-1, 0, 1, 4095}) {
                std::int64_t o = static_cast<std::int64_t>(p.out) -
                                 static_cast<std::int64_t>(ie.content) + delta;
                if (o >= 0 && static_cast<std::uint64_t>(o) < want.size()) {
                    offsets.push_back(static_cast<std::uint64_t>(o));
                }
            }
        }
        if (want.empty()) {
            continue;
        }
        for (auto o : offsets) {
            std::size_t len = std::min<std::size_t>(4096, want.size() - o);
            std::string got(len, '\0');
            reader.read(ie.content + o, got.data(), len);
            INFO(ie.entry.path << " at " << o);
            REQUIRE(got == want.substr(o, len));
            ++checked;
        }
        // The whole file, sequentially, in FUSE-sized pieces.
        std::string all(want.size(), '\0');
        for (std::size_t o = 0; o < want.size(); o += 131072) {
            std::size_t len = std::min<std::size_t>(131072, want.size() - o);
            reader.read(ie.content + o, all.data() + o, len);
        }
        REQUIRE(all == want);
    }
    CHECK(checked > 0);
}

} // namespace

TEST_CASE("reads through the index give the bytes of a full decode, for every compression",
          "[lazy_index]") {
    std::vector<std::pair<std::string, std::size_t>> spec{{"dir/small", 10}, {"dir/empty", 0},
                                                          {"dir/one", 1},    {"big1", 3 << 20},
                                                          {"mid", 200000},   {"big2", 2 << 20}};
    SECTION("gzip, checkpoints every 64 KiB of output") {
        std::size_t points = 0;
        check_reads(make_layer(formats::Compression::gzip, spec), "", 64 << 10, &points);
        CHECK(points > 40); // inside members, with windows
    }
    SECTION("zstd") {
        check_reads(make_layer(formats::Compression::zstd, spec), "", 64 << 10);
    }
    SECTION("uncompressed") {
        check_reads(make_layer(formats::Compression::none, spec), "", 64 << 10);
    }
}

TEST_CASE("a multi-frame zstd layer gets a seek point per frame", "[lazy_index]") {
    Layer plain =
        make_layer(formats::Compression::none, {{"a", 1500000}, {"b", 1500000}, {"c", 1500000}});
    // The tar cut in three, each piece its own zstd frame.
    std::string blob;
    std::size_t third = plain.blob.size() / 3;
    for (std::size_t i = 0; i < 3; ++i) {
        std::size_t from = i * third;
        std::size_t len = i == 2 ? plain.blob.size() - from : third;
        auto c = formats::Compressor::create(
            formats::Compression::zstd,
            [&](const void* d, std::size_t n) { blob.append(static_cast<const char*>(d), n); });
        c->write(plain.blob.data() + from, len);
        c->finish();
    }
    Layer l{blob, plain.files};
    std::size_t points = 0;
    check_reads(l, "", 4 << 20, &points);
    CHECK(points >= 3); // a frame end at the very end may count too
}

TEST_CASE("the index survives a round trip and a damaged one is rebuilt, never trusted",
          "[lazy_index]") {
    TempDir t;
    Store store(t.path() + "/store");
    Layer l = make_layer(formats::Compression::gzip, {{"f", 1 << 20}, {"g", 5}});
    formats::Digest d = store.put_blob(l.blob);
    BlobIndex built = load_blob_index(store, d);
    std::string path = blob_index_path(store, d);
    REQUIRE(fs::exists(path));
    std::string saved = fs::read_file(path);
    CHECK(serialize_blob_index(parse_blob_index(saved, d, l.blob.size(), path)) == saved);
    CHECK(serialize_blob_index(built) == saved);

    // A flipped byte: refused, and load rebuilds the same index.
    std::string damaged = saved;
    damaged[damaged.size() / 2] ^= 0x40;
    CHECK_THROWS_WITH(parse_blob_index(damaged, d, l.blob.size(), path),
                      Catch::Contains("damaged"));
    fs::write_file_atomic(path, damaged, 0600);
    load_blob_index(store, d);
    CHECK(fs::read_file(path) == saved);

    // Truncated, or describing another blob or size: refused.
    CHECK_THROWS(parse_blob_index(saved.substr(0, saved.size() - 40), d, l.blob.size(), path));
    formats::Digest other = formats::Digest::of("other");
    CHECK_THROWS_WITH(parse_blob_index(saved, other, l.blob.size(), path),
                      Catch::Contains("describes"));
    CHECK_THROWS_WITH(parse_blob_index(saved, d, l.blob.size() + 1, path),
                      Catch::Contains("bytes"));
    // An index of another blob put where this one's goes is rebuilt.
    Layer l2 = make_layer(formats::Compression::gzip, {{"x", 1000}});
    formats::Digest d2 = store.put_blob(l2.blob);
    load_blob_index(store, d2);
    fs::write_file_atomic(path, fs::read_file(blob_index_path(store, d2)), 0600);
    BlobIndex again = load_blob_index(store, d);
    CHECK(again.blob == d);
    CHECK(fs::read_file(path) == saved);
}

TEST_CASE("the index pass refuses what the unpack path refuses, naming the entry", "[lazy_index]") {
    TempDir t;
    for (const char* bad : {"../escape", "a/../../escape"}) {
        std::string p = t.path() + "/bad.tar";
        {
            UniqueFd fd = fs::open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            formats::TarWriter::Options o;
            o.compression = formats::Compression::gzip;
            formats::TarWriter w(fd.get(), o);
            w.add_data(file_entry("ok", 2), "ok");
            w.add_data(file_entry(bad, 4), "evil");
            w.finish();
        }
        std::string blob = fs::read_file(p);
        UniqueFd fd = fs::open(p, O_RDONLY | O_CLOEXEC);
        CHECK_THROWS_WITH(build_blob_index(fd.get(), formats::Digest::of(blob)),
                          Catch::Contains("escape"));
    }
    // Bytes that do not hash to the digest.
    Layer l = make_layer(formats::Compression::gzip, {{"f", 100}});
    UniqueFd fd = blob_fd(t, l.blob);
    CHECK_THROWS_WITH(build_blob_index(fd.get(), formats::Digest::of("not it")),
                      Catch::Contains("hashes to"));
    // A truncated blob.
    UniqueFd cut = blob_fd(t, l.blob.substr(0, l.blob.size() - 9));
    CHECK_THROWS(
        build_blob_index(cut.get(), formats::Digest::of(l.blob.substr(0, l.blob.size() - 9))));
}
