// The TOC of a zstd:chunked blob as its lazy index (snapshot/lazy_toc.hpp):
// made from the footer and TOC alone, reads decode only the chunks they
// touch, and every chunk is checked against its digest before its bytes are
// served.
#include "snapshot/lazy_toc.hpp"

#include "formats/tar.hpp"
#include "formats/zstd_chunked.hpp"
#include "snapshot/partial_blob.hpp"
#include "snapshot/store.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <zstd.h>

#include <algorithm>
#include <fcntl.h>
#include <map>
#include <nlohmann/json.hpp>
#include <chrono>
#include <mutex>
#include <thread>

using namespace strata;
using namespace strata::snapshot;
using formats::Digest;

namespace {

std::string content(std::size_t size, unsigned seed) {
    std::string s(size, '\0');
    std::uint32_t x = seed * 2654435761u + 1;
    for (std::size_t i = 0; i < size; ++i) {
        x = x * 1103515245u + 12345u;
        s[i] = static_cast<char>('a' + ((x >> 16) % 13));
    }
    return s;
}

struct Blob {
    TempDir dir;
    std::string data;
    formats::Digest digest = Digest::of("");
    UniqueFd open() const {
        std::string p = dir.path() + "/blob";
        fs::write_file_atomic(p, data, 0600);
        return fs::open(p, O_RDONLY | O_CLOEXEC);
    }
};

void append_skippable(std::string& s, const std::string& data) {
    std::uint32_t magic = 0x184D2A50, n = static_cast<std::uint32_t>(data.size());
    s.append(reinterpret_cast<const char*>(&magic), 4); // little endian host (x86/arm64)
    s.append(reinterpret_cast<const char*>(&n), 4);
    s += data;
}

std::string zframe(const std::string& data) {
    std::string comp(ZSTD_compressBound(data.size()), '\0');
    comp.resize(ZSTD_compress(comp.data(), comp.size(), data.data(), data.size(), 3));
    return comp;
}

// frames + the TOC JSON in its skippable frame + the footer.
std::string craft(const std::string& frames, const nlohmann::json& toc) {
    std::string json = toc.dump();
    std::string comp = zframe(json);
    std::string s = frames;
    std::uint64_t toc_off = s.size() + 8;
    append_skippable(s, comp);
    std::string footer;
    auto put = [&](std::uint64_t v) { footer.append(reinterpret_cast<const char*>(&v), 8); };
    put(toc_off);
    put(comp.size());
    put(json.size());
    put(1);
    put(0);
    put(0);
    put(0);
    footer += "GNUlInUx";
    append_skippable(s, footer);
    return s;
}

// A crafted blob: file "a" (one chunk), file "b" (three chunks of 1000,
// 1000 and 500 bytes, with chunk digests unless chunk_digests is false).
// mutate may change the TOC before it is written.
struct Crafted {
    std::string a = content(3000, 7), b = content(2500, 8);
    std::unique_ptr<Blob> blob = std::make_unique<Blob>();
    nlohmann::json toc;
};

Crafted crafted(bool chunk_digests, const std::function<void(Crafted&)>& mutate = {}) {
    Crafted c;
    std::string frames;
    auto add = [&](const std::string& data) {
        std::uint64_t at = frames.size();
        frames += zframe(data);
        return at;
    };
    nlohmann::json entries = nlohmann::json::array();
    entries.push_back({{"type", "dir"}, {"name", "d/"}, {"mode", 0755}});
    std::uint64_t a_off = add(c.a);
    entries.push_back({{"type", "reg"},
                       {"name", "d/a"},
                       {"mode", 0644},
                       {"size", c.a.size()},
                       {"offset", a_off},
                       {"endOffset", frames.size()},
                       {"digest", Digest::of(c.a).str()}});
    std::vector<std::uint64_t> offs;
    for (std::size_t k = 0; k < 3; ++k) {
        offs.push_back(add(c.b.substr(k * 1000, 1000)));
    }
    for (std::size_t k = 0; k < 3; ++k) {
        std::string part = c.b.substr(k * 1000, 1000);
        nlohmann::json e = {{"type", k == 0 ? "reg" : "chunk"},
                            {"name", "b"},
                            {"offset", offs[k]},
                            {"chunkOffset", k * 1000},
                            {"chunkSize", part.size()}};
        if (k == 0) {
            e["size"] = c.b.size();
            e["mode"] = 0600;
            e["endOffset"] = frames.size();
            e["digest"] = Digest::of(c.b).str();
        }
        if (chunk_digests) {
            e["chunkDigest"] = Digest::of(part).str();
        }
        entries.push_back(e);
    }
    entries.push_back({{"type", "symlink"}, {"name", "d/s"}, {"linkName", "a"}});
    entries.push_back({{"type", "hardlink"}, {"name", "d/h"}, {"linkName", "d/a"}});
    c.toc = {{"version", 1}, {"entries", entries}};
    if (mutate) {
        mutate(c);
    }
    c.blob->data = craft(frames, c.toc);
    c.blob->digest = Digest::of(c.blob->data);
    return c;
}

std::shared_ptr<const BlobIndex> index_of(const Blob& b, std::string_view expected = {}) {
    UniqueFd fd = b.open();
    auto idx = build_toc_index(fd.get(), b.digest, b.data.size(), expected);
    REQUIRE(idx);
    return std::make_shared<const BlobIndex>(std::move(*idx));
}

std::size_t entry_of(const BlobIndex& idx, const std::string& path) {
    for (std::size_t i = 0; i < idx.entries.size(); ++i) {
        if (idx.entries[i].entry.path == path) {
            return i;
        }
    }
    FAIL("no entry " << path);
    return 0;
}

std::string read_all(ChunkedContentReader& r, const BlobIndex& idx, std::size_t entry,
                     std::size_t piece) {
    std::uint64_t size = idx.entries[entry].entry.size;
    std::string out(size, '\0');
    for (std::uint64_t o = 0; o < size; o += piece) {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(piece, size - o));
        r.read(entry, o, out.data() + o, n);
    }
    return out;
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "no error";
}

} // namespace

