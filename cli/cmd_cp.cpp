// strata cp: copies between a container and the host (cli/container_fs.hpp),
// or out of an image without unpacking it: strata cp IMAGE[@N]:PATH DEST|-.
#include "cli/commands.hpp"
#include "cli/container_fs.hpp"
#include "cli/inspect_image.hpp"
#include "containers/copy.hpp"
#include "formats/tar.hpp"
#include "snapshot/image_browse.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"
#include "util/root.hpp"
#include "util/tempdir.hpp"

#include <algorithm>
#include <fcntl.h>
#include <fmt/format.h>
#include <iostream>
#include <map>
#include <memory>
#include <unistd.h>

namespace strata::cli {

namespace {

using formats::EntryType;
using snapshot::PathTrie;

struct CpOptions {
    bool follow = false;  // -L: follow a symlink at the source path
    bool archive = false; // -a: keep uid/gid (needs root)
};

// Splits "IMAGE[@N]:PATH" at the first ":/" (image names may hold ':' for a
// tag or a registry port), else at the last ':'.
std::pair<std::string, std::string> split_cp_source(const std::string& text) {
    auto pos = text.find(":/");
    if (pos == std::string::npos) {
        pos = text.rfind(':');
    }
    if (pos == std::string::npos || pos == 0 || pos + 1 == text.size()) {
        throw UsageError("the source must be IMAGE[@N]:PATH, got \"" + text + "\"");
    }
    return {text.substr(0, pos), text.substr(pos + 1)};
}

// `strata cp IMAGE:PATH -`: the file or subtree as a tar on stdout, as
// `docker cp CONTAINER:PATH -` writes it: entries named from the copied
// path's base name, with the image's owners, modes, times, xattrs, devices
// and hard links (nothing is created on the host, so no root is needed).
// File contents are read once per layer into a private temporary directory
// of the store, then written in tree order.
void cp_to_tar(BrowsedImage& b, std::uint32_t node) {
    const auto& trie = b.index.trie();
    std::string base = node == PathTrie::k_root ? "rootfs" : std::string(trie.name(node));
    std::vector<snapshot::CopyItem> items = snapshot::plan_tree_copy(b.tree, node, base, true);
    TempDir staging(b.store.tmp_dir(), "cp-");
    auto staging_fd = fs::open_dir(staging.path());
    auto staged_name = [](std::uint32_t record) { return std::to_string(record); };
    std::vector<std::uint32_t> records;
    for (const auto& item : items) {
        if (item.content) {
            records.push_back(*item.content);
        }
    }
    std::sort(records.begin(), records.end());
    snapshot::read_record_contents(
        b.store, b.image, b.index, records, [&](std::uint32_t record, formats::TarReader& reader) {
            UniqueFd out(::openat(staging_fd.get(), staged_name(record).c_str(),
                                  O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
            if (!out) {
                throw_errno("create", fs::join(staging.path(), staged_name(record)));
            }
            reader.copy_to(out.get());
        });

    formats::TarWriter::Options wopts;
    wopts.compression = formats::Compression::none;
    wopts.out_name = "stdout";
    formats::TarWriter writer(STDOUT_FILENO, wopts);
    for (const auto& item : items) {
        if (!item.content) {
            writer.add(item.entry);
            continue;
        }
        auto content =
            open_in_root(staging_fd.get(), staged_name(*item.content), O_RDONLY | O_CLOEXEC);
        writer.add(item.entry, content.get());
    }
    writer.finish();
}

void cmd_cp(Context& ctx, const std::string& source, const std::string& dest,
            const CpOptions& opts) {
    auto [spec_text, path] = split_cp_source(source);
    BrowsedImage b(ctx, spec_text);
    const auto& trie = b.index.trie();
    auto node = b.tree.resolve(path, opts.follow);
    if (!node) {
        throw Error(fmt::format("{}: no such file or directory in {}", path, spec_text));
    }
    if (dest == "-") {
        cp_to_tar(b, *node);
        return;
    }

    // Where it goes: docker cp's rules (containers/copy.hpp); every entry is
    // made inside the target directory, so that a symlink from the image or
    // already there cannot steer a write out of it. Files sharing content
    // become hard links of the first copy.
    std::string base = *node == PathTrie::k_root ? "rootfs" : std::string(trie.name(*node));
    UniqueFd host_root = fs::open("/", O_PATH | O_DIRECTORY);
    containers::CopyTarget target =
        containers::resolve_copy_target(host_root.get(), containers::host_absolute(dest),
                                        b.tree.is_dir(*node), path.ends_with("/."), base, "", dest);
    containers::TreeWriter writer(target.dir.get(), target.shown, opts.archive);
    std::map<std::uint32_t, std::string> rel_of; // data record -> rel path
    for (auto& item : snapshot::plan_tree_copy(b.tree, *node, target.name, false)) {
        writer.add(item.entry);
        if (item.content) {
            rel_of.emplace(*item.content, item.entry.path);
        }
    }
    // Content, one pass over each layer that holds some.
    std::vector<std::uint32_t> records;
    for (const auto& entry : rel_of) {
        records.push_back(entry.first);
    }
    snapshot::read_record_contents(b.store, b.image, b.index, records,
                                   [&](std::uint32_t record, formats::TarReader& reader) {
                                       auto out = writer.open_file(rel_of.at(record));
                                       reader.copy_to(out.get());
                                   });
    // Modes, owners and times, deepest first.
    writer.finish();
    if (auto skipped = writer.stats().devices_skipped; skipped > 0) {
        std::cerr << "strata: warning: skipped " << skipped << " device node"
                  << (skipped == 1 ? "" : "s") << " (needs root)\n";
    }
}

} // namespace

void register_cp(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand(
        "cp", "Copy files between a container and the host (CONTAINER:PATH, - for a tar), or "
              "out of an image: strata cp IMAGE[@N]:PATH DEST");
    auto src = std::make_shared<std::string>();
    auto dest = std::make_shared<std::string>();
    auto opts = std::make_shared<CpOptions>();
    cmd->add_option("SOURCE", *src, "CONTAINER:PATH, IMAGE[@N]:PATH, a host path or -")->required();
    cmd->add_option("DEST", *dest, "A host path, CONTAINER:PATH or -")->required();
    cmd->add_flag("-L,--follow-link", opts->follow, "Follow a symlink at the source path");
    cmd->add_flag("-a,--archive", opts->archive, "Keep uid/gid (needs root)");
    cmd->callback([=, &ctx] {
        if (!container_cp(ctx, *src, *dest, opts->follow, opts->archive)) {
            cmd_cp(ctx, *src, *dest, *opts);
        }
    });
}

} // namespace strata::cli
