#include "snapshot/layer_index.hpp"

#include "formats/whiteout.hpp"
#include "util/error.hpp"

#include <algorithm>

namespace strata::snapshot {

using formats::EntryType;

// ---------------------------------------------------------------- PathTrie

PathTrie::PathTrie() : m_slots(1024, k_none) {
    m_nodes.push_back(Node{k_none, 0, 0});
}

std::size_t PathTrie::find_slot(std::uint32_t parent, std::string_view name) const {
    const std::size_t mask = m_slots.size() - 1;
    for (std::size_t i = hash(parent, name) & mask;; i = (i + 1) & mask) {
        auto id = m_slots[i];
        if (id == k_none) {
            return i;
        }
        const auto& n = m_nodes[id];
        if (n.parent == parent && this->name(id) == name) {
            return i;
        }
    }
}

void PathTrie::grow() {
    std::vector<std::uint32_t> old(m_slots.size() * 2, k_none);
    old.swap(m_slots);
    const std::size_t mask = m_slots.size() - 1;
    for (auto id : old) {
        if (id == k_none) {
            continue;
        }
        auto i = hash(m_nodes[id].parent, name(id)) & mask;
        while (m_slots[i] != k_none) {
            i = (i + 1) & mask;
        }
        m_slots[i] = id;
    }
}

std::uint32_t PathTrie::child(std::uint32_t parent, std::string_view name) {
    auto slot = find_slot(parent, name);
    if (m_slots[slot] != k_none) {
        return m_slots[slot];
    }
    if (name.size() > UINT32_MAX || m_names.size() + name.size() > UINT32_MAX ||
        m_nodes.size() >= UINT32_MAX - 1) {
        throw Error("too many paths in one image for the index (over 4 GiB of names)");
    }
    auto id = static_cast<std::uint32_t>(m_nodes.size());
    m_nodes.push_back(Node{parent, static_cast<std::uint32_t>(m_names.size()),
                           static_cast<std::uint32_t>(name.size()), k_none,
                           m_nodes[parent].first_child});
    m_names.append(name);
    m_nodes[parent].first_child = id;
    m_slots[slot] = id;
    if ((m_nodes.size() + 1) * 2 > m_slots.size()) {
        grow();
    }
    return id;
}

std::optional<std::uint32_t> PathTrie::find_child(std::uint32_t parent,
                                                  std::string_view name) const {
    auto id = m_slots[find_slot(parent, name)];
    if (id == k_none) {
        return std::nullopt;
    }
    return id;
}

namespace {

// Calls f(component) for each non-empty component of a '/'-separated path.
template <typename F> void for_each_component(std::string_view path, F&& f) {
    std::size_t i = 0;
    while (i < path.size()) {
        auto j = path.find('/', i);
        if (j == std::string_view::npos) {
            j = path.size();
        }
        if (j > i) {
            f(path.substr(i, j - i));
        }
        i = j + 1;
    }
}

} // namespace

std::uint32_t PathTrie::intern_path(std::string_view clean_path) {
    std::uint32_t n = k_root;
    for_each_component(clean_path, [&](std::string_view c) { n = child(n, c); });
    return n;
}

std::optional<std::uint32_t> PathTrie::find_path(std::string_view clean_path) const {
    std::optional<std::uint32_t> n = k_root;
    for_each_component(clean_path, [&](std::string_view c) {
        if (n) {
            n = find_child(*n, c);
        }
    });
    return n;
}

std::string PathTrie::path(std::uint32_t n) const {
    std::vector<std::uint32_t> chain;
    for (; n != k_root && n != k_none; n = m_nodes[n].parent) {
        chain.push_back(n);
    }
    std::string out;
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
        if (!out.empty()) {
            out += '/';
        }
        out += name(*it);
    }
    return out;
}

std::vector<std::uint32_t> PathTrie::sorted_children(std::uint32_t n) const {
    std::vector<std::uint32_t> out;
    for_each_child(n, [&](std::uint32_t c) { out.push_back(c); });
    std::sort(out.begin(), out.end(),
              [&](std::uint32_t a, std::uint32_t b) { return name(a) < name(b); });
    return out;
}

