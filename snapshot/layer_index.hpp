// An in-memory index of an image's layers, built by streaming each layer blob
// once (no unpacking): every tar entry of every layer becomes a compact
// record, and paths are interned in a trie (one node per distinct path, one
// interned string per distinct name), so that 100,000 files cost a few tens
// of bytes each. From the index, MergedTree replays the layers up to any
// layer N with OCI whiteout semantics and answers "what is at PATH after
// layer N, and which layer entry holds its bytes".
//
// Whiteout semantics (OCI image-spec layer.md): `.wh.NAME` deletes NAME (and
// its subtree) from the layers below; `.wh..wh..opq` hides every entry of its
// directory that came from the layers below. Whiteouts apply only to lower
// layers, so each layer is replayed in two passes: deletions first, then the
// entries in tar order. Other `.wh..wh.*` names (AUFS metadata such as
// `.wh..wh.plnk`) are ignored. An entry whose parent directory does not exist
// gets an implicit parent (mode 0755, 0:0), as tar extraction does. A
// non-directory replacing a directory removes the directory's subtree.
#pragma once

#include "formats/tar.hpp"
#include "util/sha256.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace strata::snapshot {

// Path components in a trie: one node per distinct path, names stored back to
// back in one string, children found through one open-addressing table keyed
// by (parent, name). About 30 bytes per path plus its name. Node 0 is the
// root ("" / "/").
class PathTrie {
public:
    static constexpr std::uint32_t k_root = 0;
    static constexpr std::uint32_t k_none = UINT32_MAX;

    PathTrie();
    // The child called name of parent, created when missing.
    std::uint32_t child(std::uint32_t parent, std::string_view name);
    std::optional<std::uint32_t> find_child(std::uint32_t parent, std::string_view name) const;
    // A clean relative path ("a/b/c"; "" is the root); created when missing.
    std::uint32_t intern_path(std::string_view clean_path);
    std::optional<std::uint32_t> find_path(std::string_view clean_path) const;

    std::size_t size() const noexcept { return m_nodes.size(); }
    std::uint32_t parent(std::uint32_t n) const { return m_nodes[n].parent; }
    std::string_view name(std::uint32_t n) const {
        return std::string_view(m_names).substr(m_nodes[n].name_off, m_nodes[n].name_len);
    }
    // "a/b/c" without a leading slash; "" for the root.
    std::string path(std::uint32_t n) const;
    // Children in creation order (callers sort by name when it matters).
    template <typename F> void for_each_child(std::uint32_t n, F&& f) const {
        for (auto c = m_nodes[n].first_child; c != k_none; c = m_nodes[c].next_sibling) {
            f(c);
        }
    }
    std::vector<std::uint32_t> sorted_children(std::uint32_t n) const;
    std::size_t memory_bytes() const;

private:
    struct Node {
        std::uint32_t parent;
        std::uint32_t name_off; // into m_names
        std::uint32_t name_len;
        std::uint32_t first_child = k_none;
        std::uint32_t next_sibling = k_none;
    };
    static std::size_t hash(std::uint32_t parent, std::string_view name) {
        return std::hash<std::string_view>{}(name) ^ (std::size_t(parent) * 0x9e3779b97f4a7c15ULL);
    }
    // The slot holding (parent, name), or the empty slot where it would go.
    std::size_t find_slot(std::uint32_t parent, std::string_view name) const;
    void grow();

    std::vector<Node> m_nodes;
    std::string m_names; // every name, back to back
    // Open addressing, linear probing: node ids (k_none = empty), at most half full.
    std::vector<std::uint32_t> m_slots;
};

enum class RecordKind : std::uint8_t {
    entry,    // a file, directory, link, device or fifo
    whiteout, // `.wh.NAME`: node is NAME, the path it deletes
    opaque,   // `.wh..wh..opq`: node is the directory made opaque
};

// One tar entry of one layer.
struct Record {
    std::uint32_t node = 0;
    std::uint32_t layer = 0;
    std::uint32_t ordinal = 0; // position of the entry in the layer's tar stream
    RecordKind kind = RecordKind::entry;
    formats::EntryType type = formats::EntryType::file;
    std::uint32_t mode = 0;
    std::uint32_t uid = 0;
    std::uint32_t gid = 0;
    std::uint32_t mtime_nsec = 0;
    std::int64_t mtime_sec = 0;
    std::uint64_t size = 0; // regular files: content bytes; others 0
    std::uint32_t link = 0; // index in LayerIndex::strings (0: none): symlink target
    std::uint32_t link_node = PathTrie::k_none; // hard links: the target path's node
    std::uint32_t xattrs = 0;                  // index in LayerIndex::xattrs (0: none)
    std::uint32_t devmajor = 0;
    std::uint32_t devminor = 0;
};

struct LayerMeta {
    std::string name;        // digest or path, for messages
    std::uint32_t first = 0; // records [first, end)
    std::uint32_t end = 0;
    std::optional<formats::LayerDigests> digests;
    formats::Compression compression = formats::Compression::none;
    std::uint64_t content_bytes = 0; // sum of regular-file sizes (dive's and docker's layer size)
};

class LayerIndex {
public:
    struct Options {
        // Hash regular-file contents (needed by diff, not by ls/analyze).
        bool hash_content = false;
    };
    LayerIndex() : LayerIndex(Options{}) {}
    explicit LayerIndex(Options opts);

    // Streams one layer (the next one up) through reader; the reader is
    // finished and its digests recorded. Throws naming the layer and entry
    // for unsafe names ("../x") or bad whiteouts.
    void add_layer(formats::TarReader& reader, std::string name);

