// What the commands that look inside images without unpacking them share
// (history, layers, ls, cat, cp, diff, analyze: cmd_<name>.cpp). Each streams
// the layer blobs it needs into a snapshot::LayerIndex
// (snapshot/image_browse.hpp).
//
// IMAGE@N names layer N (1 = the bottom layer). For ls, cat and cp it means
// the tree as it stands after layer N; for diff it means layer N's own
// entries (whiteouts shown as `.wh.` files), unless --merged is given.
#pragma once

#include "cli/cli.hpp"
#include "snapshot/layer_index.hpp"
#include "snapshot/store.hpp"
#include "snapshot/tree_diff.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::cli {

struct ImageSpec {
    std::string image;
    std::optional<std::size_t> layer; // 1-based, 0 = empty tree
};

// "busybox@3" names layer 3; "busybox@sha256:..." is a digest reference.
// Throws UsageError for a layer number over 6 digits or nothing before '@'.
ImageSpec parse_image_spec(std::string_view text);

// --format: table or json, else UsageError.
void check_format(const std::string& format);

// The number of layers spec asks for (all without @N); UsageError past the top.
std::size_t checked_layer(const ImageSpec& spec, const snapshot::Image& image);

// IMAGE or IMAGE@N opened for browsing without unpacking: its layers up to N
// indexed and merged into one tree (what ls, cat and cp read).
struct BrowsedImage {
    ImageSpec spec;
    snapshot::Store store;
    snapshot::Image image;
    std::size_t upto;
    snapshot::LayerIndex index;
    snapshot::MergedTree tree; // points into index: a BrowsedImage is never copied or moved

    BrowsedImage(Context& ctx, const std::string& spec_text);
    BrowsedImage(const BrowsedImage&) = delete;
    BrowsedImage& operator=(const BrowsedImage&) = delete;
};

// History entries paired with the layer each non-empty one created.
struct HistoryRow {
    std::optional<formats::History> history; // nullopt: a layer without history
    std::optional<std::size_t> layer;        // 0-based
};
std::vector<HistoryRow> history_rows(const snapshot::Image& image);
// The created_by of the history entry of each layer ("" where there is none).
std::vector<std::string> created_by_per_layer(const snapshot::Image& image);

// s on one line (newlines and tabs as spaces), cut to n characters with an
// ellipsis unless no_trunc.
std::string truncate(std::string s, std::size_t n, bool no_trunc);
// Tar names need not be UTF-8: invalid bytes print as U+FFFD instead of failing.
void print_json(const nlohmann::json& j);
// A mode as four octal digits.
std::string octal(std::uint32_t mode);
// A file's metadata as ls and diff print it in JSON.
nlohmann::json meta_json(const snapshot::FileMeta& m);

// A subcommand of the form `NAME IMAGE [--no-trunc] [--format table|json]`.
void add_image_listing(CLI::App& app, Context& ctx, const char* name, const char* description,
                       const char* no_trunc_help,
                       void (*run)(Context&, const std::string&, bool, const std::string&));

} // namespace strata::cli
