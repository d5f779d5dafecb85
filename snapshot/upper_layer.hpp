// An overlayfs upper directory (a build step's, a container's writable
// layer) packed into a layer blob of the store: the one layer writer of
// `strata build` (RUN, COPY, ...) and `strata commit`.
#pragma once

#include "formats/oci.hpp"
#include "formats/tar.hpp"
#include "snapshot/layer_diff.hpp"
#include "snapshot/store.hpp"

#include <functional>
#include <optional>

namespace strata::snapshot {

struct UpperLayer {
    formats::Descriptor layer;
    formats::Digest diff_id;
    // With defer_commit: the blob is written and hashed but not yet in the
    // store; commit() (callable on any thread, once) fsyncs and publishes
    // it. Never called, the blob is removed with the last copy of commit.
    std::function<void()> commit;
};

// Writes upper_dir as a layer (write_upper_layer, compressed as opts say) to
// a new blob of the store and commits it when it has entries (nullopt when
// the upper holds nothing: no layer, nothing stored); the descriptor's media
// type follows opts.compression. around, when set, is called with the blob's
// fd and the packing to run (a progress display).
// With opts.chunked and zstd the layer is zstd:chunked (its descriptor
// carries containers/storage's TOC annotations); previous, when set, is an
// earlier layer of the store (the same build step's last result) whose
// frames are reused for unchanged files (one that is not zstd:chunked, or
// unreadable, is simply not used). *reused (when given) tells the content
// bytes whose frames were reused. checks (when given) are content digests
// files of the layer must have (write_upper_layer; not with zstd:chunked):
// ContentMismatch is thrown, and nothing stored, when one differs. linked
// (when given, with previous) are the upper directory's files that are
// previous's snapshot's inodes (LinkedFiles): their frames are taken from
// previous without reading them; *linked_taken (when given) tells how many.
// defer_commit: the blob is published by the caller, through
// UpperLayer::commit (a build goes on with its next step meanwhile: the
// fsync of a 280 MB blob took 0.17 s here).
std::optional<UpperLayer> put_upper_layer(
    Store& store, const std::string& upper_dir, const formats::TarWriter::Options& opts,
    DiffStats* stats = nullptr,
    const std::function<void(int blob_fd, const std::function<void()>& pack)>& around = {},
    const formats::Descriptor* previous = nullptr, std::uint64_t* reused = nullptr,
    const ContentChecks* checks = nullptr, const LinkedFiles* linked = nullptr,
    std::uint64_t* linked_taken = nullptr, bool defer_commit = false);

} // namespace strata::snapshot
