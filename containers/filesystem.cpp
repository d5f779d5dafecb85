#include "containers/filesystem.hpp"

#include "formats/tar.hpp"
#include "formats/whiteout.hpp"
#include "snapshot/flatten.hpp"
#include "snapshot/layer_apply.hpp"
#include "snapshot/upper_layer.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <cerrno>
#include <fcntl.h>
#include <optional>
#include <set>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

namespace strata::containers {

char change_letter(ChangeKind k) {
    switch (k) {
    case ChangeKind::modify:
        return 'C';
    case ChangeKind::add:
        return 'A';
    case ChangeKind::remove:
        return 'D';
    }
    return '?';
}

namespace {

bool has_opaque(const std::string& path) {
    for (const char* name :
         {formats::whiteout::k_trusted_opaque, formats::whiteout::k_user_opaque}) {
        char v[4];
        ssize_t n = ::lgetxattr(path.c_str(), name, v, sizeof v);
        if (n == 1 && v[0] == 'y') {
            return true;
        }
    }
    return false;
}

std::vector<std::string> components(const std::string& rel) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos <= rel.size()) {
        std::size_t slash = rel.find('/', pos);
        if (slash == std::string::npos) {
            slash = rel.size();
        }
        if (slash > pos) {
            out.push_back(rel.substr(pos, slash - pos));
        }
        pos = slash + 1;
    }
    return out;
}

// What the lowers (topmost first) show at rel, as overlayfs looks it up: a
// whiteout or a non-directory on the way hides the layers below, as does an
// opaque directory on the way. No symlink is followed (each component but
// the last is checked to be a directory first).
std::optional<struct stat> lower_lookup(const std::vector<std::string>& lowers,
                                        const std::string& rel) {
    std::vector<std::string> comps = components(rel);
    for (const auto& lower : lowers) {
        std::string cur = lower;
        bool opaque = false;
        for (std::size_t i = 0; i < comps.size(); ++i) {
            cur += "/" + comps[i];
            struct stat st;
            if (::lstat(cur.c_str(), &st) != 0) {
                if (errno != ENOENT && errno != ENOTDIR) {
                    throw_errno("stat", cur);
                }
                break; // not in this layer
            }
            if (formats::whiteout::is_device(st)) {
                return std::nullopt;
            }
            if (i + 1 == comps.size()) {
                return st;
            }
            if (!S_ISDIR(st.st_mode)) {
                return std::nullopt;
            }
            if (has_opaque(cur)) {
                opaque = true;
            }
        }
        if (opaque) {
            return std::nullopt;
        }
    }
    return std::nullopt;
}

// Go's sameFsTime: equal, or the same second with one side's nanoseconds
// lost (a filesystem or archive without them).
bool same_time(const struct timespec& a, const struct timespec& b) {
    if (a.tv_sec != b.tv_sec) {
        return false;
    }
    return a.tv_nsec == b.tv_nsec || a.tv_nsec == 0 || b.tv_nsec == 0;
}

} // namespace

std::vector<Change> list_changes(const std::vector<std::string>& lowers, const std::string& upper) {
    std::vector<Change> out;
    std::set<std::string> changed_dirs;
    snapshot::walk_upper_dir(upper, [&](const snapshot::UpperEntry& e) {
        std::string path = "/" + e.path;
        Change c;
        c.path = path;
        if (e.whiteout || e.opaque) {
            c.kind = ChangeKind::remove;
        } else {
            c.kind = ChangeKind::add;
            if (auto ls = lower_lookup(lowers, e.path)) {
                if (S_ISDIR(ls->st_mode) && S_ISDIR(e.st.st_mode) && ls->st_size == e.st.st_size &&
                    ls->st_mode == e.st.st_mode && same_time(ls->st_mtim, e.st.st_mtim)) {
                    return; // copied up for what is below it
                }
                c.kind = ChangeKind::modify;
            }
        }
        if (S_ISDIR(e.st.st_mode)) {
            changed_dirs.insert(path);
        }
        if (c.kind != ChangeKind::modify) {
            std::string parent = fs::dirname(path);
            if (parent != "/" && !changed_dirs.contains(parent)) {
                out.push_back(Change{parent, ChangeKind::modify});
                changed_dirs.insert(parent);
            }
        }
        out.push_back(std::move(c));
    });
    return out;
}

CommitResult commit_image(snapshot::Store& store, const snapshot::Image& base,
                          const std::string& upper, formats::ImageConfig config,
                          formats::History history, formats::Compression compression) {
    formats::TarWriter::Options to;
    to.compression = compression;
    to.chunked = true; // zstd layers are zstd:chunked
    snapshot::DiffStats stats;
    std::optional<snapshot::UpperLayer> packed =
        snapshot::put_upper_layer(store, upper, to, &stats);
    std::vector<formats::Descriptor> layers = base.manifest.layers;
    config.diff_ids = base.config.diff_ids;
    config.history = base.config.history;
    if (packed) {
        layers.push_back(packed->layer);
        config.diff_ids.push_back(packed->diff_id);
    } else {
        history.empty_layer = true;
    }
    config.created = history.created;
    config.history.push_back(std::move(history));
    formats::Descriptor manifest = store.put_image(config, layers);
    return CommitResult{manifest, store.load(manifest).id(), !packed.has_value(), stats};
}

void write_container_tar(snapshot::Store& store, const snapshot::Image& image,
                         const std::string& upper, int fd) {
    TempDir work(store.tmp_dir(), "export-");
    std::string root = work.path() + "/rootfs";
    fs::mkdirs(root, 0755);
    snapshot::flatten_image(store, image, root);
    // The upper in OCI form (its whiteouts as .wh. entries), applied over
    // the image as a layer is when an image is flattened.
    {
        std::string layer_path = work.path() + "/upper.tar";
        UniqueFd layer = fs::open(layer_path, O_RDWR | O_CREAT | O_EXCL, 0600);
        formats::TarWriter::Options wo;
        wo.compression = formats::Compression::none;
        snapshot::write_upper_layer(upper, layer.get(), wo);
        if (::lseek(layer.get(), 0, SEEK_SET) != 0) {
            throw_errno("lseek", layer_path);
        }
        UniqueFd target = fs::open_dir(root);
        snapshot::ApplyOptions ao;
        ao.mode = snapshot::WhiteoutMode::flatten;
        ao.layer_name = "the container's writable layer " + upper;
        snapshot::apply_layer_at(layer.get(), target.get(), ao);
    }
    formats::TarWriter::Options wo;
    wo.compression = formats::Compression::none;
    snapshot::write_diff_layer(root, "", fd, wo);
}

} // namespace strata::containers
