// strata history IMAGE: the image's history, newest first, as docker history
// (its --format templates too), with the size of the layer each entry made.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/inspect_image.hpp"
#include "snapshot/image_browse.hpp"

#include <algorithm>
#include <iostream>

namespace strata::cli {

namespace {

using nlohmann::json;

void cmd_history(Context& ctx, const std::string& image_text, bool no_trunc,
                 const std::string& format) {
    bool go_template = format.find("{{") != std::string::npos; // docker's --format
    if (!go_template) {
        check_format(format);
    }
    auto store = open_store(ctx);
    auto image = store.load(image_text);
    snapshot::LayerIndex index;
    snapshot::index_image_layers(store, image, index, image.manifest.layers.size());
    auto rows = history_rows(image);
    std::reverse(rows.begin(), rows.end()); // newest first, as docker history
    if (go_template) {
        std::vector<TemplateValue> values;
        for (std::size_t i = 0; i < rows.size(); ++i) {
            const auto& r = rows[i];
            values.push_back(docker_history_row(
                i == 0 ? image.id().str() : "", no_trunc, r.history ? r.history->created : "",
                r.history ? r.history->created_by : "",
                r.layer ? index.layer(*r.layer).content_bytes : 0,
                r.history ? r.history->comment : "",
                r.layer ? image.manifest.layers[*r.layer].digest.str() : "<empty>"));
        }
        std::cout << format_rows(format, docker_history_format(), values);
        return;
    }
    if (format == "json") {
        json out = json::array();
        for (const auto& r : rows) {
            json j;
            j["created"] = r.history ? r.history->created : "";
            j["created_by"] = r.history ? r.history->created_by : "";
            j["comment"] = r.history ? r.history->comment : "";
            j["empty_layer"] = !r.layer.has_value();
            j["size"] = r.layer ? index.layer(*r.layer).content_bytes : 0;
            j["layer"] = r.layer ? image.manifest.layers[*r.layer].digest.str() : "";
            j["diff_id"] = r.layer && *r.layer < image.config.diff_ids.size()
                               ? image.config.diff_ids[*r.layer].str()
                               : "";
            out.push_back(std::move(j));
        }
        print_json(out);
        return;
    }
    std::vector<std::vector<std::string>> table{
        {"LAYER", "CREATED", "CREATED BY", "SIZE", "COMMENT"}};
    for (const auto& r : rows) {
        std::string layer = "<empty>";
        if (r.layer) {
            const auto& d = image.manifest.layers[*r.layer].digest;
            layer = no_trunc ? d.str() : d.short_id();
        }
        std::string created = r.history ? human_age(r.history->created) : "<missing>";
        std::string by = r.history ? truncate(r.history->created_by, 45, no_trunc) : "<missing>";
        std::string size = r.layer ? human_size(index.layer(*r.layer).content_bytes) : "0B";
        std::string comment = r.history ? truncate(r.history->comment, 45, no_trunc) : "";
        table.push_back({layer, created, by, size, comment});
    }
    print_table(table);
}

} // namespace

void register_history(CLI::App& app, Context& ctx) {
    add_image_listing(app, ctx, "history", "Show the history of an image, newest first",
                      "Do not truncate output", cmd_history);
}

} // namespace strata::cli