TEST_CASE("a zstd:chunked layer's TOC is its lazy index: metadata and every byte", "[lazy_toc]") {
    TempDir t;
    std::string p = t.path() + "/layer";
    std::map<std::string, std::string> files = {{"small", content(100, 1)},
                                                {"big", content(2621440 + 17, 2)},
                                                {"exact", content(1 << 20, 3)},
                                                {"empty", ""}};
    formats::ChunkedLayerInfo info;
    {
        UniqueFd fd = fs::open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        formats::ChunkedWriter w(fd.get(), {});
        formats::TarEntry d;
        d.path = "dir";
        d.type = formats::EntryType::dir;
        d.mode = 0750;
        d.uid = 12;
        w.add_data(d, "");
        for (const auto& [name, data] : files) {
            formats::TarEntry e;
            e.path = "dir/" + name;
            e.size = data.size();
            e.mode = 04755;
            e.gid = 34;
            e.mtime_sec = 1700000000;
            e.xattrs["user.k"] = std::string("v\0w", 3);
            w.add_data(e, data);
        }
        formats::TarEntry h;
        h.path = "hl";
        h.type = formats::EntryType::hardlink;
        h.linkname = "dir/small";
        w.add_data(h, "");
        formats::TarEntry wh;
        wh.path = "dir/.wh.gone";
        wh.size = 0;
        w.add_data(wh, "");
        info = w.finish();
    }
    Blob b;
    b.data = fs::read_file(p);
    b.digest = Digest::of(b.data);
    REQUIRE(info.digests.blob_digest == b.digest);
    auto idx = index_of(b, info.toc_digest);
    CHECK(idx->toc);
    CHECK(idx->toc_digest == info.toc_digest);
    CHECK(idx->seekable);
    REQUIRE(idx->entries.size() == 7);
    const auto& dir = idx->entries[entry_of(*idx, "dir")].entry;
    CHECK(dir.type == formats::EntryType::dir);
    CHECK(dir.mode == 0750);
    CHECK(dir.uid == 12);
    const auto& hl = idx->entries[entry_of(*idx, "hl")].entry;
    CHECK(hl.type == formats::EntryType::hardlink);
    CHECK(hl.linkname == "dir/small");
    entry_of(*idx, "dir/.wh.gone");

    ChunkedContentReader r(b.open(), idx);
    for (const auto& [name, data] : files) {
        INFO(name);
        std::size_t e = entry_of(*idx, "dir/" + name);
        const auto& ie = idx->entries[e];
        CHECK(ie.entry.size == data.size());
        CHECK(ie.entry.mode == 04755);
        CHECK(ie.entry.gid == 34);
        CHECK(ie.entry.mtime_sec == 1700000000);
        CHECK(ie.entry.xattrs.at("user.k") == std::string("v\0w", 3));
        CHECK(ie.chunk_count == (data.size() + (1 << 20) - 1) / (1 << 20));
        CHECK(read_all(r, *idx, e, 131072) == data);
        CHECK(read_all(r, *idx, e, 4097) == data);
        // Pieces across chunk boundaries.
        for (std::uint64_t at : {std::uint64_t{0}, std::uint64_t{(1 << 20) - 3},
                                 std::uint64_t{(2 << 20) - 1}, std::uint64_t{data.size() / 2}}) {
            if (at + 10 > data.size()) {
                continue;
            }
            std::string got(10, '\0');
            r.read(e, at, got.data(), got.size());
            CHECK(got == data.substr(at, 10));
        }
    }
    // A chunk's frames lie in the blob where the TOC says.
    const auto& big = idx->entries[entry_of(*idx, "dir/big")];
    REQUIRE(big.chunk_count == 3);
    for (std::uint32_t k = 0; k < 3; ++k) {
        const ChunkLocator& l = idx->chunks[big.first_chunk + k];
        CHECK(l.file_offset == k * std::uint64_t{1 << 20});
        std::string frames = b.data.substr(l.begin, l.end - l.begin);
        std::string out(l.size, '\0');
        CHECK(ZSTD_decompress(out.data(), out.size(), frames.data(), frames.size()) == l.size);
        CHECK(out == files["big"].substr(l.file_offset, l.size));
    }
    // The index is never written to the store's lazy/ directory.
    CHECK_THROWS_WITH(serialize_blob_index(*idx), Catch::Contains("not kept"));

    CHECK(std::all_of(idx->chunks.begin(), idx->chunks.end(),
                      [](const ChunkLocator& l) { return l.size <= (1 << 20); }));

    // A blob without a footer has no TOC index.
    Blob plain;
    plain.data = zframe("not a chunked layer, just one zstd frame of text");
    plain.digest = Digest::of(plain.data);
    UniqueFd pfd = plain.open();
    CHECK_FALSE(build_toc_index(pfd.get(), plain.digest, plain.data.size(), {}));
}

