// Looking inside images and comparing them, without unpacking or mounting:
// history, layers, ls, cat, cp, diff, analyze. Every command streams the
// layer blobs it needs through formats::TarReader into a snapshot::LayerIndex.
//
// IMAGE@N names layer N (1 = the bottom layer). For ls, cat and cp it means
// the tree as it stands after layer N; for diff it means layer N's own
// entries (whiteouts shown as `.wh.` files), unless --merged is given.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/container_fs.hpp"
#include "containers/copy.hpp"
#include "formats/tar.hpp"
#include "snapshot/analyze.hpp"
#include "snapshot/layer_index.hpp"
#include "snapshot/store.hpp"
#include "snapshot/tree_diff.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"
#include "util/root.hpp"
#include "util/tempdir.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <ctime>
#include <fcntl.h>
#include <fmt/format.h>
#include <functional>
#include <iostream>
#include <map>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace strata::cli {

namespace {

using formats::EntryType;
using nlohmann::json;
using snapshot::LayerIndex;
using snapshot::MergedTree;
using snapshot::PathTrie;

// ------------------------------------------------------------------ helpers

struct ImageSpec {
    std::string image;
    std::optional<std::size_t> layer; // 1-based, 0 = empty tree
};

// "busybox@3" names layer 3; "busybox@sha256:..." is a digest reference.
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

// Streams layers [0, count) of an image into an index, checking each layer's
// diff ID against the config.
LayerIndex& index_layers(const snapshot::Store& store, const snapshot::Image& image,
                         LayerIndex& index, std::size_t count) {
    const auto& layers = image.manifest.layers;
    for (std::size_t i = 0; i < count; ++i) {
        const auto& desc = layers[i];
        auto fd = store.open_blob(desc.digest);
        formats::TarReader reader(fd.get(), desc.digest.str());
        index.add_layer(reader, desc.digest.str());
        const auto& got = index.layer(i).digests;
        if (got && i < image.config.diff_ids.size() && got->diff_id != image.config.diff_ids[i]) {
            throw Error(fmt::format("layer {} ({}): its content hashes to diff ID {} but the image "
                                    "config says {}",
                                    i + 1, desc.digest.str(), got->diff_id.str(),
                                    image.config.diff_ids[i].str()));
        }
    }
    return index;
}

std::size_t checked_layer(const ImageSpec& spec, const snapshot::Image& image) {
    auto n = image.manifest.layers.size();
    if (spec.layer && *spec.layer > n) {
        throw UsageError(fmt::format("{} has {} layer{}; there is no layer {}", spec.image, n,
                                     n == 1 ? "" : "s", *spec.layer));
    }
    return spec.layer.value_or(n);
}

// IMAGE or IMAGE@N opened for browsing without unpacking: its layers up to N
// indexed and merged into one tree (what ls, cat and cp read).
struct BrowsedImage {
    ImageSpec spec;
    snapshot::Store store;
    snapshot::Image image;
    std::size_t upto;
    LayerIndex index;
    MergedTree tree; // points into index: a BrowsedImage is never copied or moved

