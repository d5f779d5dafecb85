#include "snapshot/layer_index.hpp"

#include "formats/whiteout.hpp"
#include "util/error.hpp"

#include <algorithm>

namespace strata::snapshot {

using formats::EntryType;

// ---------------------------------------------------------------- PathTrie

PathTrie::PathTrie() : slots_(1024, kNone) {
    nodes_.push_back(Node{kNone, 0, 0});
}

std::size_t PathTrie::find_slot(std::uint32_t parent, std::string_view name) const {
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = hash(parent, name) & mask;; i = (i + 1) & mask) {
        auto id = slots_[i];
        if (id == kNone) {
            return i;
        }
        const auto& n = nodes_[id];
        if (n.parent == parent && this->name(id) == name) {
            return i;
        }
    }
}

void PathTrie::grow() {
    std::vector<std::uint32_t> old(slots_.size() * 2, kNone);
    old.swap(slots_);
    const std::size_t mask = slots_.size() - 1;
    for (auto id : old) {
        if (id == kNone) {
            continue;
        }
        auto i = hash(nodes_[id].parent, name(id)) & mask;
        while (slots_[i] != kNone) {
            i = (i + 1) & mask;
        }
        slots_[i] = id;
    }
}

std::uint32_t PathTrie::child(std::uint32_t parent, std::string_view name) {
    auto slot = find_slot(parent, name);
    if (slots_[slot] != kNone) {
        return slots_[slot];
    }
    if (name.size() > UINT32_MAX || names_.size() + name.size() > UINT32_MAX ||
        nodes_.size() >= UINT32_MAX - 1) {
        throw Error("too many paths in one image for the index (over 4 GiB of names)");
    }
    auto id = static_cast<std::uint32_t>(nodes_.size());
    nodes_.push_back(Node{parent, static_cast<std::uint32_t>(names_.size()),
                          static_cast<std::uint32_t>(name.size()), kNone,
                          nodes_[parent].first_child});
    names_.append(name);
    nodes_[parent].first_child = id;
    slots_[slot] = id;
    if ((nodes_.size() + 1) * 2 > slots_.size()) {
        grow();
    }
    return id;
}

std::optional<std::uint32_t> PathTrie::find_child(std::uint32_t parent,
                                                  std::string_view name) const {
    auto id = slots_[find_slot(parent, name)];
    if (id == kNone) {
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
    std::uint32_t n = kRoot;
    for_each_component(clean_path, [&](std::string_view c) { n = child(n, c); });
    return n;
}

std::optional<std::uint32_t> PathTrie::find_path(std::string_view clean_path) const {
    std::optional<std::uint32_t> n = kRoot;
    for_each_component(clean_path, [&](std::string_view c) {
        if (n) {
            n = find_child(*n, c);
        }
    });
    return n;
}

std::string PathTrie::path(std::uint32_t n) const {
    std::vector<std::uint32_t> chain;
    for (; n != kRoot && n != kNone; n = nodes_[n].parent) {
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
    return nodes_.capacity() * sizeof(Node) + names_.capacity() +
           slots_.capacity() * sizeof(std::uint32_t);
}

// ---------------------------------------------------------------- LayerIndex

LayerIndex::LayerIndex(Options opts) : opts_(opts) {}

void LayerIndex::begin_layer(std::string name) {
    if (in_layer_) {
        throw Error("internal: layer " + layers_.back().name + " was not ended");
    }
    in_layer_ = true;
    ordinal_ = 0;
    LayerMeta meta;
    meta.name = std::move(name);
    meta.first = meta.end = static_cast<std::uint32_t>(records_.size());
    layers_.push_back(std::move(meta));
}

void LayerIndex::end_layer(std::optional<formats::LayerDigests> digests) {
    if (!in_layer_) {
        throw Error("internal: end_layer without begin_layer");
    }
    in_layer_ = false;
    layers_.back().end = static_cast<std::uint32_t>(records_.size());
    layers_.back().digests = std::move(digests);
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
    if (!in_layer_) {
        throw Error("internal: add_entry outside a layer");
    }
    auto& meta = layers_.back();
    const auto layer_no = static_cast<std::uint32_t>(layers_.size() - 1);
    const std::uint32_t ordinal = ordinal_++;
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
            r.node = trie_.intern_path(dir);
        } else if (formats::whiteout::is_aufs_meta(base)) {
            return; // AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): not part of the tree
        } else {
            auto target = formats::whiteout::deleted_name(base);
            if (target.empty() || target == "." || target == "..") {
                throw Error("layer " + meta.name + ": bad whiteout entry \"" + e.path + "\"");
            }
            r.kind = RecordKind::whiteout;
            r.node = trie_.child(trie_.intern_path(dir), target);
        }
        r.type = EntryType::file;
        r.size = 0;
    } else {
        r.kind = RecordKind::entry;
        r.node = trie_.intern_path(path);
        if (e.type == EntryType::file) {
            r.size = e.size;
            meta.content_bytes += e.size;
        }
        if (e.type == EntryType::symlink) {
            r.link = static_cast<std::uint32_t>(strings_.size());
            strings_.push_back(e.linkname);
        } else if (e.type == EntryType::hardlink) {
            auto target = clean_entry_path(e.linkname, meta.name, "hard link target of " + e.path);
            r.link = static_cast<std::uint32_t>(strings_.size());
            strings_.push_back(target);
            r.link_node = trie_.intern_path(target);
        }
        if (!e.xattrs.empty()) {
            r.xattrs = static_cast<std::uint32_t>(xattrs_.size());
            xattrs_.push_back(e.xattrs);
        }
    }
    records_.push_back(r);
    if (opts_.hash_content) {
        hashes_.push_back(hash.value_or(Sha256::Bytes{}));
    }
}

