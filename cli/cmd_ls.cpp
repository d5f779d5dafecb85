// strata ls IMAGE[@N] [PATH]: the files of an image (after layer N) without
// unpacking it; -l long, -R recursive, --format json.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/inspect_image.hpp"
#include "util/error.hpp"

#include <ctime>
#include <fmt/format.h>
#include <iostream>
#include <memory>

namespace strata::cli {

namespace {

using formats::EntryType;
using nlohmann::json;

std::string time_text(std::int64_t sec) {
    std::time_t t = static_cast<std::time_t>(sec);
    struct tm tm {};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
    return buf;
}

struct LsOptions {
    bool recursive = false;
    bool long_format = false;
    std::string format = "table";
};

void cmd_ls(Context& ctx, const std::string& spec_text, const std::string& path,
            const LsOptions& opts) {
    check_format(opts.format);
    BrowsedImage b(ctx, spec_text);
    const auto& trie = b.index.trie();

    bool follow = !opts.long_format || path.ends_with('/');
    auto node = b.tree.resolve(path, follow);
    if (!node) {
        throw Error(fmt::format("{}: no such file or directory in {}{}", path, b.spec.image,
                                b.spec.layer ? fmt::format(" after layer {}", *b.spec.layer) : ""));
    }
    std::vector<std::uint32_t> nodes;
    bool list_dir = b.tree.is_dir(*node);
    if (!list_dir) {
        nodes.push_back(*node);
    } else if (opts.recursive) {
        b.tree.walk(*node, [&](std::uint32_t n) {
            if (n != *node)
                nodes.push_back(n);
        });
    } else {
        nodes = b.tree.children(*node);
    }

    auto meta_of = [&](std::uint32_t n) {
        snapshot::FileMeta m;
        auto r = b.tree.record_of(n);
        if (!r) {
            m.type = EntryType::dir;
            m.mode = 0755;
            return m;
        }
        const auto& rec = b.index.record(*r);
        m.type = rec.type;
        m.mode = rec.mode;
        m.uid = rec.uid;
        m.gid = rec.gid;
        m.mtime_sec = rec.mtime_sec;
        m.size = rec.size;
        if (rec.type == EntryType::symlink || rec.type == EntryType::hardlink) {
            m.link = b.index.string(rec.link);
        }
        if (rec.type == EntryType::hardlink) {
            if (auto d = b.tree.data_record(n))
                m.size = b.index.record(*d).size;
        }
        m.devmajor = rec.devmajor;
        m.devminor = rec.devminor;
        if (rec.xattrs)
            m.xattrs = b.index.xattrs(rec.xattrs);
        m.layer = rec.layer;
        return m;
    };

    if (opts.format == "json") {
        json out = json::array();
        for (auto n : nodes) {
            auto j = meta_json(meta_of(n));
            j["path"] = "/" + trie.path(n);
            out.push_back(std::move(j));
        }
        print_json(out);
        return;
    }
    std::string text;
    for (auto n : nodes) {
        std::string name =
            (!list_dir || opts.recursive) ? "/" + trie.path(n) : std::string(trie.name(n));
        if (!opts.long_format) {
            text += name;
            text += '\n';
            continue;
        }
        auto m = meta_of(n);
        std::string size = (m.type == EntryType::chardev || m.type == EntryType::blockdev)
                               ? fmt::format("{},{}", m.devmajor, m.devminor)
                               : std::to_string(m.size);
        text += fmt::format("{} {:>5}/{:<5} {:>10} {} {}", snapshot::mode_string(m.type, m.mode),
                            m.uid, m.gid, size, time_text(m.mtime_sec), name);
        if (m.type == EntryType::symlink) {
            text += " -> " + m.link;
        } else if (m.type == EntryType::hardlink) {
            text += " link to /" + m.link;
        }
        text += '\n';
        if (text.size() > (1 << 16)) {
            std::cout << text;
            text.clear();
        }
    }
    std::cout << text;
}

} // namespace

void register_ls(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand(
        "ls", "List files of an image (after layer N with IMAGE@N) without unpacking it");
    auto image = std::make_shared<std::string>();
    auto path = std::make_shared<std::string>("/");
    auto opts = std::make_shared<LsOptions>();
    cmd->add_option("IMAGE", *image, "Image, or IMAGE@N for the tree after layer N")->required();
    cmd->add_option("PATH", *path, "Directory or file inside the image (default /)");
    cmd->add_flag("-R,--recursive", opts->recursive,
                  "List subdirectories recursively (full paths)");
    cmd->add_flag("-l,--long", opts->long_format, "Long listing: mode, owner, size, mtime");
    cmd->add_option("--format", opts->format, "table or json");
    cmd->callback([=, &ctx] { cmd_ls(ctx, *image, *path, *opts); });
}

} // namespace strata::cli
