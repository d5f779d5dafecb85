#include "snapshot/lazy_toc.hpp"

#include "formats/json.hpp"
#include "formats/limits.hpp"
#include "formats/zstd_chunked.hpp"
#include "snapshot/layer_index.hpp"
#include "snapshot/partial_blob.hpp"
#include "snapshot/store.hpp"
#include "util/error.hpp"
#include "util/log.hpp"
#include "util/sha256.hpp"

#include <algorithm>
#include <cstring>
#include <sys/stat.h>

namespace strata::snapshot {

namespace {

formats::EntryType entry_type(const std::string& t) {
    if (t == "reg") {
        return formats::EntryType::file;
    }
    if (t == "dir") {
        return formats::EntryType::dir;
    }
    if (t == "symlink") {
        return formats::EntryType::symlink;
    }
    if (t == "hardlink") {
        return formats::EntryType::hardlink;
    }
    if (t == "char") {
        return formats::EntryType::chardev;
    }
    if (t == "block") {
        return formats::EntryType::blockdev;
    }
    // formats::read_chunked_toc lets only these and "chunk" through; chunks
    // never get here.
    return formats::EntryType::fifo;
}

std::optional<formats::Digest> digest_of(const std::string& text) {
    if (text.empty()) {
        return std::nullopt;
    }
    return formats::Digest::parse(text);
}

} // namespace

std::optional<BlobIndex> build_toc_index(int blob_fd, const formats::Digest& blob,
                                         std::uint64_t blob_size,
                                         std::string_view expected_toc_digest) {
    const std::string what = "layer " + blob.str();
    auto toc = formats::read_chunked_toc(blob_fd, blob_size, what, expected_toc_digest);
    if (!toc) {
        return std::nullopt;
    }
    BlobIndex idx;
    idx.blob = blob;
    idx.blob_size = blob_size;
    idx.compression = formats::Compression::zstd;
    idx.seekable = true;
    idx.toc = true;
    idx.toc_digest = toc->digest;
    // The checks the unpack path makes on names, links and whiteouts.
    LayerIndex check;
    check.begin_layer(blob.str());
    for (std::size_t i = 0; i < toc->entries.size(); ++i) {
        const formats::ChunkedEntry& c = toc->entries[i];
        auto fail = [&](const std::string& why) {
            return Error(what + ": zstd:chunked TOC entry " + std::to_string(i) + " (" +
                         formats::quote_untrusted(c.name) + "): " + why);
        };
        if (c.type == "chunk") {
            // formats checked that chunks follow their file and tile it.
            if (idx.entries.empty() || idx.entries.back().entry.type != formats::EntryType::file) {
                throw fail("a chunk that follows no regular file");
            }
            auto& file = idx.entries.back();
            idx.chunks.push_back(ChunkLocator{c.offset, c.end_offset, c.chunk_offset, c.chunk_size,
                                              digest_of(c.chunk_digest)});
            ++file.chunk_count;
            continue;
        }
        IndexedEntry ie;
        formats::TarEntry& e = ie.entry;
        e.path = c.name;
        e.type = entry_type(c.type);
        e.mode = c.mode;
        e.uid = c.uid;
        e.gid = c.gid;
        e.mtime_sec = c.mtime_sec;
        e.mtime_nsec = c.mtime_nsec;
        e.linkname = c.link_name;
        e.devmajor = c.devmajor;
        e.devminor = c.devminor;
        e.xattrs = c.xattrs;
        if (e.type == formats::EntryType::file) {
            e.size = c.size;
            if (e.size > formats::max_file_size()) {
                throw fail("a size of " + std::to_string(e.size) + " bytes, over the limit of " +
                           std::to_string(formats::max_file_size()));
            }
            ie.digest = digest_of(c.digest);
            ie.first_chunk = static_cast<std::uint32_t>(idx.chunks.size());
            if (e.size > 0) {
                idx.chunks.push_back(ChunkLocator{c.offset, c.end_offset, c.chunk_offset,
                                                  c.chunk_size, digest_of(c.chunk_digest)});
                ie.chunk_count = 1;
            }
        }
        check.add_entry(e);
        idx.entries.push_back(std::move(ie));
    }
    check.end_layer();
    // Every byte served must be checked against a digest: a file without
    // one of its own needs one per chunk.
    for (std::size_t i = 0; i < idx.entries.size(); ++i) {
        const IndexedEntry& ie = idx.entries[i];
        if (ie.entry.type != formats::EntryType::file || ie.entry.size == 0 || ie.digest) {
            continue;
        }
        for (std::uint32_t k = 0; k < ie.chunk_count; ++k) {
            if (!idx.chunks[ie.first_chunk + k].digest) {
                throw Error(what + ": zstd:chunked TOC: file " +
                            formats::quote_untrusted(ie.entry.path) +
                            " has no digest to check its content against");
            }
        }
    }
    if (idx.chunks.size() > UINT32_MAX) {
        throw Error(what + ": zstd:chunked TOC: too many chunks");
    }
    // A chunk is decoded whole into memory at a read: one larger than a
    // seekable zstd layer's largest frame (a big file its writer did not cut)
    // makes the layer one to unpack, as such a frame does for the pass.
    for (const ChunkLocator& l : idx.chunks) {
        if (l.size > BlobIndex::k_max_zstd_gap) {
            idx.seekable = false;
        }
    }
    return idx;
}

namespace {

std::string annotation(const formats::Descriptor& layer, std::string_view key) {
    auto it = layer.annotations.find(std::string(key));
    return it == layer.annotations.end() ? std::string() : it->second;
}

// A lazily pulled layer's index: its TOC, which the pull fetched.
BlobIndex partial_toc_index(const Store& store, const formats::Descriptor& layer) {
    auto partial = PartialBlob::open(store, layer.digest);
    // Nothing else vouches for the bytes here: the TOC must be the one the
    // manifest names (a lazy pull fetches no layer without that annotation
    // lazily).
    std::string expected = annotation(layer, formats::k_chunked_manifest_checksum_key);
    if (expected.empty()) {
        throw Error("layer " + layer.digest.str() +
                    " was pulled lazily but its descriptor has no TOC checksum annotation: "
                    "`strata pull` the image");
    }
    auto idx = build_toc_index(partial->fd(), layer.digest, partial->source().size, expected);
    if (!idx) {
        throw Error("layer " + layer.digest.str() + ": the lazily pulled blob has no zstd:chunked "
                    "footer (" + partial->dir() + " is damaged: remove it and pull again)");
    }
    return std::move(*idx);
}

std::optional<BlobIndex> maybe_toc_index(const Store& store, const formats::Descriptor& layer) {
    if (!store.has_blob(layer.digest) && PartialBlob::exists(store, layer.digest)) {
        return partial_toc_index(store, layer); // its errors stand: there is no pass to fall back to
    }
    UniqueFd fd = store.open_blob(layer.digest);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        throw_errno("fstat", store.blob_path(layer.digest));
    }
    std::string expected = annotation(layer, formats::k_chunked_manifest_checksum_key);
    try {
        return build_toc_index(fd.get(), layer.digest, static_cast<std::uint64_t>(st.st_size),
                               expected);
    } catch (const Error& e) {
        // The blob itself is whole and verified (its digest is its name):
        // only its TOC is damaged, foreign or of a kind not read here (such as
        // containers/storage's sparse "zeros" chunks). The pass reads the tar
        // stream itself and trusts nothing of the TOC.
        STRATA_LOG_WARN("{}; indexing the layer by a pass over it instead", e.what());
        return std::nullopt;
    }
}

} // namespace

