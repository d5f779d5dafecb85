#include "snapshot/flatten.hpp"

#include "formats/tar.hpp"
#include "snapshot/layer_apply.hpp"
#include "snapshot/layer_diff.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/tempdir.hpp"

namespace strata::snapshot {

void flatten_image(Store& store, const Image& img, const std::string& dir) {
    UniqueFd target = fs::open_dir(dir);
    for (const auto& l : img.manifest.layers) {
        UniqueFd blob = store.open_blob(l.digest);
        ApplyOptions opts;
        opts.mode = WhiteoutMode::flatten;
        opts.layer_name = l.digest.str();
        auto stats = apply_layer_at(blob.get(), target.get(), opts);
        if (stats.digests && stats.digests->blob_digest != l.digest) {
            throw Error("layer " + l.digest.str() + " is corrupt: its content hashes to " +
                        stats.digests->blob_digest.str());
        }
        if (stats.owners_skipped > 0) {
            STRATA_LOG_WARN("layer {}: {} entries kept the current owner (not running as root)",
                            l.digest.short_id(), stats.owners_skipped);
        }
    }
}

void write_rootfs_tar(Store& store, const Image& img, int fd) {
    TempDir work(store.tmp_dir(), "export-");
    std::string root = work.path() + "/rootfs";
    fs::mkdirs(root, 0755);
    flatten_image(store, img, root);
    formats::TarWriter::Options wo;
    wo.compression = formats::Compression::none;
    write_diff_layer(root, "", fd, wo);
}

} // namespace strata::snapshot
