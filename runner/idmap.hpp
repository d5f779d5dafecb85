// The id maps of a container started without root. Where /etc/subuid and
// /etc/subgid grant the user subordinate ranges and newuidmap/newgidmap
// (Debian's uidmap package) are installed, the whole range is mapped as
// podman does: container id 0 is the user, 1..N the subordinate ids, so that
// `USER 1000` and files owned by 1000 work inside. Otherwise only 0 is mapped
// (the user's own uid and gid) and setgroups is denied, as unshare -r does.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace strata::runner {

struct IdRange {
    std::uint32_t start = 0;
    std::uint32_t count = 0;
};

// The ranges a subuid/subgid file (lines "name-or-id:start:count") grants to
// the user called name or with the numeric id, in file order. Comments,
// malformed lines and empty ranges are skipped.
std::vector<IdRange> subordinate_ranges(std::string_view content, std::string_view name,
                                        std::uint32_t id);

// One line of /proc/PID/[ug]id_map.
struct IdMapLine {
    std::uint32_t inside = 0;
    std::uint32_t outside = 0;
    std::uint32_t count = 0;
};

struct RootlessIdMap {
    std::vector<IdMapLine> uid;
    std::vector<IdMapLine> gid;
    // Both maps are written by these setuid helpers (full range); when empty,
    // strata writes the single mapping itself after denying setgroups.
    std::string newuidmap;
    std::string newgidmap;

    bool full() const noexcept { return !newuidmap.empty(); }
    // Container ids 0 .. count-1 are mapped.
    std::uint64_t uid_count() const noexcept;
    std::uint64_t gid_count() const noexcept;
};

// Maps container 0 to (uid, gid) and 1.. to the ranges; a single mapping
// when either list is empty or a helper path is empty.
RootlessIdMap make_id_map(uid_t uid, gid_t gid, const std::vector<IdRange>& subuids,
                          const std::vector<IdRange>& subgids, const std::string& newuidmap,
                          const std::string& newgidmap);

// The map for the calling user, from /etc/subuid, /etc/subgid and PATH
// (falling back to the single mapping, with a debug log saying why).
RootlessIdMap rootless_id_map();

// "0 1000 1\n1 100000 65536\n"
std::string id_map_text(const std::vector<IdMapLine>& lines);

// Writes m into /proc/PID/uid_map and gid_map of a process just cloned into
// a new user namespace: through newuidmap/newgidmap when m.full(), else
// directly after denying setgroups. Throws Error naming the helper or the
// file when that fails.
void write_id_maps(pid_t pid, const RootlessIdMap& m);
// Writes content to /proc/PID/NAME (uid_map, gid_map, setgroups) in one write.
void write_proc_file(pid_t pid, const char* name, const std::string& content);

// Makes the calling process (which must be single-threaded and not root)
// root of a new user namespace with m as its map, as `podman unshare` does:
// a short-lived child is cloned into the namespace, its maps are written
// from here, and this process joins it with setns(2). From then on the
// process holds every capability in that namespace (mounts of its own after
// unshare(CLONE_NEWNS), kernel overlayfs from Linux 5.11, FUSE, chown to
// mapped ids) and none outside it. Throws Error saying what is missing
// when user namespaces are not available (sysctls, seccomp) or the map
// cannot be written.
void enter_user_namespace(const RootlessIdMap& m);

// The map enter_user_namespace() set up for this process, or nullptr.
const RootlessIdMap* joined_user_namespace() noexcept;

} // namespace strata::runner
