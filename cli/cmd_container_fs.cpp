// docker diff, commit and export of containers: the container's record
// (containers::Store) gives the image (its snapshots are the lowers) and the
// writable layer; containers/filesystem.* does the work; commit's --change
// goes through the builder's Dockerfile parser (cli/commit_changes.*).
#include "cli/commands.hpp"
#include "cli/commit_changes.hpp"
#include "cli/common.hpp"
#include "cli/container_fs.hpp"

#include "builder/cache.hpp"
#include "containers/copy.hpp"
#include "containers/events.hpp"
#include "containers/filesystem.hpp"
#include "containers/store.hpp"
#include "formats/json.hpp"
#include "formats/tar.hpp"
#include "layerfs/mount.hpp"
#include "layerfs/overlay.hpp"
#include "runner/cgroup.hpp"
#include "snapshot/layer_diff.hpp"
#include "snapshot/lazy_index.hpp"
#include "snapshot/reference.hpp"
#include "snapshot/stack_order.hpp"
#include "util/atomic_file.hpp"
#include "util/child.hpp"
#include "util/error.hpp"
#include "util/event_log.hpp"
#include "util/fs.hpp"
#include "util/root.hpp"

#include <algorithm>
#include <fcntl.h>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

namespace strata::cli {

namespace {

// The image a container was made from: the manifest its record names
// (StrataManifest), else its image ID.
snapshot::Image container_image(const snapshot::Store& store, const nlohmann::ordered_json& config,
                                const std::string& id) {
    auto m = config.find("StrataManifest");
    if (m != config.end() && m->is_object()) {
        return store.load(
            formats::parse_descriptor(m->dump(), "container " + id + " StrataManifest"));
    }
    auto img = config.find("Image");
    if (img == config.end() || !img->is_string()) {
        throw Error("container " + id + ": config.json names no image");
    }
    return store.load(img->get<std::string>());
}

struct ContainerFs {
    std::string id;
    nlohmann::ordered_json config;
    snapshot::Image image;
    std::string upper;
};

ContainerFs open_container(snapshot::Store& store, const containers::Store& cs,
                           const std::string& text) {
    ContainerFs c;
    c.id = cs.resolve(text);
    c.config = cs.load_config(c.id);
    c.image = container_image(store, c.config, c.id);
    c.upper = cs.path(c.id) + "/upper";
    return c;
}

// The lowers as overlayfs takes them: topmost first.
std::vector<std::string> lowers_of(snapshot::Store& store, const snapshot::Image& image) {
    return snapshot::top_first(store.ensure_snapshots(image));
}

// The image as the monitor would start the container: one that is not
// unpacked (by its recorded --lazy / --no-lazy, else by size) is served
// from its compressed layers by strata-lazy, in the foreground as the
// caller's child; nullopt: its snapshots (unpacked if missing).
std::optional<layerfs::MountSpec> lazy_root_spec(const snapshot::Store& store,
                                                 const ContainerFs& c) {
    const std::string flag = c.config.value("StrataLazy", std::string());
    if (!snapshot::choose_lazy(store, c.image,
                               flag == "on"    ? snapshot::LazyMode::on
                               : flag == "off" ? snapshot::LazyMode::off
                                               : snapshot::LazyMode::automatic)) {
        return std::nullopt;
    }
    layerfs::MountSpec ls;
    ls.lazy = layerfs::LazyImage{store.root(), c.image.descriptor.digest.str(), true};
    ls.driver = layerfs::Driver::fuse;
    ls.foreground = true;
    ls.fsname = "strata-lazy";
    return ls;
}

void private_mount_namespace() {
    if (::unshare(CLONE_NEWNS) != 0) {
        throw_errno("unshare(CLONE_NEWNS)", "(a stopped container's files need root)");
    }
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        throw_errno("mount", "/ (make private)");
    }
}

// The OCI fields of the container's Config (docker inspect's shape) over
// the image's config: Docker commits the container's config.
formats::ImageConfig committed_config(const snapshot::Image& base,
                                      const nlohmann::ordered_json& config, const std::string& id) {
    auto doc = nlohmann::ordered_json::parse(formats::to_json(base.config));
    auto cc = config.find("Config");
    if (cc != config.end() && cc->is_object()) {
        auto& out = doc["config"];
        if (!out.is_object()) {
            out = nlohmann::ordered_json::object();
        }
        for (const char* key :
             {"User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
              "StopSignal", "ArgsEscaped", "Healthcheck", "OnBuild", "Shell"}) {
            auto it = cc->find(key);
            if (it == cc->end()) {
                continue;
            }
            if (it->is_null()) {
                out.erase(key);
            } else {
                out[key] = *it;
            }
        }
    }
    return formats::parse_image_config(doc.dump(), "container " + id + " config");
}

// Go's strings.Join(cmd, " ").
std::string join_cmd(const std::optional<std::vector<std::string>>& cmd) {
    std::string out;
    if (cmd) {
        for (const auto& a : *cmd) {
            if (!out.empty()) {
                out += ' ';
            }
            out += a;
        }
    }
    return out;
}

struct CommitOptions : CommitSettings {
    std::string container;
};

// commit -p (the default): a running container is frozen (its cgroup's
// freezer, as `pause`) while its writable layer is read, so that the layer
// is one moment of it, and thawed after, as Docker's daemon does. A paused
// container stays paused.
class FrozenWhile {
public:
    FrozenWhile(const containers::Store& cs, const std::string& id, bool pause) {
        if (!pause) {
            return;
        }
        containers::State st = cs.load_state(id);
        if (!st.running() || st.status == "paused") {
            return;
        }
        m_cg = runner::cgroup_paths(id);
        if (m_cg.empty()) {
            throw Error("Cannot pause container " + id + ": it has no cgroup");
        }
        runner::freeze(m_cg);
        m_frozen = true;
    }
    ~FrozenWhile() {
        if (m_frozen) {
            try {
                runner::thaw(m_cg);
            } catch (const std::exception& e) {
                std::cerr << "strata: warning: cannot unpause the container after commit: "
                          << e.what() << "\n";
            }
        }
    }
    FrozenWhile(const FrozenWhile&) = delete;
    FrozenWhile& operator=(const FrozenWhile&) = delete;

private:
    runner::CgroupPaths m_cg;
    bool m_frozen = false;
};

// The container's filesystem as its processes see it. Running: its PID 1's
// root (/proc/<Pid>/root), with its volumes and mounts. Otherwise: the
// overlay of its image's snapshots (or of the image served lazily) and its
// writable layer, mounted on
// <id>/rootfs in a mount namespace of this process's own (gone when it
// exits), under the container's lock so that it is not started meanwhile.
class ContainerRoot {
public:
    ContainerRoot(snapshot::Store& store, const containers::Store& cs, const ContainerFs& c) {
        containers::State state = cs.load_state(c.id);
        if (state.running() && state.pid > 0) {
            m_fd = fs::open("/proc/" + std::to_string(state.pid) + "/root", O_PATH | O_DIRECTORY);
            return;
        }
        m_lock = cs.lock(c.id);
        state = cs.load_state(c.id);
        if (state.running()) {
            throw Error("container " + c.id + " started while cp looked at it; try again");
        }
        if (::unshare(CLONE_NEWNS) != 0) {
            throw_errno("unshare(CLONE_NEWNS)", "(cp to or from a stopped container needs root)");
        }
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
            throw_errno("mount", "/ (make private)");
        }
        std::string dir = cs.path(c.id);
        std::string target = dir + "/rootfs";
        fs::mkdirs(target, 0755);
        // An image that is not unpacked is served lazily (strata-lazy, this
        // process's child, mounted in this namespace) rather than unpacked
        // for a copy.
        std::vector<std::string> lowers;
        if (auto ls = lazy_root_spec(store, c)) {
            fs::mkdirs(dir + "/lazy", 0755);
            m_lazy = layerfs::mount(*ls, dir + "/lazy");
            lowers.push_back(m_lazy->target());
        } else {
            lowers = lowers_of(store, c.image);
        }
        layerfs::mount_overlay(layerfs::OverlaySpec{lowers, c.upper, dir + "/work"}, target);
        m_mounted = target;
        m_fd = fs::open(target, O_PATH | O_DIRECTORY);
    }
    ~ContainerRoot() {
        m_fd = UniqueFd();
        if (!m_mounted.empty()) {
            ::umount2(m_mounted.c_str(), MNT_DETACH);
        }
    }
    ContainerRoot(const ContainerRoot&) = delete;
    ContainerRoot& operator=(const ContainerRoot&) = delete;
    int fd() const { return m_fd.get(); }

private:
    containers::Lock m_lock;
    std::optional<layerfs::MountHandle> m_lazy; // unmounted after the overlay above it
    std::string m_mounted;
    UniqueFd m_fd;
};

