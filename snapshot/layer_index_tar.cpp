// LayerIndex::add_layer lives apart from the rest of the index so that code
// using only in-memory layers does not pull in the tar reader.
#include "snapshot/layer_index.hpp"

#include "util/error.hpp"

namespace strata::snapshot {

using formats::EntryType;

void LayerIndex::add_layer(formats::TarReader& reader, std::string name) {
    begin_layer(name);
    std::vector<char> buf;
    with_context("layer " + name, [&] {
        while (auto e = reader.next()) {
            std::optional<Sha256::Bytes> hash;
            if (m_opts.hash_content && e->type == EntryType::file) {
                buf.resize(1 << 16);
                Sha256 sha;
                while (auto n = reader.read(buf.data(), buf.size())) {
                    sha.update(buf.data(), n);
                }
                hash = sha.finish();
            }
            add_entry(*e, hash);
        }
        m_layers.back().compression = reader.compression();
        end_layer(reader.finish());
    });
}

} // namespace strata::snapshot
