// Helpers shared by the subcommands: opening the store, human-readable
// sizes and times, and aligned tables.
#pragma once

#include "cli/cli.hpp"
#include "cli/template.hpp"
#include "formats/tar.hpp"
#include "snapshot/store.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::cli {

snapshot::Store open_store(const Context& ctx);

// Docker's question before a prune: "WARNING! <warning>", then (after
// `between`: docker's builder prune asks on the same line) "Are you sure you
// want to continue? [y/N] " on stdout, one line read from stdin; true only
// for "y" or "Y" (end of input is a no, as in docker).
bool confirmed(std::string_view warning, std::string_view between = "\n");

// fn(name) for each name in turn; an Error is printed as "strata: error:
// ..." and the next name is tried. Returns how many failed (docker's rm
// family exits 1 when any did).
// A prune filter's until=VALUE as the docker CLI reads it (a Go duration
// before now, an RFC 3339 time or date, Unix seconds), in Unix seconds;
// UsageError naming the text.
std::int64_t until_seconds(const std::string& value);

// A prune's section as docker prints it: "TITLE:", a line each, a blank
// line; nothing when lines is empty.
void print_pruned(std::string_view title, const std::vector<std::string>& lines);

int each_reporting_errors(const std::vector<std::string>& names,
                          const std::function<void(const std::string&)>& fn);

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

// "1.23MB", "512B": go-units HumanSizeWithPrecision(size, precision),
// decimal units, as docker prints sizes (precision 4 is go-units HumanSize,
// prune's "Total reclaimed space").
std::string human_size(std::uint64_t bytes, int precision = 3);
// go-units HumanDuration: "Less than a second", "About a minute",
// "5 minutes", "About an hour", "47 hours", "3 days", "2 weeks", ...
std::string human_duration(std::int64_t seconds);
// "3 hours ago" from an RFC 3339 time; "N/A" when it cannot be read.
std::string human_age(std::string_view rfc3339);
// Seconds since the epoch of an RFC 3339 time, when it can be read.
std::optional<std::int64_t> parse_time(std::string_view rfc3339);
// Go's time.Time.String() in the local zone ("2006-01-02 15:04:05 -0700 MST"),
// as docker images' CreatedAt.
std::string go_time_string(std::int64_t seconds);
// RFC 3339 in the local zone ("Z" for UTC), as docker history's CreatedAt.
std::string rfc3339_local(std::int64_t seconds);
// The current time, or SOURCE_DATE_EPOCH when set, as RFC 3339 (UTC, seconds).
std::string now_rfc3339();
std::string rfc3339(std::int64_t seconds);

// The manifest entry for a layer blob written with TarWriter.
formats::Descriptor layer_descriptor(const formats::LayerDigests& digests, formats::Compression c);
// An empty image config for the host platform, created at `created`.
formats::ImageConfig host_image_config(const std::string& created);

// Display columns of UTF-8 text (wcwidth: wide characters count 2,
// combining marks 0, control characters 0).
std::size_t display_width(std::string_view s);
// The longest prefix of s at most `width` columns wide (never cutting a
// UTF-8 sequence or a wide character in half).
std::string clip_to_width(std::string_view s, std::size_t width);
// docker's formatter.Ellipsis: s, or its first max_width-1 columns and "…".
std::string ellipsis(std::string_view s, std::size_t max_width);
// A line of program output as a terminal would leave it, made safe to
// redraw: only what follows the last carriage return, escape sequences
// removed, tabs as spaces, control characters dropped.
std::string terminal_text(std::string_view s);

// docker history's --format fields (.ID .CreatedSince .CreatedAt .CreatedBy
// .Size .Comment, and strata's .Layer) and default table. `id` is empty for
// docker's "<missing>" rows.
TableFormat docker_history_format();
TemplateValue docker_history_row(const std::string& id, bool no_trunc, const std::string& created,
                                 const std::string& created_by, std::uint64_t size,
                                 const std::string& comment, const std::string& layer);

// The candidates close to `word` (a typo of a command or flag), closest
// first: cobra's rule (edit distance at most 2, or `word` a prefix).
std::vector<std::string> did_you_mean(const std::string& word,
                                      const std::vector<std::string>& candidates);

// Prints rows through Go's tabwriter with docker's settings (min width 10,
// padding 3, widths in characters), the header first.
void print_table(const std::vector<std::vector<std::string>>& rows);

// The image's size as `docker images` and `docker image inspect` show it:
// the sum of its layers' uncompressed file content, not the compressed
// blobs' sizes (cli/cmd_images.cpp).
std::uint64_t image_size(const snapshot::Store& store, const snapshot::Image& img);

} // namespace strata::cli
