// Helpers shared by the subcommands: opening the store, human-readable
// sizes and times, and aligned tables.
#pragma once

#include "cli/cli.hpp"
#include "formats/tar.hpp"
#include "snapshot/store.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::cli {

snapshot::Store open_store(const Context& ctx);

// Without root and with /etc/subuid ranges: makes this (single-threaded)
// process root of a user namespace with the user's ranges, as podman runs
// its commands (`podman unshare`), so that it may delete snapshots a
// rootless `strata run` unpacked there (files of subordinate ids, which the
// user cannot remove). Pins ctx's store first (its default depends on the
// euid). Does nothing as root or without ranges; when no namespace can be
// made it logs why (debug) and carries on as the user.
void enter_store_user_namespace(Context& ctx);

// SOURCE_DATE_EPOCH as seconds, when set; a value that is not a non-negative
// integer is a usage error.
std::optional<std::int64_t> source_date_epoch();

// "1.2MB", "512B" (decimal units, as docker prints).
std::string human_size(std::uint64_t bytes);
// "3 hours ago" from an RFC 3339 time; "N/A" when it cannot be read.
std::string human_age(std::string_view rfc3339);
// The current time, or SOURCE_DATE_EPOCH when set, as RFC 3339 (UTC, seconds).
std::string now_rfc3339();
std::string rfc3339(std::int64_t seconds);

// The manifest entry for a layer blob written with TarWriter.
formats::Descriptor layer_descriptor(const formats::LayerDigests& digests, formats::Compression c);
// An empty image config for the host platform, created at `created`.
formats::ImageConfig host_image_config(const std::string& created);

// Prints rows as columns separated by three spaces, the header first.
void print_table(const std::vector<std::vector<std::string>>& rows);

} // namespace strata::cli