std::size_t LayerIndex::memory_bytes() const {
    std::size_t bytes = trie_.memory_bytes() + records_.capacity() * sizeof(Record) +
                        hashes_.capacity() * sizeof(Sha256::Bytes);
    for (const auto& s : strings_) {
        bytes += sizeof(std::string) + (s.capacity() > 15 ? s.capacity() + 1 : 0);
    }
    bytes += xattrs_.size() * sizeof(xattrs_[0]);
    return bytes;
}

// ---------------------------------------------------------------- MergedTree

MergedTree::MergedTree(const LayerIndex& index, std::size_t upto)
    : index_(&index), upto_(upto), state_(index.trie().size(), kAbsent),
      touched_epoch_(index.trie().size(), 0), before_(index.trie().size(), kAbsent) {
    if (upto > index.layer_count()) {
        throw Error("the image has " + std::to_string(index.layer_count()) + " layers, not " +
                    std::to_string(upto));
    }
    state_[PathTrie::kRoot] = kImplicitDir;
    for (std::size_t l = 0; l < upto; ++l) {
        apply_layer(l);
    }
    touched_epoch_ = {};
    before_ = {};
    touched_ = {};
}

void MergedTree::touch(std::uint32_t node, std::uint32_t layer) {
    if (touched_epoch_[node] != layer + 1) {
        touched_epoch_[node] = layer + 1;
        before_[node] = state_[node];
        touched_.push_back(node);
    }
}