TEST_CASE("TOC index: chunks checked against their chunkDigest", "[lazy_toc]") {
    Crafted c = crafted(true);
    auto idx = index_of(*c.blob);
    ChunkedContentReader r(c.blob->open(), idx);
    std::size_t a = entry_of(*idx, "d/a"), b = entry_of(*idx, "b");
    CHECK(idx->entries[b].chunk_count == 3);
    CHECK(read_all(r, *idx, a, 1000) == c.a);
    CHECK(read_all(r, *idx, b, 700) == c.b);

    // Chunk 1's digest is wrong: chunks 0 and 2 are served, chunk 1 never,
    // on every attempt, and the error names the blob and the file.
    Crafted bad = crafted(true, [](Crafted& c) {
        c.toc["entries"][3]["chunkDigest"] = Digest::of("something else").str();
    });
    auto bidx = index_of(*bad.blob);
    ChunkedContentReader br(bad.blob->open(), bidx);
    std::size_t bb = entry_of(*bidx, "b");
    std::string got(1000, '\0');
    br.read(bb, 0, got.data(), 1000);
    CHECK(got == bad.b.substr(0, 1000));
    br.read(bb, 2000, got.data(), 500);
    CHECK(got.substr(0, 500) == bad.b.substr(2000, 500));
    for (int attempt = 0; attempt < 2; ++attempt) {
        std::string msg = error_of([&] { br.read(bb, 1500, got.data(), 10); });
        CHECK_THAT(msg, Catch::Contains(bad.blob->digest.str()) && Catch::Contains("\"b\"") &&
                            Catch::Contains("bytes 1000..2000 hash to " +
                                            Digest::of(bad.b.substr(1000, 1000)).str()));
    }
    // A read that spans chunks 0 and 1 fails whole.
    CHECK_THROWS(br.read(bb, 900, got.data(), 200));
}

