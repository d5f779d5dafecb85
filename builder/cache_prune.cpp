#include "builder/cache_prune.hpp"

#include "builder/cache.hpp"
#include "formats/json.hpp"
#include "formats/limits.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <sys/stat.h>

namespace strata::builder {

namespace {

bool is_key_name(const std::string& name) {
    return name.size() == 64 + 5 && name.ends_with(".json") &&
           name.find_first_not_of("0123456789abcdef") == 64;
}

// Last written before until (or no until).
bool old_enough(const std::string& path, const std::optional<std::int64_t>& until) {
    if (!until) {
        return true;
    }
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 && st.st_mtim.tv_sec < *until;
}

} // namespace

CachePruneResult prune_build_cache(snapshot::Store& store, const CachePruneOptions& opts) {
    CachePruneResult result;
    const std::string dir = store.cache_dir();
    if (!fs::is_dir(dir)) {
        return result;
    }
    {
        snapshot::StoreLock lock = store.lock();
        // The layers of every image: a record naming one is in use.
        std::set<std::string> image_layers;
        std::set<std::string> image_diff_ids;
        for (const auto& rec : store.images()) {
            try {
                snapshot::Image img = store.load(rec.manifest);
                for (const auto& l : img.manifest.layers) {
                    image_layers.insert(l.digest.str());
                }
                for (const auto& d : img.config.diff_ids) {
                    image_diff_ids.insert(d.str());
                }
            } catch (const Error& e) {
                // An image that cannot be read keeps every record: nothing
                // it may use is removed on a guess.
                STRATA_LOG_WARN("builder prune: {}; no record is removed without --all (that "
                                "image may use any)",
                                e.what());
                if (!opts.all) {
                    return result;
                }
            }
        }
        struct Entry {
            std::string key, path;
            std::int64_t mtime = 0;
            std::optional<CacheRecord> record; // nullopt: unreadable
        };
        std::vector<Entry> entries;
        struct Probe {
            std::string path;
            std::string key; // the record it names ("": none)
        };
        std::vector<Probe> probes;
        for (const auto& name : fs::list_dir(dir)) {
            if (!is_key_name(name)) {
                continue;
            }
            Entry e{name.substr(0, 64), dir + "/" + name, 0, std::nullopt};
            std::string text;
            struct stat st {};
            try {
                text = fs::read_file(e.path, formats::k_max_document_size);
            } catch (const Error& err) {
                STRATA_LOG_WARN("builder prune: {}", err.what());
                continue;
            }
            if (::lstat(e.path.c_str(), &st) == 0) {
                e.mtime = st.st_mtim.tv_sec;
            }
            auto j = nlohmann::json::parse(text, nullptr, false);
            if (j.is_object() && j.contains("probe")) {
                // Handled after the records: it may name one removed.
                auto it = j.find("key");
                probes.push_back({e.path, it != j.end() && it->is_string() ? it->get<std::string>()
                                                                           : std::string()});
                continue;
            }
            try {
                e.record = parse_cache_record(text, e.path);
            } catch (const Error& err) {
                STRATA_LOG_DEBUG("builder prune: {}", err.what());
            }
            entries.push_back(std::move(e));
        }
        // How many records name each layer, and what they weigh together.
        std::map<std::string, std::pair<int, std::uint64_t>> layers;
        std::uint64_t total = 0;
        for (const auto& e : entries) {
            if (e.record && e.record->layer) {
                auto& [count, size] = layers[e.record->layer->digest.str()];
                if (count++ == 0) {
                    size = static_cast<std::uint64_t>(
                        std::max<std::int64_t>(e.record->layer->size, 0));
                    total += size;
                }
            }
        }
        // Those that may go, oldest first.
        std::vector<const Entry*> candidates;
        for (const auto& e : entries) {
            bool in_use = e.record && e.record->layer &&
                          image_layers.count(e.record->layer->digest.str()) > 0;
            bool dangling = !e.record || (e.record->layer && !in_use);
            if ((opts.all || dangling) && (!opts.until || e.mtime < *opts.until)) {
                candidates.push_back(&e);
            }
        }
        std::stable_sort(candidates.begin(), candidates.end(),
                         [](const Entry* a, const Entry* b) { return a->mtime < b->mtime; });
        std::set<std::string> removed_keys;
        for (const Entry* e : candidates) {
            if (opts.keep_storage && total <= *opts.keep_storage) {
                break;
            }
            fs::remove_all(e->path);
            removed_keys.insert(e->key);
            if (e->record && e->record->layer) {
                auto& [count, size] = layers[e->record->layer->digest.str()];
                if (--count == 0) {
                    total -= size;
                }
            }
        }
        std::set<std::string> kept_diff_ids = image_diff_ids;
        std::set<std::string> kept_layers = image_layers;
        for (const auto& e : entries) {
            if (removed_keys.count(e.key) == 0 && e.record && e.record->diff_id) {
                kept_diff_ids.insert(e.record->diff_id->str());
            }
            if (removed_keys.count(e.key) == 0 && e.record && e.record->layer) {
                kept_layers.insert(e.record->layer->digest.str());
            }
        }
        for (const auto& p : probes) {
            if ((opts.all && !opts.keep_storage && old_enough(p.path, opts.until)) ||
                removed_keys.count(p.key) > 0) {
                fs::remove_all(p.path);
            }
        }
        // The remembered inputs of steps whose record went, and every one
        // with --all.
        if (std::string explain = dir + "/explain"; fs::is_dir(explain)) {
            for (const auto& name : fs::list_dir(explain)) {
                std::string path = explain + "/" + name;
                bool drop = opts.all && !opts.keep_storage && old_enough(path, opts.until);
                if (!drop) {
                    try {
                        auto inputs = parse_step_inputs(
                            fs::read_file(path, formats::k_max_document_size), path);
                        drop = removed_keys.count(inputs.key) > 0;
                    } catch (const std::exception&) {
                        drop = true;
                    }
                }
                if (drop) {
                    fs::remove_all(path);
                }
            }
        }
        // Remembered layer sizes of layers neither an image nor a kept
        // record has.
        if (std::string sizes = dir + "/layer-sizes"; fs::is_dir(sizes)) {
            for (const auto& name : fs::list_dir(sizes)) {
                if (kept_diff_ids.count("sha256:" + name) == 0) {
                    fs::remove_all(sizes + "/" + name);
                }
            }
        }
        // Hash checkpoints (snapshot/upper_layer.cpp) of layers neither an
        // image nor a kept record has.
        if (std::string hashes = dir + "/layer-hashes"; fs::is_dir(hashes)) {
            for (const auto& name : fs::list_dir(hashes)) {
                if (kept_layers.count("sha256:" + name) == 0) {
                    fs::remove_all(hashes + "/" + name);
                }
            }
        }
        result.removed.assign(removed_keys.begin(), removed_keys.end());
    }
    result.reclaimed = store.gc().bytes_removed;
    return result;
}

} // namespace strata::builder
