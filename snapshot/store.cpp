#include "snapshot/store.hpp"

#include "formats/media_types.hpp"
#include "snapshot/layer_apply.hpp"
#include "snapshot/partial_blob.hpp"
#include "snapshot/snapshot_verify.hpp"
#include "snapshot/stack_order.hpp"
#include "util/atomic_file.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/tempdir.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_set>

namespace strata::snapshot {

using formats::Descriptor;
using formats::Digest;

namespace {

bool is_manifest_type(std::string_view mt) {
    return mt == formats::media::oci_manifest || mt == formats::media::docker_manifest;
}
bool is_index_type(std::string_view mt) {
    return mt == formats::media::oci_index || mt == formats::media::docker_manifest_list;
}

} // namespace

// ---------------------------------------------------------------- StoreLock

StoreLock::StoreLock(const std::string& path) {
    m_fd = fs::open(path, O_RDWR | O_CREAT, 0600);
    while (::flock(m_fd.get(), LOCK_EX) != 0) {
        if (errno != EINTR) {
            throw_errno("flock", path);
        }
    }
}

// -------------------------------------------------------------------- Image

std::vector<Digest> Image::chain_ids() const {
    std::vector<Digest> out;
    std::vector<Digest> prefix;
    for (const auto& d : config.diff_ids) {
        prefix.push_back(d);
        out.push_back(formats::chain_id(prefix));
    }
    return out;
}

// -------------------------------------------------------------------- Store

namespace {
std::string normalise_root(std::string root) {
    root = fs::absolute(root);
    while (root.size() > 1 && root.back() == '/') {
        root.pop_back();
    }
    return root;
}
} // namespace

namespace {

// The store's directories are closed to other users, as Docker's data root
// is (/var/lib/docker 0710, its subdirectories 0700/0710): snapshots hold
// setuid binaries and device nodes of every image, cache-mounts/ what RUN
// steps wrote as root, tmp/ the merged trees of running steps. A user who
// could reach them would run an image's setuid-root binary, or one a
// Dockerfile planted, as root on the host. Nothing outside strata needs to
// reach inside: containers see their mounts, not the path to them, and a
// rootless store belongs to its user.
constexpr mode_t k_root_mode = 0710;
constexpr mode_t k_dir_mode = 0700;
constexpr const char* k_private_dirs[] = {"blobs", "snapshots", "cache", "cache-mounts",
                                          "tmp",   "mounts",    "leases"};

// Creates the store's root closed (0710) when it does not exist yet.
const std::string& create_root(const std::string& root) {
    if (!fs::exists(root)) {
        fs::mkdirs(fs::dirname(root), 0755);
        if (::mkdir(root.c_str(), k_root_mode) != 0 && errno != EEXIST) {
            throw_errno("mkdir", root);
        }
    }
    return root;
}

// A store made by an earlier strata (0755 directories) is closed on open:
// only root's own store, by root (a store of another owner is theirs to set).
void tighten(const std::string& path, mode_t mode) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0 ||
        ::geteuid() != 0 || (st.st_mode & 07777 & ~mode) == 0) {
        return;
    }
    if (::chmod(path.c_str(), (st.st_mode & 07777) & mode) != 0) {
        throw_errno("chmod", path);
    }
    STRATA_LOG_INFO("store: closed {} to other users (mode {:o})", path,
                    (st.st_mode & 07777) & mode);
}

} // namespace

Store::Store(std::string root)
    : m_root(normalise_root(std::move(root))),
      m_layout(formats::OciLayout::create(create_root(m_root))) {
    tighten(m_root, k_root_mode);
    for (const char* d : k_private_dirs) {
        fs::mkdirs(m_root + "/" + d, k_dir_mode);
        tighten(m_root + "/" + d, k_dir_mode);
    }
}

void Store::ensure_lease() const {
    std::lock_guard guard(m_lease_mutex);
    if (!m_lease_path.empty()) {
        return;
    }
    // This process's lease: "start <unix seconds>", then what keep() names.
    // Made before the first write it covers. The flock is taken before the
    // start time is written: gc reads a lease only when it cannot lock it,
    // and counts one without a start time yet from the file's ctime.
    unsigned char rnd[8];
    if (::getentropy(rnd, sizeof rnd) != 0) {
        throw_errno("getentropy", "lease name");
    }
    std::string name = "lease-" + std::to_string(::getpid()) + "-";
    for (unsigned char c : rnd) {
        name += "0123456789abcdef"[c >> 4];
        name += "0123456789abcdef"[c & 15];
    }
    std::string path = m_root + "/leases/" + name;
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600));
    if (!fd) {
        if (errno == EACCES || errno == EROFS || errno == EPERM) {
            // A store this process cannot write: it makes nothing gc could take.
            STRATA_LOG_DEBUG("store: no lease in {}: {}", path, std::strerror(errno));
            m_lease_path = "-"; // do not try again
            return;
        }
        throw_errno("open", path);
    }
    if (::flock(fd.get(), LOCK_SH) != 0) {
        throw_errno("flock", path);
    }
    std::string start = "start " + std::to_string(::time(nullptr)) + "\n";
    if (::write(fd.get(), start.data(), start.size()) != static_cast<ssize_t>(start.size())) {
        int err = errno;
        ::unlink(path.c_str());
        throw SysError("write", path, err);
    }
    m_lease_path = path;
    m_lease_fd = std::move(fd);
}

