#include "snapshot/upper_layer.hpp"

#include "formats/compression.hpp"

namespace strata::snapshot {

std::optional<UpperLayer>
put_upper_layer(Store& store, const std::string& upper_dir, const formats::TarWriter::Options& opts,
                DiffStats* stats,
                const std::function<void(int blob_fd, const std::function<void()>& pack)>& around) {
    BlobWriter blob = store.new_blob();
    DiffStats own;
    DiffStats* st = stats != nullptr ? stats : &own;
    std::optional<formats::LayerDigests> d;
    auto pack = [&] { d = write_upper_layer(upper_dir, blob.fd(), opts, st); };
    if (around) {
        around(blob.fd(), pack);
    } else {
        pack();
    }
    if (st->entries == 0) {
        return std::nullopt;
    }
    blob.commit_trusted(d->blob_digest);
    formats::Descriptor layer;
    layer.media_type = std::string(formats::oci_layer_media_type(opts.compression));
    layer.digest = d->blob_digest;
    layer.size = static_cast<std::int64_t>(d->blob_size);
    return UpperLayer{std::move(layer), d->diff_id};
}

} // namespace strata::snapshot