void MergedTree::remove_subtree(std::uint32_t node, std::uint32_t layer) {
    const auto& trie = index_->trie();
    std::vector<std::uint32_t> stack{node};
    while (!stack.empty()) {
        auto n = stack.back();
        stack.pop_back();
        if (state_[n] == kAbsent) {
            continue;
        }
        touch(n, layer);
        state_[n] = kAbsent;
        trie.for_each_child(n, [&](std::uint32_t c) {
            if (state_[c] != kAbsent) {
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
    const auto& meta = index_->layer(l);
    const auto& trie = index_->trie();
    const auto& recs = index_->records();

    // Pass 1: whiteouts and opaque markers act on the layers below.
    for (auto r = meta.first; r < meta.end; ++r) {
        const auto& rec = recs[r];
        if (rec.kind == RecordKind::whiteout) {
            if (rec.node != PathTrie::kRoot) {
                if (auto n = place(rec.node, layer, false)) {
                    remove_subtree(*n, layer);
                }
            }
        } else if (rec.kind == RecordKind::opaque) {
            auto n = rec.node == PathTrie::kRoot ? std::optional<std::uint32_t>(rec.node)
                                                 : place(rec.node, layer, false);
            if (n && state_[*n] != kAbsent && is_dir(*n)) {
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
        if (n == PathTrie::kRoot) {
            if (rec.type == EntryType::dir) {
                touch(n, layer);
                state_[n] = static_cast<std::int32_t>(r);
            }
            continue;
        }
        ancestors.clear();
        bool through_link = false;
        for (auto a = trie.parent(n); a != PathTrie::kRoot; a = trie.parent(a)) {
            ancestors.push_back(a);
            through_link = through_link || (state_[a] >= 0 && type_of(a) == EntryType::symlink);
        }
        std::optional<std::uint32_t> moved;
        if (through_link && (moved = place(n, layer, true))) {
            n = *moved;
        } else {
            for (auto it = ancestors.rbegin(); it != ancestors.rend(); ++it) {
                auto a = *it;
                if (state_[a] == kAbsent || !is_dir(a)) {
                    touch(a, layer);
                    state_[a] = kImplicitDir;
                }
            }
        }
        if (state_[n] != kAbsent && is_dir(n) && rec.type != EntryType::dir) {
            remove_subtree(n, layer);
        }
        touch(n, layer);
        state_[n] = static_cast<std::int32_t>(r);
        if (rec.type == EntryType::hardlink) {
            std::int32_t data = kAbsent;
            auto t = rec.link_node;
            if (t != PathTrie::kNone && t != n && state_[t] >= 0) {
                const auto& tr = recs[static_cast<std::uint32_t>(state_[t])];
                if (tr.type == EntryType::file) {
                    data = state_[t];
                } else if (tr.type == EntryType::hardlink) {
                    auto it = hardlink_data_.find(static_cast<std::uint32_t>(state_[t]));
                    data = it == hardlink_data_.end() ? kAbsent : it->second;
                }
            }
            hardlink_data_[r] = data;
        }
    }

    LayerChanges ch;
    for (auto n : touched_) {
        auto b = before_[n];
        auto a = state_[n];
        if (b == kAbsent && a != kAbsent) {
            ++ch.added;
        } else if (b != kAbsent && a == kAbsent) {
            ++ch.removed;
        } else if (b != kAbsent && a != b && !same_dir_meta(*index_, a, b)) {
            ++ch.modified;
        }
    }
    changes_.push_back(ch);
    touched_.clear();
}

void MergedTree::grow() {
    std::size_t n = index_->trie().size();
    if (state_.size() < n) {
        state_.resize(n, kAbsent);
        touched_epoch_.resize(n, 0);
        before_.resize(n, kAbsent);
    }
}

std::optional<std::uint32_t> MergedTree::place(std::uint32_t node, std::uint32_t layer,
                                               bool create) {
    const auto& trie = index_->trie();
    std::vector<std::uint32_t> lexical;
    for (auto a = trie.parent(node); a != PathTrie::kRoot; a = trie.parent(a)) {
        lexical.push_back(a);
    }
    std::uint32_t cur = PathTrie::kRoot;
    for (auto it = lexical.rbegin(); it != lexical.rend(); ++it) {
        auto c = index_->intern_child(cur, trie.name(*it));
        grow();
        if (state_[c] >= 0 && type_of(c) == EntryType::symlink) {
            const auto& target = index_->string(index_->record(*record_of(c)).link);
            std::string from = target.starts_with('/') ? target : trie.path(cur) + "/" + target;
            auto to = resolve(from, true);
            if (!to || !is_dir(*to)) {
                return std::nullopt;
            }
            cur = *to;
            continue;
        }
        if (state_[c] == kAbsent || !is_dir(c)) {
            if (!create) {
                return std::nullopt;
            }
            touch(c, layer);
            state_[c] = kImplicitDir;
        }
        cur = c;
    }
    auto placed = index_->intern_child(cur, trie.name(node));
    grow();
    return placed;
}

std::optional<std::uint32_t> MergedTree::record_of(std::uint32_t node) const {
    auto s = state_[node];
    if (s < 0) {
        return std::nullopt;
    }
    return static_cast<std::uint32_t>(s);
}

EntryType MergedTree::type_of(std::uint32_t node) const {
    auto s = state_[node];
    if (s == kImplicitDir) {
        return EntryType::dir;
    }
    if (s < 0) {
        throw Error("internal: type_of an absent path /" + index_->trie().path(node));
    }
    return index_->record(static_cast<std::uint32_t>(s)).type;
}

std::optional<std::uint32_t> MergedTree::data_record(std::uint32_t node) const {
    auto s = state_[node];
    if (s < 0) {
        return std::nullopt;
    }
    auto r = static_cast<std::uint32_t>(s);
    const auto& rec = index_->record(r);
    if (rec.type == EntryType::file) {
        return r;
    }
    if (rec.type == EntryType::hardlink) {
        auto it = hardlink_data_.find(r);
        if (it != hardlink_data_.end() && it->second >= 0) {
            return static_cast<std::uint32_t>(it->second);
        }
    }
    return std::nullopt;
}

std::vector<std::uint32_t> MergedTree::children(std::uint32_t node) const {
    auto kids = index_->trie().sorted_children(node);
    std::erase_if(kids, [&](std::uint32_t c) { return state_[c] == kAbsent; });
    return kids;
}

std::optional<std::uint32_t> MergedTree::resolve(std::string_view path, bool follow_last) const {
    const auto& trie = index_->trie();
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
    std::uint32_t cur = PathTrie::kRoot;
    int links = 0;
    while (!pending.empty()) {
        std::string comp = std::move(pending.back());
        pending.pop_back();
        if (comp == "..") {
            if (cur != PathTrie::kRoot) {
                cur = trie.parent(cur);
            }
            continue;
        }
        if (!is_dir(cur)) {
            return std::nullopt;
        }
        auto c = trie.find_child(cur, comp);
        if (!c || state_[*c] == kAbsent) {
            return std::nullopt;
        }
        if (type_of(*c) == EntryType::symlink && (!pending.empty() || follow_last)) {
            if (++links > 40) {
                throw Error("too many levels of symbolic links resolving " + std::string(path));
            }
            const auto& target = index_->string(index_->record(*record_of(*c)).link);
            if (target.starts_with('/')) {
                cur = PathTrie::kRoot;
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