Store::~Store() {
    if (m_lease_fd) {
        ::unlink(m_lease_path.c_str());
    }
}

void Store::keep(const Descriptor& manifest) const {
    ensure_lease();
    std::lock_guard guard(m_lease_mutex);
    if (!m_lease_fd) {
        return;
    }
    std::string line = formats::to_json(manifest) + "\n";
    if (::write(m_lease_fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
        throw_errno("write", m_lease_path);
    }
}

namespace {
std::string pin_path(const std::string& root, const std::string& name) {
    std::string safe;
    for (char c : name) {
        safe += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.') ? c : '_';
    }
    return root + "/leases/pin-" + safe;
}
} // namespace

void Store::pin(const std::string& name, const Descriptor& manifest) {
    fs::write_file_atomic(pin_path(m_root, name), formats::to_json(manifest) + "\n", 0600);
}

void Store::unpin(const std::string& name) {
    std::string p = pin_path(m_root, name);
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) {
        throw_errno("unlink", p);
    }
}

StoreLock Store::lock() const {
    return StoreLock(m_root + "/lock");
}

bool Store::has_blob(const Digest& d) const {
    return m_layout.has_blob(d);
}

std::string Store::blob_path(const Digest& d) const {
    return m_layout.blob_path(d);
}

UniqueFd Store::open_blob(const Digest& d) const {
    auto fd = m_layout.maybe_open_blob(d);
    if (!fd) {
        if (PartialBlob::exists(*this, d)) {
            throw Error("layer " + d.str() +
                        " was pulled lazily and is not all in the store yet: `strata pull` "
                        "the image to fetch the rest");
        }
        throw Error("blob " + d.str() + " is missing from the store " + m_root);
    }
    return std::move(*fd);
}

std::string Store::read_blob(const Digest& d, std::size_t max_size) const {
    if (!has_blob(d)) {
        throw Error("blob " + d.str() + " is missing from the store " + m_root);
    }
    try {
        return m_layout.read_blob(d, max_size);
    } catch (const formats::DigestMismatch& e) {
        throw Error("blob " + d.str() + " is corrupt (run 'strata verify'): " + e.what());
    }
}

BlobWriter Store::new_blob() const {
    ensure_lease();
    return BlobWriter(m_layout, tmp_dir());
}

bool Store::reuse_blob(const Digest& d) const {
    if (!has_blob(d)) {
        return false;
    }
    ensure_lease();
    // A change of times is a change of the inode: its ctime becomes now.
    if (::utimensat(AT_FDCWD, blob_path(d).c_str(), nullptr, 0) != 0) {
        STRATA_LOG_DEBUG("store: cannot refresh {}: {}", blob_path(d), std::strerror(errno));
    }
    return has_blob(d); // gc may have taken it just before
}

namespace {
// Whether the blob stored under d still hashes to d. A blob already present
// is reused only then; otherwise the new, verified bytes replace it (an
// atomic rename), so a damaged blob is never trusted for a digest that
// arrives again.
bool blob_intact(const formats::OciLayout& layout, const Digest& d) {
    auto fd = layout.maybe_open_blob(d);
    if (!fd) {
        return false;
    }
    formats::DigestHasher h;
    std::vector<char> buf(1 << 20);
    while (std::size_t n = fs::read_full(fd->get(), layout.blob_path(d), buf.data(), buf.size())) {
        h.update(buf.data(), n);
    }
    return h.finish() == d;
}
} // namespace

bool Store::reuse_intact_blob(const Digest& d) const {
    return blob_intact(m_layout, d) && reuse_blob(d);
}

Digest Store::put_blob(std::string_view data) {
    Digest d = Digest::of(data);
    if (blob_intact(m_layout, d) && reuse_blob(d)) {
        return d;
    }
    ensure_lease();
    return m_layout.ingest_bytes(data, d, tmp_dir());
}

Digest Store::ingest(int fd, const std::optional<Digest>& expected) {
    if (expected && blob_intact(m_layout, *expected) && reuse_blob(*expected)) {
        return *expected;
    }
    ensure_lease();
    return m_layout.ingest(fd, expected, std::nullopt, tmp_dir());
}

formats::Index Store::read_index() const {
    return m_layout.read_index();
}

void Store::write_index(const formats::Index& index) {
    m_layout.write_index(index);
}

void Store::update_index(const std::function<void(formats::Index&)>& change) {
    StoreLock l = lock();
    formats::Index index = read_index();
    std::string before = formats::to_json(index);
    change(index);
    if (formats::to_json(index) == before) {
        return; // nothing changed (a rebuild naming the same image): no rewrite, no fsync
    }
    write_index(index);
}

