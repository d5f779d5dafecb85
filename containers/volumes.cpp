#include "containers/volumes.hpp"

#include "containers/names.hpp"
#include "formats/json.hpp"
#include "layerfs/overlay.hpp"
#include "util/child.hpp"
#include "util/error.hpp"
#include "util/event_log.hpp"
#include "util/fs.hpp"
#include "util/go_time.hpp"
#include "util/log.hpp"
#include "util/root.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <set>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <unordered_map>

namespace strata::containers {

namespace {

bool name_char(char c, bool first) {
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    return alnum || (!first && (c == '_' || c == '.' || c == '-'));
}

// RFC 3339 in the local zone, as Go's time.Format(time.RFC3339) prints it.
std::string now_rfc3339_local() {
    return format_go_time(unix_nanos_now(), TimeZoneStyle::local, TimeFraction::none);
}

nlohmann::json map_json(const std::optional<StringMap>& m) {
    if (!m) {
        return nullptr;
    }
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [k, v] : *m) {
        j[k] = v;
    }
    return j;
}

std::optional<StringMap> json_map(const nlohmann::json& j, const std::string& where) {
    if (j.is_null()) {
        return std::nullopt;
    }
    if (!j.is_object()) {
        throw Error(where + ": expected an object");
    }
    StringMap m;
    for (const auto& [k, v] : j.items()) {
        if (!v.is_string()) {
            throw Error(where + ": " + k + " is not a string");
        }
        m[k] = v.get<std::string>();
    }
    return m;
}

// The use files of a volume that some process holds (a shared flock), by
// name; stale ones (their holder is gone) are removed.
std::vector<std::string> held_files(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& name : fs::list_dir(dir)) {
        std::string path = dir + "/" + name;
        UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        if (!fd) {
            if (errno == ENOENT) {
                continue;
            }
            throw_errno("open", path);
        }
        if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
            if (errno == EWOULDBLOCK) {
                out.push_back(name);
                continue;
            }
            throw_errno("flock", path);
        }
        ::unlink(path.c_str()); // stale: its container is gone
    }
    return out;
}

// --- copy-up

struct Copier {
    int dst_root;
    // (dev, ino) of a file with several links -> its path below dst_root.
    std::map<std::pair<dev_t, ino_t>, std::string> links;

    static std::string fd_path(int dirfd, const std::string& name) {
        return "/proc/self/fd/" + std::to_string(dirfd) + (name.empty() ? "" : "/" + name);
    }

    // Extended attributes of dir/name (never following a symlink). Those the
    // destination refuses (security.* without privilege, trusted.* in a user
    // namespace, a filesystem without xattrs) are skipped with a debug note.
    static void copy_xattrs(int sdir, int ddir, const std::string& name) {
        std::map<std::string, std::string> attrs;
        try {
            attrs = fs::read_xattrs(fd_path(sdir, name));
        } catch (const SysError& e) {
            STRATA_LOG_DEBUG("volume copy-up: xattrs of {}: {}", name, e.what());
            return;
        }
        std::string dst = fd_path(ddir, name);
        for (const auto& [k, v] : attrs) {
            if (::lsetxattr(dst.c_str(), k.c_str(), v.data(), v.size(), 0) != 0) {
                if (errno == EPERM || errno == ENOTSUP || errno == EACCES) {
                    STRATA_LOG_DEBUG("volume copy-up: {} on {}: {}", k, name, std::strerror(errno));
                    continue;
                }
                throw_errno("lsetxattr " + k, name);
            }
        }
    }

