// strata diff A B: two images, layers (IMAGE@N) or directories compared
// entry by entry (and their configs); strata diff CONTAINER: docker diff.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/container_fs.hpp"
#include "cli/inspect_image.hpp"
#include "snapshot/image_browse.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <fmt/format.h>
#include <iostream>
#include <memory>

namespace strata::cli {

namespace {

using formats::EntryType;
using nlohmann::json;

struct DiffSide {
    std::string label;
    snapshot::TreeListing listing;
    std::optional<snapshot::Image> image; // whole images only: the config is compared
};

bool looks_like_path(const std::string& s) {
    return s == "." || s == ".." || s.starts_with('/') || s.starts_with("./") ||
           s.starts_with("../");
}

DiffSide load_side(const snapshot::Store& store, const std::string& text, bool merged) {
    DiffSide side;
    side.label = text;
    if (looks_like_path(text)) {
        if (!fs::is_dir(text)) {
            throw Error(text + ": not a directory");
        }
        side.listing = snapshot::listing_of_directory(text);
        return side;
    }
    auto spec = parse_image_spec(text);
    std::optional<snapshot::Image> image;
    try {
        image = store.load(spec.image);
    } catch (const Error&) {
        if (!spec.layer && fs::is_dir(text)) {
            side.listing = snapshot::listing_of_directory(text);
            return side;
        }
        throw;
    }
    auto n = checked_layer(spec, *image);
    if (spec.layer && *spec.layer == 0 && !merged) {
        throw UsageError(text +
                         ": layers are numbered from 1 (use --merged for the empty tree @0)");
    }
    snapshot::LayerIndex index(snapshot::LayerIndex::Options{true});
    snapshot::index_image_layers(store, *image, index, n);
    if (spec.layer && !merged) {
        side.listing = snapshot::listing_of_layer(index, n - 1);
    } else {
        side.listing = snapshot::listing_of(snapshot::MergedTree(index, n));
    }
    if (!spec.layer) {
        side.image = std::move(image);
    }
    return side;
}

std::string change_detail(const snapshot::FileChange& c) {
    std::vector<std::string> parts;
    const auto& a = *c.a;
    const auto& b = *c.b;
    for (const auto& w : c.what) {
        if (w == "type") {
            parts.push_back(fmt::format("type ({} -> {})", snapshot::type_name(a.type),
                                        snapshot::type_name(b.type)));
        } else if (w == "content") {
            parts.push_back(a.size == b.size ? fmt::format("content ({})", human_size(b.size))
                                             : fmt::format("content ({} -> {})", human_size(a.size),
                                                           human_size(b.size)));
        } else if (w == "mode") {
            parts.push_back(fmt::format("mode ({} -> {})", octal(a.mode), octal(b.mode)));
        } else if (w == "owner") {
            parts.push_back(fmt::format("owner ({}:{} -> {}:{})", a.uid, a.gid, b.uid, b.gid));
        } else if (w == "symlink" || w == "link") {
            parts.push_back(fmt::format("{} ({} -> {})", w, a.link, b.link));
        } else if (w == "device") {
            parts.push_back(fmt::format("device ({}:{} -> {}:{})", a.devmajor, a.devminor,
                                        b.devmajor, b.devminor));
        } else if (w == "mtime") {
            parts.push_back(
                fmt::format("mtime ({} -> {})", rfc3339(a.mtime_sec), rfc3339(b.mtime_sec)));
        } else if (w == "xattrs") {
            std::vector<std::string> keys;
            for (const auto& [k, v] : a.xattrs) {
                auto it = b.xattrs.find(k);
                if (it == b.xattrs.end() || it->second != v)
                    keys.push_back(k);
            }
            for (const auto& [k, v] : b.xattrs) {
                if (!a.xattrs.count(k))
                    keys.push_back(k);
            }
            std::string s = "xattrs (";
            for (std::size_t i = 0; i < keys.size(); ++i)
                s += (i ? ", " : "") + keys[i];
            parts.push_back(s + ")");
        } else {
            parts.push_back(w);
        }
    }
    std::string out;
    for (std::size_t i = 0; i < parts.size(); ++i)
        out += (i ? ", " : "") + parts[i];
    return out;
}

std::string quoted(const std::optional<std::string>& v) {
    return v ? json(*v).dump() : "(absent)";
}

int run_diff(Context& ctx, const std::string& a_text, const std::string& b_text, bool semantic,
             bool merged, const std::string& format) {
    check_format(format);
    auto store = open_store(ctx);
    auto a = load_side(store, a_text, merged);
    auto b = load_side(store, b_text, merged);
    snapshot::DiffOptions opts{semantic};
    auto files = snapshot::diff_listings(a.listing, b.listing, opts);
    std::vector<snapshot::ConfigChange> config;
    if (a.image && b.image) {
        config = snapshot::diff_configs(a.image->config, b.image->config, opts);
    }
    bool equal = files.empty() && config.empty();
    if (format == "json") {
        json out;
        out["a"] = a_text;
        out["b"] = b_text;
        out["semantic"] = semantic;
        out["equal"] = equal;
        out["files"] = json::array();
        for (const auto& c : files) {
            json j;
            j["path"] = "/" + c.path;
            j["change"] = c.change == snapshot::ChangeType::added     ? "added"
                          : c.change == snapshot::ChangeType::removed ? "removed"
                                                                      : "modified";
            if (!c.what.empty())
                j["what"] = c.what;
            if (c.a)
                j["a"] = meta_json(*c.a);
            if (c.b)
                j["b"] = meta_json(*c.b);
            out["files"].push_back(std::move(j));
        }
        out["config"] = json::array();
        for (const auto& c : config) {
            json j;
            j["field"] = c.field;
            j["a"] = c.a ? json(*c.a) : json(nullptr);
            j["b"] = c.b ? json(*c.b) : json(nullptr);
            out["config"].push_back(std::move(j));
        }
        print_json(out);
    } else {
        std::string text;
        std::uint64_t added = 0, removed = 0, modified = 0;
        for (const auto& c : files) {
            switch (c.change) {
            case snapshot::ChangeType::added:
                ++added;
                text += fmt::format("A /{}", c.path);
                if (c.b->type == EntryType::file)
                    text += fmt::format(" ({})", human_size(c.b->size));
                break;
            case snapshot::ChangeType::removed:
                ++removed;
                text += fmt::format("D /{}", c.path);
                if (c.a->type == EntryType::file)
                    text += fmt::format(" ({})", human_size(c.a->size));
                break;
            case snapshot::ChangeType::modified:
                ++modified;
                text += fmt::format("M /{}: {}", c.path, change_detail(c));
                break;
            }
            text += '\n';
        }
        for (const auto& c : config) {
            text += fmt::format("C {}: {} -> {}\n", c.field, quoted(c.a), quoted(c.b));
        }
        if (!equal) {
            text +=
                fmt::format("{} added, {} removed, {} modified, {} config difference{}\n", added,
                            removed, modified, config.size(), config.size() == 1 ? "" : "s");
        }
        std::cout << text;
    }
    return equal ? 0 : 1;
}

} // namespace

void register_diff(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand(
        "diff", "Compare two images, layers (IMAGE@N) or directories; exit 0 when equal, 1 when "
                "different, 2 on trouble (as diff(1))");
    auto a = std::make_shared<std::string>();
    auto b = std::make_shared<std::string>();
    auto semantic = std::make_shared<bool>(false);
    auto merged = std::make_shared<bool>(false);
    auto format = std::make_shared<std::string>("table");
    cmd->add_option("A", *a, "IMAGE, IMAGE@N (layer N's own entries) or a directory")->required();
    cmd->add_option("B", *b,
                    "IMAGE, IMAGE@N or a directory (without B: A is a container, "
                    "its changes as docker diff lists them)");
    cmd->add_flag("--semantic", *semantic,
                  "Ignore timestamps, history and layer digests (tar order), as diffoci");
    cmd->add_flag("--merged", *merged, "IMAGE@N means the whole tree after layer N");
    cmd->add_option("--format", *format, "table or json");
    cmd->callback([=, &ctx] {
        if (b->empty()) {
            container_diff(ctx, *a);
            return;
        }
        // diff(1) exits 2 on trouble; 1 means "different".
        try {
            ctx.exit_code = run_diff(ctx, *a, *b, *semantic, *merged, *format);
        } catch (const std::exception& e) {
            std::cout.flush();
            std::cerr << "strata: error: " << e.what() << "\n";
            ctx.exit_code = 2;
        }
    });
}

} // namespace strata::cli