std::vector<ImageRecord> Store::images() const {
    std::vector<ImageRecord> out;
    for (const auto& d : read_index().manifests) {
        ImageRecord r{std::nullopt, d};
        auto it = d.annotations.find(std::string(k_ref_name_annotation));
        if (it != d.annotations.end()) {
            r.name = Reference::try_parse(it->second);
        }
        r.manifest.annotations.erase(std::string(k_ref_name_annotation));
        out.push_back(std::move(r));
    }
    return out;
}

std::optional<ImageRecord> Store::find(const Reference& name) const {
    for (auto& r : images()) {
        if (r.name && *r.name == name) {
            return r;
        }
    }
    return std::nullopt;
}

ImageRecord Store::resolve(std::string_view text) const {
    auto all = images();
    // A name first, as Docker does.
    if (auto ref = Reference::try_parse(text)) {
        if (ref->digest()) {
            for (auto& r : all) {
                if (r.manifest.digest == *ref->digest()) {
                    return r;
                }
            }
        } else {
            for (auto& r : all) {
                if (r.name && *r.name == *ref) {
                    return r;
                }
            }
        }
    }
    // Then an image ID (config digest) or manifest digest, or a prefix of one.
    std::string_view hex = text;
    if (hex.rfind("sha256:", 0) == 0) {
        hex.remove_prefix(7);
    }
    bool hexlike = !hex.empty() && hex.size() <= 64 &&
                   hex.find_first_not_of("0123456789abcdef") == std::string_view::npos;
    if (hexlike) {
        std::optional<ImageRecord> found;
        std::set<std::string> ids;
        for (auto& r : all) {
            std::string config_hex;
            try {
                config_hex = std::string(load(r.manifest).id().hex());
            } catch (const Error&) {
                continue;
            }
            bool by_id = config_hex.rfind(hex, 0) == 0;
            bool by_manifest =
                r.manifest.digest.hex().substr(0, hex.size()) == hex && hex.size() >= 12;
            if (by_id || by_manifest) {
                if (!found) {
                    found = r;
                }
                ids.insert(by_id ? config_hex : std::string(r.manifest.digest.hex()));
            }
        }
        if (ids.size() > 1) {
            throw Error("image ID prefix \"" + std::string(text) + "\" is ambiguous");
        }
        if (found) {
            return *found;
        }
    }
    throw NoSuchImage(text);
}

Image Store::load(const Descriptor& desc) const {
    std::string what = "manifest " + desc.digest.str();
    std::string data = read_blob(desc.digest);
    if (desc.size != static_cast<std::int64_t>(data.size())) {
        throw Error(what + ": descriptor says " + std::to_string(desc.size) +
                    " bytes but the blob has " + std::to_string(data.size()));
    }
    Image img{desc, {}, {}};
    if (is_index_type(desc.media_type)) {
        // An index: pick the manifest for the host platform, if it is here.
        formats::Index idx = formats::parse_index(data, what);
        formats::Platform host = formats::host_platform();
        for (const auto& m : idx.manifests) {
            if (!is_manifest_type(m.media_type)) {
                continue;
            }
            if (m.platform &&
                (m.platform->os != host.os || m.platform->architecture != host.architecture)) {
                continue;
            }
            if (has_blob(m.digest)) {
                return load(m);
            }
        }
        throw Error(what + ": no manifest for " + host.os + "/" + host.architecture +
                    " in this index");
    }
    img.manifest = formats::parse_manifest(data, what);
    std::string config = read_blob(img.manifest.config.digest);
    img.config = formats::parse_image_config(config, "config " + img.manifest.config.digest.str());
    if (img.config.diff_ids.size() != img.manifest.layers.size()) {
        throw Error(what + ": " + std::to_string(img.manifest.layers.size()) +
                    " layers but the config lists " + std::to_string(img.config.diff_ids.size()) +
                    " diff IDs");
    }
    return img;
}

void Store::set_name(const Reference& name, const Descriptor& manifest) {
    if (!has_blob(manifest.digest)) {
        throw Error("cannot name " + name.familiar() + ": manifest " + manifest.digest.str() +
                    " is not in the store");
    }
    update_index([&](formats::Index& index) {
        auto& ms = index.manifests;
        std::string full = name.full();
        Descriptor named = manifest;
        named.annotations[std::string(k_ref_name_annotation)] = full;
        std::string named_json = formats::to_json(named);
        bool untagged_copy = false;
        for (const auto& d : ms) {
            untagged_copy =
                untagged_copy || (d.digest == manifest.digest &&
                                  d.annotations.count(std::string(k_ref_name_annotation)) == 0);
        }
        for (const auto& d : ms) {
            if (!untagged_copy && formats::to_json(d) == named_json) {
                return; // already so named
            }
        }
        ms.erase(std::remove_if(ms.begin(), ms.end(),
                                [&](const Descriptor& d) {
                                    auto it =
                                        d.annotations.find(std::string(k_ref_name_annotation));
                                    if (it != d.annotations.end()) {
                                        return it->second == full;
                                    }
                                    // The same manifest, untagged: the name replaces it.
                                    return d.digest == manifest.digest;
                                }),
                 ms.end());
        Descriptor d = manifest;
        d.annotations[std::string(k_ref_name_annotation)] = full;
        ms.push_back(std::move(d));
    });
}

