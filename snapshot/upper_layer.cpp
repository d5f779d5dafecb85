#include "snapshot/upper_layer.hpp"

#include "formats/compression.hpp"
#include "formats/zstd_chunked.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"

namespace strata::snapshot {

namespace {

// The hash checkpoints of a zstd:chunked layer the build wrote
// (formats::HashCheckpoint), kept beside the build cache: the next
// rebuild of the same step goes on hashing from them. Losing them costs
// only that.
std::string checkpoints_path(const Store& store, const formats::Digest& blob) {
    return store.cache_dir() + "/layer-hashes/" + std::string(blob.hex());
}

std::vector<formats::HashCheckpoint> load_checkpoints(const Store& store,
                                                      const formats::Descriptor& layer) {
    std::string path = checkpoints_path(store, layer.digest);
    try {
        if (!fs::exists(path)) {
            return {};
        }
        auto c = formats::parse_checkpoints_document(fs::read_file(path, std::size_t{16} << 20),
                                                     layer.digest,
                                                     static_cast<std::uint64_t>(layer.size));
        if (!c) {
            STRATA_LOG_WARN("ignoring the damaged hash checkpoints {}", path);
            return {};
        }
        return std::move(*c);
    } catch (const Error& e) {
        STRATA_LOG_WARN("ignoring the hash checkpoints {}: {}", path, e.what());
        return {};
    }
}

void save_checkpoints(const Store& store, const formats::Digest& blob, std::uint64_t size,
                      const std::vector<formats::HashCheckpoint>& checkpoints) {
    try {
        fs::mkdirs(store.cache_dir() + "/layer-hashes", 0700);
        fs::write_file_atomic(checkpoints_path(store, blob),
                              formats::checkpoints_document(checkpoints, blob, size), 0600);
    } catch (const Error& e) {
        STRATA_LOG_WARN("cannot keep the hash checkpoints of layer {}: {}", blob.str(), e.what());
    }
}

} // namespace

std::optional<UpperLayer>
put_upper_layer(Store& store, const std::string& upper_dir, const formats::TarWriter::Options& opts,
                DiffStats* stats,
                const std::function<void(int blob_fd, const std::function<void()>& pack)>& around,
                const formats::Descriptor* previous, std::uint64_t* reused,
                const ContentChecks* checks, const LinkedFiles* linked, std::uint64_t* linked_taken,
                bool defer_commit) {
    // Shared with the commit, which may outlive this call.
    std::shared_ptr<BlobWriter> blob(new BlobWriter(store.new_blob()));
    DiffStats own;
    DiffStats* st = stats != nullptr ? stats : &own;
    const bool chunked = opts.chunked && opts.compression == formats::Compression::zstd;
    ChunkedPack pack_info;
    UniqueFd old_fd;
    std::shared_ptr<const formats::ChunkedToc> old_toc;
    if (chunked && previous != nullptr && store.has_blob(previous->digest)) {
        // Only a zstd:chunked layer has frames to reuse; the TOC must be
        // the one its descriptor names. Anything wrong: compress afresh.
        auto ann =
            previous->annotations.find(std::string(formats::k_chunked_manifest_checksum_key));
        if (ann != previous->annotations.end()) {
            try {
                old_fd = store.open_blob(previous->digest);
                old_toc = formats::read_chunked_toc(old_fd.get(),
                                                    static_cast<std::uint64_t>(previous->size),
                                                    previous->digest.str(), ann->second);
            } catch (const Error& e) {
                STRATA_LOG_WARN("not reusing the frames of layer {}: {}", previous->digest.str(),
                                e.what());
                old_toc.reset();
            }
            if (old_toc) {
                pack_info.old_blob_fd = old_fd.get();
                pack_info.old_toc = old_toc.get();
                pack_info.old_what = previous->digest.str();
                pack_info.linked = linked;
                pack_info.old_checkpoints = load_checkpoints(store, *previous);
            }
        }
    }
    std::optional<formats::LayerDigests> d;
    auto pack = [&] {
        d = write_upper_layer(upper_dir, blob->fd(), opts, st, chunked ? &pack_info : nullptr,
                              checks);
    };
    // A linked file's damaged frames (formats::LinkedFramesDamaged) go up
    // to the builder, which makes the step again copying every file: the
    // linked inodes are only as good as the snapshot they came from.
    if (around) {
        around(blob->fd(), pack);
    } else {
        pack();
    }
    if (st->entries == 0) {
        return std::nullopt;
    }
    std::vector<formats::HashCheckpoint> checkpoints;
    if (pack_info.info) {
        checkpoints = std::move(pack_info.info->checkpoints);
    }
    auto commit = [&store, blob, digest = d->blob_digest, size = d->blob_size,
                   checkpoints = std::move(checkpoints)] {
        blob->commit_trusted(digest);
        if (!checkpoints.empty()) {
            save_checkpoints(store, digest, size, checkpoints);
        }
    };
    if (!defer_commit) {
        commit();
    }
    formats::Descriptor layer;
    layer.media_type = std::string(formats::oci_layer_media_type(opts.compression));
    layer.digest = d->blob_digest;
    layer.size = static_cast<std::int64_t>(d->blob_size);
    if (pack_info.info) {
        layer.annotations = formats::chunked_annotations(*pack_info.info);
        if (reused != nullptr) {
            *reused = pack_info.info->reused_bytes;
        }
        STRATA_LOG_DEBUG("layer {}: {} files' frames taken unread, {} header runs' frames "
                         "taken, the blob's hash went on from offset {} of {}",
                         layer.digest.str(), pack_info.linked_files, pack_info.info->reused_headers,
                         pack_info.info->hashed_from, layer.size);
        if (linked_taken != nullptr) {
            *linked_taken = pack_info.linked_files;
        }
    }
    UpperLayer out{std::move(layer), d->diff_id, {}};
    if (defer_commit) {
        out.commit = std::move(commit);
    }
    return out;
}

} // namespace strata::snapshot
