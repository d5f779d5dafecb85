// Named volumes, kept in the store as Docker's local driver keeps them:
// `<store>/volumes/<name>/_data` is the volume's content, `volume.json`
// beside it its record (Docker's inspect object: CreatedAt, Driver "local",
// Labels, Mountpoint, Name, Options, Scope "local") and `opts.json` the
// local driver's mount options when it has some. volumes/ is a directory of
// the store that the OCI layout and gc know nothing of (gc only looks at
// blobs/, snapshots/, cache/ and tmp/).
//
// Locking: creating and removing a volume, and starting to use one, happen
// under the store's exclusive lock (snapshot::Store::lock()). A container
// that uses a volume holds a shared flock on `volumes/<name>/users/<id>` for
// as long as it runs, so that `volume rm` and `volume prune` (which take
// the store lock, then try each user file exclusively) see it in use even
// without a container record; a file whose holder died is stale and ignored.
// Containers that are recorded in the store but not running (stopped ones)
// count as users through their record: config.json's Mounts, Type volume.
//
// Not supported: volume drivers other than "local", the local driver's
// "size" option (XFS project quotas).
#pragma once

#include "layerfs/mount.hpp"
#include "runner/runner.hpp"
#include "snapshot/store.hpp"
#include "util/fd.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::containers {

// Docker 23+ marks the volumes it makes for a container by itself (`-v
// /path`, the image's VOLUME) with this label; `volume prune` without -a
// removes only those.
inline constexpr std::string_view k_anonymous_volume_label = "com.docker.volume.anonymous";

using StringMap = std::map<std::string, std::string>;

struct Volume {
    std::string name;
    std::string driver = "local";
    std::string mountpoint; // <store>/volumes/<name>/_data
    std::string created_at; // RFC 3339, local time as Docker prints it
    // null (nullopt) for a volume made implicitly by a container, {} for one
    // made by `volume create` without any, as Docker shows them.
    std::optional<StringMap> labels;
    std::optional<StringMap> options;
    std::string scope = "local";

    bool anonymous() const;
    // Docker's `volume inspect` object, its keys in Docker's order.
    nlohmann::ordered_json to_json() const;
};

// Docker's local volume name rule: [a-zA-Z0-9][a-zA-Z0-9_.-]+ (two
// characters at least).
bool valid_volume_name(std::string_view name);
// Throws UsageError with the daemon's message for a name the rule refuses:
// `create NAME: "NAME" includes invalid characters for a local volume name,
// only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a
// host directory, use absolute path`.
void check_volume_name(std::string_view name);

// Checks the local driver's options as Docker does: keys type, device and o
// only; device and type need each other, o needs both. Throws UsageError.
void check_volume_options(const StringMap& options);

struct VolumeCreate {
    std::string name; // empty: an anonymous volume (64 hex digits, the anonymous label)
    std::string driver = "local";
    std::optional<StringMap> labels;
    std::optional<StringMap> options;
};

class VolumeStore {
public:
    // Works on `<store.root()>/volumes` (made by the first create()).
    explicit VolumeStore(const snapshot::Store& store);

    const std::string& dir() const noexcept { return m_dir; }

    // Creates the volume, or returns the existing one of that name (as
    // Docker: its labels and options stay as they were). Returns the volume
    // and whether it was made now. Throws UsageError for a bad name, a driver
    // other than "local", bad options, or an existing volume's name asked of
    // another driver.
    std::pair<Volume, bool> create(const VolumeCreate& request);

    // The volume of that name; nullopt when there is none.
    std::optional<Volume> maybe_get(const std::string& name) const;
    // The same, throwing Error("get NAME: no such volume") when there is none.
    Volume get(const std::string& name) const;
    // Every volume, sorted by name.
    std::vector<Volume> list() const;

    // The ids of the containers using the volume: running ones (their use
    // files) and recorded ones (their config.json names it).
    std::vector<std::string> users(const std::string& name) const;

    // Removes the volume. Throws Error("remove NAME: volume is in use -
    // [ID, ...]") when a container uses it, Error("get NAME: no such volume")
    // when there is none (unless force: then it returns false).
    bool remove(const std::string& name, bool force = false);

    // Removes the unused volumes that `keep` does not keep; returns their
    // names and the bytes their content held.
    struct PruneResult {
        std::vector<std::string> removed;
        std::uint64_t bytes = 0;
    };
    PruneResult prune(const std::function<bool(const Volume&)>& select);

    // The apparent size of a volume's content (its _data, lstat sizes).
    std::uint64_t size(const Volume& v) const;

    // A container's use of a volume: the shared flock on its user file,
    // released (and the file removed) on destruction.
    class Use {
    public:
        Use() = default;
        Use(std::string path, UniqueFd fd) : m_path(std::move(path)), m_fd(std::move(fd)) {}
        Use(Use&&) noexcept = default;
        Use& operator=(Use&&) noexcept;
        Use(const Use&) = delete;
        Use& operator=(const Use&) = delete;
        ~Use();
        void release() noexcept;