    BrowsedImage(Context& ctx, const std::string& spec_text)
        : spec(parse_image_spec(spec_text)), store(open_store(ctx)), image(store.load(spec.image)),
          upto(checked_layer(spec, image)), tree(index_layers(store, image, index, upto), upto) {}
    BrowsedImage(const BrowsedImage&) = delete;
    BrowsedImage& operator=(const BrowsedImage&) = delete;
};

// History entries paired with the layer each non-empty one created.
struct HistoryRow {
    std::optional<formats::History> history; // nullopt: a layer without history
    std::optional<std::size_t> layer;        // 0-based
};

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

// Tar names need not be UTF-8: invalid bytes print as U+FFFD instead of failing.
void print_json(const json& j) {
    std::cout << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
}

std::string octal(std::uint32_t mode) {
    return fmt::format("{:04o}", mode);
}

std::string time_text(std::int64_t sec) {
    std::time_t t = static_cast<std::time_t>(sec);
    struct tm tm {};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
    return buf;
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

// Reads the bytes of one regular-file record out of its layer blob.
void stream_record(const snapshot::Store& store, const snapshot::Image& image,
                   const LayerIndex& index, std::uint32_t record, int out_fd) {
    const auto& rec = index.record(record);
    const auto& desc = image.manifest.layers.at(rec.layer);
    auto fd = store.open_blob(desc.digest);
    formats::TarReader reader(fd.get(), desc.digest.str());
    for (std::uint32_t i = 0;; ++i) {
        auto e = reader.next();
        if (!e) {
            throw Error(fmt::format("layer {}: entry {} vanished on a second read",
                                    desc.digest.str(), rec.ordinal));
        }
        if (i == rec.ordinal) {
            reader.copy_to(out_fd);
            return;
        }
    }
}

// ------------------------------------------------------------------ history

void cmd_history(Context& ctx, const std::string& image_text, bool no_trunc,
                 const std::string& format) {
    bool go_template = format.find("{{") != std::string::npos; // docker's --format
    if (!go_template) {
        check_format(format);
    }
    auto store = open_store(ctx);
    auto image = store.load(image_text);
    LayerIndex index;
    index_layers(store, image, index, image.manifest.layers.size());
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

// ------------------------------------------------------------------ layers

void cmd_layers(Context& ctx, const std::string& image_text, bool no_trunc,
                const std::string& format) {
    check_format(format);
    auto store = open_store(ctx);
    auto image = store.load(image_text);
    LayerIndex index;
    index_layers(store, image, index, image.manifest.layers.size());
    MergedTree tree(index, index.layer_count());
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

// ------------------------------------------------------------------ ls

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

// ------------------------------------------------------------------ cat

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
    stream_record(b.store, b.image, b.index, *data, STDOUT_FILENO);
}

// ------------------------------------------------------------------ cp

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

// Reads the contents of regular-file records out of their layer blobs, one
// pass over each layer that holds some: records sorted (layer order, then
// stream order), each handed to copy(record, reader) positioned at its data.
void read_contents(BrowsedImage& b, const std::vector<std::uint32_t>& records,
                   const std::function<void(std::uint32_t, formats::TarReader&)>& copy) {
    for (std::size_t i = 0; i < records.size();) {
        auto layer = b.index.record(records[i]).layer;
        const auto& desc = b.image.manifest.layers.at(layer);
        auto fd = b.store.open_blob(desc.digest);
        formats::TarReader reader(fd.get(), desc.digest.str());
        std::uint32_t ordinal = 0;
        while (i < records.size() && b.index.record(records[i]).layer == layer) {
            auto want = b.index.record(records[i]).ordinal;
            std::optional<formats::TarEntry> e;
            while ((e = reader.next()) && ordinal < want) {
                ++ordinal;
            }
            if (!e) {
                throw Error(fmt::format("layer {}: entry {} vanished on a second read",
                                        desc.digest.str(), want));
            }
            ++ordinal;
            copy(records[i], reader);
            ++i;
        }
    }
}

// `strata cp IMAGE:PATH -`: the file or subtree as a tar on stdout, as
// `docker cp CONTAINER:PATH -` writes it: entries named from the copied
// path's base name, with the image's owners, modes, times, xattrs, devices
// and hard links (nothing is created on the host, so no root is needed).
// File contents are read once per layer into a private temporary directory
// of the store, then written in tree order.
void cp_to_tar(BrowsedImage& b, std::uint32_t node) {
    const auto& trie = b.index.trie();
    std::string base = node == PathTrie::kRoot ? "rootfs" : std::string(trie.name(node));
    TempDir staging(b.store.tmp_dir(), "cp-");
    auto staging_fd = fs::open_dir(staging.path());
    auto staged_name = [](std::uint32_t record) { return std::to_string(record); };

    std::vector<std::uint32_t> nodes;
    std::vector<std::uint32_t> to_fill; // data records with content
    b.tree.walk(node, [&](std::uint32_t n) {
        nodes.push_back(n);
        auto type = b.tree.type_of(n);
        if (type == EntryType::file || type == EntryType::hardlink) {
            if (auto data = b.tree.data_record(n); data && b.index.record(*data).size > 0) {
                to_fill.push_back(*data);
            }
        }
    });
    std::sort(to_fill.begin(), to_fill.end());
    to_fill.erase(std::unique(to_fill.begin(), to_fill.end()), to_fill.end());
    // Contents: one pass over each layer that holds some (records are in
    // layer order, then in stream order).
    read_contents(b, to_fill, [&](std::uint32_t record, formats::TarReader& reader) {
        UniqueFd out(::openat(staging_fd.get(), staged_name(record).c_str(),
                              O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
        if (!out) {
            throw_errno("create", fs::join(staging.path(), staged_name(record)));
        }
        reader.copy_to(out.get());
    });

    formats::TarWriter::Options wopts;
    wopts.compression = formats::Compression::none;
    formats::TarWriter writer(STDOUT_FILENO, wopts);
    std::map<std::uint32_t, std::string> first_path; // data record -> tar path
    std::size_t root_len = trie.path(node).size();
    for (auto n : nodes) {
        std::string sub = trie.path(n).substr(root_len);
        if (!sub.empty() && sub[0] == '/')
            sub.erase(0, 1);
        formats::TarEntry e;
        e.path = sub.empty() ? base : base + "/" + sub;
        auto type = b.tree.type_of(n);
        auto rec = b.tree.record_of(n);
        if (!rec) { // a directory only implied by the layers
            e.type = EntryType::dir;
            e.mode = 0755;
            writer.add(e);
            continue;
        }
        auto r = b.index.record(*rec);
        std::optional<std::uint32_t> data;
        if (type == EntryType::file || type == EntryType::hardlink) {
            data = b.tree.data_record(n);
            if (!data) {
                throw Error(fmt::format("{}: a hard link whose target is missing from the image",
                                        "/" + trie.path(n)));
            }
            r = b.index.record(*data); // a hard link's metadata is its target's
        }
        e.type = type == EntryType::hardlink ? EntryType::file : type;
        e.mode = r.mode;
        e.uid = r.uid;
        e.gid = r.gid;
        e.mtime_sec = r.mtime_sec;
        e.mtime_nsec = r.mtime_nsec;
        e.devmajor = r.devmajor;
        e.devminor = r.devminor;
        if (r.xattrs)
            e.xattrs = b.index.xattrs(r.xattrs);
        if (type == EntryType::symlink) {
            e.linkname = b.index.string(r.link);
        }
        if (!data) {
            writer.add(e);
            continue;
        }
        if (auto it = first_path.find(*data); it != first_path.end()) {
            e.type = EntryType::hardlink;
            e.linkname = it->second;
            writer.add(e);
            continue;
        }
        first_path.emplace(*data, e.path);
        e.size = r.size;
        if (r.size == 0) {
            writer.add(e);
            continue;
        }
        auto content = open_in_root(staging_fd.get(), staged_name(*data), O_RDONLY | O_CLOEXEC);
        writer.add(e, content.get());
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
    std::string base = *node == PathTrie::kRoot ? "rootfs" : std::string(trie.name(*node));
    UniqueFd host_root = fs::open("/", O_PATH | O_DIRECTORY);
    containers::CopyTarget target = containers::resolve_copy_target(
        host_root.get(), containers::host_absolute(dest), b.tree.is_dir(*node),
        path.ends_with("/."), base, "", dest);
    containers::TreeWriter writer(target.dir.get(), target.shown, opts.archive);
    std::map<std::uint32_t, std::string> first_copy;            // data record -> rel path
    std::vector<std::pair<std::uint32_t, std::string>> to_fill; // data record, rel
    std::size_t root_len = trie.path(*node).size();
    b.tree.walk(*node, [&](std::uint32_t n) {
        std::string sub = trie.path(n).substr(root_len);
        if (!sub.empty() && sub[0] == '/')
            sub.erase(0, 1);
        formats::TarEntry e;
        e.path = target.name.empty() ? sub : sub.empty() ? target.name : target.name + "/" + sub;
        auto type = b.tree.type_of(n);
        auto rec = b.tree.record_of(n);
        e.type = type;
        if (!rec) { // a directory only implied by the layers
            e.mode = 0755;
            writer.add(e);
            return;
        }
        auto r = b.index.record(*rec);
        std::optional<std::uint32_t> data;
        if (type == EntryType::file || type == EntryType::hardlink) {
            data = b.tree.data_record(n);
            if (data) {
                r = b.index.record(*data); // a hard link's metadata is its target's
            }
            e.type = EntryType::file;
            if (data) {
                if (auto it = first_copy.find(*data); it != first_copy.end()) {
                    e.type = EntryType::hardlink;
                    e.linkname = it->second;
                } else {
                    first_copy.emplace(*data, e.path);
                    if (r.size > 0) {
                        to_fill.emplace_back(*data, e.path);
                    }
                }
            }
        }
        e.mode = r.mode;
        e.uid = r.uid;
        e.gid = r.gid;
        e.mtime_sec = r.mtime_sec;
        e.mtime_nsec = r.mtime_nsec;
        e.devmajor = r.devmajor;
        e.devminor = r.devminor;
        if (type == EntryType::symlink) {
            e.linkname = b.index.string(r.link);
        }
        writer.add(e);
    });

    // Content, one pass over each layer that holds some.
    std::sort(to_fill.begin(), to_fill.end());
    std::vector<std::uint32_t> records;
    std::map<std::uint32_t, std::string> rel_of;
    for (const auto& [record, rel] : to_fill) {
        records.push_back(record);
        rel_of.emplace(record, rel);
    }
    read_contents(b, records, [&](std::uint32_t record, formats::TarReader& reader) {
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

// ------------------------------------------------------------------ diff

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
    LayerIndex index(LayerIndex::Options{true});
    index_layers(store, *image, index, n);
    if (spec.layer && !merged) {
        side.listing = snapshot::listing_of_layer(index, n - 1);
    } else {
        side.listing = snapshot::listing_of(MergedTree(index, n));
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

// ------------------------------------------------------------------ analyze

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
    LayerIndex index;
    index_layers(store, image, index, image.manifest.layers.size());
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

// A subcommand of the form `NAME IMAGE [--no-trunc] [--format table|json]`.
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

} // namespace

void register_inspect_layers(CLI::App& app, Context& ctx) {
    add_image_listing(app, ctx, "history", "Show the history of an image, newest first",
                      "Do not truncate output", cmd_history);
    add_image_listing(app, ctx, "layers",
                      "List an image's layers: digests, sizes, files added/changed/removed",
                      "Do not truncate digests and commands", cmd_layers);
    {
        auto* cmd = app.add_subcommand(
            "ls", "List files of an image (after layer N with IMAGE@N) without unpacking it");
        auto image = std::make_shared<std::string>();
        auto path = std::make_shared<std::string>("/");
        auto opts = std::make_shared<LsOptions>();
        cmd->add_option("IMAGE", *image, "Image, or IMAGE@N for the tree after layer N")
            ->required();
        cmd->add_option("PATH", *path, "Directory or file inside the image (default /)");
        cmd->add_flag("-R,--recursive", opts->recursive,
                      "List subdirectories recursively (full paths)");
        cmd->add_flag("-l,--long", opts->long_format, "Long listing: mode, owner, size, mtime");
        cmd->add_option("--format", opts->format, "table or json");
        cmd->callback([=, &ctx] { cmd_ls(ctx, *image, *path, *opts); });
    }
    {
        auto* cmd = app.add_subcommand("cat", "Print a file of an image without unpacking it");
        auto image = std::make_shared<std::string>();
        auto path = std::make_shared<std::string>();
        cmd->add_option("IMAGE", *image, "Image, or IMAGE@N for the tree after layer N")
            ->required();
        cmd->add_option("PATH", *path, "File inside the image")->required();
        cmd->callback([=, &ctx] { cmd_cat(ctx, *image, *path); });
    }
    {
        auto* cmd = app.add_subcommand(
            "cp", "Copy files between a container and the host (CONTAINER:PATH, - for a tar), or "
                  "out of an image: strata cp IMAGE[@N]:PATH DEST");
        auto src = std::make_shared<std::string>();
        auto dest = std::make_shared<std::string>();
        auto opts = std::make_shared<CpOptions>();
        cmd->add_option("SOURCE", *src, "CONTAINER:PATH, IMAGE[@N]:PATH, a host path or -")
            ->required();
        cmd->add_option("DEST", *dest, "A host path, CONTAINER:PATH or -")->required();
        cmd->add_flag("-L,--follow-link", opts->follow, "Follow a symlink at the source path");
        cmd->add_flag("-a,--archive", opts->archive, "Keep uid/gid (needs root)");
        cmd->callback([=, &ctx] {
            if (!container_cp(ctx, *src, *dest, opts->follow, opts->archive)) {
                cmd_cp(ctx, *src, *dest, *opts);
            }
        });
    }
    {
        auto* cmd = app.add_subcommand(
            "diff",
            "Compare two images, layers (IMAGE@N) or directories; exit 0 when equal, 1 when "
            "different, 2 on trouble (as diff(1))");
        auto a = std::make_shared<std::string>();
        auto b = std::make_shared<std::string>();
        auto semantic = std::make_shared<bool>(false);
        auto merged = std::make_shared<bool>(false);
        auto format = std::make_shared<std::string>("table");
        cmd->add_option("A", *a, "IMAGE, IMAGE@N (layer N's own entries) or a directory")
            ->required();
        cmd->add_option("B", *b, "IMAGE, IMAGE@N or a directory (without B: A is a container, "
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
    {
        auto* cmd = app.add_subcommand(
            "analyze",
            "Wasted space across layers and dive's efficiency score; --ci to gate builds");
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
}

} // namespace strata::cli
