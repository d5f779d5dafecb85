#include "snapshot/analyze.hpp"

#include <algorithm>
#include <limits>
#include <unordered_map>

namespace strata::snapshot {

using formats::EntryType;

namespace {

constexpr std::int32_t k_absent = -1;
constexpr std::int32_t k_implied = -2; // a directory node without metadata (dive: empty FileInfo)

// dive's stacked tree of the layers below the current one.
class DiveStack {
public:
    explicit DiveStack(const LayerIndex& idx) : m_idx(idx), m_state(idx.trie().size(), k_absent) {
        m_state[PathTrie::k_root] = k_implied;
    }

    // The size dive gives a whiteout of node: 0 for a file or an implied
    // directory, the sum of sizes below an explicit directory.
    std::uint64_t whiteout_size(std::uint32_t node) const {
        auto s = m_state[node];
        if (s < 0) {
            return 0;
        }
        if (m_idx.record(static_cast<std::uint32_t>(s)).type != EntryType::dir) {
            return 0;
        }
        std::uint64_t total = 0;
        std::vector<std::uint32_t> stack{node};
        while (!stack.empty()) {
            auto n = stack.back();
            stack.pop_back();
            if (m_state[n] >= 0) {
                total += m_idx.record(static_cast<std::uint32_t>(m_state[n])).size;
            }
            m_idx.trie().for_each_child(n, [&](std::uint32_t c) {
                if (m_state[c] != k_absent) {
                    stack.push_back(c);
                }
            });
        }
        return total;
    }

    void remove(std::uint32_t node) {
        std::vector<std::uint32_t> stack{node};
        while (!stack.empty()) {
            auto n = stack.back();
            stack.pop_back();
            if (m_state[n] == k_absent) {
                continue;
            }
            m_state[n] = k_absent;
            m_idx.trie().for_each_child(n, [&](std::uint32_t c) { stack.push_back(c); });
        }
    }

