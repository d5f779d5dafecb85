// File-system helpers that work on paths or relative to directory fds.
// Everything opens with O_CLOEXEC; removal never follows symlinks.
#pragma once

#include "util/fd.hpp"

#include <cstdint>
#include <fcntl.h>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <sys/types.h>
#include <utility>
#include <vector>

namespace strata::fs {

UniqueFd open_at(int dirfd, const std::string& path, int flags, mode_t mode = 0644);
UniqueFd open(const std::string& path, int flags, mode_t mode = 0644);
inline UniqueFd open_dir(const std::string& path) {
    return open(path, O_RDONLY | O_DIRECTORY);
}

std::string read_file(const std::string& path, std::size_t max_size = SIZE_MAX);

// Reads and writes on an fd, retrying EINTR. path is what the fd reads or
// writes (a file's path, or "stdin", "the container's pipe"...): errors name
// it (`read "/x": Input/output error`); read_fd's size limit too.
//
// Reads everything up to EOF; throws Error when there is more than max_size.
std::string read_fd(int fd, std::string_view path, std::size_t max_size = SIZE_MAX);
void write_all(int fd, std::string_view path, const void* data, std::size_t size);
inline void write_all(int fd, std::string_view path, std::string_view s) {
    write_all(fd, path, s.data(), s.size());
}
// Reads exactly size bytes (or until EOF); returns how many were read.
std::size_t read_full(int fd, std::string_view path, void* data, std::size_t size);
// The same at an offset (pread), leaving the file position alone.
std::size_t pread_full(int fd, std::string_view path, void* data, std::size_t size,
                       std::uint64_t offset);
// write_all at an offset (pwrite).
void pwrite_all(int fd, std::string_view path, const void* data, std::size_t size,
                std::uint64_t offset);

// Reads fd to EOF in pieces of up to chunk bytes, handing each to sink (which
// may throw to stop); returns the total read.
std::uint64_t read_each(int fd, std::string_view path, std::size_t chunk,
                        const std::function<void(const char*, std::size_t)>& sink);

// The same for callers that do not know what the fd is: an error names it by
// its /proc/self/fd link ("pipe:[1234]", the path of a file).
std::string read_fd(int fd, std::size_t max_size = SIZE_MAX);
inline void write_all(int fd, const void* data, std::size_t size) {
    write_all(fd, std::string_view{}, data, size);
}
inline void write_all(int fd, std::string_view s) {
    write_all(fd, std::string_view{}, s);
}
inline std::size_t read_full(int fd, void* data, std::size_t size) {
    return read_full(fd, std::string_view{}, data, size);
}
// What /proc/self/fd/N links to ("pipe:[1234]", a path), or "fd N".
std::string fd_name(int fd);

// Writes the file, replacing it atomically (temp file + fsync + rename).
void write_file_atomic(const std::string& path, std::string_view data, mode_t mode = 0644);

// Like mkdir -p. Existing directories are fine.
void mkdirs(const std::string& path, mode_t mode = 0755);
bool exists(const std::string& path);
bool is_dir(const std::string& path);
struct stat lstat(const std::string& path);
struct stat fstat(int fd);

// The names in a directory (without "." and ".."), sorted bytewise.
// list_dir of a missing directory is empty.
std::vector<std::string> list_dir(const std::string& path);
std::vector<std::string> list_dir_at(int dirfd);

// rm -rf that never follows symlinks and does not cross mount points.
// Missing paths are fine.
void remove_all(const std::string& path);
void remove_all_at(int dirfd, const std::string& name);

void fsync_dir(const std::string& path);
std::string dirname(std::string_view path);
std::string basename(std::string_view path);
// A relative path's parent and last component: "a/b/c" -> {"a/b", "c"},
// "c" -> {"", "c"}.
std::pair<std::string, std::string> split_parent(const std::string& path);

// Every extended attribute of path, not following a symlink (any file type;
// a /proc/self/fd/N/name path works for entries that cannot be opened).
// Empty where the filesystem has none (ENOTSUP); throws SysError otherwise.
std::map<std::string, std::string> read_xattrs(const std::string& path);
// The same of an open file (shown names it in errors).
std::map<std::string, std::string> read_xattrs(int fd, const std::string& shown);
// Joins a and b with one '/' between them.
std::string join(std::string_view a, std::string_view b);
std::string absolute(const std::string& path);

// Total apparent size and count of the files below path (lstat, no symlinks followed).
struct Usage {
    std::uint64_t bytes = 0;
    std::uint64_t files = 0;
};
Usage disk_usage(const std::string& path);

} // namespace strata::fs