std::size_t PathTrie::memory_bytes() const {
    return m_nodes.capacity() * sizeof(Node) + m_names.capacity() +
           m_slots.capacity() * sizeof(std::uint32_t);
}

// ---------------------------------------------------------------- LayerIndex

LayerIndex::LayerIndex(Options opts) : m_opts(opts) {}

void LayerIndex::begin_layer(std::string name) {
    if (m_in_layer) {
        throw Error("internal: layer " + m_layers.back().name + " was not ended");
    }
    m_in_layer = true;
    m_ordinal = 0;
    LayerMeta meta;
    meta.name = std::move(name);
    meta.first = meta.end = static_cast<std::uint32_t>(m_records.size());
    m_layers.push_back(std::move(meta));
}

void LayerIndex::end_layer(std::optional<formats::LayerDigests> digests) {
    if (!m_in_layer) {
        throw Error("internal: end_layer without begin_layer");
    }
    m_in_layer = false;
    m_layers.back().end = static_cast<std::uint32_t>(m_records.size());
    m_layers.back().digests = std::move(digests);
}

namespace {

// Cleans a tar name into "a/b/c" (no leading "/" or "./", no "." or empty
// components). Names with a ".." component are refused: every tool that
// unpacks layers rejects them, and they have no place in a merged tree.
std::string clean_entry_path(std::string_view raw, const std::string& layer,
                             std::string_view what) {
    std::string out;
    bool bad = false;
    for_each_component(raw, [&](std::string_view c) {
        if (c == ".") {
            return;
        }
        if (c == "..") {
            bad = true;
            return;
        }
        if (!out.empty()) {
            out += '/';
        }
        out += c;
    });
    if (bad) {
        throw Error("layer " + layer + ": " + std::string(what) + " \"" + std::string(raw) +
                    "\" has a \"..\" component");
    }
    return out;
}

} // namespace

void LayerIndex::add_entry(const formats::TarEntry& e, const std::optional<Sha256::Bytes>& hash) {
    if (!m_in_layer) {
        throw Error("internal: add_entry outside a layer");
    }
    auto& meta = m_layers.back();
    const auto layer_no = static_cast<std::uint32_t>(m_layers.size() - 1);
    const std::uint32_t ordinal = m_ordinal++;
    std::string path = clean_entry_path(e.path, meta.name, "entry");

    Record r;
    r.layer = layer_no;
    r.ordinal = ordinal;
    r.type = e.type;
    r.mode = e.mode & 07777;
    r.uid = e.uid;
    r.gid = e.gid;
    r.mtime_sec = e.mtime_sec;
    r.mtime_nsec = e.mtime_nsec;
    r.devmajor = e.devmajor;
    r.devminor = e.devminor;

    auto slash = path.rfind('/');
    std::string_view base = slash == std::string::npos ? std::string_view(path)
                                                       : std::string_view(path).substr(slash + 1);
    std::string_view dir =
        slash == std::string::npos ? std::string_view() : std::string_view(path).substr(0, slash);
    if (formats::whiteout::is_reserved(base)) {
        if (formats::whiteout::is_opaque_marker(base)) {
            r.kind = RecordKind::opaque;
            r.node = m_trie.intern_path(dir);
        } else if (formats::whiteout::is_aufs_meta(base)) {
            return; // AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): not part of the tree
        } else {
            auto target = formats::whiteout::deleted_name(base);
            if (target.empty() || target == "." || target == "..") {
                throw Error("layer " + meta.name + ": bad whiteout entry \"" + e.path + "\"");
            }
            r.kind = RecordKind::whiteout;
            r.node = m_trie.child(m_trie.intern_path(dir), target);
        }
        r.type = EntryType::file;
        r.size = 0;
    } else {
        r.kind = RecordKind::entry;
        r.node = m_trie.intern_path(path);
        if (e.type == EntryType::file) {
            r.size = e.size;
            meta.content_bytes += e.size;
        }
        if (e.type == EntryType::symlink) {
            r.link = static_cast<std::uint32_t>(m_strings.size());
            m_strings.push_back(e.linkname);
        } else if (e.type == EntryType::hardlink) {
            auto target = clean_entry_path(e.linkname, meta.name, "hard link target of " + e.path);
            r.link = static_cast<std::uint32_t>(m_strings.size());
            m_strings.push_back(target);
            r.link_node = m_trie.intern_path(target);
        }
        if (!e.xattrs.empty()) {
            r.xattrs = static_cast<std::uint32_t>(m_xattrs.size());
            m_xattrs.push_back(e.xattrs);
        }
    }
    m_records.push_back(r);
    if (m_opts.hash_content) {
        m_hashes.push_back(hash.value_or(Sha256::Bytes{}));
    }
}

