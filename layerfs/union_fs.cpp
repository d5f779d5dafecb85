// See union_fs.hpp for what this filesystem does and does not do.
//
// Design (after libfuse's passthrough_ll and fuse-overlayfs):
// - Layers are directories opened once (O_PATH); entries are reached by
//   paths relative to a layer root with *at calls. A directory node records
//   which layers it merges ("dir_layers", top first, cut at an opaque
//   directory or a non-directory). A child is only ever looked up in its
//   parent's dir_layers, in which every ancestor was found to be a real
//   directory, so no lower symlink is ever followed on the host.
// - A Node is keyed by the (dev, ino) of its top-most file, so hard links in
//   a layer are one FUSE inode with the right link count. The inode number
//   reported to users is fixed when the node is created and kept across
//   copy-up, so it stays stable for the life of the mount.
// - Locking: one mutex (Fs::m_tree) guards the node table and every Node's
//   parent/name/layer/dir_layers/nlookup/children. Metadata work runs under
//   it; file reads and writes on open handles do not take it.
// - Every FUSE callback is a thin adapter: one trace line, a worker that
//   returns an errno, the reply. No exception crosses into libfuse.

#include "layerfs/union_fs.hpp"

#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/scope.hpp"

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <memory>
#include <mutex>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <syslog.h>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>

namespace strata::layerfs {

std::vector<std::string> split_layer_list(const std::string& list) {
    std::vector<std::string> out;
    std::string cur;
    for (std::size_t i = 0; i < list.size(); ++i) {
        char c = list[i];
        if (c == '\\' && i + 1 < list.size()) {
            cur += list[++i];
        } else if (c == ':') {
            if (!cur.empty()) {
                out.push_back(cur);
            }
            cur.clear();
        } else {
            cur += c;
        }
    }
    if (!cur.empty()) {
        out.push_back(cur);
    }
    return out;
}

namespace {

// The kernel keeps entries and attributes this long on a read-only mount:
// layers never change, so this is "for ever" in practice.
constexpr double k_forever = 365.0 * 24 * 3600;
// Cached read fds (read-only mode opens files without FUSE_OPEN) are capped
// well below the machine's NOFILE limit (20000 hard on our CI machines).
constexpr int k_max_cached_fds = 4096;
// Reads up to this size are answered from a buffer rather than by splice:
// splicing costs three syscalls (file to pipe, header, pipe to /dev/fuse)
// where a copy costs two, and copying a few pages is cheap.
constexpr std::size_t k_small_read = 32 * 1024;
constexpr std::string_view k_wh_prefix = ".wh.";
constexpr const char* k_wh_opaque = ".wh..wh..opq";

bool is_whiteout(const struct stat& st) {
    return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

bool is_internal_xattr(std::string_view name) {
    return name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.");
}

std::string join_rel(const std::string& dir, const std::string& name) {
    return dir == "." ? name : dir + "/" + name;
}

struct Layer {
    std::string path;
    UniqueFd root; // O_PATH directory
    dev_t dev = 0;
    std::uint64_t ino_tag = 0; // high bits mixed into inode numbers when layers span devices
};

struct Key {
    dev_t dev;
    ino_t ino;
    bool operator==(const Key&) const = default;
};
struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept {
        return std::hash<std::uint64_t>()(k.ino * 0x9E3779B97F4A7C15ULL ^ k.dev);
    }
};

struct Node {
    // All fields but read_fd are guarded by Fs::m_tree.
    Node* parent = nullptr;
    std::string name;
    // Other names of a hard-linked file (each holds a reference on its parent):
    // when the primary name goes away, one of these takes over.
    std::vector<std::pair<Node*, std::string>> aliases;
    std::uint64_t nlookup = 0;
    std::uint64_t children = 0; // nodes whose parent is this one
    int layer = 0;              // top-most layer holding the entry
    mode_t type = 0;            // S_IFMT bits
    std::vector<int> dir_layers;
    ino_t st_ino = 0;           // reported, fixed at creation
    Key key{};
    bool hashed = false;        // present in Fs::m_nodes under key
    // Removed from the union while the kernel still holds it: its path may
    // now name something else (even a symlink), so it is never used again.
    bool deleted = false;
    std::atomic<int> read_fd{-1}; // read-only mode: cached O_RDONLY fd
    // Read-only mode: the merged listing, computed once (layers never change).
    std::shared_ptr<const std::vector<struct DirEntry>> listing;
};

// A resolved merged entry.
struct Found {
    int layer = -1;
    struct stat st {};
    std::vector<int> dir_layers;
};

// Thrown by Fs::path_of for a node (or an ancestor) removed from the union;
// the callback boundary turns it into ENOENT.
struct StaleNode {};

struct DirEntry {
    std::string name;
    int layer;
    struct stat st;
};

using Listing = std::shared_ptr<const std::vector<DirEntry>>;

struct DirHandle {
    Listing entries; // snapshot taken at opendir: offsets stay stable
};

class Fs {
public:
    explicit Fs(const UnionOptions& opts);
    ~Fs();

    bool writable() const { return m_writable; }
    double timeout() const { return m_timeout; }
    void set_no_open(bool v) { m_no_open = v; }
    void set_no_opendir(bool v) { m_no_opendir = v; }
    bool no_open() const { return m_no_open; }
    // The kernel's INIT has been answered: the mount serves requests.
    void set_initialized() { m_initialized = true; }
    bool initialized() const { return m_initialized; }

    int lookup(fuse_ino_t parent, const char* name, fuse_entry_param& e);
    void forget(fuse_ino_t ino, std::uint64_t n);
    int getattr(fuse_ino_t ino, fuse_file_info* fi, struct stat& st);
    int setattr(fuse_ino_t ino, const struct stat& attr, int to_set, fuse_file_info* fi,
                struct stat& out);
    int readlink(fuse_ino_t ino, std::string& out);
    int opendir(fuse_ino_t ino, fuse_file_info* fi);
    int readdir(fuse_req_t req, fuse_ino_t ino, std::size_t size, off_t off, fuse_file_info* fi,
                bool plus, std::string& buf);
    int open(fuse_ino_t ino, fuse_file_info* fi);
    int read_fd(fuse_ino_t ino, fuse_file_info* fi, int& fd, bool& close_after);
    int statfs(struct statvfs& st);
    int getxattr(fuse_ino_t ino, const char* name, std::size_t size, std::string& out,
                 std::size_t& needed);
    int listxattr(fuse_ino_t ino, std::size_t size, std::string& out, std::size_t& needed);
    int setxattr(fuse_ino_t ino, const char* name, const char* value, std::size_t size,
                 int flags);
    int removexattr(fuse_ino_t ino, const char* name);
    int make(fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev, const char* link_target,
             const fuse_ctx* ctx, fuse_file_info* fi, fuse_entry_param& e);
    int link(fuse_ino_t ino, fuse_ino_t newparent, const char* newname, fuse_entry_param& e);
    int unlink(fuse_ino_t parent, const char* name, bool dir);
    int rename(fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
               unsigned flags);

private:
    Node* node_of(fuse_ino_t ino) const {
        return ino == FUSE_ROOT_ID ? m_root : reinterpret_cast<Node*>(ino);
    }
    fuse_ino_t id_of(Node* n) const {
        return n == m_root ? FUSE_ROOT_ID : reinterpret_cast<fuse_ino_t>(n);
    }
    int upper() const { return m_layers[0].root.get(); }
    template <typename Op>
    int change_xattr(fuse_ino_t ino, const char* name, int internal_err, Op&& op);
    std::string path_of(const Node* n) const;
    std::string proc_path(int layer, const std::string& rel) const {
        return "/proc/self/fd/" + std::to_string(m_layers[static_cast<std::size_t>(layer)].root.get()) +
               "/" + rel;
    }
    int root_fd(int layer) const { return m_layers[static_cast<std::size_t>(layer)].root.get(); }
    bool is_opaque(int layer, const std::string& rel) const;
    bool oci_whiteout_at(int layer, const std::string& dir, const std::string& name) const;
    int resolve(const Node* parent, const std::string& parent_path, const std::string& name,
                Found& out, bool skip_upper = false) const;
    void collect_dir_layers(const std::vector<int>& parent_layers, std::size_t from,
                            const std::string& rel, Found& f) const;
    int list_dir(const std::vector<int>& layers, const std::string& rel,
                 std::vector<DirEntry>& out) const;
    int listing_of(Node* n, Listing& out);
    Node* get_node(Node* parent, const std::string& name, const Found& f);
    void unhash(Node* n);
    void rekey(Node* n, const Key& k);
    void set_parent(Node* n, Node* parent, const std::string& name);
    void add_name(Node* n, Node* parent, const std::string& name);
    // Makes (parent, name), a known name of n, the one its path uses.
    void make_primary(Node* n, Node* parent, const std::string& name);
    void clear_aliases(Node* n);
    // The name (parent, name) of n is gone: drop it, promoting an alias.
    void drop_name(Node* n, Node* parent, const std::string& name);
    void unref(Node* n, std::uint64_t count);
    void fill_entry(Node* n, const Found& f, fuse_entry_param& e) const;
    // Resolves (parent, name) in the union and fills e for it: lookup, and the
    // entry a create or link answers with.
    int entry_for(Node* parent, const std::string& parent_path, const std::string& name,
                  fuse_entry_param& e);
    void fix_attr(const Node* n, struct stat& st) const;
    Key key_of(int layer, const struct stat& st) const {
        return Key{m_layers[static_cast<std::size_t>(layer)].dev, st.st_ino};
    }
    ino_t map_ino(int layer, ino_t ino) const;

