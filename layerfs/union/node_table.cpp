// The Fs object and its node table: nodes by (dev, ino), their names
// (a primary one and hard-link aliases) and the kernel's references.

#include "layerfs/union/fs.hpp"

#include "util/error.hpp"
#include "util/fs.hpp"

#include <algorithm>
#include <fcntl.h>

namespace strata::layerfs::unionfs {

namespace {

// The kernel keeps entries and attributes this long on a read-only mount:
// layers never change, so this is "for ever" in practice.
constexpr double k_forever = 365.0 * 24 * 3600;

} // namespace

Fs::Fs(const UnionOptions& opts) : m_writable(!opts.upper.empty()) {
    if (opts.lowers.empty()) {
        throw UsageError("union filesystem: no lower layers given");
    }
    if (opts.upper.empty() != opts.work.empty()) {
        throw UsageError("union filesystem: upperdir and workdir must be given together");
    }
    std::vector<std::string> paths;
    if (m_writable) {
        paths.push_back(opts.upper);
    }
    paths.insert(paths.end(), opts.lowers.begin(), opts.lowers.end());
    std::vector<dev_t> devs;
    for (const auto& p : paths) {
        Layer l;
        l.path = fs::absolute(p);
        l.root = fs::open(l.path, O_PATH | O_DIRECTORY);
        struct stat st = fs::fstat(l.root.get());
        l.dev = st.st_dev;
        auto it = std::find(devs.begin(), devs.end(), st.st_dev);
        if (it == devs.end()) {
            devs.push_back(st.st_dev);
            it = devs.end() - 1;
        }
        l.ino_tag = static_cast<std::uint64_t>(it - devs.begin()) << 56;
        m_layers.push_back(std::move(l));
    }
    m_same_dev = devs.size() == 1;
    if (m_writable) {
        m_work = fs::open(fs::absolute(opts.work), O_PATH | O_DIRECTORY);
        if (fs::fstat(m_work.get()).st_dev != m_layers[0].dev) {
            throw UsageError("union filesystem: workdir \"" + opts.work +
                             "\" must be on the same filesystem as upperdir \"" + opts.upper +
                             "\"");
        }
    }
    m_timeout = opts.timeout.value_or(m_writable ? 1.0 : k_forever);
    m_root = new Node;
    m_root->type = S_IFDIR;
    m_root->nlookup = 1;
    for (int i = 0; i < static_cast<int>(m_layers.size()); ++i) {
        m_root->dir_layers.push_back(i);
    }
    m_root->st_ino = FUSE_ROOT_ID;
}

Fs::~Fs() {
    for (auto& [k, n] : m_nodes) {
        if (n != m_root) {
            n->read_fd.reset();
        }
    }
    // Nodes still referenced by the kernel at unmount are freed with the process.
    delete m_root;
}

std::string Fs::path_of(const Node* n) const {
    if (n == m_root) {
        return ".";
    }
    std::vector<const std::string*> parts;
    for (const Node* p = n; p != m_root; p = p->parent) {
        if (p == nullptr || p->deleted) {
            throw StaleNode{};
        }
        parts.push_back(&p->name);
    }
    std::string out;
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (!out.empty()) {
            out += '/';
        }
        out += **it;
    }
    return out;
}

ino_t Fs::map_ino(int layer, ino_t ino) const {
    if (m_same_dev) {
        return ino;
    }
    return (ino & ((1ULL << 56) - 1)) | m_layers[static_cast<std::size_t>(layer)].ino_tag;
}

void Fs::set_parent(Node* n, Node* parent, const std::string& name) {
    if (n->parent != parent) {
        if (parent != nullptr) {
            ++parent->children;
        }
        Node* old = n->parent;
        n->parent = parent;
        if (old != nullptr) {
            --old->children;
            unref(old, 0);
        }
    }
    n->name = name;
}

void Fs::add_name(Node* n, Node* parent, const std::string& name) {
    if (n->parent == parent && n->name == name) {
        return;
    }
    if (S_ISDIR(n->type) || n->parent == nullptr) {
        set_parent(n, parent, name); // a directory has one name: it was renamed
        return;
    }
    for (const auto& a : n->aliases) {
        if (a.first == parent && a.second == name) {
            return;
        }
    }
    ++parent->children;
    n->aliases.emplace_back(parent, name);
}

