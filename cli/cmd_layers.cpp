// strata layers IMAGE: each layer's digests, sizes and the files it added,
// changed and removed.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/inspect_image.hpp"
#include "formats/compression.hpp"
#include "snapshot/image_browse.hpp"

#include <iostream>

namespace strata::cli {

namespace {

using nlohmann::json;

void cmd_layers(Context& ctx, const std::string& image_text, bool no_trunc,
                const std::string& format) {
    check_format(format);
    auto store = open_store(ctx);
    auto image = store.load(image_text);
    snapshot::LayerIndex index;
    snapshot::index_image_layers(store, image, index, image.manifest.layers.size());
    snapshot::MergedTree tree(index, index.layer_count());
    auto created_by = created_by_per_layer(image);
    json out = json::array();
    std::vector<std::vector<std::string>> table{{"#", "DIGEST", "DIFF ID", "COMPRESSED", "SIZE",
                                                 "ADDED", "CHANGED", "REMOVED", "CREATED BY"}};
    for (std::size_t i = 0; i < index.layer_count(); ++i) {
        const auto& desc = image.manifest.layers[i];
        const auto& meta = index.layer(i);
        const auto& ch = tree.changes()[i];
        std::string diff_id = meta.digests ? meta.digests->diff_id.str() : "";
        std::uint64_t usize = meta.digests ? meta.digests->diff_size : 0;
        if (format == "json") {
            json j;
            j["index"] = i + 1;
            j["digest"] = desc.digest.str();
            j["media_type"] = desc.media_type;
            j["diff_id"] = diff_id;
            j["compression"] = std::string(formats::to_string(meta.compression));
            j["compressed_size"] = desc.size;
            j["uncompressed_size"] = usize;
            j["content_size"] = meta.content_bytes;
            j["entries"] = meta.end - meta.first;
            j["added"] = ch.added;
            j["changed"] = ch.modified;
            j["removed"] = ch.removed;
            j["created_by"] = created_by[i];
            out.push_back(std::move(j));
        } else {
            auto short_of = [&](const std::string& d) {
                return no_trunc || d.size() < 19 ? d : d.substr(7, 12);
            };
            table.push_back({std::to_string(i + 1), short_of(desc.digest.str()), short_of(diff_id),
                             human_size(static_cast<std::uint64_t>(desc.size)), human_size(usize),
                             std::to_string(ch.added), std::to_string(ch.modified),
                             std::to_string(ch.removed), truncate(created_by[i], 45, no_trunc)});
        }
    }
    if (format == "json") {
        print_json(out);
    } else {
        print_table(table);
    }
}

} // namespace

void register_layers(CLI::App& app, Context& ctx) {
    add_image_listing(app, ctx, "layers",
                      "List an image's layers: digests, sizes, files added/changed/removed",
                      "Do not truncate digests and commands", cmd_layers);
}

} // namespace strata::cli
