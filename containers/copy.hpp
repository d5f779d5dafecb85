// docker cp's file handling, shared by `strata cp` of images and of
// containers: where a copy lands (Docker's path rules), a walk of a source
// tree resolved inside a root, and a writer that creates entries inside a
// target directory without ever leaving it.
//
// Everything on the container side is resolved inside the container's root
// (util/root.hpp: RESOLVE_IN_ROOT semantics), so a symlink in the container
// pointing to "/" or "../../.." stays inside it; a tar fed to `cp -` has its
// entries resolved inside the destination directory and ".." names refused.
#pragma once

#include "formats/tar.hpp"
#include "util/fd.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace strata::containers {

// The source of a copy, looked up inside a root.
struct CopySource {
    UniqueFd fd; // O_PATH of the source entry
    bool is_dir = false;
    bool contents_only = false; // "DIR/.": the directory's contents
    std::string base;           // the name it is copied as ("rootfs" for "/")
    std::string shown;          // for messages
};
// path is resolved inside root_fd: symlinks on the way stay inside the root;
// the last component is followed only with follow (-L). A trailing "/." asks
// for the contents of a directory; a trailing "/" on a non-directory fails as
// Docker does. Throws naming the path.
CopySource open_copy_source(int root_fd, const std::string& path, bool follow,
                            const std::string& shown_prefix = "");

// Where a copy lands, by docker cp's rules for DEST: an existing directory
// receives the source under its base name (or its contents for "DIR/."); a
// missing DEST is the new name (its parent must exist; a trailing "/" on a
// missing DEST fails for a file); an existing file is overwritten by a file
// and refused for a directory.
struct CopyTarget {
    UniqueFd dir;     // the directory the entries are created in
    std::string name; // the top entry's name in dir; empty: dir itself (contents)
    std::string shown;
};
// Messages name shown_prefix + shown_dest (dest when shown_dest is empty).
CopyTarget resolve_copy_target(int root_fd, const std::string& dest, bool src_is_dir,
                               bool contents_only, const std::string& src_base,
                               const std::string& shown_prefix = "",
                               const std::string& shown_dest = "");
// A host path made absolute for resolve_copy_target under "/" (a trailing
// "/" kept).
std::string host_absolute(const std::string& path);

// Walks the source tree (not following symlinks below the top), calling
// visit with entries named under `name` ("name/sub/file"; the top entry is
// "name", or nothing when name is empty), a directory before its contents,
// and an fd of each regular file's content (-1 otherwise). Regular files
// sharing an inode become hard links of the first one.
void walk_copy_source(const CopySource& src, const std::string& name,
                      const std::function<void(const formats::TarEntry&, int content_fd)>& visit);

struct WriterStats {
    std::uint64_t entries = 0;
    std::uint64_t devices_skipped = 0; // not root: device nodes are not made
};

// Creates entries inside a directory: every path and hard-link target is
// resolved inside it (a symlink already there or made by an earlier entry
// cannot lead out), a name with a ".." component is refused. Modes, owners
// (keep_owner: the entry's uid/gid, as cp -a) and times are set by finish(),
// deepest first, so read-only directories are filled before they close.
class TreeWriter {
public:
    TreeWriter(int dir_fd, std::string shown, bool keep_owner);
    // content_fd >= 0: a regular file's bytes (copied from its current offset).
    void add(const formats::TarEntry& e, int content_fd = -1);
    // Streams a regular file's bytes (a tar reader's entry).
    void add_stream(const formats::TarEntry& e,
                    const std::function<std::size_t(void*, std::size_t)>& read);
    // Opens an entry made by add for writing (content filled later).
    UniqueFd open_file(const std::string& rel) const;
    void finish();
    const WriterStats& stats() const { return m_stats; }

private:
    UniqueFd create(const formats::TarEntry& e, std::string& rel);
    struct Done {
        std::string rel;
        formats::TarEntry meta;
    };
    int m_dir;
    std::string m_shown;
    bool m_keep_owner;
    bool m_as_root;
    std::vector<Done> m_done;
    WriterStats m_stats;
};

// Extracts a tar stream into the writer (docker cp - CONTAINER:DIR).
void extract_tar(formats::TarReader& reader, TreeWriter& writer);

} // namespace strata::containers
