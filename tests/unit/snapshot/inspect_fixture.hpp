// Layers built in memory for the inspect tests (index, analyze, diff).
#pragma once

#include "snapshot/layer_index.hpp"

#include <string>
#include <vector>

namespace strata::test {

inline formats::TarEntry file(std::string path, std::uint64_t size, std::uint32_t mode = 0644) {
    formats::TarEntry e;
    e.path = std::move(path);
    e.type = formats::EntryType::file;
    e.size = size;
    e.mode = mode;
    return e;
}
inline formats::TarEntry dir(std::string path, std::uint32_t mode = 0755) {
    formats::TarEntry e;
    e.path = std::move(path);
    e.type = formats::EntryType::dir;
    e.mode = mode;
    return e;
}
inline formats::TarEntry symlink(std::string path, std::string target) {
    formats::TarEntry e;
    e.path = std::move(path);
    e.type = formats::EntryType::symlink;
    e.linkname = std::move(target);
    e.mode = 0777;
    return e;
}
inline formats::TarEntry hardlink(std::string path, std::string target) {
    formats::TarEntry e;
    e.path = std::move(path);
    e.type = formats::EntryType::hardlink;
    e.linkname = std::move(target);
    return e;
}
inline formats::TarEntry marker(std::string path) { return file(std::move(path), 0); }

// Content hash standing in for a file's bytes: files with equal tags are equal.
inline Sha256::Bytes content(const std::string& tag) {
    Sha256 s;
    s.update(tag);
    return s.finish();
}

struct Entry {
    formats::TarEntry e;
    std::string tag; // content tag for regular files
};

inline void add_layer(snapshot::LayerIndex& idx, const std::string& name,
                      const std::vector<Entry>& entries) {
    idx.begin_layer(name);
    for (const auto& en : entries) {
        std::optional<Sha256::Bytes> h;
        if (en.e.type == formats::EntryType::file) {
            h = content(en.tag.empty() ? en.e.path + std::to_string(en.e.size) : en.tag);
        }
        idx.add_entry(en.e, h);
    }
    idx.end_layer();
}

// The reference image of the tests:
//  L1: a/ a/f(100) a/g(50) d/ d/x(10) d/y(20) h(30)
//  L2: a/f(200) rewritten, a/g deleted, h chmod 0755 only
//  L3: a/f(300) rewritten again, d made opaque with d/z(5), a/hl hard link to a/f
inline snapshot::LayerIndex reference_image(bool hash = true) {
    snapshot::LayerIndex idx(snapshot::LayerIndex::Options{hash});
    add_layer(idx, "L1",
              {{dir("a")}, {file("a/f", 100), "f1"}, {file("a/g", 50), "g"}, {dir("d")},
               {file("d/x", 10), "x"}, {file("d/y", 20), "y"}, {file("h", 30), "h"}});
    add_layer(idx, "L2",
              {{file("a/f", 200), "f2"}, {marker("a/.wh.g")}, {file("h", 30, 0755), "h"}});
    add_layer(idx, "L3",
              {{file("a/f", 300), "f3"}, {marker("d/.wh..wh..opq")}, {file("d/z", 5), "z"},
               {hardlink("a/hl", "a/f")}});
    return idx;
}

// "path type" lines of a merged tree, for comparison.
inline std::string dump(const snapshot::MergedTree& t) {
    std::string out;
    const auto& trie = t.index().trie();
    t.walk(snapshot::PathTrie::k_root, [&](std::uint32_t n) {
        if (n == snapshot::PathTrie::k_root)
            return;
        out += trie.path(n);
        out += t.is_dir(n) ? "/" : "";
        out += "\n";
    });
    return out;
}

} // namespace strata::test