TEST_CASE("TOC index: single-chunk files and chunks without digests are checked against the "
          "file's digest",
          "[lazy_toc]") {
    // The TOC says "d/a" is other bytes than its frames hold.
    Crafted wrong_a = crafted(true, [](Crafted& c) {
        c.toc["entries"][1]["digest"] = Digest::of(c.b.substr(0, 3000)).str();
    });
    auto idx = index_of(*wrong_a.blob);
    ChunkedContentReader r(wrong_a.blob->open(), idx);
    std::string got(3000, '\0');
    CHECK_THAT(error_of([&] { r.read(entry_of(*idx, "d/a"), 2000, got.data(), 10); }),
               Catch::Contains(wrong_a.blob->digest.str()) && Catch::Contains("\"d/a\"") &&
                   Catch::Contains("as the TOC says"));
    // The other file is still served.
    CHECK(read_all(r, *idx, entry_of(*idx, "b"), 4096) == wrong_a.b);

    // Chunks without their own digests: the whole file is hashed at the
    // first read of any of its chunks.
    Crafted nodig = crafted(false);
    auto nidx = index_of(*nodig.blob);
    ChunkedContentReader nr(nodig.blob->open(), nidx);
    CHECK(read_all(nr, *nidx, entry_of(*nidx, "b"), 333) == nodig.b);
    Crafted nodig_bad = crafted(
        false, [](Crafted& c) { c.toc["entries"][2]["digest"] = Digest::of(c.b + "x").str(); });
    auto nbidx = index_of(*nodig_bad.blob);
    ChunkedContentReader nbr(nodig_bad.blob->open(), nbidx);
    CHECK_THAT(error_of([&] { nbr.read(entry_of(*nbidx, "b"), 2100, got.data(), 10); }),
               Catch::Contains(nodig_bad.blob->digest.str()) && Catch::Contains("\"b\"") &&
                   Catch::Contains("the content hashes to " + Digest::of(nodig_bad.b).str()));

    // Frames of the right size but other bytes (one chunk's frame in
    // another's place): caught by the digest, never served.
    Crafted swapped = crafted(true, [](Crafted& c) {
        auto& e = c.toc["entries"];
        std::swap(e[2]["chunkDigest"], e[3]["chunkDigest"]);
    });
    auto sidx = index_of(*swapped.blob);
    ChunkedContentReader sr(swapped.blob->open(), sidx);
    CHECK_THROWS_WITH(sr.read(entry_of(*sidx, "b"), 0, got.data(), 10),
                      Catch::Contains("as the TOC says"));
}

TEST_CASE("TOC index: damaged and hostile TOCs are refused naming the blob", "[lazy_toc]") {
    auto refusal = [](const std::function<void(Crafted&)>& mutate, std::string_view expected = {}) {
        Crafted c = crafted(true, mutate);
        UniqueFd fd = c.blob->open();
        std::string msg = error_of([&] {
            (void)build_toc_index(fd.get(), c.blob->digest, c.blob->data.size(), expected);
        });
        CHECK_THAT(msg, Catch::Contains(c.blob->digest.str()));
        return msg;
    };
    // The annotation names another TOC.
    CHECK_THAT(refusal({}, Digest::of("another toc").str()),
               Catch::Contains("does not match the layer's annotation"));
    // No digest for a file whose chunks have none either.
    CHECK_THAT(refusal([](Crafted& c) {
                   c.toc["entries"][1].erase("digest");
                   c.toc["entries"][1].erase("chunkDigest");
               }),
               Catch::Contains("no digest"));
    CHECK_THAT(refusal([](Crafted& c) { c.toc["entries"][3]["chunkDigest"] = "sha256:zz"; }),
               Catch::Contains("bad chunkDigest"));
    CHECK_THAT(refusal([](Crafted& c) { c.toc["entries"][1]["name"] = "../etc/passwd"; }),
               Catch::Contains("unsafe name"));
    CHECK_THAT(refusal([](Crafted& c) { c.toc["entries"][1]["name"] = "d/.wh.."; }),
               Catch::Contains("bad whiteout"));
    CHECK_THAT(refusal([](Crafted& c) { c.toc["entries"][4]["offset"] = 1; }),
               Catch::Contains("bad offsets"));
    CHECK_THAT(refusal([](Crafted& c) { c.toc["entries"][2]["size"] = 2400; }),
               Catch::Contains("bad size"));
    CHECK_THAT(refusal([](Crafted& c) { c.toc["entries"][1]["endOffset"] = 1ULL << 40; }),
               Catch::Contains("out of range"));
}

