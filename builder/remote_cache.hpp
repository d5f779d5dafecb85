// A build cache shared through a registry (`strata build --cache-to
// type=registry,ref=R` / `--cache-from type=registry,ref=R`).
//
// The cache is an OCI image manifest pushed to R:
//   config  application/vnd.strata.cache.config.v1+json
//           {"version": 1, "records": [<cache record>, ...]}
//           each record as the store's cache/<key>.json holds it (key,
//           created_by, created, layer descriptor, diff_id, chain_id)
//   layers  the layer blobs the records name, with their own media types
// so any registry stores it and any OCI tool can copy it. (BuildKit's
// registry cache is the same idea with its own config type; the two are not
// interchangeable, since the keys are computed differently.)
//
// Import reads only the manifest and the config (small); a step's layer is
// downloaded, and verified by digest (and, when unpacked, by diff ID), only
// when the build reaches that step and finds no record in the store.
#pragma once

#include "builder/cache.hpp"
#include "registry/client.hpp"
#include "registry/transfer.hpp"
#include "snapshot/reference.hpp"
#include "snapshot/store.hpp"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace strata::builder {

inline constexpr std::string_view k_cache_config_media_type =
    "application/vnd.strata.cache.config.v1+json";
// The largest cache config accepted from a registry.
inline constexpr std::size_t k_max_cache_config_size = 16 * 1024 * 1024;

class RegistryCacheSource final : public CacheSource {
public:
    // Fetches and checks the cache's manifest and config; throws
    // (registry::NotFoundError for an unknown ref, RegistryError for an
    // unreachable registry, Error for a manifest that is not a strata cache).
    RegistryCacheSource(const snapshot::Reference& ref, const registry::ClientOptions& options);

    std::string name() const override { return m_display; }
    std::optional<CacheRecord> lookup(const std::string& key) const override;
    void fetch_layer(snapshot::Store& store, const formats::Descriptor& layer) const override;

    std::size_t records() const noexcept { return m_records.size(); }
    const formats::Digest& manifest_digest() const noexcept { return m_manifest_digest; }

private:
    snapshot::Reference m_ref;
    std::string m_display;
    std::unique_ptr<registry::Client> m_client;
    formats::Digest m_manifest_digest = formats::Digest::of("");
    std::map<std::string, CacheRecord> m_records;
};

struct CacheExport {
    formats::Digest manifest = formats::Digest::of("");
    int records = 0;
    int layers = 0;
    registry::PushResult push;
};

// Pushes the records of `keys` found in the store's cache (and the layer
// blobs they name) to dest as a cache manifest; records whose layer blob the
// store no longer has are left out.
CacheExport export_cache(snapshot::Store& store, const BuildCache& cache,
                         const std::vector<std::string>& keys, const snapshot::Reference& dest,
                         const registry::TransferOptions& options);

} // namespace strata::builder