    // Writable-mode helpers; all run with m_tree held.
    int copy_up(Node* n);
    int copy_up_tree(Node* n);
    int copy_file_data(int src, int dst) const;
    void copy_xattrs(int src_layer, const std::string& src, const std::string& dst_proc) const;
    int make_whiteout(const std::string& rel);
    int remove_upper_whiteout(const std::string& dir, const std::string& name, bool& had);
    int clear_upper_dir(const std::string& rel);
    int set_opaque(const std::string& rel);
    bool lower_has(const Node* parent, const std::string& parent_path,
                   const std::string& name) const;
    std::string temp_name();

    std::vector<Layer> m_layers; // [0] is the upper layer when writable
    bool m_writable;
    bool m_same_dev = true;
    bool m_is_root = ::geteuid() == 0;
    double m_timeout;
    bool m_no_open = false;
    bool m_no_opendir = false;
    bool m_initialized = false;
    std::atomic<bool> m_oci_whiteouts{false}; // mknod refused: write ".wh." files
    std::atomic<int> m_cached_fds{0};
    std::atomic<std::uint64_t> m_tmp_counter{0};
    UniqueFd m_work;

    mutable std::mutex m_tree;
    Node* m_root = nullptr;
    std::unordered_map<Key, Node*, KeyHash> m_nodes; // guarded by m_tree
};

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
            int fd = n->read_fd.exchange(-1);
            if (fd >= 0) {
                ::close(fd);
            }
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

bool Fs::is_opaque(int layer, const std::string& rel) const {
    std::string p = proc_path(layer, rel);
    char v[2];
    for (const char* name : {"trusted.overlay.opaque", "user.overlay.opaque"}) {
        ssize_t n = ::lgetxattr(p.c_str(), name, v, sizeof v);
        if (n == 1 && v[0] == 'y') {
            return true;
        }
    }
    struct stat st;
    return ::fstatat(root_fd(layer), join_rel(rel, k_wh_opaque).c_str(), &st,
                     AT_SYMLINK_NOFOLLOW) == 0;
}

bool Fs::oci_whiteout_at(int layer, const std::string& dir, const std::string& name) const {
    struct stat st;
    return ::fstatat(root_fd(layer), join_rel(dir, std::string(k_wh_prefix) + name).c_str(), &st,
                     AT_SYMLINK_NOFOLLOW) == 0;
}

// Continues a directory's layer list below layer index `from` of the
// parent's list: lower directories of the same name merge until an opaque
// directory, a non-directory or a whiteout.
void Fs::collect_dir_layers(const std::vector<int>& parent_layers, std::size_t from,
                            const std::string& rel, Found& f) const {
    f.dir_layers.assign(1, f.layer);
    if (is_opaque(f.layer, rel)) {
        return;
    }
    std::string dir = fs::dirname(rel);
    if (dir.empty()) {
        dir = ".";
    }
    std::string name = fs::basename(rel);
    for (std::size_t i = from + 1; i < parent_layers.size(); ++i) {
        int k = parent_layers[i];
        struct stat st;
        if (::fstatat(root_fd(k), rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (oci_whiteout_at(k, dir, name)) {
                return;
            }
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            return; // a whiteout or a file ends the merge
        }
        f.dir_layers.push_back(k);
        if (is_opaque(k, rel)) {
            return;
        }
    }
}

int Fs::resolve(const Node* parent, const std::string& parent_path, const std::string& name,
                Found& out, bool skip_upper) const {
    if (name.starts_with(k_wh_prefix)) {
        return ENOENT; // OCI whiteout markers are never visible
    }
    std::string rel = join_rel(parent_path, name);
    const auto& layers = parent->dir_layers;
    for (std::size_t i = 0; i < layers.size(); ++i) {
        int k = layers[i];
        if (skip_upper && m_writable && k == 0) {
            continue;
        }
        if (::fstatat(root_fd(k), rel.c_str(), &out.st, AT_SYMLINK_NOFOLLOW) < 0) {
            int err = errno;
            if (err != ENOENT && err != ENOTDIR) {
                return err;
            }
            if (oci_whiteout_at(k, parent_path, name)) {
                return ENOENT;
            }
            continue;
        }
        if (is_whiteout(out.st)) {
            return ENOENT;
        }
        out.layer = k;
        out.dir_layers.clear();
        if (S_ISDIR(out.st.st_mode)) {
            collect_dir_layers(layers, i, rel, out);
        }
        return 0;
    }
    return ENOENT;
}

int Fs::list_dir(const std::vector<int>& layers, const std::string& rel,
                 std::vector<DirEntry>& out) const {
    std::unordered_set<std::string> seen; // names shown or whited out
    for (int k : layers) {
        int fd = ::openat(root_fd(k), rel.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT) {
                continue; // removed from the upper meanwhile
            }
            return errno;
        }
        DIR* d = ::fdopendir(fd);
        if (d == nullptr) {
            int err = errno;
            ::close(fd);
            return err;
        }
        std::vector<std::string> hide; // whiteouts of this layer apply to the layers below
        while (auto* de = ::readdir(d)) {
            std::string n = de->d_name;
            if (n == "." || n == "..") {
                continue;
            }
            if (n.starts_with(k_wh_prefix)) {
                if (n != k_wh_opaque) {
                    hide.push_back(n.substr(k_wh_prefix.size()));
                }
                continue;
            }
            if (seen.count(n) != 0) {
                continue;
            }
            struct stat st;
            if (::fstatat(::dirfd(d), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT) {
                    continue;
                }
                int err = errno;
                ::closedir(d);
                return err;
            }
            seen.insert(n);
            if (is_whiteout(st)) {
                continue;
            }
            out.push_back(DirEntry{n, k, st});
        }
        ::closedir(d);
        for (auto& h : hide) {
            seen.insert(std::move(h));
        }
    }
    return 0;
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
        int fd = n->read_fd.exchange(-1);
        if (fd >= 0) {
            ::close(fd);
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

int Fs::lookup(fuse_ino_t parent_id, const char* name, fuse_entry_param& e) {
    std::lock_guard lock(m_tree);
    Node* parent = node_of(parent_id);
    int err = entry_for(parent, path_of(parent), name, e);
    if (err == ENOENT) {
        // A negative entry, cached as long as positive ones.
        e = fuse_entry_param{};
        e.ino = 0;
        e.entry_timeout = m_timeout;
        return 0;
    }
    return err;
}

int Fs::entry_for(Node* parent, const std::string& parent_path, const std::string& name,
                  fuse_entry_param& e) {
    Found f;
    int err = resolve(parent, parent_path, name, f);
    if (err != 0) {
        return err;
    }
    fill_entry(get_node(parent, name, f), f, e);
    return 0;
}

void Fs::forget(fuse_ino_t ino, std::uint64_t n) {
    std::lock_guard lock(m_tree);
    unref(node_of(ino), n);
}

int Fs::getattr(fuse_ino_t ino, fuse_file_info* fi, struct stat& st) {
    if (fi != nullptr && fi->fh != 0 && !m_no_open) {
        if (::fstat(static_cast<int>(fi->fh), &st) == 0) {
            std::lock_guard lock(m_tree);
            fix_attr(node_of(ino), st);
            return 0;
        }
    }
    std::lock_guard lock(m_tree);
    Node* n = node_of(ino);
    if (n == m_root) {
        if (::fstat(root_fd(0), &st) < 0) {
            return errno;
        }
        if (m_layers.size() > 1) {
            st.st_nlink = 1;
        }
        st.st_ino = FUSE_ROOT_ID;
        return 0;
    }
    if (::fstatat(root_fd(n->layer), path_of(n).c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
        return errno;
    }
    fix_attr(n, st);
    return 0;
}

int Fs::readlink(fuse_ino_t ino, std::string& out) {
    std::string path;
    int layer;
    {
        std::lock_guard lock(m_tree);
        Node* n = node_of(ino);
        path = path_of(n);
        layer = n->layer;
    }
    char buf[PATH_MAX + 1];
    ssize_t r = ::readlinkat(root_fd(layer), path.c_str(), buf, sizeof buf);
    if (r < 0) {
        return errno;
    }
    if (static_cast<std::size_t>(r) > PATH_MAX) {
        return ENAMETOOLONG;
    }
    out.assign(buf, static_cast<std::size_t>(r));
    return 0;
}

// With m_tree held. Read-only listings are kept in the node for ever;
// writable ones are fresh for every opendir.
int Fs::listing_of(Node* n, Listing& out) {
    if (!m_writable && n->listing) {
        out = n->listing;
        return 0;
    }
    auto entries = std::make_shared<std::vector<DirEntry>>();
    int err = list_dir(n->dir_layers, path_of(n), *entries);
    if (err != 0) {
        return err;
    }
    out = std::move(entries);
    if (!m_writable) {
        n->listing = out;
    }
    return 0;
}

int Fs::opendir(fuse_ino_t ino, fuse_file_info* fi) {
    if (m_no_opendir) {
        return ENOSYS; // the kernel stops sending OPENDIR; readdir uses the node's listing
    }
    auto h = std::make_unique<DirHandle>();
    {
        std::lock_guard lock(m_tree);
        int err = listing_of(node_of(ino), h->entries);
        if (err != 0) {
            return err;
        }
    }
    fi->fh = reinterpret_cast<std::uint64_t>(h.release());
    if (!m_writable) {
        fi->cache_readdir = 1;
        fi->keep_cache = 1;
    }
    return 0;
}

int Fs::readdir(fuse_req_t req, fuse_ino_t ino, std::size_t size, off_t off, fuse_file_info* fi,
                bool plus, std::string& buf) {
    Listing entries;
    if (fi->fh != 0) {
        entries = reinterpret_cast<DirHandle*>(fi->fh)->entries;
    } else {
        std::lock_guard lock(m_tree);
        int err = listing_of(node_of(ino), entries);
        if (err != 0) {
            return err;
        }
    }
    buf.resize(size);
    std::size_t used = 0;
    // Offsets: 1 is ".", 2 is "..", 3 + i is entries[i].
    auto total = static_cast<off_t>(entries->size()) + 2;
    std::unique_lock lock(m_tree, std::defer_lock);
    if (plus) {
        lock.lock();
    }
    Node* dir = node_of(ino);
    std::string dir_path = plus ? path_of(dir) : std::string();
    // glibc's readdir skips entries whose d_ino is 0: give the dots real numbers.
    ino_t dot_ino = 0;
    ino_t dotdot_ino = FUSE_ROOT_ID;
    {
        std::unique_lock dots_lock(m_tree, std::defer_lock);
        if (!plus) {
            dots_lock.lock();
        }
        dot_ino = dir->st_ino;
        if (dir->parent != nullptr) {
            dotdot_ino = dir->parent->st_ino;
        }
    }
    for (off_t i = off; i < total; ++i) {
        std::string name;
        struct stat st {};
        const DirEntry* de = nullptr;
        if (i < 2) {
            name = i == 0 ? "." : "..";
            st.st_mode = S_IFDIR;
            st.st_ino = i == 0 ? dot_ino : dotdot_ino;
        } else {
            de = &(*entries)[static_cast<std::size_t>(i - 2)];
            name = de->name;
            st = de->st;
        }
        std::size_t room = size - used;
        if (!plus) {
            std::size_t need = fuse_add_direntry(req, nullptr, 0, name.c_str(), nullptr, 0);
            if (need > room) {
                break;
            }
            if (de != nullptr) {
                st.st_ino = map_ino(de->layer, de->st.st_ino);
            }
            fuse_add_direntry(req, buf.data() + used, room, name.c_str(), &st, i + 1);
            used += need;
            continue;
        }
        std::size_t need = fuse_add_direntry_plus(req, nullptr, 0, name.c_str(), nullptr, 0);
        if (need > room) {
            break;
        }
        fuse_entry_param e{};
        if (de == nullptr) {
            e.attr = st; // "." and "..": no lookup count is taken
        } else {
            Found f;
            f.layer = de->layer;
            f.st = de->st;
            if (S_ISDIR(de->st.st_mode)) {
                // The parent's layers decide where this directory merges from.
                auto pos = std::find(dir->dir_layers.begin(), dir->dir_layers.end(), de->layer);
                collect_dir_layers(dir->dir_layers,
                                   static_cast<std::size_t>(pos - dir->dir_layers.begin()),
                                   join_rel(dir_path, name), f);
            }
            Node* n = get_node(dir, name, f);
            fill_entry(n, f, e);
        }
        fuse_add_direntry_plus(req, buf.data() + used, room, name.c_str(), &e, i + 1);
        used += need;
    }
    buf.resize(used);
    return 0;
}

int Fs::open(fuse_ino_t ino, fuse_file_info* fi) {
    if (m_no_open) {
        return ENOSYS; // the kernel stops sending FUSE_OPEN and keeps the page cache
    }
    int flags = fi->flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_APPEND);
    bool write = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC) != 0;
    if (write && !m_writable) {
        return EROFS;
    }
    std::string path;
    int layer;
    {
        std::lock_guard lock(m_tree);
        Node* n = node_of(ino);
        if (write) {
            int err = copy_up(n);
            if (err != 0) {
                return err;
            }
        }
        path = path_of(n);
        layer = n->layer;
    }
    int fd = ::openat(root_fd(layer), path.c_str(), flags | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return errno;
    }
    fi->fh = static_cast<std::uint64_t>(fd);
    fi->keep_cache = 1;
    return 0;
}

int Fs::read_fd(fuse_ino_t ino, fuse_file_info* fi, int& fd, bool& close_after) {
    close_after = false;
    if (!m_no_open) {
        fd = static_cast<int>(fi->fh);
        return 0;
    }
    Node* n = node_of(ino);
    fd = n->read_fd.load(std::memory_order_acquire);
    if (fd >= 0) {
        return 0;
    }
    std::string path;
    int layer;
    {
        std::lock_guard lock(m_tree);
        path = path_of(n);
        layer = n->layer;
    }
    fd = ::openat(root_fd(layer), path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return errno;
    }
    if (m_cached_fds.fetch_add(1) < k_max_cached_fds) {
        int expected = -1;
        if (n->read_fd.compare_exchange_strong(expected, fd)) {
            return 0;
        }
        fd = expected; // another reader cached one first
        --m_cached_fds;
        close_after = false;
        return 0;
    }
    --m_cached_fds;
    close_after = true;
    return 0;
}

int Fs::statfs(struct statvfs& st) {
    if (::fstatvfs(root_fd(0), &st) < 0) {
        return errno;
    }
    return 0;
}

int Fs::getxattr(fuse_ino_t ino, const char* name, std::size_t size, std::string& out,
                 std::size_t& needed) {
    if (is_internal_xattr(name)) {
        return ENODATA;
    }
    std::string p;
    {
        std::lock_guard lock(m_tree);
        Node* n = node_of(ino);
        p = proc_path(n->layer, path_of(n));
    }
    if (size == 0) {
        ssize_t r = ::lgetxattr(p.c_str(), name, nullptr, 0);
        if (r < 0) {
            return errno;
        }
        needed = static_cast<std::size_t>(r);
        return 0;
    }
    out.resize(size);
    ssize_t r = ::lgetxattr(p.c_str(), name, out.data(), size);
    if (r < 0) {
        return errno;
    }
    out.resize(static_cast<std::size_t>(r));
    return 0;
}

int Fs::listxattr(fuse_ino_t ino, std::size_t size, std::string& out, std::size_t& needed) {
    std::string p;
    {
        std::lock_guard lock(m_tree);
        Node* n = node_of(ino);
        p = proc_path(n->layer, path_of(n));
    }
    std::string raw;
    for (;;) {
        ssize_t r = ::llistxattr(p.c_str(), nullptr, 0);
        if (r < 0) {
            return errno;
        }
        raw.resize(static_cast<std::size_t>(r));
        r = ::llistxattr(p.c_str(), raw.data(), raw.size());
        if (r >= 0) {
            raw.resize(static_cast<std::size_t>(r));
            break;
        }
        if (errno != ERANGE) {
            return errno;
        }
    }
    std::string filtered;
    for (std::size_t i = 0; i < raw.size();) {
        std::size_t end = raw.find('\0', i);
        if (end == std::string::npos) {
            end = raw.size();
        }
        std::string_view n(raw.data() + i, end - i);
        if (!n.empty() && !is_internal_xattr(n)) {
            filtered.append(n);
            filtered += '\0';
        }
        i = end + 1;
    }
    needed = filtered.size();
    if (size == 0) {
        return 0;
    }
    if (filtered.size() > size) {
        return ERANGE;
    }
    out = std::move(filtered);
    return 0;
}

// setxattr and removexattr: copy the inode up, then change the upper copy with op
// (given its /proc path); internal_err for overlay's own xattrs.
template <typename Op>
int Fs::change_xattr(fuse_ino_t ino, const char* name, int internal_err, Op&& op) {
    if (!m_writable) {
        return EROFS;
    }
    if (is_internal_xattr(name)) {
        return internal_err;
    }
    std::lock_guard lock(m_tree);
    Node* n = node_of(ino);
    int err = copy_up(n);
    if (err != 0) {
        return err;
    }
    return op(proc_path(0, path_of(n)).c_str()) < 0 ? errno : 0;
}

int Fs::setxattr(fuse_ino_t ino, const char* name, const char* value, std::size_t size,
                 int flags) {
    return change_xattr(ino, name, EPERM, [&](const char* path) {
        return ::lsetxattr(path, name, value, size, flags);
    });
}

int Fs::removexattr(fuse_ino_t ino, const char* name) {
    return change_xattr(ino, name, ENODATA,
                        [&](const char* path) { return ::lremovexattr(path, name); });
}

// ---- writable mode ----

std::string Fs::temp_name() {
    return "#strata-" + std::to_string(::getpid()) + "-" + std::to_string(++m_tmp_counter);
}

int Fs::copy_file_data(int src, int dst) const {
    for (;;) {
        ssize_t n = ::copy_file_range(src, nullptr, dst, nullptr, 1 << 30, 0);
        if (n == 0) {
            return 0;
        }
        if (n > 0) {
            continue;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) {
            return errno;
        }
        break; // fall back to read/write
    }
    std::vector<char> buf(1 << 20);
    for (;;) {
        ssize_t n = ::read(src, buf.data(), buf.size());
        if (n == 0) {
            return 0;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        ssize_t done = 0;
        while (done < n) {
            ssize_t w = ::write(dst, buf.data() + done, static_cast<std::size_t>(n - done));
            if (w < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return errno;
            }
            done += w;
        }
    }
}

void Fs::copy_xattrs(int src_layer, const std::string& src, const std::string& dst_proc) const {
    std::string sp = proc_path(src_layer, src);
    ssize_t len = ::llistxattr(sp.c_str(), nullptr, 0);
    if (len <= 0) {
        return;
    }
    std::string names(static_cast<std::size_t>(len), '\0');
    len = ::llistxattr(sp.c_str(), names.data(), names.size());
    if (len <= 0) {
        return;
    }
    names.resize(static_cast<std::size_t>(len));
    for (std::size_t i = 0; i < names.size();) {
        std::string name = names.c_str() + i;
        i += name.size() + 1;
        if (name.empty() || is_internal_xattr(name)) {
            continue;
        }
        ssize_t vlen = ::lgetxattr(sp.c_str(), name.c_str(), nullptr, 0);
        if (vlen < 0) {
            continue;
        }
        std::string value(static_cast<std::size_t>(vlen), '\0');
        vlen = ::lgetxattr(sp.c_str(), name.c_str(), value.data(), value.size());
        if (vlen < 0) {
            continue;
        }
        if (::lsetxattr(dst_proc.c_str(), name.c_str(), value.data(),
                        static_cast<std::size_t>(vlen), 0) < 0) {
            // e.g. trusted.* without CAP_SYS_ADMIN: overlayfs drops these too.
            STRATA_LOG_DEBUG("copy-up of \"{}\": xattr {} not copied: {}", src, name,
                             std::strerror(errno));
        }
    }
}

int Fs::copy_up(Node* n) {
    if (!m_writable) {
        return EROFS;
    }
    if (n == m_root || n->layer == 0) {
        return 0;
    }
    if (n->parent == nullptr) {
        return ENOENT;
    }
    int err = copy_up(n->parent);
    if (err != 0) {
        return err;
    }
    std::string rel = path_of(n);
    int src_root = root_fd(n->layer);
    struct stat st;
    if (::fstatat(src_root, rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
        return errno;
    }
    std::string tmp = temp_name();
    int work = m_work.get();
    // Build the copy in the work directory, then rename it into place, so a
    // half-copied file is never visible in the upper layer.
    auto cleanup = [&] { ::unlinkat(work, tmp.c_str(), S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0); };
    if (S_ISREG(st.st_mode)) {
        int src = ::openat(src_root, rel.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (src < 0) {
            return errno;
        }
        UniqueFd src_fd(src);
        int dst = ::openat(work, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (dst < 0) {
            return errno;
        }
        UniqueFd dst_fd(dst);
        err = copy_file_data(src, dst);
        if (err != 0) {
            cleanup();
            return err;
        }
    } else if (S_ISDIR(st.st_mode)) {
        if (::mkdirat(work, tmp.c_str(), 0700) < 0) {
            return errno;
        }
    } else if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX + 1];
        ssize_t r = ::readlinkat(src_root, rel.c_str(), target, PATH_MAX);
        if (r < 0) {
            return errno;
        }
        target[r] = '\0';
        if (::symlinkat(target, work, tmp.c_str()) < 0) {
            return errno;
        }
    } else {
        if (::mknodat(work, tmp.c_str(), st.st_mode, st.st_rdev) < 0) {
            return errno;
        }
    }
    std::string work_proc = "/proc/self/fd/" + std::to_string(work) + "/" + tmp;
    copy_xattrs(n->layer, rel, work_proc);
    if (m_is_root && ::fchownat(work, tmp.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0) {
        err = errno;
        cleanup();
        return err;
    }
    if (!S_ISLNK(st.st_mode) && ::fchmodat(work, tmp.c_str(), st.st_mode & 07777, 0) < 0) {
        err = errno;
        cleanup();
        return err;
    }
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    ::utimensat(work, tmp.c_str(), times, AT_SYMLINK_NOFOLLOW);
    if (::renameat(work, tmp.c_str(), upper(), rel.c_str()) < 0) {
        err = errno;
        cleanup();
        return err;
    }
    struct stat ust;
    if (::fstatat(upper(), rel.c_str(), &ust, AT_SYMLINK_NOFOLLOW) < 0) {
        return errno;
    }
    STRATA_LOG_DEBUG("copy-up \"{}\" from layer {}", rel, n->layer);
    n->layer = 0;
    // Other names of a lower hard link still name the lower file, which is
    // no longer this node's file (overlayfs with index=off does the same).
    clear_aliases(n);
    if (S_ISDIR(st.st_mode)) {
        n->dir_layers.insert(n->dir_layers.begin(), 0);
    }
    rekey(n, key_of(0, ust));
    return 0;
}

// Copies a directory and everything below it into the upper layer and makes
// it opaque, so it can move to a place where the lower layers do not follow.
int Fs::copy_up_tree(Node* n) {
    int err = copy_up(n);
    if (err != 0) {
        return err;
    }
    bool merged = std::any_of(n->dir_layers.begin(), n->dir_layers.end(),
                              [](int k) { return k != 0; });
    if (!merged) {
        return 0;
    }
    std::string rel = path_of(n);
    std::vector<DirEntry> entries;
    err = list_dir(n->dir_layers, rel, entries);
    if (err != 0) {
        return err;
    }
    for (const auto& de : entries) {
        bool is_dir = S_ISDIR(de.st.st_mode);
        if (de.layer == 0 && !is_dir) {
            continue;
        }
        Found f;
        err = resolve(n, rel, de.name, f);
        if (err != 0) {
            return err;
        }
        Node* child = get_node(n, de.name, f); // a temporary reference
        err = is_dir ? copy_up_tree(child) : copy_up(child);
        unref(child, 1);
        if (err != 0) {
            return err;
        }
    }
    err = set_opaque(rel);
    if (err != 0) {
        return err;
    }
    n->dir_layers.assign(1, 0);
    return 0;
}

int Fs::set_opaque(const std::string& rel) {
    std::string p = proc_path(0, rel);
    if (!m_oci_whiteouts.load() &&
        ::lsetxattr(p.c_str(), "trusted.overlay.opaque", "y", 1, 0) == 0) {
        return 0;
    }
    if (::lsetxattr(p.c_str(), "user.overlay.opaque", "y", 1, 0) == 0) {
        return 0;
    }
    // Last resort, the OCI marker file.
    int fd = ::openat(upper(), join_rel(rel, k_wh_opaque).c_str(),
                      O_WRONLY | O_CREAT | O_CLOEXEC, 0000);
    if (fd < 0) {
        return errno;
    }
    ::close(fd);
    return 0;
}

int Fs::make_whiteout(const std::string& rel) {
    if (!m_oci_whiteouts.load()) {
        if (::mknodat(upper(), rel.c_str(), S_IFCHR | 0000, makedev(0, 0)) == 0) {
            return 0;
        }
        if (errno != EPERM) {
            return errno;
        }
        STRATA_LOG_DEBUG("mknod of a whiteout refused, writing .wh. files instead");
        m_oci_whiteouts = true;
    }
    std::string dir = fs::dirname(rel);
    std::string name = std::string(k_wh_prefix) + fs::basename(rel);
    int fd = ::openat(upper(), dir.empty() ? name.c_str() : join_rel(dir, name).c_str(),
                      O_WRONLY | O_CREAT | O_CLOEXEC, 0000);
    if (fd < 0) {
        return errno;
    }
    ::close(fd);
    return 0;
}

int Fs::remove_upper_whiteout(const std::string& dir, const std::string& name, bool& had) {
    had = false;
    std::string rel = join_rel(dir, name);
    struct stat st;
    if (::fstatat(upper(), rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && is_whiteout(st)) {
        if (::unlinkat(upper(), rel.c_str(), 0) < 0) {
            return errno;
        }
        had = true;
    }
    std::string oci = join_rel(dir, std::string(k_wh_prefix) + name);
    if (::unlinkat(upper(), oci.c_str(), 0) == 0) {
        had = true;
    } else if (errno != ENOENT) {
        return errno;
    }
    return 0;
}

// Empties an upper directory that the merged view shows as empty: it can
// only hold whiteouts.
int Fs::clear_upper_dir(const std::string& rel) {
    int fd = ::openat(upper(), rel.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? 0 : errno;
    }
    DIR* d = ::fdopendir(fd);
    if (d == nullptr) {
        int err = errno;
        ::close(fd);
        return err;
    }
    std::vector<std::string> names;
    while (auto* de = ::readdir(d)) {
        std::string n = de->d_name;
        if (n != "." && n != "..") {
            names.push_back(n);
        }
    }
    int err = 0;
    for (const auto& n : names) {
        if (::unlinkat(::dirfd(d), n.c_str(), 0) < 0 && errno != ENOENT) {
            err = errno;
            break;
        }
    }
    ::closedir(d);
    return err;
}

bool Fs::lower_has(const Node* parent, const std::string& parent_path,
                   const std::string& name) const {
    Found f;
    return resolve(parent, parent_path, name, f, true) == 0;
}

int Fs::make(fuse_ino_t parent_id, const char* name_c, mode_t mode, dev_t rdev,
             const char* link_target, const fuse_ctx* ctx, fuse_file_info* fi,
             fuse_entry_param& e) {
    if (!m_writable) {
        return EROFS;
    }
    std::string name = name_c;
    if (name.starts_with(k_wh_prefix)) {
        return EINVAL; // reserved for whiteouts
    }
    std::lock_guard lock(m_tree);
    Node* parent = node_of(parent_id);
    std::string dir = path_of(parent);
    Found existing;
    if (resolve(parent, dir, name, existing) == 0) {
        return EEXIST;
    }
    int err = copy_up(parent);
    if (err != 0) {
        return err;
    }
    bool had_whiteout = false;
    err = remove_upper_whiteout(dir, name, had_whiteout);
    if (err != 0) {
        return err;
    }
    std::string rel = join_rel(dir, name);
    int fd = -1;
    int r;
    if (link_target != nullptr) {
        r = ::symlinkat(link_target, upper(), rel.c_str());
    } else if (S_ISDIR(mode)) {
        r = ::mkdirat(upper(), rel.c_str(), mode & 07777);
    } else if (fi != nullptr) {
        int flags = (fi->flags & ~(O_APPEND | O_NOCTTY)) | O_CREAT | O_EXCL | O_CLOEXEC;
        r = fd = ::openat(upper(), rel.c_str(), flags, mode & 07777);
    } else {
        r = ::mknodat(upper(), rel.c_str(), mode, rdev);
    }
    if (r < 0) {
        err = errno;
        if (had_whiteout) {
            make_whiteout(rel);
        }
        return err;
    }
    UniqueFd fd_guard(fd);
    if (m_is_root && ctx != nullptr) {
        ::fchownat(upper(), rel.c_str(), ctx->uid, ctx->gid, AT_SYMLINK_NOFOLLOW);
    }
    if (S_ISDIR(mode) && had_whiteout) {
        // A whiteout was there: something of this name exists below, and a
        // new directory must not show its contents.
        err = set_opaque(rel);
        if (err != 0) {
            return err;
        }
    }
    err = entry_for(parent, dir, name, e);
    if (err != 0) {
        return err;
    }
    if (fi != nullptr) {
        fi->fh = static_cast<std::uint64_t>(fd_guard.release());
        fi->keep_cache = 1;
    }
    return 0;
}

int Fs::link(fuse_ino_t ino, fuse_ino_t newparent_id, const char* newname_c,
             fuse_entry_param& e) {
    if (!m_writable) {
        return EROFS;
    }
    std::string newname = newname_c;
    if (newname.starts_with(k_wh_prefix)) {
        return EINVAL;
    }
    std::lock_guard lock(m_tree);
    Node* n = node_of(ino);
    Node* newparent = node_of(newparent_id);
    std::string dir = path_of(newparent);
    Found existing;
    if (resolve(newparent, dir, newname, existing) == 0) {
        return EEXIST;
    }
    int err = copy_up(n);
    if (err == 0) {
        err = copy_up(newparent);
    }
    if (err != 0) {
        return err;
    }
    dir = path_of(newparent);
    bool had = false;
    err = remove_upper_whiteout(dir, newname, had);
    if (err != 0) {
        return err;
    }
    std::string rel = join_rel(dir, newname);
    if (::linkat(upper(), path_of(n).c_str(), upper(), rel.c_str(), 0) < 0) {
        err = errno;
        if (had) {
            make_whiteout(rel);
        }
        return err;
    }
    // Same (dev, ino): the same node, with one more name.
    return entry_for(newparent, dir, newname, e);
}

int Fs::unlink(fuse_ino_t parent_id, const char* name_c, bool dir) {
    if (!m_writable) {
        return EROFS;
    }
    std::string name = name_c;
    std::lock_guard lock(m_tree);
    Node* parent = node_of(parent_id);
    std::string dpath = path_of(parent);
    Found f;
    int err = resolve(parent, dpath, name, f);
    if (err != 0) {
        return err;
    }
    bool is_dir = S_ISDIR(f.st.st_mode);
    if (dir && !is_dir) {
        return ENOTDIR;
    }
    if (!dir && is_dir) {
        return EISDIR;
    }
    std::string rel = join_rel(dpath, name);
    if (is_dir) {
        std::vector<DirEntry> entries;
        err = list_dir(f.dir_layers, rel, entries);
        if (err != 0) {
            return err;
        }
        if (!entries.empty()) {
            return ENOTEMPTY;
        }
    }
    err = copy_up(parent);
    if (err != 0) {
        return err;
    }
    dpath = path_of(parent);
    bool below = lower_has(parent, dpath, name);
    if (f.layer == 0) {
        if (is_dir) {
            err = clear_upper_dir(rel);
            if (err != 0) {
                return err;
            }
        }
        if (::unlinkat(upper(), rel.c_str(), is_dir ? AT_REMOVEDIR : 0) < 0) {
            return errno;
        }
    }
    if (below) {
        err = make_whiteout(rel);
        if (err != 0) {
            return err;
        }
    }
    auto it = m_nodes.find(key_of(f.layer, f.st));
    if (it != m_nodes.end()) {
        Node* victim = it->second;
        if (is_dir || f.st.st_nlink <= 1) {
            unhash(victim);
            victim->deleted = true;
        } else {
            drop_name(victim, parent, name);
        }
    }
    return 0;
}

int Fs::rename(fuse_ino_t parent_id, const char* name_c, fuse_ino_t newparent_id,
               const char* newname_c, unsigned flags) {
    if (!m_writable) {
        return EROFS;
    }
    if ((flags & ~static_cast<unsigned>(RENAME_NOREPLACE)) != 0) {
        return EINVAL; // RENAME_EXCHANGE / RENAME_WHITEOUT are not supported
    }
    std::string name = name_c;
    std::string newname = newname_c;
    if (newname.starts_with(k_wh_prefix)) {
        return EINVAL;
    }
    std::lock_guard lock(m_tree);
    Node* parent = node_of(parent_id);
    Node* newparent = node_of(newparent_id);
    Found src;
    int err = resolve(parent, path_of(parent), name, src);
    if (err != 0) {
        return err;
    }
    Found dst;
    bool dst_exists = resolve(newparent, path_of(newparent), newname, dst) == 0;
    bool src_dir = S_ISDIR(src.st.st_mode);
    if (dst_exists) {
        if ((flags & RENAME_NOREPLACE) != 0) {
            return EEXIST;
        }
        if (key_of(src.layer, src.st) == key_of(dst.layer, dst.st)) {
            return 0; // the same file: rename(2) does nothing
        }
        bool dst_dir = S_ISDIR(dst.st.st_mode);
        if (src_dir && !dst_dir) {
            return ENOTDIR;
        }
        if (!src_dir && dst_dir) {
            return EISDIR;
        }
        if (dst_dir) {
            std::vector<DirEntry> entries;
            err = list_dir(dst.dir_layers, join_rel(path_of(newparent), newname), entries);
            if (err != 0) {
                return err;
            }
            if (!entries.empty()) {
                return ENOTEMPTY;
            }
        }
    }
    // Take a reference on the source so it has a node to copy up through,
    // under the name being renamed (a hard link has several).
    Node* n = get_node(parent, name, src);
    make_primary(n, parent, name);
    auto release = [&] { unref(n, 1); };
    err = src_dir ? copy_up_tree(n) : copy_up(n);
    if (err == 0) {
        err = copy_up(newparent);
    }
    if (err != 0) {
        release();
        return err;
    }
    std::string old_dir = path_of(parent);
    std::string new_dir = path_of(newparent);
    std::string old_rel = join_rel(old_dir, name);
    std::string new_rel = join_rel(new_dir, newname);
    bool old_below = lower_has(parent, old_dir, name);
    bool new_below = lower_has(newparent, new_dir, newname);
    bool had_whiteout = false;
    err = remove_upper_whiteout(new_dir, newname, had_whiteout);
    if (err == 0 && dst_exists && dst.layer == 0 && src_dir) {
        err = clear_upper_dir(new_rel);
    }
    if (err != 0) {
        release();
        return err;
    }
    if (::renameat(upper(), old_rel.c_str(), upper(), new_rel.c_str()) < 0) {
        err = errno;
        if (had_whiteout) {
            make_whiteout(new_rel);
        }
        release();
        return err;
    }
    if (src_dir && (new_below || had_whiteout)) {
        err = set_opaque(new_rel);
    }
    if (err == 0 && old_below) {
        err = make_whiteout(old_rel);
    }
    if (dst_exists) {
        auto it = m_nodes.find(key_of(dst.layer, dst.st));
        if (it != m_nodes.end() && it->second != n) {
            Node* victim = it->second;
            if (S_ISDIR(dst.st.st_mode) || dst.st.st_nlink <= 1) {
                unhash(victim);
                victim->deleted = true;
            } else {
                drop_name(victim, newparent, newname); // other hard links remain
            }
        }
    }
    if (n->parent == parent && n->name == name) {
        set_parent(n, newparent, newname);
    } else {
        drop_name(n, parent, name);
        add_name(n, newparent, newname);
    }
    if (src_dir) {
        n->dir_layers.assign(1, 0);
    }
    release();
    return err;
}

int Fs::setattr(fuse_ino_t ino, const struct stat& attr, int to_set, fuse_file_info* fi,
                struct stat& out) {
    if (!m_writable) {
        return EROFS;
    }
    std::lock_guard lock(m_tree);
    Node* n = node_of(ino);
    int err = copy_up(n);
    if (err != 0) {
        return err;
    }
    std::string rel = path_of(n);
    int fd = (fi != nullptr && fi->fh != 0) ? static_cast<int>(fi->fh) : -1;
    bool is_link = S_ISLNK(n->type);
    if ((to_set & FUSE_SET_ATTR_MODE) != 0) {
        int r = fd >= 0 ? ::fchmod(fd, attr.st_mode & 07777)
                        : ::fchmodat(upper(), rel.c_str(), attr.st_mode & 07777, 0);
        if (r < 0) {
            return errno;
        }
    }
    if ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) != 0) {
        uid_t uid = (to_set & FUSE_SET_ATTR_UID) != 0 ? attr.st_uid : static_cast<uid_t>(-1);
        gid_t gid = (to_set & FUSE_SET_ATTR_GID) != 0 ? attr.st_gid : static_cast<gid_t>(-1);
        if (::fchownat(upper(), rel.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
            return errno;
        }
    }
    if ((to_set & FUSE_SET_ATTR_SIZE) != 0) {
        int r;
        if (fd >= 0) {
            r = ::ftruncate(fd, attr.st_size);
        } else {
            int wfd = ::openat(upper(), rel.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
            if (wfd < 0) {
                return errno;
            }
            r = ::ftruncate(wfd, attr.st_size);
            ::close(wfd);
        }
        if (r < 0) {
            return errno;
        }
    }
    if ((to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) != 0) {
        struct timespec tv[2];
        tv[0].tv_nsec = UTIME_OMIT;
        tv[1].tv_nsec = UTIME_OMIT;
        if ((to_set & FUSE_SET_ATTR_ATIME_NOW) != 0) {
            tv[0].tv_nsec = UTIME_NOW;
        } else if ((to_set & FUSE_SET_ATTR_ATIME) != 0) {
            tv[0] = attr.st_atim;
        }
        if ((to_set & FUSE_SET_ATTR_MTIME_NOW) != 0) {
            tv[1].tv_nsec = UTIME_NOW;
        } else if ((to_set & FUSE_SET_ATTR_MTIME) != 0) {
            tv[1] = attr.st_mtim;
        }
        if (::utimensat(upper(), rel.c_str(), tv, is_link ? AT_SYMLINK_NOFOLLOW : 0) < 0) {
            return errno;
        }
    }
    if (::fstatat(upper(), rel.c_str(), &out, AT_SYMLINK_NOFOLLOW) < 0) {
        return errno;
    }
    fix_attr(n, out);
    return 0;
}

// ---- the C callbacks ----

Fs* fs_of(fuse_req_t req) { return static_cast<Fs*>(fuse_req_userdata(req)); }

template <typename F> int guarded(const char* op, F&& f) noexcept {
    try {
        return f();
    } catch (const StaleNode&) {
        return ENOENT;
    } catch (const std::exception& e) {
        STRATA_LOG_ERROR("union fs: {} failed: {}", op, e.what());
    } catch (...) {
        STRATA_LOG_ERROR("union fs: {} failed with an unknown exception", op);
    }
    return EIO;
}

void ll_init(void* userdata, fuse_conn_info* conn) {
    auto* fs = static_cast<Fs*>(userdata);
    auto want = [&](unsigned cap) {
        if ((conn->capable & cap) != 0) {
            conn->want |= cap;
        }
    };
    want(FUSE_CAP_READDIRPLUS);
    conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO; // always plus: one round trip per directory
    want(FUSE_CAP_SPLICE_WRITE);
    want(FUSE_CAP_SPLICE_MOVE);
    // Not FUSE_CAP_SPLICE_READ: splicing every request out of /dev/fuse costs
    // extra syscalls per request (and a pipe per thread) and only pays off
    // for large writes.
    conn->want &= ~FUSE_CAP_SPLICE_READ;
    want(FUSE_CAP_PARALLEL_DIROPS);
    want(FUSE_CAP_ATOMIC_O_TRUNC);
    if (!fs->writable()) {
        want(FUSE_CAP_CACHE_SYMLINKS);
        fs->set_no_open((conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) != 0);
        fs->set_no_opendir((conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0);
    }
    fs->set_initialized();
    STRATA_LOG_DEBUG("union fs: init, kernel protocol {}.{}, no_open={}", conn->proto_major,
                     conn->proto_minor, fs->no_open());
}

void reply_entry_or_err(fuse_req_t req, int err, const fuse_entry_param& e) {
    if (err != 0) {
        fuse_reply_err(req, err);
    } else {
        fuse_reply_entry(req, &e);
    }
}

void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    STRATA_LOG_TRACE("lookup parent={} name={}", parent, name);
    fuse_entry_param e{};
    int err = guarded("lookup", [&] { return fs_of(req)->lookup(parent, name, e); });
    reply_entry_or_err(req, err, e);
}

void ll_forget(fuse_req_t req, fuse_ino_t ino, std::uint64_t nlookup) {
    STRATA_LOG_TRACE("forget ino={} n={}", ino, nlookup);
    guarded("forget", [&] {
        fs_of(req)->forget(ino, nlookup);
        return 0;
    });
    fuse_reply_none(req);
}

void ll_forget_multi(fuse_req_t req, std::size_t count, fuse_forget_data* forgets) {
    STRATA_LOG_TRACE("forget_multi count={}", count);
    guarded("forget_multi", [&] {
        for (std::size_t i = 0; i < count; ++i) {
            fs_of(req)->forget(forgets[i].ino, forgets[i].nlookup);
        }
        return 0;
    });
    fuse_reply_none(req);
}

void ll_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    STRATA_LOG_TRACE("getattr ino={}", ino);
    struct stat st {};
    int err = guarded("getattr", [&] { return fs_of(req)->getattr(ino, fi, st); });
    if (err != 0) {
        fuse_reply_err(req, err);
    } else {
        fuse_reply_attr(req, &st, fs_of(req)->timeout());
    }
}

void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                fuse_file_info* fi) {
    STRATA_LOG_TRACE("setattr ino={} to_set={:#x}", ino, to_set);
    struct stat st {};
    int err = guarded("setattr", [&] { return fs_of(req)->setattr(ino, *attr, to_set, fi, st); });
    if (err != 0) {
        fuse_reply_err(req, err);
    } else {
        fuse_reply_attr(req, &st, fs_of(req)->timeout());
    }
}

void ll_readlink(fuse_req_t req, fuse_ino_t ino) {
    STRATA_LOG_TRACE("readlink ino={}", ino);
    std::string target;
    int err = guarded("readlink", [&] { return fs_of(req)->readlink(ino, target); });
    if (err != 0) {
        fuse_reply_err(req, err);
    } else {
        fuse_reply_readlink(req, target.c_str());
    }
}

void ll_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    STRATA_LOG_TRACE("opendir ino={}", ino);
    int err = guarded("opendir", [&] { return fs_of(req)->opendir(ino, fi); });
    if (err != 0) {
        fuse_reply_err(req, err);
    } else if (fuse_reply_open(req, fi) == -ENOENT) {
        delete reinterpret_cast<DirHandle*>(fi->fh); // the opener was interrupted
    }
}

void do_readdir(fuse_req_t req, fuse_ino_t ino, std::size_t size, off_t off, fuse_file_info* fi,
                bool plus) {
    STRATA_LOG_TRACE("readdir{} ino={} off={} size={}", plus ? "plus" : "", ino, off, size);
    std::string buf;
    int err = guarded("readdir", [&] {
        return fs_of(req)->readdir(req, ino, size, off, fi, plus, buf);
    });
    if (err != 0) {
        fuse_reply_err(req, err);
    } else {
        fuse_reply_buf(req, buf.data(), buf.size());
    }
}

void ll_readdir(fuse_req_t req, fuse_ino_t ino, std::size_t size, off_t off, fuse_file_info* fi) {
    do_readdir(req, ino, size, off, fi, false);
}

void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, std::size_t size, off_t off,
                    fuse_file_info* fi) {
    do_readdir(req, ino, size, off, fi, true);
}

void ll_releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    STRATA_LOG_TRACE("releasedir ino={}", ino);
    if (fi->fh != 0) {
        delete reinterpret_cast<DirHandle*>(fi->fh);
    }
    fuse_reply_err(req, 0);
}

void ll_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    STRATA_LOG_TRACE("open ino={} flags={:#o}", ino, fi->flags);
    int err = guarded("open", [&] { return fs_of(req)->open(ino, fi); });
    if (err != 0) {
        fuse_reply_err(req, err);
    } else if (fuse_reply_open(req, fi) == -ENOENT) {
        ::close(static_cast<int>(fi->fh));
    }
}

void ll_read(fuse_req_t req, fuse_ino_t ino, std::size_t size, off_t off, fuse_file_info* fi) {
    STRATA_LOG_TRACE("read ino={} off={} size={}", ino, off, size);
    int fd = -1;
    bool close_after = false;
    int err = guarded("read", [&] { return fs_of(req)->read_fd(ino, fi, fd, close_after); });
    if (err != 0) {
        fuse_reply_err(req, err);
        return;
    }
    if (size <= k_small_read) {
        // Small reads (most files of an image): one pread and one write to
        // /dev/fuse cost fewer syscalls than splicing through a pipe.
        thread_local std::vector<char> small(k_small_read);
        ssize_t n;
        do {
            n = ::pread(fd, small.data(), size, off);
        } while (n < 0 && errno == EINTR);
        int err = errno;
        if (close_after) {
            ::close(fd);
        }
        if (n < 0) {
            fuse_reply_err(req, err);
        } else {
            fuse_reply_buf(req, small.data(), static_cast<std::size_t>(n));
        }
        return;
    }
    // The data goes from the layer's file to the kernel without a copy
    // through our memory when splice is available.
    fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
    buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    buf.buf[0].fd = fd;
    buf.buf[0].pos = off;
    fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
    if (close_after) {
        ::close(fd);
    }
}

void ll_write_buf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* in, off_t off, fuse_file_info* fi) {
    STRATA_LOG_TRACE("write ino={} off={} size={}", ino, off, fuse_buf_size(in));
    fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
    out.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    out.buf[0].fd = static_cast<int>(fi->fh);
    out.buf[0].pos = off;
    ssize_t r = fuse_buf_copy(&out, in, static_cast<fuse_buf_copy_flags>(0));
    if (r < 0) {
        fuse_reply_err(req, static_cast<int>(-r));
    } else {
        fuse_reply_write(req, static_cast<std::size_t>(r));
    }
}