BlobIndex load_lazy_index(const Store& store, const formats::Descriptor& layer) {
    if (auto idx = maybe_toc_index(store, layer)) {
        return std::move(*idx);
    }
    return load_blob_index(store, layer.digest);
}

std::optional<bool> toc_index_seekable(const Store& store, const formats::Descriptor& layer) {
    if (auto idx = maybe_toc_index(store, layer)) {
        return idx->seekable;
    }
    return std::nullopt;
}

// ---------------------------------------------------------------- reading

ChunkedContentReader::ChunkedContentReader(UniqueFd blob_fd, std::shared_ptr<const BlobIndex> index,
                                           RangeSource source)
    : m_fd(std::move(blob_fd)), m_index(std::move(index)), m_source(std::move(source)),
      m_verified(m_index->chunks.size()) {}

ChunkedContentReader::~ChunkedContentReader() = default;

std::string ChunkedContentReader::what(std::size_t entry) const {
    return "layer " + m_index->blob.str() + ": file " +
           formats::quote_untrusted(m_index->entries.at(entry).entry.path);
}

void ChunkedContentReader::prefetch(std::size_t entry, std::uint32_t c) const {
    if (!m_source) {
        return;
    }
    // This chunk's frames and those of the file's next chunks, up to
    // k_prefetch_bytes in all, in one request: a file is mostly read on from
    // where a read starts, and each request costs a round trip.
    const IndexedEntry& ie = m_index->entries.at(entry);
    const ChunkLocator& first = m_index->chunks.at(c);
    std::uint64_t end = first.end;
    for (std::uint32_t k = c + 1; k < ie.first_chunk + ie.chunk_count; ++k) {
        const ChunkLocator& l = m_index->chunks[k];
        if (l.begin < end || l.end - first.begin > k_prefetch_bytes) {
            break;
        }
        end = l.end;
    }
    m_source(first.begin, end, false);
}

ChunkedContentReader::Bytes ChunkedContentReader::decode(std::size_t entry, std::uint32_t c) const {
    const ChunkLocator& l = m_index->chunks.at(c);
    if (m_source) {
        m_source(l.begin, l.end, false);
    }
    return std::make_shared<const std::string>(
        formats::read_chunked_range(m_fd.get(), l.begin, l.end, l.size, what(entry)));
}