    // Owner and mode, then the xattrs (a chown drops security.capability:
    // set before it, a file capability would be lost), then the times.
    static void copy_meta(int sdir, int ddir, const std::string& name, const struct stat& st,
                          bool symlink) {
        if (::fchownat(ddir, name.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0) {
            throw_errno("fchownat", name);
        }
        if (!symlink && ::fchmodat(ddir, name.c_str(), st.st_mode & 07777, 0) != 0) {
            throw_errno("fchmodat", name);
        }
        copy_xattrs(sdir, ddir, name);
        struct timespec times[2] = {st.st_atim, st.st_mtim};
        if (::utimensat(ddir, name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
            throw_errno("utimensat", name);
        }
    }

    static void copy_data(int in, int out, const std::string& name) {
        for (;;) {
            ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, 1 << 30, 0);
            if (n > 0) {
                continue;
            }
            if (n == 0) {
                return;
            }
            if (errno == EINTR) {
                continue;
            }
            if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP) {
                throw_errno("copy_file_range", name);
            }
            break; // plain read/write from where it stopped
        }
        char buf[1 << 16];
        for (;;) {
            ssize_t n = ::read(in, buf, sizeof buf);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                throw_errno("read", name);
            }
            if (n == 0) {
                return;
            }
            fs::write_all(out, name, buf, static_cast<std::size_t>(n));
        }
    }

    void copy_dir(int sdir, int ddir, const std::string& rel) {
        UniqueFd list(::openat(sdir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!list) {
            throw_errno("open", rel.empty() ? "." : rel);
        }
        for (const auto& name : fs::list_dir_at(list.get())) {
            std::string path = rel.empty() ? name : rel + "/" + name;
            struct stat st {};
            if (::fstatat(sdir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
                throw_errno("fstatat", path);
            }
            if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
                auto [it, fresh] = links.try_emplace({st.st_dev, st.st_ino}, path);
                if (!fresh) {
                    if (::linkat(dst_root, it->second.c_str(), ddir, name.c_str(), 0) != 0) {
                        throw_errno("linkat " + it->second, path);
                    }
                    continue;
                }
            }
            if (S_ISDIR(st.st_mode)) {
                if (::mkdirat(ddir, name.c_str(), 0700) != 0) {
                    throw_errno("mkdirat", path);
                }
                UniqueFd s(
                    ::openat(sdir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
                UniqueFd d(
                    ::openat(ddir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
                if (!s || !d) {
                    throw_errno("open", path);
                }
                copy_dir(s.get(), d.get(), path);
            } else if (S_ISREG(st.st_mode)) {
                UniqueFd in(::openat(sdir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
                if (!in) {
                    throw_errno("open", path);
                }
                UniqueFd out(::openat(ddir, name.c_str(),
                                      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
                if (!out) {
                    throw_errno("create", path);
                }
                copy_data(in.get(), out.get(), path);
            } else if (S_ISLNK(st.st_mode)) {
                std::string target(static_cast<std::size_t>(st.st_size) + 1, '\0');
                ssize_t n = ::readlinkat(sdir, name.c_str(), target.data(), target.size());
                if (n < 0) {
                    throw_errno("readlinkat", path);
                }
                target.resize(static_cast<std::size_t>(n));
                if (::symlinkat(target.c_str(), ddir, name.c_str()) != 0) {
                    throw_errno("symlinkat", path);
                }
            } else {
                // Devices, fifos, sockets: made again (a socket as its node).
                if (::mknodat(ddir, name.c_str(), st.st_mode, st.st_rdev) != 0) {
                    throw_errno("mknodat", path);
                }
            }
            copy_meta(sdir, ddir, name, st, S_ISLNK(st.st_mode));
        }
    }
};

// Mount flags of the local driver's "o" option as moby's mount.Mount reads
// them; the rest is data for the filesystem.
struct MountOptions {
    unsigned long flags = 0;
    std::string data;
};

MountOptions parse_mount_options(const std::string& o) {
    static const std::map<std::string, std::pair<bool, unsigned long>> k_flags = {
        {"ro", {false, MS_RDONLY}},
        {"rw", {true, MS_RDONLY}},
        {"bind", {false, MS_BIND}},
        {"rbind", {false, MS_BIND | MS_REC}},
        {"nosuid", {false, MS_NOSUID}},
        {"suid", {true, MS_NOSUID}},
        {"nodev", {false, MS_NODEV}},
        {"dev", {true, MS_NODEV}},
        {"noexec", {false, MS_NOEXEC}},
        {"exec", {true, MS_NOEXEC}},
        {"sync", {false, MS_SYNCHRONOUS}},
        {"async", {true, MS_SYNCHRONOUS}},
        {"noatime", {false, MS_NOATIME}},
        {"atime", {true, MS_NOATIME}},
        {"nodiratime", {false, MS_NODIRATIME}},
        {"diratime", {true, MS_NODIRATIME}},
        {"relatime", {false, MS_RELATIME}},
        {"norelatime", {true, MS_RELATIME}},
        {"strictatime", {false, MS_STRICTATIME}},
        {"mand", {false, MS_MANDLOCK}},
        {"nomand", {true, MS_MANDLOCK}},
    };
    MountOptions m;
    std::size_t pos = 0;
    while (pos <= o.size()) {
        std::size_t comma = o.find(',', pos);
        std::string item =
            o.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        pos = comma == std::string::npos ? o.size() + 1 : comma + 1;
        if (item.empty()) {
            continue;
        }
        auto it = k_flags.find(item);
        if (it == k_flags.end()) {
            m.data += (m.data.empty() ? "" : ",") + item;
        } else if (it->second.first) {
            m.flags &= ~it->second.second;
        } else {
            m.flags |= it->second.second;
        }
    }
    return m;
}

} // namespace

// --- Volume

bool Volume::anonymous() const {
    return labels && labels->count(std::string(k_anonymous_volume_label)) != 0;
}

nlohmann::ordered_json Volume::to_json() const {
    nlohmann::ordered_json j;
    j["CreatedAt"] = created_at;
    j["Driver"] = driver;
    j["Labels"] = map_json(labels);
    j["Mountpoint"] = mountpoint;
    j["Name"] = name;
    j["Options"] = map_json(options);
    j["Scope"] = scope;
    return j;
}

bool valid_volume_name(std::string_view name) {
    if (name.size() < 2) {
        return false;
    }
    for (std::size_t i = 0; i < name.size(); ++i) {
        if (!name_char(name[i], i == 0)) {
            return false;
        }
    }
    return true;
}

void check_volume_name(std::string_view name) {
    if (valid_volume_name(name)) {
        return;
    }
    std::string n(name);
    if (name.size() == 1 && name_char(name[0], true)) {
        throw UsageError("create " + n +
                         ": volume name is too short, names should be at least two alphanumeric "
                         "characters");
    }
    throw UsageError("create " + n + ": \"" + n +
                     "\" includes invalid characters for a local volume name, only "
                     "\"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host "
                     "directory, use absolute path");
}

void check_volume_options(const StringMap& options) {
    for (const auto& [k, v] : options) {
        if (k == "size") {
            throw UsageError("quota size requested but no quota support");
        }
        if (k != "type" && k != "device" && k != "o") {
            throw UsageError("invalid option: \"" + k + "\"");
        }
    }
    // moby's mandatoryOpts: device and type need each other, o needs both.
    static const std::map<std::string, std::vector<std::string>> k_needs = {
        {"device", {"type"}}, {"type", {"device"}}, {"o", {"device", "type"}}};
    for (const auto& [opt, needs] : k_needs) {
        if (options.count(opt) == 0) {
            continue;
        }
        for (const auto& n : needs) {
            if (options.count(n) == 0) {
                throw UsageError("missing required option: \"" + n + "\"");
            }
        }
    }
}

// --- VolumeStore

VolumeStore::VolumeStore(const snapshot::Store& store)
    : m_store(store), m_dir(store.root() + "/volumes") {}

std::optional<Volume> VolumeStore::maybe_get(const std::string& name) const {
    if (!valid_volume_name(name)) {
        return std::nullopt;
    }
    std::string path = volume_dir(name) + "/volume.json";
    std::string text;
    try {
        text = fs::read_file(path, 1 << 20);
    } catch (const SysError& e) {
        if (e.error_code() == ENOENT || e.error_code() == ENOTDIR) {
            return std::nullopt;
        }
        throw;
    }
    nlohmann::json j = formats::parse_json_strict(text, path);
    Volume v;
    try {
        v.name = j.at("Name").get<std::string>();
        v.driver = j.at("Driver").get<std::string>();
        v.created_at = j.at("CreatedAt").get<std::string>();
        v.labels = json_map(j.value("Labels", nlohmann::json()), path + ": Labels");
        v.options = json_map(j.value("Options", nlohmann::json()), path + ": Options");
        v.scope = j.value("Scope", std::string("local"));
    } catch (const nlohmann::json::exception& e) {
        throw Error(path + ": " + e.what());
    }
    if (v.name != name) {
        throw Error(path + ": names volume \"" + v.name + "\"");
    }
    v.mountpoint = volume_dir(name) + "/_data"; // where the store is now
    return v;
}

Volume VolumeStore::get(const std::string& name) const {
    auto v = maybe_get(name);
    if (!v) {
        throw Error("get " + name + ": no such volume");
    }
    return *v;
}

std::vector<Volume> VolumeStore::list() const {
    std::vector<Volume> out;
    for (const auto& name : fs::list_dir(m_dir)) {
        if (auto v = maybe_get(name)) {
            out.push_back(std::move(*v));
        }
    }
    return out;
}

std::pair<Volume, bool> VolumeStore::create(const VolumeCreate& req) {
    if (req.driver != "local") {
        throw UsageError("create " + req.name + ": error looking up volume plugin " + req.driver +
                         ": plugin \"" + req.driver + "\" not found");
    }
    Volume v;
    v.name = req.name.empty() ? new_id() : req.name;
    check_volume_name(v.name);
    v.labels = req.labels;
    if (req.name.empty()) {
        if (!v.labels) {
            v.labels = StringMap{};
        }
        (*v.labels)[std::string(k_anonymous_volume_label)] = "";
    }
    v.options = req.options;
    if (v.options) {
        check_volume_options(*v.options);
    }
    snapshot::StoreLock lock = m_store.lock();
    if (::mkdir(m_dir.c_str(), 0700) != 0 && errno != EEXIST) {
        throw_errno("mkdir", m_dir);
    }
    if (auto existing = maybe_get(v.name)) {
        if (existing->driver != req.driver) {
            throw UsageError("create " + v.name + ": volume name must be unique");
        }
        return {*existing, false};
    }
    // Made under a temporary name, then renamed: a volume is either whole or absent.
    std::string tmp = m_dir + "/.new-" + new_id().substr(0, 16);
    if (::mkdir(tmp.c_str(), 0701) != 0) {
        throw_errno("mkdir", tmp);
    }
    try {
        if (::mkdir((tmp + "/_data").c_str(), 0755) != 0) {
            throw_errno("mkdir", tmp + "/_data");
        }
        if (::mkdir((tmp + "/users").c_str(), 0700) != 0) {
            throw_errno("mkdir", tmp + "/users");
        }
        v.created_at = now_rfc3339_local();
        v.mountpoint = volume_dir(v.name) + "/_data";
        nlohmann::ordered_json j = v.to_json();
        fs::write_file_atomic(tmp + "/volume.json", j.dump(4) + "\n", 0600);
        if (v.options && v.options->count("type") != 0) {
            // The local driver's own record of its mount options (opts.json).
            nlohmann::ordered_json o;
            o["MountType"] = v.options->at("type");
            o["MountOpts"] = v.options->count("o") != 0 ? v.options->at("o") : "";
            o["MountDevice"] = v.options->at("device");
            fs::write_file_atomic(tmp + "/opts.json", o.dump() + "\n", 0600);
        }
        if (::rename(tmp.c_str(), volume_dir(v.name).c_str()) != 0) {
            throw_errno("rename " + tmp, volume_dir(v.name));
        }
    } catch (...) {
        try {
            fs::remove_all(tmp);
        } catch (const std::exception& e) {
            STRATA_LOG_WARN("removing {}: {}", tmp, e.what());
        }
        throw;
    }
    fs::fsync_dir(m_dir);
    events::record_event(m_store.root(), "volume", "create", v.name, {{"driver", v.driver}});
    return {v, true};
}

std::vector<std::string> VolumeStore::live_users(const std::string& name) const {
    return held_files(volume_dir(name) + "/users");
}

std::vector<std::string> VolumeStore::recorded_users(const std::string& name) const {
    std::vector<std::string> ids;
    std::string dir = m_store.root() + "/containers";
    for (const auto& id : fs::list_dir(dir)) {
        if (id.size() != 64 || id.find_first_not_of("0123456789abcdef") != std::string::npos) {
            continue; // names/, .creating-*: not a container record
        }
        std::string path = dir + "/" + id + "/config.json";
        std::string text;
        try {
            text = fs::read_file(path, 64 << 20);
        } catch (const SysError& e) {
            if (e.error_code() == ENOENT) {
                continue; // removed meanwhile
            }
            throw;
        }
        nlohmann::json config = formats::parse_json_strict(text, path);
        auto mounts = config.find("Mounts");
        if (mounts == config.end() || !mounts->is_array()) {
            continue;
        }
        for (const auto& m : *mounts) {
            if (m.is_object() && m.value("Type", "") == "volume" && m.value("Name", "") == name) {
                ids.push_back(id);
                break;
            }
        }
    }
    return ids;
}

std::vector<std::string> VolumeStore::users(const std::string& name) const {
    std::vector<std::string> ids = live_users(name);
    for (auto& id : recorded_users(name)) {
        ids.push_back(std::move(id));
    }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    return ids;
}

void VolumeStore::remove_locked(const std::string& name) {
    // Renamed away first: a volume half removed is no volume at all.
    std::string gone = m_dir + "/.rm-" + new_id().substr(0, 16);
    if (::rename(volume_dir(name).c_str(), gone.c_str()) != 0) {
        throw_errno("rename " + volume_dir(name), gone);
    }
    fs::remove_all(gone);
    events::record_event(m_store.root(), "volume", "destroy", name, {{"driver", "local"}});
}

bool VolumeStore::remove(const std::string& name, bool force) {
    snapshot::StoreLock lock = m_store.lock();
    if (!maybe_get(name)) {
        if (force) {
            return false;
        }
        throw Error("get " + name + ": no such volume");
    }
    std::vector<std::string> ids = users(name);
    if (!ids.empty()) {
        std::string list;
        for (const auto& id : ids) {
            list += (list.empty() ? "" : " ") + id;
        }
        throw Error("remove " + name + ": volume is in use - [" + list + "]");
    }
    remove_locked(name);
    return true;
}

std::uint64_t VolumeStore::size(const Volume& v) const {
    try {
        return fs::disk_usage(v.mountpoint).bytes;
    } catch (const SysError& e) {
        if (e.error_code() == ENOENT) {
            return 0;
        }
        throw;
    }
}

VolumeStore::PruneResult VolumeStore::prune(const std::function<bool(const Volume&)>& select) {
    PruneResult r;
    snapshot::StoreLock lock = m_store.lock();
    for (const auto& name : fs::list_dir(m_dir)) {
        if (name.rfind(".rm-", 0) == 0) {
            fs::remove_all(m_dir + "/" + name); // left by a removal that was cut short
            continue;
        }
        auto v = maybe_get(name);
        if (!v || !select(*v) || !users(name).empty()) {
            continue;
        }
        r.bytes += size(*v);
        remove_locked(name);
        r.removed.push_back(name);
    }
    return r;
}

VolumeStore::Use& VolumeStore::Use::operator=(Use&& o) noexcept {
    if (this != &o) {
        release();
        m_path = std::move(o.m_path);
        m_fd = std::move(o.m_fd);
    }
    return *this;
}

VolumeStore::Use::~Use() {
    release();
}

void VolumeStore::Use::release() noexcept {
    if (m_fd) {
        ::unlink(m_path.c_str()); // still locked: nobody takes it for stale meanwhile
        m_fd.reset();
    }
}

VolumeStore::Use VolumeStore::use(const std::string& name, const std::string& container_id) {
    snapshot::StoreLock lock = m_store.lock();
    if (!maybe_get(name)) {
        throw Error("get " + name + ": no such volume");
    }
    std::string users_dir = volume_dir(name) + "/users";
    if (::mkdir(users_dir.c_str(), 0700) != 0 && errno != EEXIST) {
        throw_errno("mkdir", users_dir);
    }
    std::string path = users_dir + "/" + container_id;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) {
        throw_errno("open", path);
    }
    if (::flock(fd.get(), LOCK_SH) != 0) {
        throw_errno("flock", path);
    }
    return Use(path, std::move(fd));
}

// --- ContainerVolumes

ContainerVolumes::~ContainerVolumes() {
    for (const auto& path : m_driver_mounts) {
        if (::umount2(path.c_str(), MNT_DETACH) != 0) {
            STRATA_LOG_WARN("unmounting the volume on {}: {}", path, std::strerror(errno));
        }
    }
}

void ContainerVolumes::attach(const std::vector<VolumeRequest>& requests) {
    for (const auto& req : requests) {
        VolumeCreate c;
        c.name = req.name;
        c.driver = req.driver;
        c.labels = req.labels;
        c.options = req.driver_options;
        auto [volume, created] = m_store.create(c);
        m_uses.push_back(m_store.use(volume.name, m_container_id));
        m_attached.push_back({volume, req, created});
    }
}

std::vector<runner::Mount> ContainerVolumes::mounts() const {
    std::vector<runner::Mount> out;
    for (const auto& a : m_attached) {
        runner::Mount m;
        m.type = runner::Mount::Type::bind;
        m.source = a.volume.mountpoint;
        m.target = a.request.target;
        m.read_only = a.request.read_only;
        out.push_back(m);
    }
    return out;
}

void ContainerVolumes::mount_driver_options() {
    std::set<std::string> done;
    for (const auto& a : m_attached) {
        const auto& opts = a.volume.options;
        if (!opts || opts->count("type") == 0 || !done.insert(a.volume.name).second) {
            continue;
        }
        std::string type = opts->at("type");
        std::string device = opts->at("device");
        MountOptions mo = parse_mount_options(opts->count("o") != 0 ? opts->at("o") : "");
        const char* fstype = type == "none" ? nullptr : type.c_str();
        if (::mount(device.c_str(), a.volume.mountpoint.c_str(), fstype, mo.flags,
                    mo.data.empty() ? nullptr : mo.data.c_str()) != 0) {
            throw SysError("mount " + type + " " + device + " (volume " + a.volume.name + ")",
                           a.volume.mountpoint, errno);
        }
        m_driver_mounts.push_back(a.volume.mountpoint);
    }
}

void ContainerVolumes::copy_up(const std::string& rootfs) {
    UniqueFd root = fs::open(rootfs, O_PATH | O_DIRECTORY);
    struct stat root_st = fs::fstat(root.get());
    for (const auto& a : m_attached) {
        // A target that resolves to the root itself (an image's VOLUME
        // that is a symlink to "/") would cover the whole container: Docker
        // refuses "/" as a destination.
        try {
            UniqueFd t = open_in_root(root.get(), a.request.target, O_PATH);
            struct stat st = fs::fstat(t.get());
            if (st.st_dev == root_st.st_dev && st.st_ino == root_st.st_ino) {
                throw Error("volume " + a.volume.name + ": its target " + a.request.target +
                            " resolves to the container's root");
            }
        } catch (const SysError& e) {
            if (e.error_code() != ENOENT && e.error_code() != ENOTDIR) {
                throw;
            }
        }
        if (a.request.nocopy) {
            continue;
        }
        UniqueFd dst = fs::open(a.volume.mountpoint, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        if (!fs::list_dir_at(dst.get()).empty()) {
            continue; // Docker: a volume with content keeps it
        }
        UniqueFd src;
        try {
            // Resolved inside the container's root: a symlink on the way (or
            // the target itself) never leads out of it.
            src = open_in_root(root.get(), a.request.target, O_RDONLY | O_DIRECTORY);
        } catch (const SysError& e) {
            if (e.error_code() == ENOENT || e.error_code() == ENOTDIR) {
                continue;
            }
            throw;
        }
        with_context("copying " + a.request.target + " of the image into volume " + a.volume.name,
                     [&] {
                         Copier c{dst.get(), {}};
                         c.copy_dir(src.get(), dst.get(), "");
                         // copyOwnership: the volume's root as the directory it covers.
                         struct stat st = fs::fstat(src.get());
                         if (::fchown(dst.get(), st.st_uid, st.st_gid) != 0) {
                             throw_errno("fchown", a.volume.mountpoint);
                         }
                         if (::fchmod(dst.get(), st.st_mode & 07777) != 0) {
                             throw_errno("fchmod", a.volume.mountpoint);
                         }
                     });
    }
}

bool ContainerVolumes::copy_up_needed() const {
    return std::any_of(m_attached.begin(), m_attached.end(),
                       [](const Attached& a) { return !a.request.nocopy; });
}

void ContainerVolumes::copy_up_in_child(const std::function<void()>& mount_root) {
    Pipe report = Pipe::create();
    Child child = Child::fork_fn([&]() -> int {
        report.read.reset();
        try {
            // The root lives and dies with this child's mount namespace.
            if (::unshare(CLONE_NEWNS) != 0) {
                throw_errno("unshare(CLONE_NEWNS)");
            }
            if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
                throw_errno("mount", "/ (make private)");
            }
            mount_root();
            return 0;
        } catch (const std::exception& e) {
            std::string what = e.what();
            ssize_t n = ::write(report.write.get(), what.data(), what.size());
            (void)n;
            return 1;
        }
    });
    report.write.reset();
    std::string message = fs::read_fd(report.read.get(), "the copy-up's report pipe", 1 << 16);
    ExitStatus st = child.wait();
    if (!st.success()) {
        throw Error(message.empty() ? "volume copy-up " + st.describe() : message);
    }
}

void ContainerVolumes::copy_up_from_layers(const std::vector<std::string>& lowers,
                                           const std::string& scratch) {
    if (!copy_up_needed() || lowers.empty()) {
        return;
    }
    if (lowers.size() == 1) {
        copy_up(lowers.front()); // one layer is its own root: nothing to stack
        return;
    }
    copy_up_in_child([&] {
        layerfs::mount_overlay(layerfs::OverlaySpec{lowers, "", "", false}, scratch);
        copy_up(scratch);
    });
}

void ContainerVolumes::copy_up_from_lazy(const layerfs::LazyImage& image,
                                         const std::string& scratch) {
    if (!copy_up_needed()) {
        return;
    }
    copy_up_in_child([&] {
        // strata-lazy in the foreground, the child's own child: the mount
        // and its server go with this namespace, even if the CLI is killed.
        layerfs::MountSpec ls;
        ls.lazy = image;
        ls.driver = layerfs::Driver::fuse;
        ls.foreground = true;
        ls.fsname = "strata-lazy";
        layerfs::MountHandle root = layerfs::mount(ls, scratch);
        copy_up(root.target());
    });
}

std::vector<runner::Mount> ContainerVolumes::record_mounts() const {
    std::vector<runner::Mount> out = mounts();
    for (std::size_t i = 0; i < m_attached.size(); ++i) {
        const auto& opts = m_attached[i].volume.options;
        if (!opts || opts->count("type") == 0) {
            continue;
        }
        const std::string& type = opts->at("type");
        std::string o = opts->count("o") != 0 ? opts->at("o") : "";
        MountOptions mo = parse_mount_options(o);
        runner::Mount& m = out[i];
        if (type == "tmpfs") {
            m.type = runner::Mount::Type::tmpfs;
            m.source.clear();
            m.options = mo.data;
            m.read_only = m.read_only || (mo.flags & MS_RDONLY) != 0;
        } else if (type == "none" && (mo.flags & MS_BIND) != 0) {
            m.source = opts->at("device");
            m.read_only = m.read_only || (mo.flags & MS_RDONLY) != 0;
        } else {
            throw UsageError("volume " + m_attached[i].volume.name + ": type=" + type +
                             " volumes are mounted only by strata run --rm (a container the "
                             "monitor starts takes type=tmpfs and type=none,o=bind)");
        }
    }
    return out;
}

nlohmann::ordered_json ContainerVolumes::mount_points() const {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& a : m_attached) {
        nlohmann::ordered_json m;
        m["Type"] = "volume";
        m["Name"] = a.volume.name;
        m["Source"] = a.volume.mountpoint;
        m["Destination"] = a.request.target;
        m["Driver"] = a.volume.driver;
        m["Mode"] = a.request.read_only ? "ro" : "";
        m["RW"] = !a.request.read_only;
        m["Propagation"] = "";
        out.push_back(m);
    }
    return out;
}

std::vector<std::string> remove_anonymous_volumes(const snapshot::Store& store,
                                                  const nlohmann::json& config) noexcept {
    std::vector<std::string> removed;
    try {
        VolumeStore vs(store);
        auto mounts = config.find("Mounts");
        if (mounts == config.end() || !mounts->is_array()) {
            return removed;
        }
        for (const auto& m : *mounts) {
            if (!m.is_object() || m.value("Type", "") != "volume") {
                continue;
            }
            std::string name = m.value("Name", "");
            auto v = vs.maybe_get(name);
            if (!v || !v->anonymous()) {
                continue;
            }
            try {
                if (vs.remove(name, true)) {
                    removed.push_back(name);
                }
            } catch (const std::exception& e) {
                // Another container uses it (--volumes-from): Docker keeps it quietly.
                STRATA_LOG_DEBUG("rm -v: {}", e.what());
            }
        }
    } catch (const std::exception& e) {
        STRATA_LOG_WARN("rm -v: {}", e.what());
    }
    return removed;
}

void ContainerVolumes::remove_anonymous() noexcept {
    m_uses.clear();
    for (const auto& path : m_driver_mounts) {
        ::umount2(path.c_str(), MNT_DETACH);
    }
    m_driver_mounts.clear();
    for (const auto& a : m_attached) {
        if (!a.created || !a.volume.anonymous()) {
            continue;
        }
        try {
            m_store.remove(a.volume.name, true);
        } catch (const std::exception& e) {
            STRATA_LOG_WARN("removing anonymous volume {}: {}", a.volume.name, e.what());
        }
    }
}

void copy_tree(int src_dir, int dst_dir) {
    Copier c{dst_dir, {}};
    c.copy_dir(src_dir, dst_dir, "");
}

} // namespace strata::containers
