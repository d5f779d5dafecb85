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

std::string to_json(const CacheRecord& r) {
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
    return j.dump();
}

CacheRecord parse_cache_record(std::string_view json, std::string_view what) {
    auto j = formats::parse_json_strict(json, what);
    try {
        CacheRecord r;
        r.key = j.at("key").get<std::string>();
        if (r.key.size() != 64 || r.key.find_first_not_of("0123456789abcdef") != std::string::npos) {
            throw Error("key \"" + r.key + "\" is not a sha256 hex digest");
        }
        r.created_by = j.value("created_by", "");
        r.created = j.value("created", "");
        if (j.contains("layer") && !j["layer"].is_null()) {
            r.layer = formats::parse_descriptor(j["layer"].dump(), what);
            r.diff_id = formats::Digest::parse(j.at("diff_id").get<std::string>());
            r.chain_id = formats::Digest::parse(j.at("chain_id").get<std::string>());
        }
        return r;
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string(what) + ": " + e.what());
    }
}

BuildCache::BuildCache(std::string dir, std::vector<const CacheSource*> sources)
    : dir_(std::move(dir)), sources_(std::move(sources)) {
    fs::mkdirs(dir_, 0700);
}

std::optional<CacheRecord> BuildCache::lookup_local(const std::string& key) const {
    std::string path = dir_ + "/" + key + ".json";
    if (!fs::exists(path)) {
        return std::nullopt;
    }
    try {
        CacheRecord r = parse_cache_record(fs::read_file(path, formats::kMaxDocumentSize), path);
        if (r.key != key) {
            throw Error("record is for key " + r.key);
        }
        return r;
    } catch (const std::exception& e) {
        STRATA_LOG_WARN("ignoring unreadable build cache record {}: {}", path, e.what());
        return std::nullopt;
    }
}

std::optional<CacheRecord> BuildCache::lookup(const std::string& key) const {
    if (auto r = lookup_local(key)) {
        return r;
    }
    for (const CacheSource* s : sources_) {
        if (auto r = s->lookup(key)) {
            store(*r);
            return r;
        }
    }
    return std::nullopt;
}

bool BuildCache::ensure_layer(snapshot::Store& st, const CacheRecord& record, std::string* from) const {
    if (!record.layer) {
        return true;
    }
    if (st.has_blob(record.layer->digest)) {
        return true;
    }
    for (const CacheSource* s : sources_) {
        auto r = s->lookup(record.key);
        if (!r || !r->layer || r->layer->digest != record.layer->digest) {
            continue;
        }
        try {
            s->fetch_layer(st, *record.layer);
            if (from != nullptr) {
                *from = s->name();
            }
            return true;
        } catch (const std::exception& e) {
            STRATA_LOG_WARN("cannot import layer {} from the build cache {}: {}",
                            record.layer->digest.str(), s->name(), e.what());
        }
    }
    return false;
}

void BuildCache::store(const CacheRecord& r) const {
    fs::write_file_atomic(dir_ + "/" + r.key + ".json", to_json(r) + "\n", 0600);
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
