// docker diff, commit and export of containers (containers/filesystem.hpp
// does the work; this is the command-line side). `strata diff` with one
// argument and `strata export` of a name that is a container come here.
#pragma once

#include "cli/cli.hpp"
#include "containers/filesystem.hpp"
#include "formats/digest.hpp"

#include <cstdint>
#include <functional>

#include <optional>
#include <string>
#include <vector>

namespace strata::cli {

// The container's id when text names one (a name, a full id or a unique id
// prefix); nullopt when no container has that name or id.
std::optional<std::string> find_container(const Context& ctx, const std::string& text);

// docker diff CONTAINER: "C /etc", "A /etc/new", "D /tmp/gone" lines.
void container_diff(Context& ctx, const std::string& container);
// docker export [-o FILE] CONTAINER (stdout when output is empty or "-").
void container_export(Context& ctx, const std::string& container, const std::string& output);

// The changes of docker diff (the API's /containers/{id}/changes).
std::vector<containers::Change> container_changes(Context& ctx, const std::string& container);
// docker export's tar, written to fd.
void export_container(Context& ctx, const std::string& container, int fd);

// The API's /containers/{id}/archive (docker cp through a daemon). Each
// works inside the container's root: a running container's, else its layers
// mounted in a mount namespace that the calling thread unshares (in a
// process with other threads, call from a thread that ends afterwards).
// A path that is not there: NoSuchContainerPath ("Could not find the file
// PATH in container X", dockerd's 404).
class NoSuchContainerPath : public Error {
public:
    using Error::Error;
};
// dockerd's ContainerPathStat: the last component's name, size, Go
// os.FileMode, mtime, and for a symlink the path it resolves to inside the
// container.
struct ContainerPathStat {
    std::string name;
    std::int64_t size = 0;
    std::uint32_t mode = 0;
    std::int64_t mtime_sec = 0;
    long mtime_nsec = 0;
    std::string link_target;
};
ContainerPathStat container_path_stat(Context& ctx, const std::string& container,
                                      const std::string& path);
// The path as an uncompressed tar on fd, its entries named as dockerd names
// them (the path's last component, "." for DIR/.); found gets its stat
// before the first byte.
void container_archive(Context& ctx, const std::string& container, const std::string& path,
                       const std::function<void(const ContainerPathStat&)>& found, int fd);
// Extracts the tar read from tar_fd into the container's directory dir,
// every entry resolved inside dir (".." names and symlinks leading out are
// refused); owners kept with copy_uid_gid, else the extracting user's. A
// directory never replaces a non-directory nor the reverse (dockerd's
// noOverwriteDirNonDir, which docker cp always asks for). UsageError when
// dir is not a directory.
void container_extract(Context& ctx, const std::string& container, const std::string& dir,
                       int tar_fd, bool copy_uid_gid);

// docker cp with a container on one side (CONTAINER:PATH, "-" for a tar on
// stdin or stdout); false when neither side names a container (the caller
// then copies out of an image).
bool container_cp(Context& ctx, const std::string& source, const std::string& dest, bool follow,
                  bool archive);

// docker commit CONTAINER [REPOSITORY[:TAG]]: the container's changes as a
// new layer on its image, the changes (-c, Dockerfile instructions) applied
// to its config; pause freezes a running container meanwhile. Returns the
// image ID.
struct CommitSettings {
    std::string author;
    std::string message;
    std::vector<std::string> changes;
    bool pause = true;
    std::string reference; // empty: an untagged image
};
formats::Digest commit_container(Context& ctx, const std::string& container,
                                 const CommitSettings& s);

} // namespace strata::cli