// docker's splitCpArg: an absolute or ./relative path is local; else
// CONTAINER:PATH splits at the first ':'.
std::optional<std::pair<std::string, std::string>> split_container_arg(const std::string& arg) {
    if (arg.starts_with('/') || arg.starts_with("./") || arg == "-") {
        return std::nullopt;
    }
    auto colon = arg.find(':');
    if (colon == std::string::npos || colon == 0) {
        return std::nullopt;
    }
    return std::make_pair(arg.substr(0, colon), arg.substr(colon + 1));
}

void copy_tree(const containers::CopySource& src, const containers::CopyTarget& target,
               bool archive) {
    containers::TreeWriter writer(target.dir.get(), target.shown, archive);
    containers::walk_copy_source(src, target.name,
                                 [&](const formats::TarEntry& e, int fd) { writer.add(e, fd); });
    writer.finish();
    if (auto skipped = writer.stats().devices_skipped; skipped > 0) {
        std::cerr << "strata: warning: skipped " << skipped << " device node"
                  << (skipped == 1 ? "" : "s") << " (needs root)\n";
    }
}

} // namespace

bool container_cp(Context& ctx, const std::string& source, const std::string& dest, bool follow,
                  bool archive) {
    auto from = split_container_arg(source);
    auto to = split_container_arg(dest);
    containers::Store cs(ctx.store_root());
    auto is_container = [&](const std::optional<std::pair<std::string, std::string>>& side) {
        if (!side) {
            return false;
        }
        try {
            cs.resolve(side->first);
            return true;
        } catch (const containers::NoSuchContainer&) {
            return false;
        }
    };
    bool out = is_container(from);
    bool in = is_container(to);
    if (out && in) {
        throw UsageError("copying between containers is not supported");
    }
    if (!out && !in) {
        if (to && !from) {
            // Docker's message for SRC CONTAINER:DEST with no such container.
            throw containers::NoSuchContainer(to->first);
        }
        return false; // an image (strata cp IMAGE:PATH) or two local paths
    }
    snapshot::Store store = open_store(ctx);
    if (out) {
        ContainerFs c = open_container(store, cs, from->first);
        ContainerRoot root(store, cs, c);
        containers::CopySource src =
            containers::open_copy_source(root.fd(), from->second, follow, "container " + c.id);
        if (dest == "-") {
            formats::TarWriter::Options wo;
            wo.compression = formats::Compression::none;
            wo.out_name = "stdout";
            formats::TarWriter writer(STDOUT_FILENO, wo);
            containers::walk_copy_source(
                src, src.contents_only ? "" : src.base,
                [&](const formats::TarEntry& e, int fd) { writer.add(e, fd); });
            writer.finish();
            return true;
        }
        UniqueFd host = fs::open("/", O_PATH | O_DIRECTORY);
        containers::CopyTarget target =
            containers::resolve_copy_target(host.get(), containers::host_absolute(dest), src.is_dir,
                                            src.contents_only, src.base, "", dest);
        copy_tree(src, target, archive);
        return true;
    }
    ContainerFs c = open_container(store, cs, to->first);
    ContainerRoot root(store, cs, c);
    std::string prefix = to->first + ":";
    if (source == "-") {
        // A tar on stdin, extracted into DEST (a directory), every entry
        // resolved inside it.
        UniqueFd dir;
        try {
            dir = open_in_root(root.fd(), to->second.empty() ? "/" : to->second,
                               O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        } catch (const SysError& e) {
            if (e.error_code() == ENOENT || e.error_code() == ENOTDIR) {
                throw Error("destination \"" + prefix + to->second + "\" must be a directory");
            }
            throw;
        }
        containers::TreeWriter writer(dir.get(), prefix + to->second, archive);
        formats::TarReader reader(STDIN_FILENO, "stdin");
        containers::extract_tar(reader, writer);
        writer.finish();
        return true;
    }
    UniqueFd host = fs::open("/", O_PATH | O_DIRECTORY);
    containers::CopySource src =
        containers::open_copy_source(host.get(), containers::host_absolute(source), follow);
    src.shown = source;
    containers::CopyTarget target =
        containers::resolve_copy_target(root.fd(), to->second.empty() ? "/" : to->second,
                                        src.is_dir, src.contents_only, src.base, prefix);
    copy_tree(src, target, archive);
    return true;
}

formats::Digest commit_container(Context& ctx, const std::string& container,
                                 const CommitSettings& o) {
    std::optional<snapshot::Reference> name;
    if (!o.reference.empty()) {
        name = snapshot::Reference::parse(o.reference);
    }
    snapshot::Store store = open_store(ctx);
    containers::Store cs(ctx.store_root());
    ContainerFs c = open_container(store, cs, container);
    formats::ImageConfig config = committed_config(c.image, c.config, c.id);
    // created_by is the container's command, as Docker's history shows it.
    std::string created_by = join_cmd(config.config.cmd);
    apply_commit_changes(config, o.changes);
    if (!o.author.empty()) {
        config.author = o.author;
    }
    formats::History h;
    h.created = containers::now_rfc3339nano();
    h.created_by = created_by;
    h.author = o.author;
    h.comment = o.message;
    FrozenWhile frozen(cs, c.id, o.pause);
    auto res = containers::commit_image(store, c.image, c.upper, std::move(config), std::move(h),
                                        formats::Compression::gzip);
    if (!res.empty_layer) {
        snapshot::Image img = store.load(res.manifest);
        builder::remember_layer_size(store, img.config.diff_ids.back(), res.stats.bytes);
    }
    if (name) {
        store.set_name(*name, res.manifest);
    } else {
        store.add_untagged(res.manifest);
    }
    // dockerd's: a container event naming the image made.
    containers::record_container_event(cs, c.id, "commit",
                                       {{"comment", o.message},
                                        {"imageID", res.id.str()},
                                        {"imageRef", name ? name->familiar() : ""}});
    return res.id;
}

std::optional<std::string> find_container(const Context& ctx, const std::string& text) {
    containers::Store cs(ctx.store_root());
    try {
        return cs.resolve(text);
    } catch (const containers::NoSuchContainer&) {
        return std::nullopt;
    }
}

void container_diff(Context& ctx, const std::string& container) {
    std::string out;
    for (const auto& ch : container_changes(ctx, container)) {
        out += containers::change_letter(ch.kind);
        out += ' ';
        out += ch.path;
        out += '\n';
    }
    std::cout << out << std::flush;
}

void container_export(Context& ctx, const std::string& container, const std::string& output) {
    bool to_stdout = output.empty() || output == "-";
    if (to_stdout && ::isatty(STDOUT_FILENO)) {
        throw UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    if (to_stdout) {
        export_container(ctx, container, STDOUT_FILENO);
        return;
    }
    AtomicFile out(output);
    export_container(ctx, container, out.fd());
    out.commit();
}

namespace {

// Runs fn with the image served lazily on the container's lazy/ directory,
// in a child's mount namespace (this may be the API server, with threads),
// and returns what fn returned, sent back over a pipe. fn's failure is
// rethrown here, its message after `failure` ("" or "container ID: ").
std::string over_lazy_image(const containers::Store& cs, const ContainerFs& c,
                            const layerfs::MountSpec& ls, const std::string& failure,
                            const std::string& doing,
                            const std::function<std::string(const std::string& root)>& fn) {
    std::string lower = cs.path(c.id) + "/lazy";
    fs::mkdirs(lower, 0755);
    Pipe report = Pipe::create();
    Child child = Child::fork_fn([&]() -> int {
        report.read.reset();
        // '+' and fn's result, or '!' and the failure's message.
        std::string out;
        int rc = 0;
        try {
            private_mount_namespace();
            layerfs::MountHandle root = layerfs::mount(ls, lower);
            out = "+" + fn(root.target());
        } catch (const std::exception& e) {
            out = std::string("!") + e.what();
            rc = 1;
        }
        try {
            fs::write_all(report.write.get(), out);
        } catch (const std::exception&) {
            rc = 1;
        }
        return rc;
    });
    report.write.reset();
    std::string data = fs::read_fd(report.read.get(), "the lazy child's report pipe");
    ExitStatus st = child.wait();
    if (data.starts_with('!')) {
        throw Error(failure + data.substr(1));
    }
    if (!st.success() || !data.starts_with('+')) {
        throw Error("container " + c.id + ": " + doing + " over the lazy image " + st.describe());
    }
    return data.substr(1);
}

} // namespace

std::vector<containers::Change> container_changes(Context& ctx, const std::string& container) {
    snapshot::Store store = open_store(ctx);
    containers::Store cs(ctx.store_root());
    ContainerFs c = open_container(store, cs, container);
    auto ls = lazy_root_spec(store, c);
    if (!ls) {
        return containers::list_changes(lowers_of(store, c.image), c.upper);
    }
    // Over the image served lazily, its one merged lower: each change as its
    // kind's digit and its path, NUL-terminated.
    std::string data =
        over_lazy_image(cs, c, *ls, "", "listing the changes", [&](const std::string& root) {
            std::string out;
            for (const auto& ch : containers::list_changes({root}, c.upper)) {
                out += static_cast<char>('0' + static_cast<int>(ch.kind));
                out += ch.path;
                out += '\0';
            }
            return out;
        });
    std::vector<containers::Change> changes;
    for (std::size_t at = 0; at < data.size();) {
        std::size_t end = data.find('\0', at);
        if (end == std::string::npos || end == at || data[at] < '0' || data[at] > '2') {
            throw Error("container " + c.id + ": a truncated change list from the diff's child");
        }
        containers::Change ch;
        ch.kind = static_cast<containers::ChangeKind>(data[at] - '0');
        ch.path = data.substr(at + 1, end - at - 1);
        changes.push_back(std::move(ch));
        at = end + 1;
    }
    return changes;
}

void export_container(Context& ctx, const std::string& container, int fd) {
    snapshot::Store store = open_store(ctx);
    containers::Store cs(ctx.store_root());
    ContainerFs c = open_container(store, cs, container);
    auto ls = lazy_root_spec(store, c);
    if (!ls) {
        containers::write_container_tar(store, c.image, c.upper, fd);
        return;
    }
    // The container's writable layer as a read-only overlay over the image
    // served lazily (its whiteouts and opaque directories read as overlayfs
    // reads them): the tar of that tree is the export.
    std::string merged = cs.path(c.id) + "/export";
    fs::mkdirs(merged, 0755);
    over_lazy_image(
        cs, c, *ls, "container " + c.id + ": ", "exporting", [&](const std::string& root) {
            layerfs::mount_overlay(layerfs::OverlaySpec{{c.upper, root}, "", ""}, merged);
            formats::TarWriter::Options wo;
            wo.compression = formats::Compression::none;
            snapshot::write_diff_layer(merged, "", fd, wo);
            ::umount2(merged.c_str(), MNT_DETACH);
            return std::string();
        });
}

namespace {

// Go's os.FileMode of a stat: the permission bits and the type bits Go
// gives them (fs.ModeDir 1<<31, ModeSymlink 1<<27, ...), as dockerd's
// ContainerPathStat carries it.
std::uint32_t go_file_mode(const struct stat& st) {
    std::uint32_t m = st.st_mode & 0777;
    switch (st.st_mode & S_IFMT) {
    case S_IFDIR:
        m |= 1u << 31;
        break;
    case S_IFLNK:
        m |= 1u << 27;
        break;
    case S_IFIFO:
        m |= 1u << 25;
        break;
    case S_IFSOCK:
        m |= 1u << 24;
        break;
    case S_IFCHR:
        m |= (1u << 26) | (1u << 21);
        break;
    case S_IFBLK:
        m |= 1u << 26;
        break;
    default:
        break;
    }
    if ((st.st_mode & S_ISUID) != 0) {
        m |= 1u << 23;
    }
    if ((st.st_mode & S_ISGID) != 0) {
        m |= 1u << 22;
    }
    if ((st.st_mode & S_ISVTX) != 0) {
        m |= 1u << 20;
    }
    return m;
}

ContainerPathStat stat_in_root(int root_fd, const std::string& path, const std::string& shown) {
    {
        std::string cleaned = clean_path(path.empty() ? "/" : path);
        bool follow = path.ends_with('/') || path.ends_with("/.") || cleaned == "/";
        try {
            open_in_root(root_fd, cleaned == "/" ? "." : cleaned,
                         O_PATH | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
        } catch (const SysError& e) {
            if (e.error_code() == ENOENT || e.error_code() == ENOTDIR) {
                throw NoSuchContainerPath("Could not find the file " + path + " in " + shown);
            }
            throw;
        }
    }
    containers::CopySource src = containers::open_copy_source(root_fd, path, false, shown);
    struct stat st = fs::fstat(src.fd.get());
    ContainerPathStat out;
    std::string cleaned = clean_path(path.empty() ? "/" : path);
    out.name = cleaned == "/" || cleaned == "." ? "/" : fs::basename(cleaned);
    out.size = static_cast<std::int64_t>(st.st_size);
    out.mode = go_file_mode(st);
    out.mtime_sec = st.st_mtim.tv_sec;
    out.mtime_nsec = st.st_mtim.tv_nsec;
    if (S_ISLNK(st.st_mode)) {
        // dockerd: the link resolved (inside the root), as a path in it.
        std::string root = fs::fd_name(root_fd);
        UniqueFd target = open_in_root(root_fd, cleaned, O_PATH | O_CLOEXEC);
        std::string resolved = fs::fd_name(target.get());
        if (resolved == root) {
            out.link_target = "/";
        } else if (resolved.starts_with(root + "/")) {
            out.link_target = resolved.substr(root == "/" ? 0 : root.size());
        } else {
            throw Error("container path " + path + " resolves outside the container");
        }
    }
    return out;
}

} // namespace

ContainerPathStat container_path_stat(Context& ctx, const std::string& container,
                                      const std::string& path) {
    snapshot::Store store = open_store(ctx);
    containers::Store cs(ctx.store_root());
    ContainerFs c = open_container(store, cs, container);
    ContainerRoot root(store, cs, c);
    return stat_in_root(root.fd(), path, "container " + container);
}

void container_archive(Context& ctx, const std::string& container, const std::string& path,
                       const std::function<void(const ContainerPathStat&)>& found, int fd) {
    snapshot::Store store = open_store(ctx);
    containers::Store cs(ctx.store_root());
    ContainerFs c = open_container(store, cs, container);
    ContainerRoot root(store, cs, c);
    ContainerPathStat st = stat_in_root(root.fd(), path, "container " + container);
    containers::CopySource src =
        containers::open_copy_source(root.fd(), path, false, "container " + container);
    found(st);
    formats::TarWriter::Options wo;
    wo.compression = formats::Compression::none;
    wo.out_name = "the archive of " + container + ":" + path;
    formats::TarWriter writer(fd, wo);
    // dockerd's rebase: entries under the name the path was asked by, "."
    // for DIR/. ("./a"; the docker CLI renames that "." to its
    // destination), the contents alone for /.
    containers::walk_copy_source(
        src,
        src.contents_only ? "."
        : st.name == "/"  ? ""
                          : st.name,
        [&](const formats::TarEntry& e, int content) { writer.add(e, content); });
    writer.finish();
}

void container_extract(Context& ctx, const std::string& container, const std::string& dir,
                       int tar_fd, bool copy_uid_gid) {
    snapshot::Store store = open_store(ctx);
    containers::Store cs(ctx.store_root());
    ContainerFs c = open_container(store, cs, container);
    ContainerRoot root(store, cs, c);
    std::string shown = container + ":" + dir;
    UniqueFd target;
    try {
        target = open_in_root(root.fd(), dir.empty() ? "/" : dir, O_RDONLY | O_CLOEXEC);
    } catch (const SysError& e) {
        if (e.error_code() == ENOENT || e.error_code() == ENOTDIR) {
            throw NoSuchContainerPath("Could not find the file " + dir + " in container " +
                                      container);
        }
        throw;
    }
    if (!S_ISDIR(fs::fstat(target.get()).st_mode)) {
        throw UsageError("extraction point is not a directory");
    }
    containers::TreeWriter writer(target.get(), shown, copy_uid_gid);
    formats::TarReader reader(tar_fd, "the archive for " + shown);
    containers::extract_tar(reader, writer);
    writer.finish();
}

void register_container_fs(CLI::App& app, Context& ctx) {
    auto o = std::make_shared<CommitOptions>();
    auto* cmd = app.add_subcommand("commit", "Create a new image from a container's changes");
    cmd->add_option("-a,--author", o->author,
                    "Author (e.g., \"John Hannibal Smith <hannibal@a-team.com>\")");
    cmd->add_option("-m,--message", o->message, "Commit message");
    cmd->add_option("-c,--change", o->changes, "Apply Dockerfile instruction to the created image")
        ->allow_extra_args(false);
    cmd->add_flag("-p,--pause", o->pause,
                  "Pause container during commit (accepted; strata commits without pausing)");
    cmd->add_option("CONTAINER", o->container, "Container name or ID")->required();
    cmd->add_option("REPOSITORY", o->reference, "REPOSITORY[:TAG]");
    cmd->callback(
        [&ctx, o] { std::cout << commit_container(ctx, o->container, *o).str() << "\n"; });
}

} // namespace strata::cli