TEST_CASE("TOC index: a chunk larger than a seekable frame makes the layer one to unpack",
          "[lazy_toc]") {
    std::string big(BlobIndex::k_max_zstd_gap + 1, 'x');
    std::string frames = zframe(big);
    nlohmann::json toc = {{"version", 1},
                          {"entries",
                           {{{"type", "reg"},
                             {"name", "huge"},
                             {"size", big.size()},
                             {"offset", 0},
                             {"endOffset", frames.size()},
                             {"digest", Digest::of(big).str()}}}}};
    Blob b;
    b.data = craft(frames, toc);
    b.digest = Digest::of(b.data);
    auto idx = index_of(b);
    CHECK_FALSE(idx->seekable);
    REQUIRE(idx->chunks.size() == 1);
    CHECK(idx->chunks[0].size == big.size());
}

TEST_CASE("load_lazy_index: the TOC when it is the annotation's, else the pass", "[lazy_toc]") {
    TempDir t;
    Store store(t.path() + "/store");
    std::string p = t.path() + "/layer";
    std::string data = content(3 << 20, 9);
    formats::ChunkedLayerInfo info;
    {
        UniqueFd fd = fs::open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        formats::ChunkedWriter w(fd.get(), {});
        formats::TarEntry e;
        e.path = "f";
        e.size = data.size();
        w.add_data(e, data);
        info = w.finish();
    }
    formats::Descriptor layer;
    layer.digest = store.put_blob(fs::read_file(p));
    layer.annotations = formats::chunked_annotations(info);
    BlobIndex idx = load_lazy_index(store, layer);
    CHECK(idx.toc);
    CHECK(toc_index_seekable(store, layer) == std::optional<bool>(true));
    CHECK_FALSE(fs::exists(blob_index_path(store, layer.digest)));

    // The annotation names another TOC: the pass indexes the layer (and
    // keeps its index), trusting nothing of the TOC.
    layer.annotations[std::string(formats::k_chunked_manifest_checksum_key)] =
        Digest::of("another toc").str();
    CHECK_FALSE(toc_index_seekable(store, layer));
    BlobIndex passed = load_lazy_index(store, layer);
    CHECK_FALSE(passed.toc);
    CHECK(passed.seekable);
    REQUIRE(passed.entries.size() == 1);
    CHECK(passed.entries[0].entry.path == "f");
    CHECK(passed.entries[0].entry.size == data.size());
    CHECK(fs::exists(blob_index_path(store, layer.digest)));
}

// ------------------------------------------------------------ lazy pulls

namespace {

// A registry stand-in for PartialBlob::Fetch: serves `data` by range,
// counting requests and bytes; `corrupt` flips a byte of the next n answers.
struct FakeRemote {
    const std::string& data;
    int requests = 0;
    std::uint64_t bytes = 0;
    int corrupt = 0;
    PartialBlob::Fetch fetch() {
        return [this](std::uint64_t off, std::uint64_t len,
                      const std::function<void(const char*, std::size_t)>& sink) {
            ++requests;
            bytes += len;
            std::string piece = data.substr(off, len);
            if (corrupt > 0) {
                --corrupt;
                piece[piece.size() / 2] ^= 0x55;
            }
            // In two pieces, as a transfer arrives.
            sink(piece.data(), piece.size() / 2);
            sink(piece.data() + piece.size() / 2, piece.size() - piece.size() / 2);
        };
    }
};

std::shared_ptr<PartialBlob> partial_of(const Store& store, const Digest& d, std::uint64_t size) {
    return PartialBlob::open_or_create(store, d, {"127.0.0.1:5000", "t/img", size, "", true});
}

} // namespace

