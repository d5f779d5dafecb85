#include "snapshot/image_browse.hpp"

#include "util/error.hpp"

#include <fmt/format.h>
#include <map>

namespace strata::snapshot {

using formats::EntryType;

LayerIndex& index_image_layers(const Store& store, const Image& image, LayerIndex& index,
                               std::size_t count) {
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

void read_record_contents(const Store& store, const Image& image, const LayerIndex& index,
                          const std::vector<std::uint32_t>& records,
                          const std::function<void(std::uint32_t, formats::TarReader&)>& copy) {
    for (std::size_t i = 0; i < records.size();) {
        auto layer = index.record(records[i]).layer;
        const auto& desc = image.manifest.layers.at(layer);
        auto fd = store.open_blob(desc.digest);
        formats::TarReader reader(fd.get(), desc.digest.str());
        std::uint32_t ordinal = 0;
        while (i < records.size() && index.record(records[i]).layer == layer) {
            auto want = index.record(records[i]).ordinal;
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

std::vector<CopyItem> plan_tree_copy(const MergedTree& tree, std::uint32_t node,
                                     const std::string& name, bool refuse_dangling_links) {
    const LayerIndex& index = tree.index();
    const auto& trie = index.trie();
    std::vector<CopyItem> items;
    std::map<std::uint32_t, std::string> first_copy; // data record -> entry path
    std::size_t root_len = trie.path(node).size();
    tree.walk(node, [&](std::uint32_t n) {
        std::string sub = trie.path(n).substr(root_len);
        if (!sub.empty() && sub[0] == '/') {
            sub.erase(0, 1);
        }
        CopyItem item;
        formats::TarEntry& e = item.entry;
        e.path = name.empty() ? sub : sub.empty() ? name : name + "/" + sub;
        auto type = tree.type_of(n);
        auto rec = tree.record_of(n);
        e.type = type;
        if (!rec) { // a directory only implied by the layers
            e.mode = 0755;
            items.push_back(std::move(item));
            return;
        }
        auto r = index.record(*rec);
        if (type == EntryType::file || type == EntryType::hardlink) {
            auto data = tree.data_record(n);
            if (!data && refuse_dangling_links) {
                throw Error(fmt::format("{}: a hard link whose target is missing from the image",
                                        "/" + trie.path(n)));
            }
            e.type = EntryType::file;
            if (data) {
                r = index.record(*data); // a hard link's metadata is its target's
                if (auto it = first_copy.find(*data); it != first_copy.end()) {
                    e.type = EntryType::hardlink;
                    e.linkname = it->second;
                } else {
                    first_copy.emplace(*data, e.path);
                    e.size = r.size;
                    if (r.size > 0) {
                        item.content = *data;
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
        if (r.xattrs) {
            e.xattrs = index.xattrs(r.xattrs);
        }
        if (type == EntryType::symlink) {
            e.linkname = index.string(r.link);
        }
        items.push_back(std::move(item));
    });
    return items;
}

} // namespace strata::snapshot