std::size_t LayerIndex::memory_bytes() const {
    std::size_t bytes = m_trie.memory_bytes() + m_records.capacity() * sizeof(Record) +
                        m_hashes.capacity() * sizeof(Sha256::Bytes);
    for (const auto& s : m_strings) {
        bytes += sizeof(std::string) + (s.capacity() > 15 ? s.capacity() + 1 : 0);
    }
    bytes += m_xattrs.size() * sizeof(m_xattrs[0]);
    return bytes;
}

// ---------------------------------------------------------------- MergedTree

MergedTree::MergedTree(const LayerIndex& index, std::size_t upto)
    : m_index(&index), m_upto(upto), m_state(index.trie().size(), k_absent),
      m_touched_epoch(index.trie().size(), 0), m_before(index.trie().size(), k_absent) {
    if (upto > index.layer_count()) {
        throw Error("the image has " + std::to_string(index.layer_count()) + " layers, not " +
                    std::to_string(upto));
    }
    m_state[PathTrie::k_root] = k_implicit_dir;
    for (std::size_t l = 0; l < upto; ++l) {
        apply_layer(l);
    }
    m_touched_epoch = {};
    m_before = {};
    m_touched = {};
}

void MergedTree::touch(std::uint32_t node, std::uint32_t layer) {
    if (m_touched_epoch[node] != layer + 1) {
        m_touched_epoch[node] = layer + 1;
        m_before[node] = m_state[node];
        m_touched.push_back(node);
    }
}

void MergedTree::remove_subtree(std::uint32_t node, std::uint32_t layer) {
    const auto& trie = m_index->trie();
    std::vector<std::uint32_t> stack{node};
    while (!stack.empty()) {
        auto n = stack.back();
        stack.pop_back();
        if (m_state[n] == k_absent) {
            continue;
        }
        touch(n, layer);
        m_state[n] = k_absent;
        trie.for_each_child(n, [&](std::uint32_t c) {
            if (m_state[c] != k_absent) {
                stack.push_back(c);
            }
        });
    }
}

namespace {

bool same_dir_meta(const LayerIndex& idx, std::int32_t a, std::int32_t b) {
    if (a < 0 || b < 0) {
        return a == b;
    }
    const auto& ra = idx.record(static_cast<std::uint32_t>(a));
    const auto& rb = idx.record(static_cast<std::uint32_t>(b));
    if (ra.type != EntryType::dir || rb.type != EntryType::dir) {
        return false;
    }
    auto xa = ra.xattrs ? &idx.xattrs(ra.xattrs) : nullptr;
    auto xb = rb.xattrs ? &idx.xattrs(rb.xattrs) : nullptr;
    bool same_x = (!xa && !xb) || (xa && xb && *xa == *xb);
    return ra.mode == rb.mode && ra.uid == rb.uid && ra.gid == rb.gid && same_x;
}

} // namespace