TEST_CASE("PartialBlob: fetches only what is missing, records it, merges near gaps",
          "[lazy_toc][partial]") {
    TempDir t;
    Store store(t.path() + "/store");
    std::string data = content(1 << 20, 11);
    Digest d = Digest::of(data);
    FakeRemote remote{data};
    auto p = partial_of(store, d, data.size());
    CHECK(p->present_bytes() == 0);
    CHECK(p->ensure(1000, 5000, remote.fetch()) == 4000);
    CHECK(p->ensure(2000, 3000, remote.fetch()) == 0); // present: no request
    CHECK(remote.requests == 1);
    // Two gaps 10 bytes apart are fetched in one request with what lies
    // between; the present range in the middle is fetched again with them.
    CHECK(p->ensure(0, 300000, remote.fetch()) == 300000);
    CHECK(remote.requests == 2);
    CHECK(p->ensure(400000, 400100, remote.fetch()) == 100);
    CHECK(p->ensure(400200, 400300, remote.fetch()) == 100);
    CHECK(p->ensure(399000, 401000, remote.fetch()) == 2000);
    CHECK(remote.requests == 5);
    std::string got(401000, '\0');
    REQUIRE(::pread(p->fd(), got.data(), got.size(), 0) == static_cast<ssize_t>(got.size()));
    CHECK(got.substr(0, 300000) == data.substr(0, 300000));
    CHECK(got.substr(399000, 2000) == data.substr(399000, 2000));
    auto missing = p->missing();
    REQUIRE(missing.size() == 2);
    CHECK(missing[0] == std::pair<std::uint64_t, std::uint64_t>{300000, 399000});
    CHECK(missing[1] == std::pair<std::uint64_t, std::uint64_t>{401000, data.size()});

    // Another process's view: the record on the disk, read again; its own
    // fetches are seen by the first.
    auto q = PartialBlob::open(store, d);
    CHECK(q->present_bytes() == 302000);
    CHECK(q->ensure(500000, 600000, remote.fetch()) == 100000);
    CHECK(p->ensure(500000, 600000, remote.fetch()) == 0);
    CHECK(remote.requests == 6);
    // refetch: fetched again although present (bytes that did not match).
    CHECK(p->ensure(500000, 500010, remote.fetch(), true) == 10);
    CHECK(q->present_bytes() == 402000);
    CHECK(partial_of(store, d, data.size())->present_bytes() == 402000); // opened, not made again
    CHECK_THROWS_WITH(partial_of(store, d, data.size() + 1), Catch::Contains("bytes"));
    CHECK_THROWS_WITH(p->ensure(0, data.size() + 1, remote.fetch()),
                      Catch::Contains(d.str()));
}

TEST_CASE("PartialBlob: a remote sending too much or too little, a damaged record",
          "[lazy_toc][partial]") {
    TempDir t;
    Store store(t.path() + "/store");
    std::string data = content(100000, 12);
    Digest d = Digest::of(data);
    auto p = partial_of(store, d, data.size());
    PartialBlob::Fetch too_much = [&](std::uint64_t off, std::uint64_t len,
                                      const std::function<void(const char*, std::size_t)>& sink) {
        sink(data.data() + off, len + 1);
    };
    PartialBlob::Fetch too_little = [&](std::uint64_t off, std::uint64_t len,
                                        const std::function<void(const char*, std::size_t)>& sink) {
        sink(data.data() + off, len - 1);
    };
    CHECK_THROWS_WITH(p->ensure(0, 1000, too_much), Catch::Contains("more than"));
    CHECK_THROWS_WITH(p->ensure(0, 1000, too_little), Catch::Contains("999 of the 1000"));
    CHECK(p->present_bytes() == 0); // nothing recorded for either
    {
        UniqueFd rec = fs::open(p->dir() + "/ranges", O_WRONLY | O_APPEND | O_CLOEXEC);
        fs::write_all(rec.get(), "+ 10 5\n");
    }
    CHECK_THROWS_WITH(PartialBlob::open(store, d), Catch::Contains("damaged line \"+ 10 5\""));
    CHECK_THROWS_WITH(PartialBlob::open(store, Digest::of("other")),
                      Catch::Contains("was not pulled lazily"));
}

