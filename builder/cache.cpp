#include "builder/cache.hpp"

#include "formats/json.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/sha256.hpp"

#include <nlohmann/json.hpp>

namespace strata::builder {

std::string cache_key(const std::vector<std::string>& parts) {
    Sha256 h;
    std::string head = "strata-build-cache v1\n";
    h.update(head.data(), head.size());
    for (const auto& p : parts) {
        std::string len = std::to_string(p.size()) + ":";
        h.update(len.data(), len.size());
        h.update(p.data(), p.size());
        h.update("\n", 1);
    }
    return h.finish_hex();
}

BuildCache::BuildCache(std::string dir) : dir_(std::move(dir)) {
    fs::mkdirs(dir_, 0700);
}

std::optional<CacheRecord> BuildCache::lookup(const std::string& key) const {
    std::string path = dir_ + "/" + key + ".json";
    if (!fs::exists(path)) {
        return std::nullopt;
    }
    try {
        auto j = formats::parse_json_strict(fs::read_file(path, formats::kMaxDocumentSize), path);
        CacheRecord r;
        r.key = j.at("key").get<std::string>();
        if (r.key != key) {
            throw Error("record is for key " + r.key);
        }
        r.created_by = j.value("created_by", "");
        r.created = j.value("created", "");
        if (j.contains("layer") && !j["layer"].is_null()) {
            r.layer = formats::parse_descriptor(j["layer"].dump(), path);
            r.diff_id = formats::Digest::parse(j.at("diff_id").get<std::string>());
            r.chain_id = formats::Digest::parse(j.at("chain_id").get<std::string>());
        }
        return r;
    } catch (const std::exception& e) {
        STRATA_LOG_WARN("ignoring unreadable build cache record {}: {}", path, e.what());
        return std::nullopt;
    }
}

void BuildCache::store(const CacheRecord& r) const {
    nlohmann::json j = nlohmann::json::object();
    j["key"] = r.key;
    j["created_by"] = r.created_by;
    j["created"] = r.created;
    nlohmann::json blobs = nlohmann::json::array();
    nlohmann::json chains = nlohmann::json::array();
    if (r.layer) {
        j["layer"] = nlohmann::json::parse(formats::to_json(*r.layer));
        j["diff_id"] = r.diff_id->str();
        j["chain_id"] = r.chain_id->str();
        blobs.push_back(r.layer->digest.str());
        chains.push_back(r.chain_id->str());
    } else {
        j["layer"] = nullptr;
    }
    j["blobs"] = blobs;
    j["chain_ids"] = chains;
    fs::write_file_atomic(dir_ + "/" + r.key + ".json", j.dump() + "\n", 0600);
}

std::optional<std::string> BuildCache::last_content(const std::string& probe_key) const {
    std::string path = dir_ + "/" + probe_key + ".json";
    if (!fs::exists(path)) {
        return std::nullopt;
    }
    try {
        auto j = formats::parse_json_strict(fs::read_file(path, 1 << 16), path);
        return j.at("content").get<std::string>();
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

void BuildCache::remember_content(const std::string& probe_key, const std::string& content_hash) const {
    nlohmann::json j = {{"probe", probe_key}, {"content", content_hash}};
    fs::write_file_atomic(dir_ + "/" + probe_key + ".json", j.dump() + "\n", 0600);
}

} // namespace strata::builder