void MergedTree::apply_layer(std::size_t l) {
    const auto layer = static_cast<std::uint32_t>(l);
    const auto& meta = m_index->layer(l);
    const auto& trie = m_index->trie();
    const auto& recs = m_index->records();

    // Pass 1: whiteouts and opaque markers act on the layers below.
    for (auto r = meta.first; r < meta.end; ++r) {
        const auto& rec = recs[r];
        if (rec.kind == RecordKind::whiteout) {
            if (rec.node != PathTrie::k_root) {
                if (auto n = place(rec.node, layer, false)) {
                    remove_subtree(*n, layer);
                }
            }
        } else if (rec.kind == RecordKind::opaque) {
            auto n = rec.node == PathTrie::k_root ? std::optional<std::uint32_t>(rec.node)
                                                  : place(rec.node, layer, false);
            if (n && m_state[*n] != k_absent && is_dir(*n)) {
                std::vector<std::uint32_t> kids;
                trie.for_each_child(*n, [&](std::uint32_t c) { kids.push_back(c); });
                for (auto c : kids) {
                    remove_subtree(c, layer);
                }
            }
        }
    }

    // Pass 2: the entries, in tar order.
    std::vector<std::uint32_t> ancestors;
    for (auto r = meta.first; r < meta.end; ++r) {
        const auto& rec = recs[r];
        if (rec.kind != RecordKind::entry) {
            continue;
        }
        auto n = rec.node;
        if (n == PathTrie::k_root) {
            if (rec.type == EntryType::dir) {
                touch(n, layer);
                m_state[n] = static_cast<std::int32_t>(r);
            }
            continue;
        }
        ancestors.clear();
        bool through_link = false;
        for (auto a = trie.parent(n); a != PathTrie::k_root; a = trie.parent(a)) {
            ancestors.push_back(a);
            through_link = through_link || (m_state[a] >= 0 && type_of(a) == EntryType::symlink);
        }
        std::optional<std::uint32_t> moved;
        if (through_link && (moved = place(n, layer, true))) {
            n = *moved;
        } else {
            for (auto it = ancestors.rbegin(); it != ancestors.rend(); ++it) {
                auto a = *it;
                if (m_state[a] == k_absent || !is_dir(a)) {
                    touch(a, layer);
                    m_state[a] = k_implicit_dir;
                }
            }
        }
        if (m_state[n] != k_absent && is_dir(n) && rec.type != EntryType::dir) {
            remove_subtree(n, layer);
        }
        touch(n, layer);
        m_state[n] = static_cast<std::int32_t>(r);
        if (rec.type == EntryType::hardlink) {
            std::int32_t data = k_absent;
            auto t = rec.link_node;
            if (t != PathTrie::k_none && t != n && m_state[t] >= 0) {
                const auto& tr = recs[static_cast<std::uint32_t>(m_state[t])];
                if (tr.type == EntryType::file) {
                    data = m_state[t];
                } else if (tr.type == EntryType::hardlink) {
                    auto it = m_hardlink_data.find(static_cast<std::uint32_t>(m_state[t]));
                    data = it == m_hardlink_data.end() ? k_absent : it->second;
                }
            }
            m_hardlink_data[r] = data;
        }
    }

    LayerChanges ch;
    for (auto n : m_touched) {
        auto b = m_before[n];
        auto a = m_state[n];
        if (b == k_absent && a != k_absent) {
            ++ch.added;
        } else if (b != k_absent && a == k_absent) {
            ++ch.removed;
        } else if (b != k_absent && a != b && !same_dir_meta(*m_index, a, b)) {
            ++ch.modified;
        }
    }
    m_changes.push_back(ch);
    m_touched.clear();
}

void MergedTree::grow() {
    std::size_t n = m_index->trie().size();
    if (m_state.size() < n) {
        m_state.resize(n, k_absent);
        m_touched_epoch.resize(n, 0);
        m_before.resize(n, k_absent);
    }
}

std::optional<std::uint32_t> MergedTree::place(std::uint32_t node, std::uint32_t layer,
                                               bool create) {
    const auto& trie = m_index->trie();
    std::vector<std::uint32_t> lexical;
    for (auto a = trie.parent(node); a != PathTrie::k_root; a = trie.parent(a)) {
        lexical.push_back(a);
    }
    std::uint32_t cur = PathTrie::k_root;
    for (auto it = lexical.rbegin(); it != lexical.rend(); ++it) {
        auto c = m_index->intern_child(cur, trie.name(*it));
        grow();
        if (m_state[c] >= 0 && type_of(c) == EntryType::symlink) {
            const auto& target = m_index->string(m_index->record(*record_of(c)).link);
            std::string from = target.starts_with('/') ? target : trie.path(cur) + "/" + target;
            auto to = resolve(from, true);
            if (!to || !is_dir(*to)) {
                return std::nullopt;
            }
            cur = *to;
            continue;
        }
        if (m_state[c] == k_absent || !is_dir(c)) {
            if (!create) {
                return std::nullopt;
            }
            touch(c, layer);
            m_state[c] = k_implicit_dir;
        }
        cur = c;
    }
    auto placed = m_index->intern_child(cur, trie.name(node));
    grow();
    return placed;
}