void ll_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    STRATA_LOG_TRACE("release ino={}", ino);
    if (!fs_of(req)->no_open()) { // with no_open, fh is not ours
        ::close(static_cast<int>(fi->fh));
    }
    fuse_reply_err(req, 0);
}

void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
    STRATA_LOG_TRACE("fsync ino={}", ino);
    if (fs_of(req)->no_open()) {
        fuse_reply_err(req, 0); // read-only: nothing to flush
        return;
    }
    int fd = static_cast<int>(fi->fh);
    int r = datasync != 0 ? ::fdatasync(fd) : ::fsync(fd);
    fuse_reply_err(req, r < 0 ? errno : 0);
}

void ll_statfs(fuse_req_t req, fuse_ino_t ino) {
    STRATA_LOG_TRACE("statfs ino={}", ino);
    struct statvfs st {};
    int err = guarded("statfs", [&] { return fs_of(req)->statfs(st); });
    if (err != 0) {
        fuse_reply_err(req, err);
    } else {
        fuse_reply_statfs(req, &st);
    }
}

void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, std::size_t size) {
    STRATA_LOG_TRACE("getxattr ino={} name={}", ino, name);
    std::string value;
    std::size_t needed = 0;
    int err = guarded("getxattr",
                      [&] { return fs_of(req)->getxattr(ino, name, size, value, needed); });
    if (err != 0) {
        fuse_reply_err(req, err);
    } else if (size == 0) {
        fuse_reply_xattr(req, needed);
    } else {
        fuse_reply_buf(req, value.data(), value.size());
    }
}