    private:
        std::string m_path;
        UniqueFd m_fd;
    };
    // Starts a use of the volume by container_id under the store lock; throws
    // Error("get NAME: no such volume") when it is gone.
    Use use(const std::string& name, const std::string& container_id);

private:
    std::string volume_dir(const std::string& name) const { return m_dir + "/" + name; }
    std::vector<std::string> live_users(const std::string& name) const;
    // Containers recorded in the store (<store>/containers/<id>/config.json)
    // whose Mounts list names the volume (Type "volume"), running or not.
    std::vector<std::string> recorded_users(const std::string& name) const;
    void remove_locked(const std::string& name);

    const snapshot::Store& m_store;
    std::string m_dir;
};

// A volume a container asks for (`-v NAME:/path`, `-v /path`, `--mount
// type=volume`, or the image's VOLUME).
struct VolumeRequest {
    std::string name; // empty: anonymous
    std::string target;
    bool read_only = false;
    bool nocopy = false;                     // volume-nocopy: no copy-up of the image's content
    std::optional<StringMap> driver_options; // --mount volume-opt=K=V (used when it is made)
    std::optional<StringMap> labels;         // --mount volume-label=K=V
    std::string driver = "local";            // --mount volume-driver=
};

// One container's volumes from start to end: attach() makes the volumes
// that are missing (anonymous ones get fresh names) and starts their uses;
// mount_driver_options() and copy_up() prepare them once the container's
// root is mounted; remove_anonymous() is run --rm's last step.
class ContainerVolumes {
public:
    ContainerVolumes(VolumeStore& store, std::string container_id)
        : m_store(store), m_container_id(std::move(container_id)) {}
    ContainerVolumes(const ContainerVolumes&) = delete;
    ContainerVolumes& operator=(const ContainerVolumes&) = delete;
    ~ContainerVolumes(); // unmounts what mount_driver_options() mounted

    struct Attached {
        Volume volume;
        VolumeRequest request;
        bool created = false;
    };

    // Makes or finds each requested volume and starts its use. Throws
    // UsageError for a bad name or options (nothing is left in use then).
    void attach(const std::vector<VolumeRequest>& requests);
    const std::vector<Attached>& attached() const noexcept { return m_attached; }

    // The bind mounts that put the volumes in the container.
    std::vector<runner::Mount> mounts() const;

    // For volumes with local driver options (type=tmpfs, type=none with
    // o=bind, ...): mounts them on their _data, as the local driver does at
    // use. Must run in a mount namespace of the caller's own (the mounts
    // vanish with it).
    void mount_driver_options();

    // Docker's copy-up (copyExistingContents): for each volume without
    // nocopy whose _data is empty, the image's content at its target,
    // resolved inside rootfs (symlinks never leave it), is copied in with
    // owners, modes, times, xattrs, symlinks, hard links and special files,
    // and the volume's root takes the owner and mode of that directory.
    // Nothing is copied when the target is missing or not a directory.
    // Throws Error when a target resolves to the root itself (Docker
    // refuses "/" as a volume's destination).
    void copy_up(const std::string& rootfs);

    // copy_up() for a container that is only recorded now (create, run -d):
    // its root is the image's layers (lowers, top-most first), stacked
    // read-only at scratch (an empty directory) in a child process with a
    // mount namespace of its own. Throws Error with the child's message.
    void copy_up_from_layers(const std::vector<std::string>& lowers, const std::string& scratch);

    // copy_up_from_layers() for an image that is not unpacked: its root is
    // the image served by strata-lazy from its compressed layers (what the
    // monitor will start the container over), mounted at scratch in the
    // child; nothing is unpacked.
    void copy_up_from_lazy(const layerfs::LazyImage& image, const std::string& scratch);

    // The volumes' local driver options as the container's own mounts, for
    // containers the monitor starts later: type=tmpfs becomes a tmpfs mount
    // (o= its options), type=none with o=bind|rbind a bind of the device;
    // other types throw UsageError. Returns the mounts that replace
    // mounts()' binds of those volumes (same order, same targets).
    std::vector<runner::Mount> record_mounts() const;

    // Docker's inspect Mounts entries of the attached volumes (Type volume,
    // Name, Source, Destination, Driver, Mode, RW, Propagation).
    nlohmann::ordered_json mount_points() const;

    // Removes the anonymous volumes attach() made (the uses end first);
    // errors are logged, not thrown.
    void remove_anonymous() noexcept;

private:
    bool copy_up_needed() const; // a volume without nocopy
    // Runs mount_root (which mounts a root and copies up from it) in a
    // child process with a mount namespace of its own.
    void copy_up_in_child(const std::function<void()>& mount_root);

    VolumeStore& m_store;
    std::string m_container_id;
    std::vector<Attached> m_attached;
    std::vector<VolumeStore::Use> m_uses;
    std::vector<std::string> m_driver_mounts; // _data directories mounted on
};

// `rm -v`: removes the anonymous volumes that a container's config.json
// (Docker's inspect document) lists in Mounts, unless another container
// uses them; named volumes stay. Call after the record is gone. Returns the
// names removed; errors are logged, not thrown.
std::vector<std::string> remove_anonymous_volumes(const snapshot::Store& store,
                                                  const nlohmann::json& config) noexcept;

// Copies the directory tree below src_dir into dst_dir (an empty
// directory), preserving what copy_up() says; never follows a symlink.
// Exposed for tests.
void copy_tree(int src_dir, int dst_dir);

} // namespace strata::containers