std::optional<std::uint32_t> MergedTree::record_of(std::uint32_t node) const {
    auto s = m_state[node];
    if (s < 0) {
        return std::nullopt;
    }
    return static_cast<std::uint32_t>(s);
}

EntryType MergedTree::type_of(std::uint32_t node) const {
    auto s = m_state[node];
    if (s == k_implicit_dir) {
        return EntryType::dir;
    }
    if (s < 0) {
        throw Error("internal: type_of an absent path /" + m_index->trie().path(node));
    }
    return m_index->record(static_cast<std::uint32_t>(s)).type;
}

std::optional<std::uint32_t> MergedTree::data_record(std::uint32_t node) const {
    auto s = m_state[node];
    if (s < 0) {
        return std::nullopt;
    }
    auto r = static_cast<std::uint32_t>(s);
    const auto& rec = m_index->record(r);
    if (rec.type == EntryType::file) {
        return r;
    }
    if (rec.type == EntryType::hardlink) {
        auto it = m_hardlink_data.find(r);
        if (it != m_hardlink_data.end() && it->second >= 0) {
            return static_cast<std::uint32_t>(it->second);
        }
    }
    return std::nullopt;
}

std::vector<std::uint32_t> MergedTree::children(std::uint32_t node) const {
    auto kids = m_index->trie().sorted_children(node);
    std::erase_if(kids, [&](std::uint32_t c) { return m_state[c] == k_absent; });
    return kids;
}

std::optional<std::uint32_t> MergedTree::resolve(std::string_view path, bool follow_last) const {
    const auto& trie = m_index->trie();
    std::vector<std::string> pending; // components, last one first
    auto push = [&](std::string_view p) {
        std::vector<std::string> comps;
        for_each_component(p, [&](std::string_view c) {
            if (c != ".") {
                comps.emplace_back(c);
            }
        });
        pending.insert(pending.end(), comps.rbegin(), comps.rend());
    };
    push(path);
    std::uint32_t cur = PathTrie::k_root;
    int links = 0;
    while (!pending.empty()) {
        std::string comp = std::move(pending.back());
        pending.pop_back();
        if (comp == "..") {
            if (cur != PathTrie::k_root) {
                cur = trie.parent(cur);
            }
            continue;
        }
        if (!is_dir(cur)) {
            return std::nullopt;
        }
        auto c = trie.find_child(cur, comp);
        if (!c || m_state[*c] == k_absent) {
            return std::nullopt;
        }
        if (type_of(*c) == EntryType::symlink && (!pending.empty() || follow_last)) {
            if (++links > 40) {
                throw Error("too many levels of symbolic links resolving " + std::string(path));
            }
            const auto& target = m_index->string(m_index->record(*record_of(*c)).link);
            if (target.starts_with('/')) {
                cur = PathTrie::k_root;
            }
            push(target);
            continue;
        }
        cur = *c;
    }
    return cur;
}

std::string mode_string(EntryType type, std::uint32_t mode) {
    char t = '-';
    switch (type) {
    case EntryType::dir:
        t = 'd';
        break;
    case EntryType::symlink:
        t = 'l';
        break;
    case EntryType::chardev:
        t = 'c';
        break;
    case EntryType::blockdev:
        t = 'b';
        break;
    case EntryType::fifo:
        t = 'p';
        break;
    case EntryType::file:
    case EntryType::hardlink:
        t = '-';
        break;
    }
    std::string s(10, '-');
    s[0] = t;
    const char* rwx = "rwxrwxrwx";
    for (int i = 0; i < 9; ++i) {
        if (mode & (0400u >> i)) {
            s[1 + i] = rwx[i];
        }
    }
    if (mode & 04000)
        s[3] = (mode & 0100) ? 's' : 'S';
    if (mode & 02000)
        s[6] = (mode & 0010) ? 's' : 'S';
    if (mode & 01000)
        s[9] = (mode & 0001) ? 't' : 'T';
    return s;
}

} // namespace strata::snapshot