void ll_listxattr(fuse_req_t req, fuse_ino_t ino, std::size_t size) {
    STRATA_LOG_TRACE("listxattr ino={}", ino);
    std::string value;
    std::size_t needed = 0;
    int err = guarded("listxattr", [&] { return fs_of(req)->listxattr(ino, size, value, needed); });
    if (err != 0) {
        fuse_reply_err(req, err);
    } else if (size == 0) {
        fuse_reply_xattr(req, needed);
    } else {
        fuse_reply_buf(req, value.data(), value.size());
    }
}

void ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value,
                 std::size_t size, int flags) {
    STRATA_LOG_TRACE("setxattr ino={} name={}", ino, name);
    fuse_reply_err(req, guarded("setxattr", [&] {
                       return fs_of(req)->setxattr(ino, name, value, size, flags);
                   }));
}

void ll_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
    STRATA_LOG_TRACE("removexattr ino={} name={}", ino, name);
    fuse_reply_err(req, guarded("removexattr", [&] { return fs_of(req)->removexattr(ino, name); }));
}

void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
    STRATA_LOG_TRACE("mknod parent={} name={} mode={:#o}", parent, name, mode);
    fuse_entry_param e{};
    int err = guarded("mknod", [&] {
        return fs_of(req)->make(parent, name, mode, rdev, nullptr, fuse_req_ctx(req), nullptr, e);
    });
    reply_entry_or_err(req, err, e);
}