    // Building a layer from entries in memory (tests, directory sources).
    void begin_layer(std::string name);
    // content: the file's bytes when hashing is on (ignored otherwise).
    void add_entry(const formats::TarEntry& entry,
                   const std::optional<Sha256::Bytes>& content_hash = std::nullopt);
    void end_layer(std::optional<formats::LayerDigests> digests = std::nullopt);

    std::size_t layer_count() const noexcept { return m_layers.size(); }
    const LayerMeta& layer(std::size_t i) const { return m_layers.at(i); }
    const std::vector<Record>& records() const noexcept { return m_records; }
    const Record& record(std::uint32_t r) const { return m_records[r]; }
    const PathTrie& trie() const noexcept { return m_trie; }
    // The node for name below parent, added to the trie when missing: a
    // MergedTree places an entry whose parent path goes through a lower
    // layer's symlink at the path the link leads to.
    std::uint32_t intern_child(std::uint32_t parent, std::string_view name) const {
        return m_trie.child(parent, name);
    }
    const std::string& string(std::uint32_t i) const { return m_strings[i]; }
    const std::map<std::string, std::string>& xattrs(std::uint32_t i) const { return m_xattrs[i]; }
    bool hashes_content() const noexcept { return m_opts.hash_content; }
    // Content hash of a regular-file record (hash_content must be on).
    const Sha256::Bytes& content_hash(std::uint32_t r) const { return m_hashes[r]; }
    std::size_t memory_bytes() const;

private:
    Options m_opts;
    mutable PathTrie m_trie; // grows only through intern_child once built
    std::vector<Record> m_records;
    std::vector<Sha256::Bytes> m_hashes; // parallel to m_records when hashing
    std::vector<std::string> m_strings{std::string()};
    std::vector<std::map<std::string, std::string>> m_xattrs{{}};
    std::vector<LayerMeta> m_layers;
    std::uint32_t m_ordinal = 0;
    bool m_in_layer = false;
};

// What changed in one layer compared with the tree below it.
struct LayerChanges {
    std::uint64_t added = 0;
    std::uint64_t modified = 0;
    std::uint64_t removed = 0;
};

// The tree as it stands after layers [0, upto).
class MergedTree {
public:
    static constexpr std::int32_t k_absent = -1;
    static constexpr std::int32_t k_implicit_dir = -2;

    // upto: number of layers to apply (0 = empty tree, layer_count() = all).
    MergedTree(const LayerIndex& index, std::size_t upto);

    const LayerIndex& index() const noexcept { return *m_index; }
    std::size_t layers_applied() const noexcept { return m_upto; }
    bool present(std::uint32_t node) const { return m_state[node] != k_absent; }
    // The record that put the node there, or nullopt for an implicit directory
    // (and for the root unless a layer had a "./" entry).
    std::optional<std::uint32_t> record_of(std::uint32_t node) const;
    formats::EntryType type_of(std::uint32_t node) const;
    bool is_dir(std::uint32_t node) const { return type_of(node) == formats::EntryType::dir; }
    // For a regular file or a hard link: the record whose tar entry carries
    // the bytes (hard links resolved). nullopt for a hard link whose target
    // was missing.
    std::optional<std::uint32_t> data_record(std::uint32_t node) const;
    // Present children, sorted by name.
    std::vector<std::uint32_t> children(std::uint32_t node) const;
    const std::vector<LayerChanges>& changes() const noexcept { return m_changes; }

    // Resolves a path inside the image root: ".." stops at the root, symlinks
    // in intermediate components are followed inside the root, the last
    // component only when follow_last. nullopt when nothing is there. Throws
    // on a symlink loop (more than 40 links).
    std::optional<std::uint32_t> resolve(std::string_view path, bool follow_last) const;

    // Calls f(node) for node and every present node below it, parents first,
    // children sorted by name.
    template <typename F> void walk(std::uint32_t node, F&& f) const {
        std::vector<std::uint32_t> stack{node};
        while (!stack.empty()) {
            auto n = stack.back();
            stack.pop_back();
            f(n);
            if (is_dir(n)) {
                auto kids = children(n);
                stack.insert(stack.end(), kids.rbegin(), kids.rend());
            }
        }
    }

private:
    void apply_layer(std::size_t layer);
    // Where a record at node lands: node itself, unless a present symlink is
    // on its parent path (then the node below where the link leads, as the
    // applier resolves it; snapshot/merged_view.hpp). With create, missing or
    // non-directory parents become implicit directories. nullopt: a link on
    // the way leads nowhere.
    std::optional<std::uint32_t> place(std::uint32_t node, std::uint32_t layer, bool create);
    void grow();
    void remove_subtree(std::uint32_t node, std::uint32_t layer);
    void touch(std::uint32_t node, std::uint32_t layer);

    const LayerIndex* m_index;
    std::size_t m_upto;
    std::vector<std::int32_t> m_state; // per node: record, k_absent or k_implicit_dir
    std::unordered_map<std::uint32_t, std::int32_t> m_hardlink_data;
    std::vector<LayerChanges> m_changes;
    // per-layer change tracking
    std::vector<std::uint32_t> m_touched_epoch;
    std::vector<std::int32_t> m_before;
    std::vector<std::uint32_t> m_touched;
};

// "rwxr-xr-x"-style mode string with the type letter ("drwxr-xr-x").
std::string mode_string(formats::EntryType type, std::uint32_t mode);

} // namespace strata::snapshot
