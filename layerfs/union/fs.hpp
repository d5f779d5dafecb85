// The union filesystem's internals, shared by the files of layerfs/union/
// (the public interface is layerfs/union_fs.hpp):
//   node_table.cpp  the Fs object, the node table and its names and references
//   lookup.cpp      resolving names through the layers, merged listings, readdir
//   read.cpp        getattr, readlink, open and read fds, statfs, reading xattrs
//   copy_up.cpp     copy-up into the upper layer, whiteouts and opaque markers
//   mutations.cpp   create, link, unlink, rename, setattr, changing xattrs
//   handlers.cpp    the libfuse low-level callbacks (ll_*): thin adapters
//   session.cpp     the FUSE session: mount, daemonize, the request loops
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
#pragma once

#include "layerfs/union_fs.hpp"

#include "formats/whiteout.hpp"

#include "util/fd.hpp"

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <atomic>
#include <cstdint>
#include <dirent.h>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <unordered_map>
#include <utility>
#include <vector>

namespace strata::layerfs::unionfs {

namespace wh = formats::whiteout;

inline std::string join_rel(const std::string& dir, std::string_view name) {
    if (dir == ".") {
        return std::string(name);
    }
    std::string out;
    out.reserve(dir.size() + 1 + name.size());
    out += dir;
    out += '/';
    out += name;
    return out;
}

struct DirCloser {
    void operator()(DIR* d) const noexcept { ::closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

// Opens the directory rel below dirfd (no symlink followed) for readdir.
// Returns an errno.
int open_dir(int dirfd, const std::string& rel, DirPtr& out);

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

// A file descriptor that readers cache without a lock: the first one
// installed stays until reset; it is closed with its owner.
class CachedFd {
public:
    CachedFd() noexcept = default;
    CachedFd(const CachedFd&) = delete;
    CachedFd& operator=(const CachedFd&) = delete;
    ~CachedFd() { reset(); }

    int get() const noexcept { return m_fd.load(std::memory_order_acquire); }
    // Caches fd unless another reader cached one first (then fd is closed).
    // Returns the cached fd and whether it was this one.
    std::pair<int, bool> install(UniqueFd fd) noexcept {
        int expected = -1;
        if (m_fd.compare_exchange_strong(expected, fd.get())) {
            return {fd.release(), true};
        }
        return {expected, false};
    }
    // Closes the cached fd. True when there was one.
    bool reset() noexcept {
        UniqueFd old(m_fd.exchange(-1));
        return static_cast<bool>(old);
    }

private:
    std::atomic<int> m_fd{-1};
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
    ino_t st_ino = 0; // reported, fixed at creation
    Key key{};
    bool hashed = false; // present in Fs::m_nodes under key
    // Removed from the union while the kernel still holds it: its path may
    // now name something else (even a symlink), so it is never used again.
    bool deleted = false;
    CachedFd read_fd; // read-only mode: cached O_RDONLY fd
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
    // Opens the file for a FUSE_OPEN: fd owns it, fi->fh names it.
    int open(fuse_ino_t ino, fuse_file_info* fi, UniqueFd& fd);
    // The fd to read from: the open handle's, the node's cached one, or
    // (past the cache's limit) a fresh one that `owned` closes.
    int read_fd(fuse_ino_t ino, fuse_file_info* fi, int& fd, UniqueFd& owned);
    int statfs(struct statvfs& st);
    int getxattr(fuse_ino_t ino, const char* name, std::size_t size, std::string& out,
                 std::size_t& needed);
    int listxattr(fuse_ino_t ino, std::size_t size, std::string& out, std::size_t& needed);
    int setxattr(fuse_ino_t ino, const char* name, const char* value, std::size_t size, int flags);
    int removexattr(fuse_ino_t ino, const char* name);
    // mknod, mkdir, symlink (link_target) and create (fi: the file opened
    // into created, fi->fh names it).
    int make(fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev, const char* link_target,
             const fuse_ctx* ctx, fuse_file_info* fi, UniqueFd& created, fuse_entry_param& e);
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
        return "/proc/self/fd/" +
               std::to_string(m_layers[static_cast<std::size_t>(layer)].root.get()) + "/" + rel;
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

// The libfuse low-level operations; the session's userdata is the Fs.
fuse_lowlevel_ops make_ops();

} // namespace strata::layerfs::unionfs
