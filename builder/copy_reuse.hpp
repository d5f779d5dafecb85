// Unchanged files of a COPY are not copied again: when a COPY from the
// context misses only because some of its files changed, the files that are
// the same as in the step's previous result (same size, mtime, mode and
// owner in its snapshot, no extended attributes on either side, and the
// same content: the digest that layer's zstd:chunked TOC gives the file is
// the one the build computed for the source; for a layer without a TOC the
// new layer's writer hashes each such file as it packs it and the step is
// made again without reuse if one differs) are not created by the
// copy at all (CopyOptions::defer_content). After the step's overlay is
// unmounted each is hard-linked from the previous snapshot into the upper
// directory (over the whiteout the copy left where a lower file was
// replaced), and the directories it went into get back the times the copy
// gave them, so the upper directory, and the layer made from it, are exactly
// what a full copy makes. Where the link fails, the file is created in the
// upper directory with the same metadata and its content copied there.
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
    static std::optional<CopyReuse> open(const snapshot::Store& store,
                                         const std::string& previous_fs,
                                         const formats::Descriptor& previous_layer,
                                         FileDigestMemo* memo, bool check_in_pack);

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
        dev_t dev = 0;      // the previous snapshot's inode
        ino_t ino = 0;
    };
    // Links (or, where no link can be made, copies) d into the directory
    // dir of the upper directory; true when linked. checks gets its digest
    // when the pack is to check it.
    bool link_one(const Deferred& d, int dir, const std::string& upper,
                  std::vector<std::pair<std::string, std::string>>& checks) const;

    std::string m_previous_fs;
    UniqueFd m_prev;
    // defer(): the previous snapshot's directory of the last file asked about.
    std::string m_prev_dir_name;
    UniqueFd m_prev_dir;
    FileDigestMemo* m_memo = nullptr;
    bool m_toc = false; // m_old holds the previous layer's TOC; else checked in the pack
    std::shared_ptr<const formats::ChunkedToc> m_toc_entries;
    // TOC name -> its regular file's entry ("sha256:" and 64 hex digits).
    std::unordered_map<std::string_view, const formats::ChunkedEntry*> m_old;
    std::vector<Deferred> m_deferred;
    std::set<std::pair<dev_t, ino_t>> m_inodes; // of the previous files deferred
};

} // namespace strata::builder
