#include "builder/remote_cache.hpp"

#include "formats/json.hpp"
#include "formats/media_types.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <set>

namespace strata::builder {

RegistryCacheSource::RegistryCacheSource(const snapshot::Reference& ref,
                                         const registry::ClientOptions& options)
    : m_ref(ref), m_display(registry::display_reference(ref)),
      m_client(std::make_unique<registry::Client>(ref.domain(), options)) {
    const std::string repo = m_ref.path();
    registry::RemoteManifest m = m_client->get_manifest(repo, registry::reference_in_repo(m_ref));
    if (m.media_type != formats::media::oci_manifest) {
        throw Error(fmt::format("{} is not a strata build cache: its manifest is a \"{}\", not an "
                                "OCI image manifest",
                                m_display, m.media_type));
    }
    formats::Manifest manifest = formats::parse_manifest(m.bytes, m_display);
    if (manifest.config.media_type != k_cache_config_media_type) {
        throw Error(fmt::format("{} is not a strata build cache: its config is a \"{}\", not {}",
                                m_display, manifest.config.media_type, k_cache_config_media_type));
    }
    if (manifest.config.size < 0 ||
        static_cast<std::uint64_t>(manifest.config.size) > k_max_cache_config_size) {
        throw Error(fmt::format("{}: the cache config is {} bytes, over the limit of {}", m_display,
                                manifest.config.size, k_max_cache_config_size));
    }
    m_manifest_digest = m.digest;
    std::string bytes;
    m_client->fetch_blob(
        repo, manifest.config.digest, static_cast<std::uint64_t>(manifest.config.size),
        [&](const char* data, std::size_t n) { bytes.append(data, n); }, [&] { bytes.clear(); },
        /*verify=*/true);
    std::string what = m_display + " cache config " + manifest.config.digest.str();
    nlohmann::json j = formats::parse_json_strict(bytes, what);
    if (!j.is_object() || j.value("version", 0) != 1 || !j.contains("records") ||
        !j["records"].is_array()) {
        throw Error(what + ": not a version 1 strata cache config");
    }
    std::set<formats::Digest> layers;
    for (const auto& l : manifest.layers) {
        layers.insert(l.digest);
    }
    for (const auto& r : j["records"]) {
        CacheRecord rec = parse_cache_record(r.dump(), what);
        if (rec.layer && layers.count(rec.layer->digest) == 0) {
            // The registry checked the manifest's layers exist; a record
            // naming another blob could not be served.
            STRATA_LOG_WARN("{}: record {} names layer {}, which the manifest does not list: "
                            "ignored",
                            what, rec.key, rec.layer->digest.str());
            continue;
        }
        m_records.emplace(rec.key, std::move(rec));
    }
}

std::optional<CacheRecord> RegistryCacheSource::lookup(const std::string& key) const {
    auto it = m_records.find(key);
    if (it == m_records.end()) {
        return std::nullopt;
    }
    return it->second;
}

void RegistryCacheSource::fetch_layer(snapshot::Store& store, const formats::Descriptor& layer) const {
    registry::fetch_blob_into(store, *m_client, m_ref.path(), layer);
}

CacheExport export_cache(snapshot::Store& store, const BuildCache& cache,
                         const std::vector<std::string>& keys, const snapshot::Reference& dest,
                         const registry::TransferOptions& options) {
    CacheExport out;
    nlohmann::json records = nlohmann::json::array();
    std::vector<formats::Descriptor> layers;
    std::set<std::string> seen_keys;
    std::set<formats::Digest> seen_layers;
    for (const auto& key : keys) {
        if (!seen_keys.insert(key).second) {
            continue;
        }
        std::optional<CacheRecord> rec = cache.lookup_local(key);
        if (!rec) {
            STRATA_LOG_DEBUG("cache export: no record for key {}", key);
            continue;
        }
        if (rec->layer) {
            if (!store.has_blob(rec->layer->digest)) {
                STRATA_LOG_WARN("cache export: layer {} of \"{}\" is no longer in the store: left out",
                                rec->layer->digest.str(), rec->created_by);
                continue;
            }
            if (seen_layers.insert(rec->layer->digest).second) {
                layers.push_back(*rec->layer);
            }
        }
        records.push_back(nlohmann::json::parse(to_json(*rec)));
    }
    out.records = static_cast<int>(records.size());
    out.layers = static_cast<int>(layers.size());
    nlohmann::json config = {{"version", 1}, {"records", std::move(records)}};
    std::string config_bytes = config.dump();

    formats::Manifest m;
    m.schema_version = 2;
    m.media_type = std::string(formats::media::oci_manifest);
    m.config.media_type = std::string(k_cache_config_media_type);
    m.config.digest = store.put_blob(config_bytes);
    m.config.size = static_cast<std::int64_t>(config_bytes.size());
    m.layers = layers;
    std::string manifest_bytes = formats::to_json(m);

    std::vector<formats::Descriptor> blobs;
    blobs.push_back(m.config);
    blobs.insert(blobs.end(), layers.begin(), layers.end());
    out.push = registry::push_manifest(store, manifest_bytes, std::string(formats::media::oci_manifest),
                                       blobs, dest, options);
    out.manifest = out.push.manifest.digest;
    return out;
}

} // namespace strata::builder