    // Stacks one layer as dive's FileTree.Stack does: whiteouts remove,
    // entries set their metadata (children kept), and every directory the
    // layer only implies gets empty metadata.
    void stack(std::size_t layer, const std::vector<char>& explicit_in_layer) {
        const auto& meta = m_idx.layer(layer);
        const auto& trie = m_idx.trie();
        for (auto r = meta.first; r < meta.end; ++r) {
            const auto& rec = m_idx.record(r);
            if (rec.kind == RecordKind::whiteout && rec.node != PathTrie::k_root) {
                remove(rec.node);
            }
        }
        for (auto r = meta.first; r < meta.end; ++r) {
            const auto& rec = m_idx.record(r);
            auto first_ancestor = rec.kind == RecordKind::opaque ? rec.node : trie.parent(rec.node);
            if (rec.kind == RecordKind::entry && rec.node != PathTrie::k_root) {
                m_state[rec.node] = static_cast<std::int32_t>(r);
            }
            if (rec.node == PathTrie::k_root && rec.kind != RecordKind::opaque) {
                continue;
            }
            for (auto a = first_ancestor; a != PathTrie::k_root && a != PathTrie::k_none;
                 a = trie.parent(a)) {
                if (!explicit_in_layer[a]) {
                    m_state[a] = k_implied;
                }
            }
        }
    }

private:
    const LayerIndex& m_idx;
    std::vector<std::int32_t> m_state;
};

} // namespace

Analysis analyze_layers(const LayerIndex& idx, std::size_t top_files) {
    Analysis out;
    const auto& trie = idx.trie();
    const std::size_t nodes = trie.size();

    struct PathData {
        std::uint64_t cumulative = 0;
        std::uint64_t min_size = 0;
        std::uint32_t count = 0;
    };
    std::vector<PathData> paths(nodes);

    DiveStack stack(idx);
    std::vector<char> non_leaf(nodes, 0);
    std::vector<char> explicit_in_layer(nodes, 0);
    std::vector<std::int32_t> last_entry(nodes, -1); // per layer: the entry dive keeps for a node
    std::vector<std::uint32_t> marked;

    auto visit = [&](std::uint32_t node, std::uint64_t size) {
        auto& d = paths[node];
        d.cumulative += size;
        if (d.count == 0 || size < d.min_size) {
            d.min_size = size;
        }
        ++d.count;
    };

    for (std::size_t l = 0; l < idx.layer_count(); ++l) {
        const auto& meta = idx.layer(l);
        out.size_bytes += meta.content_bytes;
        if (l != 0) {
            out.user_size_bytes += meta.content_bytes;
        }
        // The layer's tree: mark inner nodes and the entries that carry metadata.
        marked.clear();
        auto mark = [&](std::vector<char>& v, std::uint32_t n) {
            if (!v[n]) {
                v[n] = 1;
                marked.push_back(n);
            }
        };
        for (auto r = meta.first; r < meta.end; ++r) {
            const auto& rec = idx.record(r);
            // A whiteout is a child ".wh.X" of X's parent; an opaque marker is
            // never added, but its directory is.
            auto below = rec.kind == RecordKind::opaque ? rec.node : trie.parent(rec.node);
            if (rec.kind != RecordKind::opaque) {
                for (auto a = below; a != PathTrie::k_none; a = trie.parent(a)) {
                    if (non_leaf[a]) break;
                    mark(non_leaf, a);
                }
            } else {
                for (auto a = trie.parent(below);
                     a != PathTrie::k_none && below != PathTrie::k_root; a = trie.parent(a)) {
                    if (non_leaf[a]) break;
                    mark(non_leaf, a);
                }
            }
            if (rec.kind == RecordKind::entry) {
                mark(explicit_in_layer, rec.node);
                last_entry[rec.node] = static_cast<std::int32_t>(r);
            }
        }
        // Visit the leaves: entries (the last one for a path, as dive's
        // AddPath replaces the payload), whiteouts, and opaque directories
        // that the layer holds no entry for (dive adds them with no metadata).
        for (auto r = meta.first; r < meta.end; ++r) {
            const auto& rec = idx.record(r);
            auto n = rec.node;
            if (n == PathTrie::k_root) {
                continue;
            }
            switch (rec.kind) {
            case RecordKind::entry:
                if (!non_leaf[n] && last_entry[n] == static_cast<std::int32_t>(r)) {
                    visit(n, rec.size);
                }
                break;
            case RecordKind::whiteout:
                visit(n, stack.whiteout_size(n));
                break;
            case RecordKind::opaque:
                if (!non_leaf[n] && !explicit_in_layer[n]) {
                    visit(n, 0);
                    mark(non_leaf, n); // once per layer
                }
                break;
            }
        }
        stack.stack(l, explicit_in_layer);
        for (auto n : marked) {
            non_leaf[n] = 0;
            explicit_in_layer[n] = 0;
            last_entry[n] = -1;
        }
        for (auto r = meta.first; r < meta.end; ++r) {
            last_entry[idx.record(r).node] = -1;
        }
    }

    std::uint64_t min_total = 0;
    std::uint64_t cum_total = 0;
    for (std::uint32_t n = 0; n < nodes; ++n) {
        const auto& d = paths[n];
        if (d.count == 0) {
            continue;
        }
        min_total += d.min_size;
        cum_total += d.cumulative;
        if (d.count >= 2) {
            out.inefficiencies.push_back(PathWaste{n, d.count, d.cumulative, d.min_size});
            out.wasted_bytes += d.cumulative;
        }
    }
    out.efficiency = cum_total == 0 ? 1.0 : double(min_total) / double(cum_total);
    if (out.user_size_bytes != 0) {
        out.wasted_user_percent = double(out.wasted_bytes) / double(out.user_size_bytes);
    } else if (out.wasted_bytes != 0) {
        out.wasted_user_percent = std::numeric_limits<double>::infinity();
    }
    std::stable_sort(out.inefficiencies.begin(), out.inefficiencies.end(),
                     [&](const PathWaste& a, const PathWaste& b) {
                         if (a.cumulative != b.cumulative) return a.cumulative > b.cumulative;
                         return trie.path(a.node) < trie.path(b.node);
                     });

    // The exact figures, from the real merged tree.
    MergedTree final_tree(idx, idx.layer_count());
    std::vector<char> visible(idx.records().size(), 0);
    final_tree.walk(PathTrie::k_root, [&](std::uint32_t n) {
        if (auto d = final_tree.data_record(n)) {
            visible[*d] = 1;
            const auto& rec = idx.record(*d);
            if (final_tree.type_of(n) == EntryType::file) {
                out.largest.push_back(LargeFile{n, rec.size, rec.layer});
            }
        }
    });
    out.layers.resize(idx.layer_count());
    for (std::size_t l = 0; l < idx.layer_count(); ++l) {
        auto& lw = out.layers[l];
        lw.layer = l;
        lw.size = idx.layer(l).content_bytes;
        for (auto r = idx.layer(l).first; r < idx.layer(l).end; ++r) {
            const auto& rec = idx.record(r);
            if (rec.kind == RecordKind::entry && rec.type == EntryType::file && !visible[r]) {
                lw.hidden_bytes += rec.size;
                ++lw.hidden_files;
            }
        }
        out.hidden_bytes += lw.hidden_bytes;
        out.hidden_files += lw.hidden_files;
    }
    auto by_size = [&](const LargeFile& a, const LargeFile& b) {
        if (a.size != b.size) return a.size > b.size;
        return a.node < b.node;
    };
    if (out.largest.size() > top_files) {
        std::partial_sort(out.largest.begin(), out.largest.begin() + long(top_files),
                          out.largest.end(), by_size);
        out.largest.resize(top_files);
    } else {
        std::sort(out.largest.begin(), out.largest.end(), by_size);
    }
    return out;
}

} // namespace strata::snapshot
