// import: a root filesystem tarball (any compression) becomes a one-layer
// image. Entries are read, checked and written again as a deterministic
// layer, so a hostile tarball (names with "..", absolute names) is refused
// before anything is named in the store.
#include "cli/commands.hpp"
#include "cli/commit_changes.hpp"
#include "cli/common.hpp"
#include "cli/images.hpp"
#include "formats/tar.hpp"
#include "util/error.hpp"
#include "util/event_log.hpp"
#include "util/fs.hpp"
#include "util/root.hpp"

#include <iostream>
#include <memory>
#include <set>

namespace strata::cli {

namespace {

struct Options : ImportSettings {
    std::string input;
};

// Validates an entry name: relative, no "..", no empty name.
std::string checked_name(const std::string& input, const std::string& path) {
    if (path.find('\0') != std::string::npos) {
        throw Error(input + ": tar entry with a NUL byte in its name");
    }
    std::string cleaned = clean_path(path);
    if (cleaned == ".." || cleaned.rfind("../", 0) == 0) {
        throw Error(input + ": tar entry \"" + path + "\" points outside the root filesystem");
    }
    return cleaned;
}

} // namespace

formats::Digest import_rootfs(Context& ctx, int fd, const std::string& input,
                              const ImportSettings& o) {
    std::optional<snapshot::Reference> name;
    if (!o.tag.empty()) {
        name = snapshot::Reference::parse(o.tag);
    }
    snapshot::Store store = open_store(ctx);
    formats::TarReader reader(fd, input);
    snapshot::BlobWriter blob = store.new_blob();
    formats::TarWriter::Options wo;
    wo.compression = formats::parse_compression(o.compression);
    formats::TarWriter writer(blob.fd(), wo);
    std::set<std::string> seen_dirs;
    while (auto entry = reader.next()) {
        formats::TarEntry e = *entry;
        e.path = checked_name(input, e.path);
        if (e.path == ".") {
            continue; // the root itself
        }
        if (e.type == formats::EntryType::hardlink) {
            e.linkname = checked_name(input, e.linkname);
        }
        if (e.type == formats::EntryType::file && e.size > 0) {
            // TarReader hands the content to TarWriter chunk by chunk.
            writer.add_stream(e,
                              [&](void* buf, std::size_t size) { return reader.read(buf, size); });
        } else {
            writer.add(e);
        }
    }
    reader.finish();
    formats::LayerDigests digests = writer.finish();
    blob.commit_trusted(digests.blob_digest);

    formats::Descriptor layer = layer_descriptor(digests, wo.compression);
    formats::ImageConfig config = host_image_config(now_rfc3339());
    config.diff_ids = {digests.diff_id};
    apply_commit_changes(config, o.changes);
    std::string comment = o.message;
    if (comment.empty()) {
        comment = "Imported from " + (input == "-" ? std::string("-") : fs::basename(input));
    }
    config.history.push_back(formats::History{config.created, "", "", comment, false});
    formats::Descriptor manifest = store.put_image(config, {layer});
    if (name) {
        store.set_name(*name, manifest);
    } else {
        store.add_untagged(manifest);
    }
    formats::Digest id = store.load(manifest).id();
    events::record_event(store.root(), "image", "import", id.str(), {{"name", id.str()}});
    return id;
}

namespace {

void import_tar(Context& ctx, const ImportSettings& o, const std::string& input) {
    UniqueFd in = input == "-" ? dup_cloexec(0) : fs::open(input, O_RDONLY);
    std::cout << import_rootfs(ctx, in.get(), input, o).str() << "\n";
}

} // namespace

void register_import(CLI::App& app, Context& ctx) {
    auto o = std::make_shared<Options>();
    auto* cmd =
        app.add_subcommand("import", "Make a one-layer image from a root filesystem tarball");
    cmd->add_option("ROOTFS", o->input, "Tarball (plain, gzip or zstd; - for stdin)")->required();
    cmd->add_option("-t,--tag", o->tag, "Name for the image");
    cmd->add_option("-m,--message", o->message, "Comment for the history entry");
    cmd->add_option("--compression", o->compression, "Layer compression: zstd, gzip or none")
        ->capture_default_str();
    cmd->add_option("-c,--change", o->changes,
                    "Apply a Dockerfile instruction to the image (CMD, ENV, ... as docker import)")
        ->allow_extra_args(false);
    cmd->callback([&ctx, o] { import_tar(ctx, *o, o->input); });
}

} // namespace strata::cli