void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
    STRATA_LOG_TRACE("mkdir parent={} name={} mode={:#o}", parent, name, mode);
    fuse_entry_param e{};
    int err = guarded("mkdir", [&] {
        return fs_of(req)->make(parent, name, S_IFDIR | (mode & 07777), 0, nullptr,
                                fuse_req_ctx(req), nullptr, e);
    });
    reply_entry_or_err(req, err, e);
}

void ll_symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
    STRATA_LOG_TRACE("symlink parent={} name={} target={}", parent, name, link);
    fuse_entry_param e{};
    int err = guarded("symlink", [&] {
        return fs_of(req)->make(parent, name, S_IFLNK | 0777, 0, link, fuse_req_ctx(req), nullptr,
                                e);
    });
    reply_entry_or_err(req, err, e);
}

void ll_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
               fuse_file_info* fi) {
    STRATA_LOG_TRACE("create parent={} name={} mode={:#o}", parent, name, mode);
    fuse_entry_param e{};
    int err = guarded("create", [&] {
        return fs_of(req)->make(parent, name, S_IFREG | (mode & 07777), 0, nullptr,
                                fuse_req_ctx(req), fi, e);
    });
    if (err != 0) {
        fuse_reply_err(req, err);
    } else if (fuse_reply_create(req, &e, fi) == -ENOENT) {
        ::close(static_cast<int>(fi->fh));
    }
}

