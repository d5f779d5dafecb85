// mount, umount, mounts: an image's layers stacked on a directory, read-only
// or with a writable upper directory that `umount --commit` turns into a new
// image with one more layer.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/mount_state.hpp"
#include "cli/registry.hpp"
#include "formats/media_types.hpp"
#include "layerfs/mount.hpp"
#include "snapshot/layer_diff.hpp"
#include "snapshot/lazy_index.hpp"
#include "snapshot/stack_order.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/scope.hpp"
#include "util/sha256.hpp"
#include "util/sys/mount.hpp"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <iostream>
#include <memory>
#include <set>
#include <sys/file.h>
#include <unistd.h>

namespace strata::cli {

namespace {

std::string state_dir(const snapshot::Store& store) {
    return store.root() + "/mounts";
}

// Per-target work directory for writable mounts: mounts/<sha of target>/.
std::string work_dir_for(const snapshot::Store& store, const std::string& target) {
    return state_dir(store) + "/rw-" + Sha256::hex_of(target).substr(0, 16);
}

// mounts/lock: held while a writable mount's directory and record are made,
// and while orphans are looked for, so that gc never takes the directory of
// a mount being set up for an orphan.
UniqueFd lock_mounts(const snapshot::Store& store) {
    fs::mkdirs(state_dir(store), 0700);
    UniqueFd fd = fs::open(state_dir(store) + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    while (::flock(fd.get(), LOCK_EX) != 0) {
        if (errno != EINTR) {
            throw_errno("flock", state_dir(store) + "/lock");
        }
    }
    return fd;
}

// A writable lazy mount's lower directory: the image served by a
// strata-lazy daemon inside the mount's work directory (mounts/rw-*/lower),
// under the kernel overlay that holds the writes.
std::string lazy_lower_dir(const std::string& rw) {
    return rw + "/lower";
}

// Takes down a writable mount's lazy lower, if it is mounted (after the
// overlay on it is gone), then removes the work directory. remove_all never
// crosses into a mount, so the lower goes first.
void remove_rw_dir(const std::string& rw) {
    if (sys::is_mount_point(lazy_lower_dir(rw))) {
        layerfs::unmount(lazy_lower_dir(rw));
    }
    fs::remove_all(rw);
}

std::vector<std::string> find_orphans(const snapshot::Store& store) {
    std::vector<std::string> out;
    std::string dir = state_dir(store);
    if (!fs::is_dir(dir)) {
        return out;
    }
    std::set<std::string> used;
    for (const auto& r : layerfs::list_mounts(dir)) {
        if (!r.upper.empty()) {
            used.insert(fs::dirname(r.upper));
        }
    }
    for (const auto& name : fs::list_dir(dir)) {
        std::string p = dir + "/" + name;
        if (name.rfind("rw-", 0) == 0 && fs::is_dir(p) && used.count(p) == 0) {
            out.push_back(p);
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

struct MountOptions {
    std::string driver; // empty: overlay as root, fuse otherwise
    bool writable = false;
    bool lazy = false;
    bool no_lazy = false;
    std::string image;
    std::string dir;
};

void mount_image(Context& ctx, const MountOptions& o) {
    snapshot::Store store = open_store(ctx);
    // Kernel overlayfs needs CAP_SYS_ADMIN in the initial user namespace for
    // a mount others can see; strata's FUSE union filesystem works for any
    // user /dev/fuse and fusermount3 allow (as podman falls back to
    // fuse-overlayfs when rootless).
    layerfs::Driver driver =
        o.driver.empty() ? (::geteuid() == 0 ? layerfs::Driver::overlay : layerfs::Driver::fuse)
                         : layerfs::parse_driver(o.driver);
    if (o.lazy) {
        lazy_pull_missing(store, o.image, std::cerr);
    }
    snapshot::ImageRecord rec = store.resolve(o.image);
    snapshot::Image img = store.load(rec.manifest);
    std::string target = fs::absolute(o.dir);
    if (!fs::is_dir(target)) {
        throw Error("mount point " + target + " is not a directory");
    }
    // An image whose snapshots are missing is served at once from its
    // compressed layers (strata-lazy) instead of being unpacked first;
    // --writable stacks kernel overlayfs (the writes) over that lazy mount,
    // as `strata run` does, so it needs root and the overlay driver.
    if (o.lazy && o.writable && (driver != layerfs::Driver::overlay || ::geteuid() != 0)) {
        throw UsageError("--lazy --writable stacks kernel overlayfs over the lazy mount: it needs "
                         "root and the overlay driver (--no-lazy unpacks the image instead)");
    }
    const bool lazy = snapshot::choose_lazy(store, img,
                                            o.lazy ? snapshot::LazyMode::on
                                            : o.no_lazy || !o.driver.empty() || ::geteuid() != 0
                                                ? snapshot::LazyMode::off
                                                : snapshot::LazyMode::automatic);
    layerfs::MountSpec spec;
    if (lazy && !o.writable) {
        spec.lazy = layerfs::LazyImage{store.root(), img.descriptor.digest.str(), false};
        driver = layerfs::Driver::fuse;
    } else if (!lazy) {
        spec.lowers = snapshot::top_first(store.ensure_snapshots(img));
        if (spec.lowers.empty()) {
            throw Error("image " + o.image + " has no layers to mount");
        }
    }
    spec.driver = driver;
    // A mount on the host, browsable by other users: an image's setuid-root
    // binary or device node must not work there (as the FUSE driver mounts).
    spec.nosuid_nodev = true;
    spec.state_dir = state_dir(store);
    fs::mkdirs(spec.state_dir, 0700);
    if (auto previous = layerfs::maybe_mount_record(spec.state_dir, target);
        previous && previous->mounted) {
        // Mounting again would also throw away its writable layer.
        throw Error(target + " is already a strata mount (" +
                    previous->label.substr(previous->label.find(' ') + 1) +
                    "); strata umount it first");
    }
    // The label names the image by manifest digest, so that umount --commit
    // knows what the new layer goes on.
    spec.label = img.descriptor.digest.str() + " " + (rec.name ? rec.name->familiar() : "<none>");
    UniqueFd mounts_lock = lock_mounts(store);
    std::string rw = o.writable ? work_dir_for(store, target) : "";
    ScopeFail drop_rw([&] {
        if (!rw.empty()) {
            try {
                remove_rw_dir(rw);
            } catch (const std::exception& e) {
                STRATA_LOG_WARN("removing {}: {}", rw, e.what());
            }
        }
    });
    if (o.writable) {
        remove_rw_dir(rw);
        spec.upper = rw + "/upper";
        spec.work = rw + "/work";
        fs::mkdirs(spec.upper, 0755);
        fs::mkdirs(spec.work, 0700);
    }
    // gc keeps the image while it is mounted (until umount).
    store.pin("mount-" + Sha256::hex_of(target).substr(0, 16), img.descriptor);
    ScopeFail unpin([&] {
        try {
            store.unpin("mount-" + Sha256::hex_of(target).substr(0, 16));
        } catch (const std::exception& e) {
            STRATA_LOG_WARN("{}", e.what());
        }
    });
    // The writable lazy mount's lower: a strata-lazy daemon (nosuid,nodev)
    // inside the work directory, recorded as the overlay's single lower in
    // the overlay's record; umount takes it down after the overlay. Unmounted
    // again (before the work directory goes) if the overlay cannot be made.
    layerfs::MountHandle lazy_lower;
    if (lazy && o.writable) {
        std::string lower = lazy_lower_dir(rw);
        fs::mkdirs(lower, 0755);
        layerfs::MountSpec ls;
        ls.lazy = layerfs::LazyImage{store.root(), img.descriptor.digest.str(), false};
        ls.driver = layerfs::Driver::fuse;
        lazy_lower = layerfs::mount(ls, lower);
        spec.lowers = {lower};
    }
    try {
        layerfs::mount(spec, target).release();
        lazy_lower.release();
    } catch (const SysError& e) {
        if (driver != layerfs::Driver::overlay || e.error_code() != EPERM || ::geteuid() == 0) {
            throw;
        }
        throw Error(std::string(e.what()) +
                    ": kernel overlayfs mounts need root; use --driver fuse (strata's FUSE union "
                    "filesystem, which works for non-root users)");
    }
}

void umount_image(Context& ctx, const std::string& dir, const std::string& commit) {
    snapshot::Store store = open_store(ctx);
    std::string target = fs::absolute(dir);
    auto record = layerfs::maybe_mount_record(state_dir(store), target);
    std::optional<snapshot::Reference> name;
    if (!commit.empty()) {
        name = snapshot::Reference::parse(commit);
        if (!record) {
            throw Error(target + " is not a strata mount (no record in " + state_dir(store) + ")");
        }
        if (record->upper.empty()) {
            throw Error(
                target +
                " was mounted read-only: there is nothing to commit (mount it with --writable)");
        }
    }
    // --commit: the image must still be there before anything is torn down,
    // or the writable layer would be left where no command sees it.
    std::optional<snapshot::Image> found;
    std::optional<formats::Digest> manifest_digest;
    if (name) {
        manifest_digest = formats::Digest::parse(record->label.substr(0, record->label.find(' ')));
        for (const auto& r : store.images()) {
            if (r.manifest.digest == *manifest_digest) {
                found = store.load(r.manifest);
                break;
            }
        }
        if (!found) {
            throw Error("the image mounted on " + target + " (" + manifest_digest->str() +
                        ") is no longer in the store: nothing was unmounted; `strata umount " +
                        target + "` (without --commit) discards the changes");
        }
    }
    layerfs::unmount(target, state_dir(store));
    store.unpin("mount-" + Sha256::hex_of(target).substr(0, 16));
    if (!record || record->upper.empty()) {
        return;
    }
    std::string rw = fs::dirname(record->upper);
    // A writable lazy mount: its strata-lazy lower goes after the overlay.
    if (sys::is_mount_point(lazy_lower_dir(rw))) {
        layerfs::unmount(lazy_lower_dir(rw));
    }
    if (!name) {
        remove_rw_dir(rw);
        return;
    }
    // The upper directory is the diff: it becomes a layer and, as it is, the
    // new snapshot.
    const snapshot::Image& base = *found;
    auto blob = store.new_blob();
    formats::TarWriter::Options wo;
    wo.compression = formats::Compression::gzip; // strata's default, as Docker's
    formats::LayerDigests d = snapshot::write_upper_layer(record->upper, blob.fd(), wo);
    blob.commit_trusted(d.blob_digest);
    formats::Descriptor layer;
    layer.media_type = formats::oci_layer_media_type(wo.compression);
    layer.digest = d.blob_digest;
    layer.size = static_cast<std::int64_t>(d.blob_size);
    formats::ImageConfig config = base.config;
    config.created = now_rfc3339();
    config.diff_ids.push_back(d.diff_id);
    config.history.push_back(formats::History{
        config.created, "strata mount --writable (committed by strata umount)", "", "", false});
    std::vector<formats::Descriptor> layers = base.manifest.layers;
    layers.push_back(layer);
    formats::Descriptor manifest = store.put_image(config, layers);
    snapshot::Image committed = store.load(manifest);
    store.adopt_snapshot(committed.chain_ids().back(), record->upper);
    remove_rw_dir(rw);
    store.set_name(*name, manifest);
    std::cout << committed.id().str() << "\n";
}

void list(Context& ctx) {
    snapshot::Store store = open_store(ctx);
    std::vector<std::vector<std::string>> rows{{"TARGET", "DRIVER", "MODE", "IMAGE", "STATE"}};
    for (const auto& r : layerfs::list_mounts(state_dir(store))) {
        std::string label =
            r.label.substr(r.label.find(' ') == std::string::npos ? 0 : r.label.find(' ') + 1);
        // A writable lazy mount: kernel overlayfs over its strata-lazy lower.
        bool lazy_rw = !r.upper.empty() && r.lowers.size() == 1 &&
                       r.lowers.front() == lazy_lower_dir(fs::dirname(r.upper));
        rows.push_back({r.target,
                        lazy_rw ? std::string("overlay+lazy") : layerfs::driver_name(r.driver),
                        r.upper.empty() ? "ro" : "rw", label, r.mounted ? "mounted" : "gone"});
    }
    for (const auto& dir : orphaned_uppers(store)) {
        rows.push_back({dir, "-", "rw", "-", "orphaned upper (strata gc removes it)"});
    }
    print_table(rows);
}

} // namespace

std::vector<std::string> mounts_of_image(const snapshot::Store& store,
                                         const formats::Digest& manifest) {
    std::vector<std::string> out;
    for (const auto& r : layerfs::list_mounts(state_dir(store))) {
        if (r.label.substr(0, r.label.find(' ')) == manifest.str() &&
            (r.mounted || !r.upper.empty())) {
            out.push_back(r.target);
        }
    }
    return out;
}

std::vector<std::string> orphaned_uppers(const snapshot::Store& store) {
    if (!fs::is_dir(state_dir(store))) {
        return {};
    }
    UniqueFd l = lock_mounts(store);
    return find_orphans(store);
}

std::vector<std::string> remove_orphaned_uppers(const snapshot::Store& store) {
    if (!fs::is_dir(state_dir(store))) {
        return {};
    }
    UniqueFd l = lock_mounts(store);
    std::vector<std::string> gone = find_orphans(store);
    for (const auto& d : gone) {
        remove_rw_dir(d);
    }
    return gone;
}

void register_mount(CLI::App& app, Context& ctx) {
    auto o = std::make_shared<MountOptions>();
    auto* cmd = app.add_subcommand("mount", "Mount an image's filesystem on a directory");
    cmd->add_option("--driver", o->driver,
                    "overlay (kernel overlayfs; the default as root) or fuse (strata's union "
                    "filesystem; the default otherwise)")
        ->check(CLI::IsMember({"overlay", "fuse"}));
    cmd->add_flag("--writable", o->writable,
                  "Add a writable upper directory (see umount --commit)");
    auto* lazy = cmd->add_flag("--lazy", o->lazy,
                               "Serve the image from its compressed layers without unpacking it "
                               "(the default when it is not unpacked yet); an image not in the "
                               "store is pulled lazily (strata pull --lazy)");
    cmd->add_flag("--no-lazy", o->no_lazy, "Unpack the image's missing layers first")
        ->excludes(lazy);
    cmd->add_option("IMAGE", o->image, "Image name or ID")->required();
    cmd->add_option("DIR", o->dir, "Mount point")->required();
    cmd->callback([&ctx, o] { mount_image(ctx, *o); });

    struct UmountOptions {
        std::string dir, commit;
    };
    auto u = std::make_shared<UmountOptions>();
    auto* um = app.add_subcommand("umount", "Unmount an image mounted with strata mount");
    um->add_option("--commit", u->commit, "Save the writable layer as a new image NAME:TAG");
    um->add_option("DIR", u->dir, "Mount point")->required();
    um->callback([&ctx, u] { umount_image(ctx, u->dir, u->commit); });

    auto* ls = app.add_subcommand("mounts", "List the images strata has mounted");
    ls->callback([&ctx] { list(ctx); });
}

} // namespace strata::cli
