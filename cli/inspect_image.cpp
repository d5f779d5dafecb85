#include "cli/inspect_image.hpp"

#include "cli/common.hpp"
#include "snapshot/image_browse.hpp"
#include "util/error.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <iostream>
#include <memory>

namespace strata::cli {

using formats::EntryType;
using nlohmann::json;

ImageSpec parse_image_spec(std::string_view text) {
    ImageSpec spec{std::string(text), std::nullopt};
    auto at = text.rfind('@');
    if (at == std::string_view::npos || at + 1 == text.size()) {
        return spec;
    }
    auto num = text.substr(at + 1);
    if (!std::all_of(num.begin(), num.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return spec;
    }
    if (num.size() > 6) {
        throw UsageError("bad layer number in \"" + std::string(text) + "\"");
    }
    spec.image = std::string(text.substr(0, at));
    spec.layer = static_cast<std::size_t>(std::stoul(std::string(num)));
    if (spec.image.empty()) {
        throw UsageError("no image before '@' in \"" + std::string(text) + "\"");
    }
    return spec;
}

void check_format(const std::string& format) {
    if (format != "table" && format != "json") {
        throw UsageError("unknown --format \"" + format + "\" (table or json)");
    }
}

std::size_t checked_layer(const ImageSpec& spec, const snapshot::Image& image) {
    auto n = image.manifest.layers.size();
    if (spec.layer && *spec.layer > n) {
        throw UsageError(fmt::format("{} has {} layer{}; there is no layer {}", spec.image, n,
                                     n == 1 ? "" : "s", *spec.layer));
    }
    return spec.layer.value_or(n);
}

BrowsedImage::BrowsedImage(Context& ctx, const std::string& spec_text)
    : spec(parse_image_spec(spec_text)), store(open_store(ctx)), image(store.load(spec.image)),
      upto(checked_layer(spec, image)),
      tree(snapshot::index_image_layers(store, image, index, upto), upto) {}

std::vector<HistoryRow> history_rows(const snapshot::Image& image) {
    std::vector<HistoryRow> rows;
    std::size_t next_layer = 0;
    const auto nlayers = image.manifest.layers.size();
    for (const auto& h : image.config.history) {
        HistoryRow row{h, std::nullopt};
        if (!h.empty_layer && next_layer < nlayers) {
            row.layer = next_layer++;
        }
        rows.push_back(std::move(row));
    }
    for (; next_layer < nlayers; ++next_layer) {
        rows.push_back(HistoryRow{std::nullopt, next_layer});
    }
    return rows;
}

std::vector<std::string> created_by_per_layer(const snapshot::Image& image) {
    std::vector<std::string> out(image.manifest.layers.size());
    for (const auto& row : history_rows(image)) {
        if (row.layer && row.history) {
            out[*row.layer] = row.history->created_by;
        }
    }
    return out;
}

std::string truncate(std::string s, std::size_t n, bool no_trunc) {
    for (auto& c : s) {
        if (c == '\n' || c == '\t')
            c = ' ';
    }
    if (no_trunc || s.size() <= n) {
        return s;
    }
    return s.substr(0, n - 1) + "\u2026";
}

void print_json(const json& j) {
    std::cout << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
}

std::string octal(std::uint32_t mode) {
    return fmt::format("{:04o}", mode);
}

json meta_json(const snapshot::FileMeta& m) {
    json j;
    j["type"] = snapshot::type_name(m.type);
    j["mode"] = octal(m.mode);
    j["uid"] = m.uid;
    j["gid"] = m.gid;
    j["size"] = m.size;
    j["mtime"] = rfc3339(m.mtime_sec);
    if (!m.link.empty())
        j["link"] = m.link;
    if (m.type == EntryType::chardev || m.type == EntryType::blockdev) {
        j["device"] = fmt::format("{}:{}", m.devmajor, m.devminor);
    }
    if (!m.xattrs.empty())
        j["xattrs"] = m.xattrs;
    if (m.content)
        j["sha256"] = Sha256::hex(*m.content);
    if (m.layer)
        j["layer"] = *m.layer + 1;
    return j;
}

void add_image_listing(CLI::App& app, Context& ctx, const char* name, const char* description,
                       const char* no_trunc_help,
                       void (*run)(Context&, const std::string&, bool, const std::string&)) {
    auto* cmd = app.add_subcommand(name, description);
    auto image = std::make_shared<std::string>();
    auto no_trunc = std::make_shared<bool>(false);
    auto format = std::make_shared<std::string>("table");
    cmd->add_option("IMAGE", *image, "Image name or ID")->required();
    cmd->add_flag("--no-trunc", *no_trunc, no_trunc_help);
    cmd->add_option("--format", *format, "table or json");
    cmd->callback([=, &ctx] { run(ctx, *image, *no_trunc, *format); });
}

} // namespace strata::cli