void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
    STRATA_LOG_TRACE("link ino={} newparent={} newname={}", ino, newparent, newname);
    fuse_entry_param e{};
    int err = guarded("link", [&] { return fs_of(req)->link(ino, newparent, newname, e); });
    reply_entry_or_err(req, err, e);
}

void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
    STRATA_LOG_TRACE("unlink parent={} name={}", parent, name);
    fuse_reply_err(req, guarded("unlink", [&] { return fs_of(req)->unlink(parent, name, false); }));
}

void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
    STRATA_LOG_TRACE("rmdir parent={} name={}", parent, name);
    fuse_reply_err(req, guarded("rmdir", [&] { return fs_of(req)->unlink(parent, name, true); }));
}

void ll_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
               const char* newname, unsigned int flags) {
    STRATA_LOG_TRACE("rename parent={} name={} newparent={} newname={} flags={}", parent, name,
                     newparent, newname, flags);
    fuse_reply_err(req, guarded("rename", [&] {
                       return fs_of(req)->rename(parent, name, newparent, newname, flags);
                   }));
}

fuse_lowlevel_ops make_ops() {
    fuse_lowlevel_ops ops{};
    ops.init = ll_init;
    ops.lookup = ll_lookup;
    ops.forget = ll_forget;
    ops.forget_multi = ll_forget_multi;
    ops.getattr = ll_getattr;
    ops.setattr = ll_setattr;
    ops.readlink = ll_readlink;
    ops.opendir = ll_opendir;
    ops.readdir = ll_readdir;
    ops.readdirplus = ll_readdirplus;
    ops.releasedir = ll_releasedir;
    ops.open = ll_open;
    ops.read = ll_read;
    ops.write_buf = ll_write_buf;
    ops.release = ll_release;
    ops.fsync = ll_fsync;
    ops.statfs = ll_statfs;
    ops.getxattr = ll_getxattr;
    ops.listxattr = ll_listxattr;
    ops.setxattr = ll_setxattr;
    ops.removexattr = ll_removexattr;
    ops.mknod = ll_mknod;
    ops.mkdir = ll_mkdir;
    ops.symlink = ll_symlink;
    ops.create = ll_create;
    ops.link = ll_link;
    ops.unlink = ll_unlink;
    ops.rmdir = ll_rmdir;
    ops.rename = ll_rename;
    return ops;
}

