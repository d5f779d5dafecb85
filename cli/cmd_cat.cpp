// strata cat IMAGE[@N] PATH: a file's bytes out of its layer blob, without
// unpacking the image.
#include "cli/commands.hpp"
#include "cli/inspect_image.hpp"
#include "snapshot/image_browse.hpp"
#include "util/error.hpp"

#include <fmt/format.h>
#include <iostream>
#include <memory>
#include <unistd.h>

namespace strata::cli {

namespace {

using formats::EntryType;

void cmd_cat(Context& ctx, const std::string& spec_text, const std::string& path) {
    BrowsedImage b(ctx, spec_text);
    auto node = b.tree.resolve(path, true);
    if (!node) {
        throw Error(fmt::format("{}: no such file in {}", path, spec_text));
    }
    auto type = b.tree.type_of(*node);
    if (type == EntryType::dir) {
        throw Error(fmt::format("{}: is a directory in {}", path, spec_text));
    }
    if (type != EntryType::file && type != EntryType::hardlink) {
        throw Error(
            fmt::format("{}: is a {}, not a regular file", path, snapshot::type_name(type)));
    }
    auto data = b.tree.data_record(*node);
    if (!data) {
        throw Error(fmt::format("{}: a hard link whose target is missing from the image", path));
    }
    std::cout.flush();
    snapshot::read_record_contents(
        b.store, b.image, b.index, {*data},
        [](std::uint32_t, formats::TarReader& reader) { reader.copy_to(STDOUT_FILENO); });
}

} // namespace

void register_cat(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand("cat", "Print a file of an image without unpacking it");
    auto image = std::make_shared<std::string>();
    auto path = std::make_shared<std::string>();
    cmd->add_option("IMAGE", *image, "Image, or IMAGE@N for the tree after layer N")->required();
    cmd->add_option("PATH", *path, "File inside the image")->required();
    cmd->callback([=, &ctx] { cmd_cat(ctx, *image, *path); });
}

} // namespace strata::cli