TEST_CASE("a lazily pulled zstd:chunked layer: only the frames read are fetched, each checked",
          "[lazy_toc][partial]") {
    Crafted c = crafted(true);
    const std::string& blob = c.blob->data;
    auto idx = index_of(*c.blob);
    TempDir t;
    Store store(t.path() + "/store");
    FakeRemote remote{blob};
    auto p = partial_of(store, c.blob->digest, blob.size());
    auto source = [&](std::uint64_t b, std::uint64_t e, bool refetch) {
        p->ensure(b, e, remote.fetch(), refetch);
    };
    std::size_t b_entry = entry_of(*idx, "b");
    {
        ChunkedContentReader r(fs::open(p->dir() + "/data", O_RDONLY | O_CLOEXEC), idx, source);
        CHECK(read_all(r, *idx, b_entry, 700) == c.b);
        // b's three chunks came in one request (its frames are adjacent);
        // a's frames were not fetched.
        CHECK(remote.requests == 1);
        const ChunkLocator& first = idx->chunks[idx->entries[b_entry].first_chunk];
        const ChunkLocator& last = idx->chunks[idx->entries[b_entry].first_chunk + 2];
        CHECK(remote.bytes == last.end - first.begin);
        CHECK(p->present_bytes() == last.end - first.begin);
    }
    std::size_t a_entry = entry_of(*idx, "d/a");
    {
        // A registry (or a disk) that gives wrong bytes once: the chunk is
        // fetched again and served right.
        remote.corrupt = 1;
        ChunkedContentReader r(fs::open(p->dir() + "/data", O_RDONLY | O_CLOEXEC), idx, source);
        CHECK(read_all(r, *idx, a_entry, 3000) == c.a);
        CHECK(remote.requests == 3);
    }
    {
        // Wrong twice (bytes that do not decode, or decode to others): an
        // error naming the file, never the wrong bytes.
        FakeRemote liar{blob};
        liar.corrupt = 100;
        auto p2 = partial_of(store, Digest::of(blob + "x"), blob.size());
        auto lying = [&](std::uint64_t b, std::uint64_t e, bool refetch) {
            p2->ensure(b, e, liar.fetch(), refetch);
        };
        ChunkedContentReader r(fs::open(p2->dir() + "/data", O_RDONLY | O_CLOEXEC), idx, lying);
        std::string buf(3000, '\0');
        CHECK_THAT(error_of([&] { r.read(a_entry, 0, buf.data(), buf.size()); }),
                   Catch::Contains("\"d/a\""));
        CHECK(liar.requests == 2);
    }
}

TEST_CASE("PartialBlob: threads fetch disjoint pieces at once and wait for each other's",
          "[lazy_toc][partial]") {
    TempDir t;
    Store store(t.path() + "/store");
    std::string data = content(4 << 20, 13);
    Digest d = Digest::of(data);
    auto p = partial_of(store, d, data.size());
    std::mutex mu;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> asked;
    int at_once = 0, most = 0;
    PartialBlob::Fetch slow = [&](std::uint64_t off, std::uint64_t len,
                                  const std::function<void(const char*, std::size_t)>& sink) {
        {
            std::lock_guard lock(mu);
            asked.emplace_back(off, off + len);
            most = std::max(most, ++at_once);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        sink(data.data() + off, len);
        std::lock_guard lock(mu);
        --at_once;
    };
    // Four threads: two on the same first MiB, two on other MiBs.
    std::vector<std::thread> threads;
    const std::uint64_t mib = 1 << 20;
    for (std::uint64_t b : {std::uint64_t{0}, std::uint64_t{0}, 2 * mib, 3 * mib}) {
        threads.emplace_back([&, b] { p->ensure(b, b + mib, slow); });
    }
    for (auto& th : threads) {
        th.join();
    }
    CHECK(asked.size() == 3); // the first MiB fetched once
    CHECK(most >= 2);         // disjoint pieces at once
    CHECK(p->present_bytes() == 3 * mib);
    std::string got(mib, '\0');
    REQUIRE(::pread(p->fd(), got.data(), got.size(), 3 * mib) == static_cast<ssize_t>(mib));
    CHECK(got == data.substr(3 * mib, mib));
}