void ChunkedContentReader::verify_file(std::size_t entry) {
    // The file's chunks carry no digests of their own: hash the whole
    // content against the file's digest, once.
    const IndexedEntry& ie = m_index->entries.at(entry);
    auto hash = [&] {
        formats::DigestHasher h;
        for (std::uint32_t k = 0; k < ie.chunk_count; ++k) {
            prefetch(entry, ie.first_chunk + k);
            Bytes b = decode(entry, ie.first_chunk + k);
            h.update(*b);
        }
        return h.finish();
    };
    formats::Digest got = formats::Digest::of({});
    for (int attempt = 0;; ++attempt) {
        try {
            got = hash();
            if (got == *ie.digest || !m_source || attempt > 0) {
                break;
            }
        } catch (const Error&) {
            if (!m_source || attempt > 0) {
                throw;
            }
        }
        // As in chunk(): fetched once more before the file is called damaged.
        for (std::uint32_t k = 0; k < ie.chunk_count; ++k) {
            const ChunkLocator& l = m_index->chunks[ie.first_chunk + k];
            m_source(l.begin, l.end, true);
        }
    }
    if (got != *ie.digest) {
        throw Error(what(entry) + ": the content hashes to " + got.str() + ", not " +
                    ie.digest->str() + " as the TOC says");
    }
    std::lock_guard lock(m_mu);
    for (std::uint32_t k = 0; k < ie.chunk_count; ++k) {
        m_verified[ie.first_chunk + k] = true;
    }
}

ChunkedContentReader::Bytes ChunkedContentReader::chunk(std::size_t entry, std::uint32_t c) {
    bool verified = false;
    {
        std::lock_guard lock(m_mu);
        for (auto it = m_cache.begin(); it != m_cache.end(); ++it) {
            if (it->first == c) {
                m_cache.splice(m_cache.begin(), m_cache, it);
                return m_cache.front().second;
            }
        }
        verified = m_verified[c];
    }
    const IndexedEntry& ie = m_index->entries.at(entry);
    const ChunkLocator& l = m_index->chunks.at(c);
    if (!verified && !l.digest && ie.chunk_count > 1) {
        verify_file(entry);
        verified = true;
    }
    prefetch(entry, c);
    Bytes b;
    for (int attempt = 0;; ++attempt) {
        try {
            b = decode(entry, c);
            if (verified) {
                break;
            }
            const formats::Digest& want = l.digest ? *l.digest : *ie.digest;
            formats::Digest got = formats::Digest::of(*b);
            if (got == want) {
                break;
            }
            throw Error(what(entry) + ": bytes " + std::to_string(l.file_offset) + ".." +
                        std::to_string(l.file_offset + l.size) + " hash to " + got.str() +
                        ", not " + want.str() + " as the TOC says");
        } catch (const Error&) {
            if (!m_source || attempt > 0) {
                throw;
            }
        }
        // Fetched bytes that do not decode or match: fetch them once more
        // (the copy on the disk may be what is wrong) before calling the file
        // damaged.
        m_source(l.begin, l.end, true);
    }
    std::lock_guard lock(m_mu);
    m_verified[c] = true;
    m_cache.emplace_front(c, b);
    m_cached += b->size();
    while (m_cached > k_cache_bytes && m_cache.size() > 1) {
        m_cached -= m_cache.back().second->size();
        m_cache.pop_back();
    }
    return b;
}

void ChunkedContentReader::read(std::size_t entry, std::uint64_t off, char* buf, std::size_t len) {
    const IndexedEntry& ie = m_index->entries.at(entry);
    if (ie.entry.type != formats::EntryType::file || off > ie.entry.size ||
        len > ie.entry.size - off) {
        throw Error(what(entry) + ": read past the end of the file");
    }
    const auto* first = m_index->chunks.data() + ie.first_chunk;
    const auto* last = first + ie.chunk_count;
    // The chunk holding off: the last one starting at or before it.
    const auto* it = std::upper_bound(
        first, last, off, [](std::uint64_t o, const ChunkLocator& l) { return o < l.file_offset; });
    std::size_t done = 0;
    for (it = it == first ? first : it - 1; done < len; ++it) {
        if (it == last) {
            throw Error(what(entry) + ": its chunks end before byte " + std::to_string(off + done));
        }
        Bytes b = chunk(entry, static_cast<std::uint32_t>(it - m_index->chunks.data()));
        std::uint64_t at = off + done - it->file_offset;
        std::size_t n =
            static_cast<std::size_t>(std::min<std::uint64_t>(b->size() - at, len - done));
        std::memcpy(buf + done, b->data() + at, n);
        done += n;
    }
}

} // namespace strata::snapshot
