// Pulling images from a registry into the store and pushing them back.
//
// Pull: fetch the manifest (an index picks the requested platform, by
// default the host's), then every blob the store does not have, several at
// once, each streamed through the store's verified BlobWriter (a blob is
// visible only once its digest checks). The manifest goes in last and the
// name is set only after every blob is in, so an interrupted pull leaves no
// half-written blob and no name; pulling again skips what is there.
//
// Push: every blob of the image is checked with HEAD, mounted from another
// repository of the same registry that the store knows has it, or uploaded
// (several at once); the manifest is put last, with its stored bytes.
#pragma once

#include "formats/compression.hpp"
#include "formats/oci.hpp"
#include "registry/client.hpp"
#include "snapshot/partial_blob.hpp"
#include "snapshot/reference.hpp"
#include "snapshot/store.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace strata::registry {

struct TransferEvent {
    enum class Kind {
        resolved,  // the manifest to transfer is known (digest = manifest)
        skipped,   // pull: blob already in the store
        exists,    // push: the registry already has the blob
        mounted,   // push: mounted from `from`
        done,      // blob transferred
        fetching,  // pull: a blob the store lacks is about to be fetched
        lazy,      // lazy pull: a layer's TOC fetched, its files left for when they are read
                   // (size: bytes fetched; from: the layer's size)
        completed, // pull: a lazily pulled layer's missing bytes fetched (size: those)
    };
    Kind kind;
    formats::Digest digest;
    std::uint64_t size = 0;
    std::string from;
    bool config = false; // pull: the blob is the image's config, not a layer
};

using TransferProgress = std::function<void(const TransferEvent&)>;

struct TransferOptions {
    ClientOptions client;
    int jobs = 4; // blobs in flight at once
    // Pull: the platform to pick from an index (default: the host's).
    std::optional<formats::Platform> platform;
    // Called from worker threads; must be thread-safe.
    TransferProgress progress;
    // Pull lazily: of a zstd:chunked layer whose descriptor carries its TOC's
    // position and checksum (containers/storage's annotations), fetch only the
    // TOC and footer, into partial/ (snapshot/partial_blob.hpp); its files'
    // frames come when they are read (strata-lazy, through range requests).
    // Other layers are fetched whole. A pull without lazy completes the
    // lazily pulled layers it meets, fetching only their missing bytes.
    bool lazy = false;
};

struct PullResult {
    formats::Descriptor manifest;
    std::optional<formats::Digest> index; // when the reference named an index
    std::uint64_t bytes_fetched = 0;
    int blobs_fetched = 0;
    int blobs_skipped = 0;
    int layers_lazy = 0; // left in partial/ (TOC only, or some of their files)
};

struct PushResult {
    formats::Descriptor manifest;
    std::uint64_t bytes_uploaded = 0;
    int blobs_uploaded = 0;
    int blobs_existed = 0;
    int blobs_mounted = 0;
};

// Registry client options for a reference's registry: credentials from the
// Docker config (DOCKER_CONFIG respected) unless given.
ClientOptions client_options_for(const std::string& registry, bool tls_verify);

// The tag or digest to ask a registry for ("latest" when the reference has
// neither), and the reference as messages show it (registry/path:tag or @digest).
std::string reference_in_repo(const snapshot::Reference& ref);
std::string display_reference(const snapshot::Reference& ref);

// Picks the manifest for platform from an index; throws naming the
// platforms the index offers when none matches.
formats::Descriptor select_platform(const formats::Index& index, const formats::Platform& platform,
                                    std::string_view what);

PullResult pull(snapshot::Store& store, const snapshot::Reference& ref,
                const TransferOptions& options);

// Pushes the image whose manifest is `manifest` to dest.
PushResult push(snapshot::Store& store, const formats::Descriptor& manifest,
                const snapshot::Reference& dest, const TransferOptions& options);

// For push: the image with every layer compressed with `from` re-compressed
// with `to` (the uncompressed tars, hence the diff IDs, the config and the
// image ID, are unchanged; each converted layer is checked against its diff
// ID). The new layer blobs and manifest are put in the store, unnamed (gc
// removes them later); with no such layer the manifest is returned as it is.
// Docker 20.10 and other older clients cannot pull zstd layers, so strata
// push converts zstd to gzip unless asked to keep zstd (as BuildKit's
// force-compression does when exporting gzip).
struct LayerConversion {
    formats::Descriptor manifest;
    std::vector<std::pair<formats::Digest, formats::Digest>> converted; // old layer -> new layer
};
LayerConversion convert_layers(snapshot::Store& store, const formats::Descriptor& manifest,
                               formats::Compression from, formats::Compression to);

// Pushes a document that is not an image (a build cache, an artifact): the
// blobs, which must be in the store, then the manifest bytes as they are,
// under dest's tag or digest.
PushResult push_manifest(snapshot::Store& store, const std::string& manifest_bytes,
                         const std::string& media_type,
                         const std::vector<formats::Descriptor>& blobs,
                         const snapshot::Reference& dest, const TransferOptions& options);

// Fetches the missing bytes of a lazily pulled blob from where its partial/
// record says it came from (registry and repository; credentials from the
// Docker config): for strata-lazy serving a lazily pulled image.
snapshot::PartialBlob::Fetch remote_fetch(const snapshot::PartialBlob& blob);

// Downloads one blob of repo into the store, verified against its digest and
// size: nothing is visible under the digest unless the bytes match
// (DigestMismatchError naming registry, repository and digest otherwise).
// Returns false when the store already had it.
bool fetch_blob_into(snapshot::Store& store, Client& client, const std::string& repo,
                     const formats::Descriptor& blob);

} // namespace strata::registry