struct SessionDeleter {
    void operator()(fuse_session* se) const { fuse_session_destroy(se); }
};

// Requests served on the main thread before the multi-threaded loop starts.
// A mount that is only stat'ed or listed once (a container runtime checking
// it, `mount` + `ls` + `umount`) never pays for worker threads (each one a
// stack, a 1 MiB request buffer and a malloc arena, created and torn down),
// and the first requests after the mount are answered without a hand-off
// between threads; a busy mount gets its workers after this many.
constexpr int k_inline_requests = 64;

// Serves requests one at a time on this thread until enough() says so.
// False when the session ended first (unmounted, a signal, a read error).
template <typename Enough> bool serve_inline(fuse_session* se, fuse_buf& buf, Enough&& enough) {
    while (!fuse_session_exited(se)) {
        if (enough()) {
            return true;
        }
        int r = fuse_session_receive_buf(se, &buf);
        if (r == -EINTR) {
            continue; // a signal: its handler may have ended the session
        }
        if (r < 0) {
            STRATA_LOG_ERROR("union fs: reading /dev/fuse: {}", std::strerror(-r));
            fuse_session_exit(se);
        }
        if (r <= 0) {
            return false; // 0: unmounted (libfuse marked the session exited)
        }
        fuse_session_process_buf(se, &buf);
    }
    return false;
}

