// The runner: runs one process tree in new namespaces with a root directory
// as its "/". It knows nothing of images: the builder and `strata run` turn
// an image config into a RunSpec (argv, env, cwd, user, mounts).
//
//   runner::RunSpec spec;
//   spec.rootfs = merged_dir;
//   spec.argv = {"/bin/sh", "-c", "make"};
//   runner::Control control;              // cancel from a signal handler
//   ExitStatus st = runner::run(spec, &control);
//
// Everything the container needs (mounts, generated /etc files) lives in its
// own mount namespace, so the kernel removes it when the container's last
// process ends; the container's PID 1 dies with the calling thread
// (PR_SET_PDEATHSIG), so even a strata killed by SIGKILL leaves nothing
// running or mounted.
//
// Without root the container gets a user namespace: container 0 is the
// caller, and 1..N its /etc/subuid and /etc/subgid ranges when
// newuidmap/newgidmap are installed (runner/idmap.hpp); otherwise only 0 is
// mapped and a USER other than root needs root.
// Resource limits (spec.resources, Docker's --memory, --cpus...) go to the
// container's cgroup (runner/cgroup.hpp), real root only. Not (yet) done,
// by decision: no /sys/fs/cgroup inside.
// Networks: none, host, or join (a namespace the caller prepared, e.g. a bridge network's sandbox).
// Mount points created in the root (e.g. an image without /proc or /etc/hosts) are removed after
// the run, except when strata itself is killed by SIGKILL or a mount point had to be created
// through a dangling symlink. Needs Linux 5.6 (openat2 RESOLVE_IN_ROOT) and pidfds (5.3).
#pragma once

#include "runner/resources.hpp"
#include "util/child.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <utility>
#include <vector>

namespace strata::runner {

enum class Network {
    none, // a new network namespace with only the loopback interface, up
    host, // the host's network namespace
    join, // the namespace RunSpec::netns_fd (a bridge sandbox, network/sandbox.hpp)
};

enum class UserNamespace {
    automatic, // a user namespace only when strata is not root
    always,    // always (as root: an identity map of all ids)
    never,     // never (needs root)
    // None of its own: the caller is already root of a user namespace it
    // entered with enter_user_namespace() (runner/idmap.hpp), as `strata run`
    // does without root. Users, groups and setgroups are limited to what
    // that namespace's map allows, as in a user namespace of the runner's.
    joined,
};

// An extra mount inside the container. The target is resolved inside the
// root directory (a symlink is followed only within it) and created when
// missing: a directory, or an empty file when the source is a file.
struct Mount {
    enum class Type {
        bind,  // source is a host path (file or directory), bound recursively
        tmpfs, // source ignored; options e.g. "size=64m,mode=1777"
        cache, // a host directory shared between steps; created when missing
    };
    Type type = Type::bind;
    std::string source;
    std::string target; // absolute path inside the container
    bool read_only = false;
    std::string options; // tmpfs only: mount data ("size=..,mode=..")
};

struct Rlimit {
    int resource = 0; // RLIMIT_*
    rlim_t soft = 0;
    rlim_t hard = 0;
};

// A host device node made available in the container (`--device`).
struct Device {
    std::string host_path;           // a character or block device on the host, e.g. /dev/fuse
    std::string container_path;      // where it appears inside; empty: the same as host_path
    std::string permissions = "rwm"; // the device cgroup's r(ead), w(rite), m(knod)
};

// How far the container is confined. The defaults are Docker's: its
// capability set, its seccomp profile, its masked and read-only paths, a
// device cgroup that allows only the standard /dev nodes, a session keyring
// of its own. Every protection fails closed: one that cannot be applied
// stops the container with StartError.
struct Security {
    // `--privileged`: every capability, every host device, no seccomp filter,
    // no masked or read-only paths, /sys writable (as Docker).
    bool privileged = false;
    // `--cap-add` / `--cap-drop`: names with or without "CAP_", any case,
    // or "ALL"; combined as Docker's TweakCapabilities (container_capabilities).
    std::vector<std::string> cap_add;
    std::vector<std::string> cap_drop;
    // `--security-opt seccomp=...`: empty for Docker's default profile,
    // "unconfined" for none, otherwise the text of a profile in Docker's JSON format.
    std::string seccomp_profile;
    // Where seccomp_profile came from (a file name), for messages.
    std::string seccomp_profile_source;
    // `--device`: extra devices, allowed in the device cgroup and created in /dev.
    std::vector<Device> devices;
};

struct RunSpec {
    std::string rootfs;            // host directory that becomes "/"
    std::vector<std::string> argv; // argv[0] without '/' is searched in the container's PATH
    std::vector<std::string> env;  // "K=V"; PATH defaults to Docker's, HOME to the user's
    std::string cwd = "/";         // created (root-owned, 0755) when missing, as Docker does
    std::string user;              // "", "name", "uid", "name:group", "uid:gid" (from ROOTFS/etc)
    std::string hostname;          // default: 12 random hex digits, as Docker's container id
    std::vector<std::pair<std::string, std::string>> extra_hosts; // (name, address) for /etc/hosts
    Network network = Network::none;
    // Network::join: the network namespace the container enters (the caller's
    // fd, kept open until start() returns).
    int netns_fd = -1;
    // The address /etc/hosts gives the hostname (a bridged container's own);
    // empty: 127.0.0.1 for none.
    std::string hosts_address;
    // The text of /etc/resolv.conf; empty: the host's (without loopback
    // nameservers unless the network is host).
    std::string resolv_conf;
    UserNamespace user_namespace = UserNamespace::automatic;
    std::vector<Mount> mounts;
    std::vector<Rlimit> rlimits; // can only lower limits without CAP_SYS_RESOURCE
    bool init = false;           // docker-init (tini) is PID 1: reaps zombies, forwards signals
    bool read_only = false;      // the root directory is mounted read-only
    bool tty = false;            // the command gets a new pseudo-terminal as stdin/out/err
    Security security;
    // Docker's resource limits, applied to the container's cgroup before its
    // command runs (verify_resources' checks; a limit that cannot be written
    // stops the container with StartError naming the file). Need real root.
    Resources resources;
    // The container's cgroup is strata/<cgroup_name> in each hierarchy, so
    // other processes find it from the name (cgroup_paths(name)); empty: a
    // random name.
    std::string cgroup_name;
    // Streams. stdin -1: /dev/null (as `docker run` without -i); stdout and
    // stderr -1: the caller's own. With tty, stdin_fd and stdout_fd are the
    // two ends strata copies between the terminal and the pty (stderr is
    // merged, as Docker does with -t); the window size is taken from stdout_fd
    // (or stdin_fd) when it is a terminal.
    int stdin_fd = -1;
    int stdout_fd = -1;
    int stderr_fd = -1;
};

// The command could not be started. exit_code() is Docker's: 127 when the
// command was not found, 126 when it cannot be executed, 125 when the
// container itself could not be set up.
class StartError : public Error {
public:
    StartError(const std::string& what, int exit_code) : Error(what), m_exit_code(exit_code) {}
    int exit_code() const noexcept { return m_exit_code; }

private:
    int m_exit_code;
};

// run() was cancelled through its Control; the container has been killed
// and reaped.
class Cancelled : public Error {
public:
    using Error::Error;
};

// Talks to a running container from a signal handler or another thread.
// Every method is async-signal-safe: each writes one byte to a pipe that
// the waiting thread polls.
class Control {
public:
    Control();
    // Stops the container (SIGKILL to its whole PID namespace); run() then
    // throws Cancelled once everything is reaped.
    void cancel() noexcept;
    // Delivers sig to the container's command (through the init with
    // spec.init; otherwise to PID 1, which receives only signals it handles).
    void forward(int sig) noexcept;
    // The caller's terminal changed size: copy it to the container's pty.
    void window_changed() noexcept;

