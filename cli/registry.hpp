// strata pull and push as plain functions, for the commands (cmd_registry.cpp)
// and the API server's POST /images/create and /images/{name}/push alike.
#pragma once

#include "cli/cli.hpp"
#include "registry/auth.hpp"
#include "registry/transfer.hpp"
#include "snapshot/reference.hpp"
#include "snapshot/store.hpp"

#include <functional>
#include <iosfwd>
#include <optional>
#include <string>

namespace strata::cli {

struct RemoteSettings {
    bool tls_verify = true;
    int jobs = 4;
    std::string platform; // pull: os/arch[/variant] to pick from an index
    std::uint64_t chunk_size = 0;
    // Instead of the stored login (Docker config) for the registry.
    std::optional<registry::Credentials> credentials;
    std::string compression = "gzip"; // push: zstd layers become gzip unless "zstd"
    bool lazy = false; // pull: zstd:chunked layers' TOCs only (registry::TransferOptions::lazy)
};

// strata pull REF: the image into the store, its name set. `progress` gets
// the transfer's events (from several threads).
registry::PullResult pull_image(snapshot::Store& store, const snapshot::Reference& ref,
                                const RemoteSettings& s, registry::TransferProgress progress);

// `run --lazy`, `create --lazy`, `mount --lazy` of an image the store does
// not have: as Docker's run pulls a missing image, but lazily (the manifest,
// the config and the tables of contents of zstd:chunked layers; their files
// come when they are read), saying so on log. Does nothing when the store
// resolves `image`; throws NoSuchImage when it is not a reference to pull.
void lazy_pull_missing(snapshot::Store& store, const std::string& image, std::ostream& log);

// strata push IMAGE [DEST]: the destination (DEST, else the image's name;
// UsageError for an image without one), and `converted` is told of each zstd
// layer pushed as gzip.
struct PushTarget {
    snapshot::ImageRecord record;
    snapshot::Reference dest;
};
PushTarget push_target(snapshot::Store& store, const std::string& image,
                       const std::string& dest_text);
registry::PushResult push_image(
    snapshot::Store& store, const PushTarget& target, const RemoteSettings& s,
    registry::TransferProgress progress,
    const std::function<void(const formats::Digest& from, const formats::Digest& to)>& converted);

} // namespace strata::cli
