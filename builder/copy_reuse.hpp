// Unchanged files of a COPY are not copied again: when a COPY from the
// context misses only because some of its files changed, the files that are
// the same as in the step's previous result (same content digest as that
// layer's zstd:chunked TOC says, same size and mtime in its snapshot) are
// created empty by the copy (CopyOptions::defer_content), and after the step's
// overlay is unmounted each is replaced by a hard link to the previous
// snapshot's file, once the placeholder's metadata (mode, owner, mtime,
// xattrs) is seen to be the old file's. Where it is not, or the link fails,
// the content is copied from there instead.
//
// Sharing inodes between snapshots is safe because snapshots are only ever
// read-only overlay lower directories: a container or RUN step that writes
// to such a file gets a copy-up (a new inode) in its own upper directory.
// Files under k_min_link_size are copied: making the placeholder costs what
// copying them does, and the link and rename would add two calls.
#pragma once

#include "formats/oci.hpp"
#include "snapshot/store.hpp"
#include "util/fd.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace strata::builder {

class FileDigestMemo;

class CopyReuse {
public:
    static constexpr std::int64_t k_min_link_size = 64 * 1024;

    // nullopt when the previous layer is not zstd:chunked or its snapshot or
    // TOC cannot be read (then everything is copied).
    static std::optional<CopyReuse> open(const snapshot::Store& store,
                                         const std::string& previous_fs,
                                         const formats::Descriptor& previous_layer,
                                         FileDigestMemo* memo);

    // CopyOptions::defer_content.
    bool defer(const std::string& dest, const std::string& src_rel, const struct stat& st);
    // After the overlay is unmounted: links (or fills) the deferred files.
    // Returns how many were linked.
    std::size_t finish(const std::string& upper);

private:
    struct Old {
        std::string digest; // hex
        std::uint64_t size = 0;
    };
    std::string m_previous_fs;
    UniqueFd m_prev;
    FileDigestMemo* m_memo = nullptr;
    std::map<std::string, Old, std::less<>> m_old; // TOC name -> content
    std::vector<std::string> m_deferred;           // names relative to the root
};

} // namespace strata::builder
