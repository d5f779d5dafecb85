// COPY and ADD's file copying with Docker's rules, from a source root (the
// build context or another stage's root filesystem) into a destination
// root filesystem, every path resolved inside its root:
//
// - a source may hold wildcards (Go's filepath.Match, per path component);
//   no match is an error naming the pattern;
// - a directory source copies its contents, not the directory itself;
// - a destination ending in "/" (or one that exists as a directory, or any
//   destination of several sources) is a directory the sources go into;
//   otherwise a single file source is copied to that exact path;
// - the top-level source is followed if it is a symlink (inside the source
//   root: a link that points outside resolves inside it, never on the host);
//   symlinks inside copied directories are copied as symlinks;
// - files keep their mode and mtime; owner is 0:0 unless preserve_owner
//   (copies from another stage) or an explicit --chown; --chmod sets the
//   mode of every copied file and directory (builder/chmod.hpp: an octal
//   mode replaces it, a symbolic one applies to the source's mode);
// - hard links between copied files are kept;
// - missing destination directories are created (0755, owned as the files).
#pragma once

#include "builder/chmod.hpp"
#include "util/fd.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <sys/types.h>
#include <vector>

namespace strata::builder {

// A file CopyOptions::defer_content is asked about: where it goes, where it
// comes from, and the metadata the copy would give it.
struct DeferredFile {
    std::string dest;    // absolute in the destination root: "/data/a.bin"
    std::string src_rel; // relative to the source root: "a.bin"
    struct stat st {};   // the source's lstat
    mode_t mode = 0;     // permission bits the copy sets (after --chmod)
    uid_t uid = 0;       // owner the copy sets (after --chown)
    gid_t gid = 0;
    // The source, during the call only: src_name in the directory open as
    // src_dir, or (src_name null) the file open as src_dir.
    int src_dir = -1;
    const char* src_name = nullptr;
};

// Whether a copy keeps the extended attribute `name` (not trusted.*,
// security.selinux or overlayfs' own).
bool copy_keeps_xattr(std::string_view name);
// Whether name in the directory open as dirfd (name null: the file open as
// dirfd) has extended attributes a copy keeps (true when they cannot be
// listed).
bool has_kept_xattrs(int dirfd, const char* name);
// The same of f's source.
bool has_kept_xattrs(const DeferredFile& f);

// One entry of a source directory as a listing taken earlier gave it: its
// name and lstat.
struct ListedEntry {
    std::string name;
    struct stat st;
};

// Listings of a source root's directories taken earlier (the build
// context's index, walked once at the start of the build): the entries of
// the directory at rel (relative to the source root as the copy names it:
// "." for the root, "a/b"), sorted by name, or nullptr when it has none for
// that path (a path through a symlink, a directory made later).
using ListedDirs = std::function<const std::vector<ListedEntry>*(const std::string& rel)>;

struct CopyOptions {
    std::optional<uid_t> uid; // --chown
    std::optional<gid_t> gid;
    bool preserve_owner = false;    // keep source ownership when no --chown
    std::optional<ChmodSpec> chmod; // --chmod (octal or symbolic)
    bool parents = false;           // --parents
    // Paths (relative to the source root, "a/b") that must not be copied:
    // .dockerignore for the context, and --exclude patterns.
    std::function<bool(const std::string& rel, bool is_dir)> excluded;
    // Whether a directory excluded by `excluded` may still hold re-included
    // entries (a "!" exception below it), so it must be walked.
    std::function<bool(const std::string& rel)> may_reinclude;
    // When set: asked before a regular file with one link and some content
    // is copied. True: the file is not created at all (its stats still
    // count), and the caller makes it after the copy, exactly as the copy
    // would have: the builder links the identical file of a previous build's
    // snapshot into the step's upper directory (builder/copy_reuse.hpp). It
    // must refuse a file with extended attributes a copy keeps
    // (has_kept_xattrs): the copy makes none for a deferred file.
    std::function<bool(const DeferredFile&)> defer_content;
    // When set, a source directory the listing knows is not read and its
    // entries not stat'ed again: the copy and the content hash (which must
    // be given the same listing) see the context as it was walked.
    ListedDirs listed;
};

struct CopyStats {
    std::uint64_t files = 0;
    std::uint64_t bytes = 0;
};

// Expands source patterns against the source root, returning the matched
// paths relative to it ("a/b.txt"; "." for the root) in sorted order. An
// unmatched pattern throws Error naming it.
std::vector<std::string> expand_sources(int src_root, const std::vector<std::string>& sources,
                                        const CopyOptions& opts);

// Copies sources (as written in the instruction, after variable expansion)
// to dest (absolute inside the destination root, trailing "/" kept).
CopyStats copy_into(int src_root, const std::vector<std::string>& sources, int dest_root,
                    const std::string& dest, const CopyOptions& opts);

// A stat-keyed memo of file content digests for hash_sources (BuildKit's
// content cache): find() returns the digest remembered for the file at rel
// when its lstat still matches; learn() is told each digest computed.
class FileDigestMemo {
public:
    virtual ~FileDigestMemo() = default;
    virtual std::optional<std::string> find(const std::string& rel, const struct stat& st) = 0;
    virtual void learn(const std::string& rel, const struct stat& st,
                       const std::string& digest) = 0;
};

// A content hash of what copy_into would read, for the build cache: paths,
// types, modes, symlink targets and file contents (not mtimes or owners, so
// touching a file without changing it keeps the cache). With a memo, each
// regular file contributes the SHA-256 of its content (read only when the
// memo has no digest for its current lstat) instead of the content itself:
// a different but equally content-determined value.
// With listing and a memo, each entry read is also listed: its path ->
// type, mode and content digest (or link target), so that a later build can
// say which files changed.
std::string hash_sources(int src_root, const std::vector<std::string>& sources,
                         const CopyOptions& opts, FileDigestMemo* memo = nullptr,
                         std::map<std::string, std::string>* listing = nullptr);

// Go's filepath.Match for one path (with '/' separators).
bool path_match(const std::string& pattern, const std::string& path);
bool has_wildcard(const std::string& s);

} // namespace strata::builder