void Store::add_untagged(const Descriptor& manifest) {
    update_index([&](formats::Index& index) {
        for (const auto& d : index.manifests) {
            if (d.digest == manifest.digest) {
                return;
            }
        }
        Descriptor d = manifest;
        d.annotations.erase(std::string(k_ref_name_annotation));
        index.manifests.push_back(std::move(d));
    });
}

bool Store::remove_name(const Reference& name) {
    bool removed = false;
    update_index([&](formats::Index& index) {
        auto& ms = index.manifests;
        std::string full = name.full();
        auto it = std::remove_if(ms.begin(), ms.end(), [&](const Descriptor& d) {
            auto a = d.annotations.find(std::string(k_ref_name_annotation));
            return a != d.annotations.end() && a->second == full;
        });
        removed = it != ms.end();
        ms.erase(it, ms.end());
    });
    return removed;
}

void Store::remove_untagged(const Digest& manifest) {
    update_index([&](formats::Index& index) {
        auto& ms = index.manifests;
        ms.erase(std::remove_if(ms.begin(), ms.end(),
                                [&](const Descriptor& d) {
                                    return d.digest == manifest && d.annotations.count(std::string(
                                                                       k_ref_name_annotation)) == 0;
                                }),
                 ms.end());
    });
}

Descriptor Store::put_image(const formats::ImageConfig& config,
                            const std::vector<Descriptor>& layers,
                            const std::map<std::string, std::string>& annotations) {
    return put_image_raw(formats::to_json(config), layers, annotations);
}

Descriptor Store::put_image_raw(std::string_view config_json, const std::vector<Descriptor>& layers,
                                const std::map<std::string, std::string>& annotations) {
    for (const auto& l : layers) {
        if (!has_blob(l.digest)) {
            throw Error("layer " + l.digest.str() + " is not in the store");
        }
    }
    formats::Manifest m;
    m.media_type = formats::media::oci_manifest;
    m.config.media_type = formats::media::oci_config;
    m.config.digest = put_blob(config_json);
    m.config.size = static_cast<std::int64_t>(config_json.size());
    m.layers = layers;
    m.annotations = annotations;
    std::string manifest_json = formats::to_json(m);
    Descriptor d;
    d.media_type = formats::media::oci_manifest;
    d.digest = put_blob(manifest_json);
    d.size = static_cast<std::int64_t>(manifest_json.size());
    return d;
}

std::string Store::snapshot_dir(const Digest& chain_id) const {
    return m_root + "/snapshots/" + std::string(chain_id.hex()) + "/fs";
}

bool Store::has_snapshot(const Digest& chain_id) const {
    return fs::is_dir(snapshot_dir(chain_id));
}

void Store::sync_dir(const std::string& dir) {
    // One syncfs for the whole tree (not an fsync per file): the data and
    // metadata are on disk before the name makes the snapshot visible, so a
    // power cut leaves either no snapshot or a whole one.
    UniqueFd fd = fs::open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (::syncfs(fd.get()) != 0) {
        throw_errno("syncfs", dir);
    }
}

