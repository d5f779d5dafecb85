// Unchanged files of a COPY are not copied again: when a COPY from the
// context misses only because some of its files changed, the files whose
// content is the same as in the step's previous result (the digest that
// layer's zstd:chunked TOC gives the file is the one the build computed for
// the source, and neither has extended attributes; for a layer without a
// TOC, a source without extended attributes a copy keeps, whose content the
// new layer's writer hashes as it packs it, the step being made again
// without reuse if one differs) are not created by the copy at all
// (CopyOptions::defer_content). After the step's overlay is unmounted, on a
// few threads, each is hard-linked from the previous snapshot into the upper
// directory (over the whiteout the copy left where a lower file was
// replaced) when the snapshot's file has the size, mtime, mode and owner the
// copy gives it (and, without a TOC, no extended attributes); the
// directories it went into get back the times the copy gave them, so the
// upper directory, and the layer made from it, are exactly what a full copy
// makes. A file that cannot be linked (other metadata, not in the snapshot,
// a link refused) is made there from the source, as the copy would have.
//
// Sharing inodes between snapshots is safe because snapshots are only ever
// read-only overlay lower directories: a container, RUN step, writable mount
// or later COPY that writes to such a file gets a copy-up (a new inode) in
// its own upper directory; nothing writes into a snapshot in place.
#pragma once

#include "builder/copy.hpp"
#include "formats/oci.hpp"
#include "formats/zstd_chunked.hpp"
#include "snapshot/layer_diff.hpp"
#include "snapshot/store.hpp"
#include "util/fd.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unordered_map>
#include <vector>

namespace strata::builder {

class CopyReuse {
public:
    // nullopt when the previous snapshot or TOC cannot be read, or when the
    // previous layer is not zstd:chunked and the new layer's writer cannot
    // check contents (check_in_pack false: a zstd:chunked layer); then
    // everything is copied.
    // source_root: the directory the copy's sources are in (the context).
    static std::optional<CopyReuse> open(const snapshot::Store& store,
                                         const std::string& previous_fs,
                                         const formats::Descriptor& previous_layer,
                                         FileDigestMemo* memo, bool check_in_pack, int source_root);

    // CopyOptions::defer_content.
    bool defer(const DeferredFile& f);
    // After the overlay is unmounted: links (or copies) the deferred files
    // into the upper directory. Returns how many were linked. Throws naming
    // the path when one cannot be made (the step fails). checks gets the
    // content digest each linked file must have when the layer writer is to
    // check them (a previous layer without a TOC); linked gets the files
    // linked whose frames the previous layer's TOC gives (the layer writer
    // then takes those frames without reading the files).
    std::size_t finish(const std::string& upper, snapshot::ContentChecks& checks,
                       snapshot::LinkedFiles& linked);

private:
    struct Deferred {
        std::string name; // relative to the root: "data/a.bin"
        DeferredFile file;
        std::string digest; // hex, of the source's content
    };
    // The previous snapshot's inodes linked so far, across finish()'s threads.
    struct Claimed {
        std::mutex mu;
        std::set<std::pair<dev_t, ino_t>> inodes;
        // False when another path took it first.
        bool claim(dev_t dev, ino_t ino);
    };
    // Links d from prev_dir (its directory in the previous snapshot; -1: not
    // there) into the upper directory's directory dir when that file is
    // what the copy would make; else makes it from the source, as the copy
    // would have. True when linked (linked: that inode's lstat as the link
    // left it); checks gets its digest when the pack is to check it.
    bool link_one(const Deferred& d, int dir, int prev_dir, const std::string& upper,
                  Claimed& claimed, std::vector<std::pair<std::string, std::string>>& checks,
                  struct stat& linked) const;

    std::string m_previous_fs;
    UniqueFd m_prev;
    UniqueFd m_source; // the root the sources' paths (DeferredFile::src_rel) are in
    FileDigestMemo* m_memo = nullptr;
    bool m_toc = false; // m_old holds the previous layer's TOC; else checked in the pack
    std::shared_ptr<const formats::ChunkedToc> m_toc_entries;
    // TOC name -> its regular file's entry ("sha256:" and 64 hex digits).
    std::unordered_map<std::string_view, const formats::ChunkedEntry*> m_old;
    std::vector<Deferred> m_deferred;
};

} // namespace strata::builder