    int fd() const noexcept { return m_pipe.read.get(); }

private:
    Pipe m_pipe;
};

// The mount points start() created in the root directory because they were
// missing (wait() removes them again when still empty), and the directories
// above them as they were before (lstat, first sight; "/" left out), so
// that a caller whose root is a build step's upper layer can put back their
// times (builder/mount_stubs.hpp). A mount point created inside another
// mount, or through a dangling symlink by the container, is not listed.
struct CreatedMountPoints {
    std::vector<std::string> paths; // outermost first
    std::vector<std::pair<std::string, struct stat>> parents;
};

// A started container. Destroying it while it runs kills it (SIGKILL to
// its PID 1, which ends the PID namespace) and reaps it.
class Container {
public:
    // Sets the container up and starts the command. Throws StartError when
    // the command cannot be started (nothing is left running), Error for a
    // bad spec (unknown user, relative target...).
    static Container start(const RunSpec& spec);

    Container(Container&&) noexcept;
    Container& operator=(Container&&) noexcept;
    Container(const Container&) = delete;
    Container& operator=(const Container&) = delete;
    ~Container();

    // Host pid of the container's PID 1 (the command, or docker-init).
    pid_t pid() const noexcept;
    // Sends sig as Control::forward does.
    void kill(int sig);
    // Sets the pty's window size (tty only).
    void resize(unsigned short rows, unsigned short cols);
    // Waits for the command to end, copying between the caller's streams
    // and the pty when spec.tty, and serving control. With spec.init the
    // status is docker-init's: the command's code, 128+N for a death by signal N.
    ExitStatus wait(Control* control = nullptr);
    // After wait(): whether the kernel's OOM killer killed a process of the
    // container (its memory cgroup counted a kill), Docker's OOMKilled.
    bool oom_killed() const noexcept;
    // The mount points start() created in the root directory.
    const CreatedMountPoints& created_mount_points() const;

    struct State;

private:
    explicit Container(State* s) : m_state(s) {}
    State* m_state = nullptr;
};

// start() + wait(); with created, what Container::created_mount_points()
// reports once the command has ended.
ExitStatus run(const RunSpec& spec, Control* control = nullptr,
               CreatedMountPoints* created = nullptr);

// Docker's default capability set, as a bit mask over CAP_* numbers.
std::uint64_t default_capabilities() noexcept;
// "CAP_CHOWN" etc. for a capability number; "CAP_<n>" for unknown ones.
std::string capability_name(int cap);
// The capability set (bounding, and what root in the container holds) that
// security gives, as Docker's TweakCapabilities: privileged: every capability
// of this kernel that strata's own bounding set holds; "ALL" in cap_add: all
// but cap_drop; "ALL" in cap_drop: only cap_add; otherwise the default set
// minus cap_drop plus cap_add. Throws UsageError naming an unknown capability.
std::uint64_t container_capabilities(const Security& security);

// Docker's PATH when the image sets none.
inline constexpr const char* k_default_path =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

} // namespace strata::runner
