// Container records in the store (DESIGN.md "The container half"): a
// container is a directory that lasts until `rm`, daemonless as podman.
//
//   <store>/containers/
//     names/<name>            symlink -> <id>: the name's claim (symlink(2) is
//                             atomic, so names stay unique without a global lock)
//     <id>/config.json        shaped as `docker inspect`: Id, Created, Path, Args,
//                             Name "/NAME", Image "sha256:<config digest>", Config{},
//                             HostConfig{} (Docker's names), Mounts[], plus
//                             strata's own "StrataSpec" (the resolved runner::RunSpec,
//                             containers/spec.hpp) and "StrataManifest" (the image's
//                             manifest descriptor: its snapshots are the lowers)
//     <id>/state.json         Docker's State (+ RestartCount, MonitorPid), written
//                             temp+rename under <id>/lock
//     <id>/lock               flock: the container's own lock (state, start, rm)
//     <id>/monitor.lock       flock held exclusively by the live monitor for its
//                             whole life: free means no monitor (even after SIGKILL,
//                             whatever pid reuse happened)
//     <id>/monitor.pid        the monitor's pid
//     <id>/monitor.sock       the monitor's socket (containers/monitor.hpp)
//     <id>/upper/ <id>/work/  the writable layer, overlayfs form (whiteouts 0:0 char
//                             devices, opaque dirs trusted.overlay.opaque=y)
//     <id>/rootfs/            the overlay's mount point, mounted only inside the
//                             monitor's private mount namespace
//     <id>/<id>-json.log      Docker's json-file log (+ .1, .2 ... when rotated)
//
// A directory is made as .creating-<id> and renamed into place, so a listing
// never sees half a container. The image a container uses is pinned in the
// image store (leases/pin-container-<id>): gc keeps it and its layers.
#pragma once

#include "util/error.hpp"
#include "util/fd.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace strata::containers {

// "Error response from daemon: No such container: X" is what the CLI prints.
class NoSuchContainer : public Error {
public:
    explicit NoSuchContainer(const std::string& what)
        : Error("No such container: " + what), m_what(what) {}
    const std::string& name() const noexcept { return m_what; }

private:
    std::string m_what;
};

// Docker's message for a name in use.
class NameConflict : public Error {
public:
    using Error::Error;
};

// Docker's zero time, for StartedAt/FinishedAt never set.
inline constexpr const char* k_zero_time = "0001-01-01T00:00:00Z";

// The current time as RFC 3339 with nanoseconds, UTC, as Docker writes it.
std::string now_rfc3339nano();

// Docker's State (docker inspect .State) plus what strata keeps beside it.
struct State {
    std::string status = "created"; // created|running|paused|restarting|exited|dead|removing
    bool oom_killed = false;
    bool dead = false;
    int pid = 0; // host pid of the container's PID 1 while running
    int exit_code = 0;
    std::string error;
    std::string started_at = k_zero_time;
    std::string finished_at = k_zero_time;
    int restart_count = 0;
    int monitor_pid = 0;
    // The last stop was asked for (stop, kill, rm -f): restart policies other
    // than "always" do not restart it; unless-stopped stays down.
    bool manually_stopped = false;
    // Docker's Health object (null without a health check): exec's health.* owns it.
    nlohmann::ordered_json health;

    bool running() const {
        return status == "running" || status == "paused" || status == "restarting";
    }
    nlohmann::ordered_json to_json() const; // Docker's field names
    static State from_json(const nlohmann::json& j);
};

// An exclusive flock held for the object's life.
class Lock {
public:
    Lock() = default;
    explicit Lock(UniqueFd fd) : m_fd(std::move(fd)) {}

private:
    UniqueFd m_fd;
};

class Store {
public:
    // <store_root>/containers (made when missing).
    explicit Store(std::string store_root);

    const std::string& store_root() const noexcept { return m_store_root; }
    const std::string& dir() const noexcept { return m_dir; } // <store>/containers
    std::string path(std::string_view id) const;             // <store>/containers/<id>
    std::string log_path(std::string_view id) const;         // .../<id>/<id>-json.log

    // Makes a new container: claims `name` (a random one when empty; throws
    // NameConflict with Docker's message when taken, UsageError for an
    // invalid one), fills config's Id (a valid "Id" already there is kept, so
    // callers may pick it first, e.g. for the hostname), Name and Created (when missing), writes
    // config.json and a "created" state.json, makes upper/ work/ rootfs/.
    // Returns the id.
    std::string create(nlohmann::ordered_json config, const std::string& name = {});

    // What a user typed: a full id, a name (with or without the leading
    // '/'), or a unique id prefix, as Docker resolves them in that order.
    // Throws NoSuchContainer; an ambiguous prefix throws Error (Docker's
    // "multiple IDs found with provided prefix: X").
    std::string resolve(std::string_view text) const;
    // Every container's id (unordered).
    std::vector<std::string> list() const;
    bool exists(std::string_view id) const;

    nlohmann::ordered_json load_config(const std::string& id) const;
    // temp+rename; callers hold lock(id).
    void save_config(const std::string& id, const nlohmann::ordered_json& config);
    // The name without '/'.
    std::string name(const std::string& id) const;

    // The truth: a running/paused/restarting state whose monitor is gone
    // reads as exited (137: the container died with its monitor), and is
    // written so under the lock.
    State load_state(const std::string& id) const;
    // temp+rename; callers hold lock(id).
    void save_state(const std::string& id, const State& state) const;
    // The container's own lock (blocking).
    Lock lock(const std::string& id) const;
    // A live monitor holds <id>/monitor.lock.
    bool monitor_alive(const std::string& id) const;

    // Renames (Docker's messages for a taken or invalid name); holds the lock.
    void rename(const std::string& id, const std::string& new_name);
    // Removes the record, its name, its writable layer and its log, and unpins
    // its image. The caller checked that it is not running.
    void remove(const std::string& id);

private:
    std::string m_store_root;
    std::string m_dir;
};

} // namespace strata::containers