void Fs::make_primary(Node* n, Node* parent, const std::string& name) {
    if (n->parent == parent && n->name == name) {
        return;
    }
    for (auto& a : n->aliases) {
        if (a.first == parent && a.second == name) {
            // Both names keep their reference on their parent: only swap.
            std::swap(n->parent, a.first);
            std::swap(n->name, a.second);
            return;
        }
    }
}

void Fs::clear_aliases(Node* n) {
    auto aliases = std::move(n->aliases);
    n->aliases.clear();
    for (auto& a : aliases) {
        --a.first->children;
        unref(a.first, 0);
    }
}

void Fs::drop_name(Node* n, Node* parent, const std::string& name) {
    if (n->parent == parent && n->name == name) {
        if (n->aliases.empty()) {
            return; // keep the last name: open files still copy up through it
        }
        auto [p, nm] = n->aliases.back();
        n->aliases.pop_back();
        set_parent(n, p, nm);
        --p->children; // the alias's reference moves to the primary
        return;
    }
    for (auto it = n->aliases.begin(); it != n->aliases.end(); ++it) {
        if (it->first == parent && it->second == name) {
            Node* p = it->first;
            n->aliases.erase(it);
            --p->children;
            unref(p, 0);
            return;
        }
    }
}

Node* Fs::get_node(Node* parent, const std::string& name, const Found& f) {
    Key key = key_of(f.layer, f.st);
    Node* n = nullptr;
    auto it = m_nodes.find(key);
    if (it != m_nodes.end()) {
        n = it->second;
        if ((n->type & S_IFMT) != (f.st.st_mode & S_IFMT)) {
            unhash(n); // the inode number was reused for another file
            n->deleted = true;
            n = nullptr;
        }
    }
    if (n == nullptr) {
        n = new Node;
        n->type = f.st.st_mode & S_IFMT;
        n->st_ino = map_ino(f.layer, f.st.st_ino);
        n->key = key;
        n->hashed = true;
        m_nodes.emplace(key, n);
    }
    if (n->parent == nullptr) {
        set_parent(n, parent, name);
    } else {
        add_name(n, parent, name);
    }
    n->layer = f.layer;
    n->dir_layers = f.dir_layers;
    ++n->nlookup;
    return n;
}

void Fs::unhash(Node* n) {
    if (n->hashed) {
        auto it = m_nodes.find(n->key);
        if (it != m_nodes.end() && it->second == n) {
            m_nodes.erase(it);
        }
        n->hashed = false;
    }
}

void Fs::rekey(Node* n, const Key& k) {
    unhash(n);
    n->key = k;
    auto it = m_nodes.find(k);
    if (it != m_nodes.end() && it->second != n) {
        it->second->hashed = false;
        m_nodes.erase(it);
    }
    m_nodes.emplace(k, n);
    n->hashed = true;
}

void Fs::unref(Node* n, std::uint64_t count) {
    while (n != nullptr && n != m_root) {
        n->nlookup -= std::min(count, n->nlookup);
        if (n->nlookup > 0 || n->children > 0) {
            return;
        }
        unhash(n);
        Node* parent = n->parent;
        for (auto& a : n->aliases) {
            --a.first->children;
            unref(a.first, 0);
        }
        if (n->read_fd.reset()) {
            --m_cached_fds;
        }
        delete n;
        if (parent == nullptr) {
            return;
        }
        --parent->children;
        n = parent;
        count = 0;
    }
}

void Fs::fix_attr(const Node* n, struct stat& st) const {
    st.st_ino = n->st_ino;
    if (S_ISDIR(st.st_mode) && n->dir_layers.size() > 1) {
        st.st_nlink = 1; // as overlayfs reports for merged directories
    }
}

void Fs::fill_entry(Node* n, const Found& f, fuse_entry_param& e) const {
    e.ino = id_of(n);
    e.generation = 0;
    e.attr = f.st;
    fix_attr(n, e.attr);
    e.attr_timeout = m_timeout;
    e.entry_timeout = m_timeout;
}

void Fs::forget(fuse_ino_t ino, std::uint64_t n) {
    std::lock_guard lock(m_tree);
    unref(node_of(ino), n);
}

} // namespace strata::layerfs::unionfs