namespace {

// The most files with data of their own that sync_tree fsyncs one by one
// (each is a journal commit of its own); past that, one syncfs.
constexpr std::size_t k_max_file_syncs = 256;

// sync_tree's walk of the directory open as dfd (rel: its path in the tree,
// "" for the root): the directory is fsynced, its files with data of their
// own are opened into `files` (fsynced once the walk is over), then its
// subdirectories are walked. False (the walk stops) once there are more than
// k_max_file_syncs such files.
bool sync_subtree(int dfd, const std::string& rel, const std::string& root,
                  const std::function<bool(const std::string&)>& on_disk,
                  std::vector<std::pair<UniqueFd, std::string>>& files) {
    const std::string here = rel.empty() ? root : root + "/" + rel;
    int dup_fd = ::fcntl(dfd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) {
        throw_errno("dup", here);
    }
    DIR* d = ::fdopendir(dup_fd);
    if (d == nullptr) {
        int err = errno;
        ::close(dup_fd);
        throw SysError("opendir", here, err);
    }
    std::vector<std::string> subdirs;
    std::vector<std::string> regular;
    errno = 0;
    while (struct dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name == "." || name == "..") {
            continue;
        }
        unsigned char type = e->d_type;
        if (type == DT_UNKNOWN) {
            struct stat st {};
            if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
                int err = errno;
                ::closedir(d);
                throw SysError("stat", here + "/" + name, err);
            }
            type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
        }
        if (type == DT_DIR) {
            subdirs.push_back(std::move(name));
        } else if (type == DT_REG) {
            regular.push_back(std::move(name));
        }
        errno = 0;
    }
    int read_err = errno;
    ::closedir(d);
    if (read_err != 0) {
        throw SysError("readdir", here, read_err);
    }
    if (::fsync(dfd) != 0) {
        throw_errno("fsync", here);
    }
    for (const auto& name : regular) {
        if (on_disk && on_disk(rel.empty() ? name : rel + "/" + name)) {
            continue;
        }
        if (files.size() == k_max_file_syncs) {
            return false;
        }
        UniqueFd f(::openat(dfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        if (!f) {
            throw_errno("open", here + "/" + name);
        }
        files.emplace_back(std::move(f), here + "/" + name);
    }
    for (const auto& name : subdirs) {
        UniqueFd sub(::openat(dfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub) {
            throw_errno("open", here + "/" + name);
        }
        if (!sync_subtree(sub.get(), rel.empty() ? name : rel + "/" + name, root, on_disk, files)) {
            return false;
        }
    }
    return true;
}

} // namespace

void Store::sync_tree(const std::string& dir,
                      const std::function<bool(const std::string&)>& on_disk) {
    UniqueFd fd = fs::open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    std::vector<std::pair<UniqueFd, std::string>> files;
    if (!sync_subtree(fd.get(), "", dir, on_disk, files)) {
        // Many files written (a cold COPY, a RUN that installs): one syncfs
        // rather than a journal commit each.
        sync_dir(dir);
        return;
    }
    for (const auto& [f, path] : files) {
        if (::fsync(f.get()) != 0) {
            throw_errno("fsync", path);
        }
    }
}

void Store::adopt_snapshot(const Digest& chain_id, const std::string& dir, bool synced) {
    ensure_lease();
    std::string parent = m_root + "/snapshots/" + std::string(chain_id.hex());
    if (!synced) {
        sync_dir(dir);
    }
    StoreLock l = lock();
    if (has_snapshot(chain_id)) {
        fs::remove_all(dir);
        return;
    }
    fs::remove_all(parent);
    if (::mkdir(parent.c_str(), 0700) != 0) {
        throw_errno("mkdir", parent);
    }
    if (::rename(dir.c_str(), (parent + "/fs").c_str()) != 0) {
        int err = errno;
        ::rmdir(parent.c_str());
        throw SysError("rename", dir, err);
    }
}

namespace {

// trusted.* xattrs (overlay's opaque marker) need CAP_SYS_ADMIN in the
// initial user namespace: root there, whose /proc/self/uid_map is the
// identity over all ids. Anyone else (a user, or root of a user namespace
// as in a rootless `strata run`) marks opaque directories with
// user.overlay.opaque, which overlayfs -o userxattr and strata's FUSE union
// read.
bool trusted_xattrs_allowed() {
    static const bool allowed = [] {
        if (::geteuid() != 0) {
            return false;
        }
        std::string map;
        try {
            map = fs::read_file("/proc/self/uid_map");
        } catch (const Error&) {
            return true; // no /proc: assume the host's root
        }
        unsigned long inside = 1, outside = 1, count = 0;
        return std::sscanf(map.c_str(), "%lu %lu %lu", &inside, &outside, &count) == 3 &&
               inside == 0 && outside == 0 && count == 4294967295UL;
    }();
    return allowed;
}

} // namespace

void Store::ensure_snapshot(const Descriptor& layer, const Digest& diff_id, const Digest& chain_id,
                            const std::vector<std::string>& lowers) {
    if (has_snapshot(chain_id)) {
        return;
    }
    TempDir work(tmp_dir(), "unpack-");
    std::string fsdir = work.path() + "/fs";
    fs::mkdirs(fsdir, 0755);
    UniqueFd blob = open_blob(layer.digest);
    UniqueFd target = fs::open_dir(fsdir);
    ApplyOptions opts;
    opts.mode = WhiteoutMode::overlay;
    opts.userxattr = !trusted_xattrs_allowed();
    opts.layer_name = layer.digest.str();
    opts.lower_dirs = top_first(lowers);
    ApplyStats r = apply_layer_at(blob.get(), target.get(), opts);
    if (!r.digests || r.digests->blob_digest != layer.digest) {
        throw CorruptLayer(
            "layer " + layer.digest.str() + " is corrupt: its content hashes to " +
            (r.digests ? r.digests->blob_digest.str() : std::string("an unknown digest")));
    }
    if (r.digests->diff_id != diff_id) {
        throw CorruptLayer("layer " + layer.digest.str() + ": uncompressed content hashes to " +
                           r.digests->diff_id.str() + " but the config says " + diff_id.str());
    }
    adopt_snapshot(chain_id, fsdir);
}

std::vector<std::string> Store::ensure_snapshots(const Image& image) {
    std::vector<std::string> dirs;
    auto chains = image.chain_ids();
    for (std::size_t i = 0; i < chains.size(); ++i) {
        const Digest& chain = chains[i];
        ensure_snapshot(image.manifest.layers[i], image.config.diff_ids[i], chain, dirs);
        dirs.push_back(snapshot_dir(chain));
        // In use for this Store's life: gc skips a snapshot it cannot lock.
        // A lock (no write) costs `strata run` nothing on the disk.
        std::string held = m_root + "/snapshots/" + std::string(chain.hex());
        UniqueFd fd(::open(held.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (fd && ::flock(fd.get(), LOCK_SH) == 0) {
            std::lock_guard guard(m_lease_mutex);
            m_held.push_back(std::move(fd));
        } else {
            STRATA_LOG_DEBUG("store: cannot lock {}: {}", held, std::strerror(errno));
        }
    }
    return dirs;
}

namespace {

// A lease file nobody holds (its process is gone) is removed; one that is
// held gives its start time and the manifests it keeps.
struct LiveLeases {
    std::int64_t oldest_start;
    std::vector<std::string> kept; // descriptor JSON lines
};

LiveLeases read_leases(const std::string& dir, const std::string& own, std::int64_t now) {
    LiveLeases live{now, {}};
    for (const auto& name : fs::list_dir(dir)) {
        std::string path = dir + "/" + name;
        bool pinned = name.rfind("pin-", 0) == 0;
        if (!pinned && path == own) {
            continue; // gc's own lease: it is making nothing
        }
        UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        if (!fd) {
            continue;
        }
        if (!pinned && ::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) {
            // Its process is gone, or has just made it and not locked it
            // yet: a young lease counts from when it was made.
            struct stat st;
            if (::fstat(fd.get(), &st) == 0 && st.st_ctim.tv_sec > now - 60) {
                live.oldest_start = std::min<std::int64_t>(live.oldest_start, st.st_ctim.tv_sec);
            } else {
                ::unlink(path.c_str());
            }
            continue;
        }
        std::string text = fs::read_fd(fd.get(), path, 16 << 20);
        std::istringstream in(text);
        std::string line;
        bool first = true;
        struct stat st;
        if (!pinned && text.rfind("start ", 0) != 0 && ::fstat(fd.get(), &st) == 0) {
            // Locked but its start not written yet: it began a moment ago.
            live.oldest_start = std::min<std::int64_t>(live.oldest_start, st.st_ctim.tv_sec);
        }
        while (std::getline(in, line)) {
            if (first && !pinned) {
                first = false;
                long long start = 0;
                if (std::sscanf(line.c_str(), "start %lld", &start) == 1 &&
                    start < live.oldest_start) {
                    live.oldest_start = start;
                }
                continue;
            }
            if (!line.empty()) {
                live.kept.push_back(line);
            }
        }
    }
    return live;
}

// Whether path changed (was made, renamed into place, or replaced) at or
// after since: its inode's ctime, which no one can set back.
bool changed_since(const std::string& path, const struct timespec& since) {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0 &&
           (st.st_ctim.tv_sec > since.tv_sec ||
            (st.st_ctim.tv_sec == since.tv_sec && st.st_ctim.tv_nsec >= since.tv_nsec));
}

} // namespace

GcResult Store::gc() {
    // Everything made from here on, or since the oldest live lease began,
    // is someone's work in progress. One second of slack for the clock.
    // gc's start is read on the kernel's coarse clock, the one inode times
    // come from, so that whatever another process changes after it has a
    // ctime at or after it; what was made before it, with no live lease,
    // is gone at once (`rmi` then `gc` leaves nothing). A lease's start has
    // whole seconds: one second of slack before it.
    struct timespec start {};
    ::clock_gettime(CLOCK_REALTIME_COARSE, &start);
    std::int64_t now = start.tv_sec;
    StoreLock l = lock();
    GcResult result;
    LiveLeases live = read_leases(m_root + "/leases", m_lease_path, now + 1);
    struct timespec since = start;
    if (live.oldest_start <= now) {
        since = {static_cast<time_t>(live.oldest_start - 1), 0};
    }
    std::unordered_set<std::string> keep_blobs;
    std::unordered_set<std::string> keep_snapshots;
    std::function<void(const Descriptor&)> mark = [&](const Descriptor& d) {
        if (!keep_blobs.insert(std::string(d.digest.hex())).second || !has_blob(d.digest)) {
            return;
        }
        if (is_index_type(d.media_type)) {
            for (const auto& m :
                 formats::parse_index(read_blob(d.digest), d.digest.str()).manifests) {
                mark(m);
            }
        } else if (is_manifest_type(d.media_type)) {
            auto m = formats::parse_manifest(read_blob(d.digest), d.digest.str());
            keep_blobs.insert(std::string(m.config.digest.hex()));
            for (const auto& layer : m.layers) {
                keep_blobs.insert(std::string(layer.digest.hex()));
            }
            try {
                Image img = load(d);
                for (const auto& c : img.chain_ids()) {
                    keep_snapshots.insert(std::string(c.hex()));
                }
            } catch (const Error& e) {
                STRATA_LOG_WARN("gc: {}", e.what());
            }
        }
    };
    for (const auto& d : read_index().manifests) {
        mark(d);
    }
    for (const auto& line : live.kept) {
        try {
            mark(formats::parse_descriptor(line, "lease"));
        } catch (const Error& e) {
            STRATA_LOG_WARN("gc: lease entry: {}", e.what());
        }
    }
    // Build cache records are roots too: every digest they name is kept.
    for (const auto& name : fs::list_dir(cache_dir())) {
        std::string path = cache_dir() + "/" + name;
        if (name.size() < 5 || name.substr(name.size() - 5) != ".json") {
            continue;
        }
        auto j = nlohmann::json::parse(fs::read_file(path, formats::k_max_document_size), nullptr,
                                       false);
        if (j.is_discarded() || !j.is_object()) {
            continue;
        }
        for (const char* key : {"blobs", "chain_ids"}) {
            if (j.contains(key) && j[key].is_array()) {
                for (const auto& v : j[key]) {
                    if (v.is_string()) {
                        if (auto d = Digest::try_parse(v.get<std::string>())) {
                            (std::string_view(key) == "blobs" ? keep_blobs : keep_snapshots)
                                .insert(std::string(d->hex()));
                        }
                    }
                }
            }
        }
    }
    std::string blobs = m_root + "/blobs/sha256";
    for (const auto& name : fs::list_dir(blobs)) {
        if (keep_blobs.count(name) == 0 && !changed_since(blobs + "/" + name, since)) {
            struct stat st;
            if (::lstat((blobs + "/" + name).c_str(), &st) == 0) {
                result.bytes_removed += static_cast<std::uint64_t>(st.st_size);
            }
            fs::remove_all(blobs + "/" + name);
            result.blobs_removed++;
        }
    }
    // Lazily pulled layers (partial/<hex>) go with the last image naming
    // them, and once their whole blob is in blobs/ (`strata pull`).
    if (fs::is_dir(m_root + "/partial")) {
        for (const auto& name : fs::list_dir(m_root + "/partial")) {
            std::string dir = m_root + "/partial/" + name;
            bool whole = fs::exists(blobs + "/" + name);
            if ((whole || keep_blobs.count(name) == 0) && !changed_since(dir, since)) {
                fs::remove_all(dir);
            }
        }
    }
    // Lazy images' content indexes (lazy/<blob hex>.idx) go with their blob.
    if (fs::is_dir(m_root + "/lazy")) {
        for (const auto& name : fs::list_dir(m_root + "/lazy")) {
            std::string hex = name.substr(0, name.find('.'));
            if (!fs::exists(blobs + "/" + hex)) {
                fs::remove_all(m_root + "/lazy/" + name);
            }
        }
    }
    for (const auto& name : fs::list_dir(m_root + "/snapshots")) {
        std::string dir = m_root + "/snapshots/" + name;
        if (keep_snapshots.count(name) == 0 && !changed_since(dir, since)) {
            // Removed under gc's own exclusive lock, so that no one starts
            // to use it meanwhile.
            UniqueFd held(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
            if (held && ::flock(held.get(), LOCK_EX | LOCK_NB) != 0) {
                continue; // someone's container or step stacks it
            }
            fs::remove_all(dir);
            result.snapshots_removed++;
        }
    }
    // tmp/: every user locks its entry (TempDir and AtomicFile hold a shared
    // flock on it) for as long as it works there; an entry that is locked
    // is in use however old it looks. An unlocked one is a leftover of an
    // interrupted strata once it is an hour old (younger ones may be about
    // to be locked by the process that just made them).
    for (const auto& name : fs::list_dir(tmp_dir())) {
        std::string p = tmp_dir() + "/" + name;
        struct stat st;
        if (::lstat(p.c_str(), &st) != 0 || st.st_mtime > now - 3600) {
            continue;
        }
        UniqueFd fd;
        if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
            fd = UniqueFd(::open(p.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
            if (fd && ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
                STRATA_LOG_DEBUG("gc: {} is in use", p);
                continue;
            }
        }
        try {
            fs::remove_all(p);
        } catch (const Error& e) {
            STRATA_LOG_WARN("gc: {}", e.what()); // e.g. a leftover mount point
        }
    }
    return result;
}

std::vector<VerifyProblem>
Store::verify(const std::function<void(std::string_view)>& progress) const {
    return verify_all(progress).problems;
}

bool Store::remove_snapshot(const Digest& chain_id) {
    std::string dir = m_root + "/snapshots/" + std::string(chain_id.hex());
    StoreLock l = lock();
    if (!fs::exists(dir)) {
        return false;
    }
    fs::remove_all(dir);
    return true;
}

VerifyResult Store::verify_all(const std::function<void(std::string_view)>& progress) const {
    VerifyResult result;
    auto& problems = result.problems;
    std::unordered_set<std::string> bad_blobs;
    std::string blobs = m_root + "/blobs/sha256";
    for (const auto& name : fs::list_dir(blobs)) {
        auto expected = Digest::try_parse("sha256:" + name);
        if (!expected) {
            problems.push_back(
                {"blobs/sha256/" + name + ": not a valid digest name", std::nullopt});
            continue;
        }
        if (progress) {
            progress(expected->str());
        }
        ++result.blobs;
        UniqueFd fd = open_blob(*expected);
        formats::DigestHasher h;
        std::vector<char> buf(1 << 20);
        while (true) {
            ssize_t n = ::read(fd.get(), buf.data(), buf.size());
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                problems.push_back(
                    {"blob " + expected->str() + ": " + std::strerror(errno), std::nullopt});
                bad_blobs.insert(name);
                break;
            }
            if (n == 0) {
                Digest actual = h.finish();
                if (actual != *expected) {
                    problems.push_back(
                        {"blob " + expected->str() + ": content hashes to " + actual.str(),
                         std::nullopt});
                    bad_blobs.insert(name);
                }
                break;
            }
            h.update(buf.data(), static_cast<std::size_t>(n));
        }
    }
    // Which layer each snapshot was unpacked from, and the snapshots below it.
    struct Source {
        Digest layer;
        std::vector<Digest> lowers; // bottom first
    };
    std::map<std::string, Source> sources;
    for (const auto& rec : images()) {
        std::string label = rec.name ? rec.name->familiar() : rec.manifest.digest.str();
        try {
            Image img = load(rec.manifest);
            for (const auto& l : img.manifest.layers) {
                if (!has_blob(l.digest) && !PartialBlob::exists(*this, l.digest)) {
                    problems.push_back(
                        {"image " + label + ": layer " + l.digest.str() + " is missing",
                         std::nullopt});
                }
            }
            auto chains = img.chain_ids();
            for (std::size_t i = 0; i < chains.size() && i < img.manifest.layers.size(); ++i) {
                sources.try_emplace(
                    std::string(chains[i].hex()),
                    Source{img.manifest.layers[i].digest,
                           std::vector<Digest>(chains.begin(),
                                               chains.begin() + static_cast<std::ptrdiff_t>(i))});
            }
        } catch (const Error& e) {
            problems.push_back({"image " + label + ": " + e.what(), std::nullopt});
        }
    }
    // Build cache records name a step's layer and chain ID.
    for (const auto& name : fs::list_dir(cache_dir())) {
        if (name.size() < 5 || name.substr(name.size() - 5) != ".json") {
            continue;
        }
        auto j = nlohmann::json::parse(
            fs::read_file(cache_dir() + "/" + name, formats::k_max_document_size), nullptr, false);
        if (j.is_discarded() || !j.is_object() || !j.contains("chain_id") ||
            !j["chain_id"].is_string() || !j.contains("layer") || !j["layer"].is_object() ||
            !j["layer"].contains("digest") || !j["layer"]["digest"].is_string()) {
            continue;
        }
        auto chain = Digest::try_parse(j["chain_id"].get<std::string>());
        auto layer = Digest::try_parse(j["layer"]["digest"].get<std::string>());
        if (chain && layer) {
            sources.try_emplace(std::string(chain->hex()), Source{*layer, {}});
        }
    }
    for (const auto& name : fs::list_dir(m_root + "/snapshots")) {
        auto chain = Digest::try_parse("sha256:" + name);
        if (!chain || !has_snapshot(*chain)) {
            continue; // not a snapshot (leftover of an interrupted adopt; gc removes it)
        }
        auto it = sources.find(name);
        if (it == sources.end()) {
            ++result.snapshots_skipped;
            continue;
        }
        const Source& src = it->second;
        std::string label = "snapshot " + chain->str();
        if (!has_blob(src.layer)) {
            problems.push_back(
                {label + ": cannot check it, its layer " + src.layer.str() + " is missing",
                 std::nullopt});
            continue;
        }
        if (bad_blobs.contains(std::string(src.layer.hex()))) {
            problems.push_back(
                {label + ": not checked, its layer " + src.layer.str() + " is corrupt",
                 std::nullopt});
            continue;
        }
        if (progress) {
            progress(label);
        }
        std::vector<std::string> lowers;
        for (auto l = src.lowers.rbegin(); l != src.lowers.rend(); ++l) {
            if (has_snapshot(*l)) {
                lowers.push_back(snapshot_dir(*l));
            }
        }
        ++result.snapshots;
        try {
            UniqueFd blob = open_blob(src.layer);
            SnapshotCheck c =
                verify_snapshot(blob.get(), src.layer.str(), snapshot_dir(*chain), lowers);
            for (auto& m : c.mismatches) {
                problems.push_back({label + ": " + m.path + ": " + m.what, *chain});
            }
        } catch (const Error& e) {
            problems.push_back({label + ": " + e.what(), *chain});
        }
    }
    return result;
}

} // namespace strata::snapshot
