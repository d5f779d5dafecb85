// strata analyze IMAGE: wasted space across layers and dive's efficiency
// score; --ci gates a build on dive's rules.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/inspect_image.hpp"
#include "snapshot/analyze.hpp"
#include "snapshot/image_browse.hpp"
#include "util/error.hpp"

#include <cmath>
#include <fmt/format.h>
#include <iostream>
#include <map>
#include <memory>

namespace strata::cli {

namespace {

using nlohmann::json;

struct AnalyzeOptions {
    std::string format = "table";
    bool ci = false;
    std::string lowest_efficiency;           // ratio 0..1, or "disabled"
    std::string highest_wasted_bytes;        // bytes with unit ("20MB"), or "disabled"
    std::string highest_user_wasted_percent; // ratio 0..1, or "disabled"
    std::size_t top = 20;
};

// Sizes as dive reads them (go-humanize ParseBytes): "20MB" = 20e6, "20MiB" = 20*2^20.
std::uint64_t parse_bytes(const std::string& text) {
    std::size_t i = 0;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
        ++i;
    if (i == 0)
        throw UsageError("bad size \"" + text + "\" (e.g. 20MB, 1.5GiB, 1000)");
    double v = std::stod(text.substr(0, i));
    std::string unit;
    for (auto c : text.substr(i)) {
        if (c != ' ')
            unit += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    static const std::map<std::string, double> units = {{"", 1},
                                                        {"b", 1},
                                                        {"k", 1e3},
                                                        {"kb", 1e3},
                                                        {"m", 1e6},
                                                        {"mb", 1e6},
                                                        {"g", 1e9},
                                                        {"gb", 1e9},
                                                        {"t", 1e12},
                                                        {"tb", 1e12},
                                                        {"ki", 1024.0},
                                                        {"kib", 1024.0},
                                                        {"mi", 1048576.0},
                                                        {"mib", 1048576.0},
                                                        {"gi", 1073741824.0},
                                                        {"gib", 1073741824.0},
                                                        {"ti", 1099511627776.0},
                                                        {"tib", 1099511627776.0}};
    auto it = units.find(unit);
    if (it == units.end())
        throw UsageError("bad size unit in \"" + text + "\"");
    return static_cast<std::uint64_t>(v * it->second);
}

std::optional<double> parse_ratio(const std::string& text, const std::string& name) {
    if (text.empty() || text == "disabled")
        return std::nullopt;
    try {
        std::size_t used = 0;
        double v = std::stod(text, &used);
        if (used != text.size() || v < 0)
            throw std::invalid_argument("x");
        return v;
    } catch (const std::logic_error&) {
        throw UsageError("--" + name + " takes a ratio such as 0.9 (or \"disabled\"), got \"" +
                         text + "\"");
    }
}

void cmd_analyze(Context& ctx, const std::string& image_text, const AnalyzeOptions& opts) {
    check_format(opts.format);
    // dive's defaults when --ci is given without rules.
    std::string low_eff =
        opts.lowest_efficiency.empty() && opts.ci ? "0.9" : opts.lowest_efficiency;
    std::string high_pct = opts.highest_user_wasted_percent.empty() && opts.ci
                               ? "0.1"
                               : opts.highest_user_wasted_percent;
    auto eff_rule = parse_ratio(low_eff, "lowest-efficiency");
    auto pct_rule = parse_ratio(high_pct, "highest-user-wasted-percent");
    std::optional<std::uint64_t> bytes_rule;
    if (!opts.highest_wasted_bytes.empty() && opts.highest_wasted_bytes != "disabled") {
        bytes_rule = parse_bytes(opts.highest_wasted_bytes);
    }

    auto store = open_store(ctx);
    auto image = store.load(image_text);
    snapshot::LayerIndex index;
    snapshot::index_image_layers(store, image, index, image.manifest.layers.size());
    auto a = snapshot::analyze_layers(index, opts.top);
    const auto& trie = index.trie();
    auto created_by = created_by_per_layer(image);

    struct RuleResult {
        std::string name;
        bool pass;
        std::string message;
    };
    std::vector<RuleResult> rules;
    if (opts.ci || eff_rule || pct_rule || bytes_rule) {
        if (eff_rule) {
            bool pass = !(*eff_rule > a.efficiency);
            rules.push_back(
                {"lowestEfficiency", pass,
                 fmt::format("image efficiency is too low (efficiency={} < threshold={})",
                             a.efficiency, *eff_rule)});
        }
        if (bytes_rule) {
            bool pass = !(a.wasted_bytes > *bytes_rule);
            rules.push_back({"highestWastedBytes", pass,
                             fmt::format("too many bytes wasted (wasted-bytes={} > threshold={})",
                                         a.wasted_bytes, *bytes_rule)});
        }
        if (pct_rule) {
            bool pass = !(a.wasted_user_percent > *pct_rule);
            rules.push_back({"highestUserWastedPercent", pass,
                             fmt::format("too many bytes wasted, relative to the user bytes added "
                                         "(%-user-wasted-bytes={} > threshold={})",
                                         a.wasted_user_percent, *pct_rule)});
        }
    }
    std::size_t failed = static_cast<std::size_t>(
        std::count_if(rules.begin(), rules.end(), [](const RuleResult& r) { return !r.pass; }));

    if (opts.format == "json") {
        json out;
        json img;
        img["name"] = image_text;
        img["id"] = image.id().str();
        img["sizeBytes"] = a.size_bytes;
        img["userSizeBytes"] = a.user_size_bytes;
        img["inefficientBytes"] = a.wasted_bytes;
        img["efficiencyScore"] = a.efficiency;
        img["userWastedPercent"] =
            std::isfinite(a.wasted_user_percent) ? json(a.wasted_user_percent) : json(nullptr);
        img["hiddenBytes"] = a.hidden_bytes;
        img["hiddenFiles"] = a.hidden_files;
        img["fileReference"] = json::array();
        for (const auto& w : a.inefficiencies) {
            img["fileReference"].push_back({{"count", w.count},
                                            {"sizeBytes", w.cumulative},
                                            {"file", "/" + trie.path(w.node)}});
        }
        out["image"] = std::move(img);
        out["layer"] = json::array();
        for (const auto& l : a.layers) {
            out["layer"].push_back({{"index", l.layer + 1},
                                    {"digestId", image.manifest.layers[l.layer].digest.str()},
                                    {"sizeBytes", l.size},
                                    {"hiddenBytes", l.hidden_bytes},
                                    {"hiddenFiles", l.hidden_files},
                                    {"command", created_by[l.layer]}});
        }
        out["largestFiles"] = json::array();
        for (const auto& f : a.largest) {
            out["largestFiles"].push_back(
                {{"file", "/" + trie.path(f.node)}, {"sizeBytes", f.size}, {"layer", f.layer + 1}});
        }
        if (!rules.empty()) {
            json ci = json::array();
            for (const auto& r : rules) {
                ci.push_back(
                    {{"rule", r.name}, {"pass", r.pass}, {"message", r.pass ? "" : r.message}});
            }
            out["ci"] = {{"pass", failed == 0}, {"rules", ci}};
        }
        print_json(out);
    } else {
        std::string t;
        t += fmt::format("Image: {} ({})\n", image_text, image.id().short_id());
        t += fmt::format("  efficiency:          {:.4f} %\n", a.efficiency * 100);
        t += fmt::format("  wasted bytes:        {} ({})\n", a.wasted_bytes,
                         human_size(a.wasted_bytes));
        t += std::isfinite(a.wasted_user_percent)
                 ? fmt::format("  user wasted percent: {:.4f} %\n", a.wasted_user_percent * 100)
                 : std::string(
                       "  user wasted percent: inf (no bytes in the layers above the first)\n");
        t += fmt::format("  image size:          {} ({} in user layers)\n",
                         human_size(a.size_bytes), human_size(a.user_size_bytes));
        t += fmt::format("  hidden bytes:        {} ({}) in {} file versions not visible in the "
                         "final image\n",
                         a.hidden_bytes, human_size(a.hidden_bytes), a.hidden_files);
        std::cout << t;
        if (!a.inefficiencies.empty()) {
            std::cout << "\nInefficient files (dive):\n";
            std::vector<std::vector<std::string>> rows{{"COUNT", "WASTED SPACE", "FILE PATH"}};
            for (std::size_t i = 0; i < a.inefficiencies.size() && i < opts.top; ++i) {
                const auto& w = a.inefficiencies[i];
                rows.push_back(
                    {std::to_string(w.count), human_size(w.cumulative), "/" + trie.path(w.node)});
            }
            print_table(rows);
            if (a.inefficiencies.size() > opts.top) {
                std::cout << "(" << a.inefficiencies.size() - opts.top
                          << " more; --top N or --format json)\n";
            }
        }
        std::vector<snapshot::LayerWaste> layers = a.layers;
        std::stable_sort(layers.begin(), layers.end(), [](const auto& x, const auto& y) {
            return x.hidden_bytes > y.hidden_bytes;
        });
        std::cout << "\nLayers by bytes later overwritten or deleted:\n";
        std::vector<std::vector<std::string>> lrows{{"#", "SIZE", "HIDDEN", "FILES", "CREATED BY"}};
        for (const auto& l : layers) {
            lrows.push_back({std::to_string(l.layer + 1), human_size(l.size),
                             human_size(l.hidden_bytes), std::to_string(l.hidden_files),
                             truncate(created_by[l.layer], 60, false)});
        }
        print_table(lrows);
        if (!a.largest.empty()) {
            std::cout << "\nLargest files:\n";
            std::vector<std::vector<std::string>> frows{{"SIZE", "LAYER", "PATH"}};
            for (const auto& f : a.largest) {
                frows.push_back(
                    {human_size(f.size), std::to_string(f.layer + 1), "/" + trie.path(f.node)});
            }
            print_table(frows);
        }
        if (!rules.empty()) {
            std::cout << "\nCI rules:\n";
            for (const auto& r : rules) {
                std::cout << (r.pass ? "  PASS: " : "  FAIL: ") << r.name
                          << (r.pass ? "" : ": " + r.message) << "\n";
            }
        }
    }
    std::cout.flush();
    if (failed > 0) {
        std::string names;
        for (const auto& r : rules) {
            if (!r.pass)
                names += (names.empty() ? "" : "; ") + r.name + ": " + r.message;
        }
        throw Error(fmt::format("analyze --ci: {} of {} rule{} failed: {}", failed, rules.size(),
                                rules.size() == 1 ? "" : "s", names));
    }
}

} // namespace

void register_analyze(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand(
        "analyze", "Wasted space across layers and dive's efficiency score; --ci to gate builds");
    auto image = std::make_shared<std::string>();
    auto opts = std::make_shared<AnalyzeOptions>();
    cmd->add_option("IMAGE", *image, "Image name or ID")->required();
    cmd->add_option("--format", opts->format, "table or json");
    cmd->add_flag("--ci", opts->ci,
                  "Fail (exit 1) when a rule fails; defaults as dive: lowest-efficiency 0.9, "
                  "highest-user-wasted-percent 0.1");
    cmd->add_option("--lowest-efficiency,--lowestEfficiency", opts->lowest_efficiency,
                    "Fail below this efficiency ratio (0..1, or \"disabled\")");
    cmd->add_option("--highest-wasted-bytes,--highestWastedBytes", opts->highest_wasted_bytes,
                    "Fail above this many wasted bytes (e.g. 20MB, or \"disabled\")");
    cmd->add_option("--highest-user-wasted-percent,--highestUserWastedPercent",
                    opts->highest_user_wasted_percent,
                    "Fail above this ratio of wasted bytes to user-layer bytes (0..1)");
    cmd->add_option("--top", opts->top, "How many files to list (default 20)");
    cmd->callback([=, &ctx] { cmd_analyze(ctx, *image, *opts); });
}

} // namespace strata::cli