void log_to_syslog() {
    ::openlog("strata-overlay", LOG_PID, LOG_DAEMON);
    log::set_sink([](log::Level level, std::string_view message) {
        int prio = level == log::Level::error  ? LOG_ERR
                   : level == log::Level::warn ? LOG_WARNING
                                               : LOG_DEBUG;
        ::syslog(prio, "%.*s", static_cast<int>(message.size()), message.data());
    });
}

// Forks the daemon once the mount exists. The child detaches (new session,
// cwd /, stdio on /dev/null, logs to syslog), answers the kernel's INIT and
// only then lets the parent go: the parent exits 0 once the mount serves
// requests (what mount(8), `strata mount` and scripts that use the mount
// right away expect; libfuse's fuse_daemonize lets it go before, so the
// first request waited for the new daemon to be scheduled, answer INIT and
// start its threads). Returns in the child, true when INIT was answered.
// In the parent, throws if the child ended before answering INIT.
bool daemonize_when_ready(fuse_session* se, Fs& fs, fuse_buf& buf, const std::string& target) {
    Pipe ready = Pipe::create();
    pid_t pid = ::fork();
    if (pid < 0) {
        throw_errno("fork", target);
    }
    if (pid > 0) {
        ready.write.reset();
        char c = 0;
        ssize_t n;
        do {
            n = ::read(ready.read.get(), &c, 1);
        } while (n < 0 && errno == EINTR);
        if (n == 1 && c == 1) {
            ::_exit(0);
        }
        throw Error("union filesystem on \"" + target +
                    "\": the daemon ended before the kernel's INIT was answered");
    }
    ready.read.reset();
    ::setsid();
    if (::chdir("/") != 0) {
        // "/" always exists; nothing to do but stay where we are.
    }
    int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        ::dup2(null, STDIN_FILENO);
        ::dup2(null, STDOUT_FILENO);
        ::dup2(null, STDERR_FILENO);
        if (null > STDERR_FILENO) {
            ::close(null);
        }
    }
    log_to_syslog();
    bool ok = serve_inline(se, buf, [&] { return fs.initialized(); });
    char c = ok ? 1 : 0;
    if (::write(ready.write.get(), &c, 1) != 1) {
        // The parent died: the mount is served all the same.
    }
    return ok;
}

} // namespace

int serve_union(const UnionOptions& opts, const std::string& target, bool daemonize) {
    Fs fs(opts);
    bool allow_other = opts.allow_other.value_or(::geteuid() == 0);
    // Options for the kernel mount. The union decides permissions the way the
    // layers' modes say (default_permissions), as overlayfs does.
    std::string fsname;
    for (char c : opts.fsname) {
        if (c == ',' || c == '\\') {
            fsname += '\\'; // libfuse's option parser honours backslash escapes
        }
        fsname += c;
    }
    std::string mount_opts = "fsname=" + fsname + ",subtype=strata-overlay,default_permissions";
    if (allow_other) {
        mount_opts += ",allow_other";
    }
    if (!fs.writable()) {
        mount_opts += ",ro";
    }
    std::vector<std::string> argv_s = {"strata-overlay", "-o", mount_opts};
    if (log::enabled(log::Level::trace)) {
        argv_s.emplace_back("-d");
    }
    std::vector<char*> argv;
    for (auto& a : argv_s) {
        argv.push_back(a.data());
    }
    fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
    fuse_lowlevel_ops ops = make_ops();
    std::unique_ptr<fuse_session, SessionDeleter> se(
        fuse_session_new(&args, &ops, sizeof ops, &fs));
    if (!se) {
        throw Error("union filesystem: fuse_session_new failed for \"" + target + "\"");
    }
    if (fuse_set_signal_handlers(se.get()) != 0) {
        throw Error("union filesystem: cannot install signal handlers");
    }
    ScopeExit restore_signals([&] { fuse_remove_signal_handlers(se.get()); });
    // Files are created with exactly the mode the caller asked for (the
    // kernel applied the caller's umask already).
    ::umask(0);
    if (fuse_session_mount(se.get(), target.c_str()) != 0) {
        throw SysError("mount fuse.strata-overlay", target, EIO);
    }
    // From here on the mount exists: it goes again when the session ends
    // (unmounted from outside: libfuse sees the connection gone and skips).
    ScopeExit unmount_at_end([&] { fuse_session_unmount(se.get()); });
    fuse_buf buf{};
    ScopeExit free_buf([&] { std::free(buf.mem); });
    if (daemonize) {
        if (!daemonize_when_ready(se.get(), fs, buf, target)) {
            return 1;
        }
    } else if (::chdir("/") != 0) {
        // "/" always exists.
    }
    int left = k_inline_requests;
    int r = 0;
    if (serve_inline(se.get(), buf, [&] { return left-- == 0; })) {
        std::free(buf.mem);
        buf = fuse_buf{};
        fuse_loop_config* cfg = fuse_loop_cfg_create();
        fuse_loop_cfg_set_clone_fd(cfg, 0);
        fuse_loop_cfg_set_max_threads(cfg, 16);
        fuse_loop_cfg_set_idle_threads(cfg, 8);
        r = fuse_session_loop_mt(se.get(), cfg);
        fuse_loop_cfg_destroy(cfg);
    }
    STRATA_LOG_DEBUG("union fs: session on \"{}\" ended ({})", target, r);
    return r < 0 ? 1 : 0;
}

} // namespace strata::layerfs
