#include "builder/cache.hpp"

#include "formats/json.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/sha256.hpp"
#include "util/text.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <set>

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
    // created_by is the instruction's text, any bytes.
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

CacheRecord parse_cache_record(std::string_view json, std::string_view what) {
    auto j = formats::parse_json_strict(json, what);
    try {
        CacheRecord r;
        r.key = j.at("key").get<std::string>();
        if (r.key.size() != 64 ||
            r.key.find_first_not_of("0123456789abcdef") != std::string::npos) {
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

const std::string* StepInputs::get(const std::string& label) const {
    for (const auto& [k, v] : items) {
        if (k == label) {
            return &v;
        }
    }
    return nullptr;
}

std::string to_json(const StepInputs& in) {
    // Values and file names as valid UTF-8 (a context's names are any
    // bytes): the record only explains misses. Written by hand, the
    // document nlohmann's dump() of {"files", "items", "key"} would write:
    // a COPY of 20,000 files lists them all, and a tree of them took 25 ms.
    std::string out;
    out.reserve(64 + (in.files ? in.files->size() * 120 : 0));
    out += R"({"files":)";
    if (!in.files) {
        out += "null";
    } else if (std::all_of(in.files->begin(), in.files->end(), [&](const auto& kv) {
                   return text::find_invalid_utf8_or_nul(kv.first) == std::string::npos;
               })) {
        out += '{';
        bool first = true;
        for (const auto& [name, what] : *in.files) {
            if (!first) {
                out += ',';
            }
            first = false;
            formats::append_json_string(out, name);
            out += ':';
            formats::append_json_string(out, text::to_valid_utf8(what));
        }
        out += '}';
    } else {
        // Names that are not UTF-8 sort and collide anew once replaced.
        nlohmann::json files = nlohmann::json::object();
        for (const auto& [name, what] : *in.files) {
            files[text::to_valid_utf8(name)] = text::to_valid_utf8(what);
        }
        out += files.dump();
    }
    out += R"(,"items":[)";
    for (std::size_t i = 0; i < in.items.size(); ++i) {
        out += i == 0 ? "[" : ",[";
        formats::append_json_string(out, text::to_valid_utf8(in.items[i].first));
        out += ',';
        formats::append_json_string(out, text::to_valid_utf8(in.items[i].second));
        out += ']';
    }
    out += R"(],"key":)";
    formats::append_json_string(out, text::to_valid_utf8(in.key));
    out += '}';
    return out;
}

namespace {

// Reads step inputs as SAX events (nlohmann's json_sax): the files of a
// COPY of 20,000 files without a tree of them (the tree took 50 ms of
// every rebuild). The document to_json writes, nothing else: anything
// other (a duplicate key, a wrong type) is an error.
class StepInputsReader {
public:
    using json = nlohmann::json;
    explicit StepInputsReader(std::string_view what) : m_what(what) {}

    StepInputs take(std::string_view text) {
        if (!json::sax_parse(text, this) || !m_error.empty()) {
            throw Error(std::string(m_what) + ": " +
                        (m_error.empty() ? std::string("not step inputs") : m_error));
        }
        if (!m_has_key || !m_has_items) {
            throw Error(std::string(m_what) + ": no key or items");
        }
        return std::move(m_in);
    }

    bool null() {
        if (m_depth == 1 && m_field == Field::files) {
            m_in.files.reset();
            return true;
        }
        return bad("unexpected null");
    }
    bool boolean(bool) { return bad("unexpected boolean"); }
    bool number_integer(json::number_integer_t) { return bad("unexpected number"); }
    bool number_unsigned(json::number_unsigned_t) { return bad("unexpected number"); }
    bool number_float(json::number_float_t, const json::string_t&) {
        return bad("unexpected number");
    }
    bool binary(json::binary_t&) { return bad("unexpected binary"); }
    bool string(json::string_t& v) {
        if (m_depth == 1 && m_field == Field::key) {
            m_in.key = std::move(v);
            return true;
        }
        if (m_depth == 3 && m_field == Field::items && m_item_strings < 2) {
            if (m_item_strings++ == 0) {
                m_in.items.emplace_back(std::move(v), std::string());
            } else {
                m_in.items.back().second = std::move(v);
            }
            return true;
        }
        if (m_depth == 2 && m_field == Field::files) {
            if (!m_in.files->emplace(std::move(m_file), std::move(v)).second) {
                return bad("a file listed twice");
            }
            return true;
        }
        return bad("unexpected string");
    }
    bool key(json::string_t& k) {
        if (m_depth == 1) {
            Field f = k == "key"     ? Field::key
                      : k == "items" ? Field::items
                      : k == "files" ? Field::files
                                     : Field::other;
            if (f == Field::other) {
                return bad("unknown field " + formats::quote_untrusted(k));
            }
            if ((m_seen & (1u << static_cast<unsigned>(f))) != 0) {
                return bad("duplicate field " + k);
            }
            m_seen |= 1u << static_cast<unsigned>(f);
            m_field = f;
            m_has_key = m_has_key || f == Field::key;
            m_has_items = m_has_items || f == Field::items;
            return true;
        }
        if (m_depth == 2 && m_field == Field::files) {
            m_file = std::move(k);
            return true;
        }
        return bad("unexpected key");
    }
    bool start_object(std::size_t) {
        if (m_depth == 0 || (m_depth == 1 && m_field == Field::files)) {
            if (m_depth == 1) {
                m_in.files.emplace();
            }
            ++m_depth;
            return true;
        }
        return bad("unexpected object");
    }
    bool start_array(std::size_t) {
        if ((m_depth == 1 && m_field == Field::items) ||
            (m_depth == 2 && m_field == Field::items)) {
            m_item_strings = 0;
            ++m_depth;
            return true;
        }
        return bad("unexpected array");
    }
    bool end_object() {
        --m_depth;
        return true;
    }
    bool end_array() {
        if (m_depth == 3 && m_item_strings != 2) {
            return bad("an item that is not a pair");
        }
        --m_depth;
        return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& ex) {
        return bad(ex.what());
    }

private:
    enum class Field : std::uint8_t { key, items, files, other };
    bool bad(const std::string& why) {
        if (m_error.empty()) {
            m_error = why;
        }
        return false;
    }

    std::string_view m_what;
    StepInputs m_in;
    int m_depth = 0;
    Field m_field = Field::other;
    unsigned m_seen = 0;
    bool m_has_key = false, m_has_items = false;
    int m_item_strings = 0;
    std::string m_file;
    std::string m_error;
};

} // namespace

StepInputs parse_step_inputs(std::string_view json, std::string_view what) {
    return StepInputsReader(what).take(json);
}

std::string redact(const std::string& value) {
    return "<redacted sha256:" + Sha256::hex_of(value).substr(0, 16) + ">";
}

bool is_redacted(const std::string& value) {
    return value.rfind("<redacted sha256:", 0) == 0;
}

bool looks_secret(const std::string& name) {
    static const char* const words[] = {"apikey",   "auth",  "credential", "credentials", "key",
                                        "password", "pword", "passwd",     "secret",      "token"};
    std::string lower;
    for (char c : name) {
        lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    // (?:_|^)(?:word)(?:_|$), as BuildKit's rule matches.
    std::size_t pos = 0;
    while (pos <= lower.size()) {
        std::size_t end = lower.find('_', pos);
        std::string part =
            lower.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        for (const char* w : words) {
            if (part == w) {
                return true;
            }
        }
        if (end == std::string::npos) {
            break;
        }
        pos = end + 1;
    }
    return false;
}

namespace {

std::string shown(const std::string& v) {
    if (is_redacted(v)) {
        return "<redacted>";
    }
    std::string out;
    for (char c : v) {
        if (c == '\x1f' || c == '\n') {
            out += ' ';
        } else {
            out += c;
        }
    }
    if (out.size() > 100) {
        out = out.substr(0, 97) + "...";
    }
    return out;
}

std::string quoted(const std::string& v) {
    return is_redacted(v) ? "<redacted>" : "\"" + shown(v) + "\"";
}

// "3 files changed: modified a.txt, added b/c.txt, removed d.txt"
std::string files_changed(const std::map<std::string, std::string>& before,
                          const std::map<std::string, std::string>& now) {
    std::vector<std::string> changes;
    std::size_t count = 0;
    auto note = [&](const std::string& what, const std::string& path) {
        ++count;
        if (changes.size() < 5) {
            changes.push_back(what + " " + path);
        }
    };
    auto a = before.begin();
    auto b = now.begin();
    while (a != before.end() || b != now.end()) {
        if (b == now.end() || (a != before.end() && a->first < b->first)) {
            note("removed", a->first);
            ++a;
        } else if (a == before.end() || b->first < a->first) {
            note("added", b->first);
            ++b;
        } else {
            if (a->second != b->second) {
                note("modified", a->first);
            }
            ++a;
            ++b;
        }
    }
    if (count == 0) {
        return "the files it reads changed";
    }
    std::string out = fmt::format("{} file{} changed: ", count, count == 1 ? "" : "s");
    for (std::size_t i = 0; i < changes.size(); ++i) {
        out += (i ? ", " : "") + changes[i];
    }
    if (count > changes.size()) {
        out += fmt::format(", and {} more", count - changes.size());
    }
    return out;
}

// The first line that differs between two newline-joined lists.
std::string first_difference(const std::string& a, const std::string& b) {
    auto split = [](const std::string& s) {
        std::vector<std::string> v;
        std::size_t pos = 0;
        while (pos <= s.size() && !s.empty()) {
            std::size_t nl = s.find('\n', pos);
            v.push_back(s.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
            if (nl == std::string::npos) {
                break;
            }
            pos = nl + 1;
        }
        return v;
    };
    auto va = split(a);
    auto vb = split(b);
    for (std::size_t i = 0; i < std::max(va.size(), vb.size()); ++i) {
        if (i >= va.size()) {
            return "`" + shown(vb[i]) + "` was added";
        }
        if (i >= vb.size()) {
            return "`" + shown(va[i]) + "` was removed";
        }
        if (va[i] != vb[i]) {
            return "was `" + shown(va[i]) + "`, now `" + shown(vb[i]) + "`";
        }
    }
    return "";
}

} // namespace

namespace {

// The inputs as to_json stores them: strings as valid UTF-8. `in` itself
// when it is stored as it is (no copy of a listing of thousands of files),
// else that form, made in own.
const StepInputs& as_stored(const StepInputs& in, std::optional<StepInputs>& own) {
    auto valid = [](const std::string& s) {
        return text::find_invalid_utf8_or_nul(s) == std::string::npos;
    };
    bool all_valid = std::all_of(in.items.begin(), in.items.end(),
                                 [&](const auto& kv) { return valid(kv.first) && valid(kv.second); });
    if (all_valid && in.files) {
        all_valid = std::all_of(in.files->begin(), in.files->end(),
                                [&](const auto& kv) { return valid(kv.first) && valid(kv.second); });
    }
    if (all_valid) {
        return in;
    }
    own = parse_step_inputs(to_json(in), "step inputs");
    return *own;
}

} // namespace

std::string explain_miss(const std::optional<StepInputs>& prev, const StepInputs& cur_in,
                         const std::string& earlier_miss) {
    if (!prev) {
        return "no earlier build of this step (a new step, or the first build in this store)";
    }
    // Compared as stored, so that a name that is not UTF-8 reads the same.
    std::optional<StepInputs> stored;
    const StepInputs& cur = as_stored(cur_in, stored);
    auto changed = [&](const std::string& label) {
        const std::string* a = prev->get(label);
        const std::string* b = cur.get(label);
        return (a == nullptr) != (b == nullptr) || (a != nullptr && *a != *b);
    };
    if (!earlier_miss.empty() && changed("parent")) {
        return "an earlier step missed: " + earlier_miss;
    }
    if (changed("base")) {
        const std::string* a = prev->get("base");
        const std::string* b = cur.get("base");
        return "the base image changed: was " + (a ? shown(*a) : std::string("none")) + ", now " +
               (b ? shown(*b) : std::string("none"));
    }
    if (changed("prior")) {
        const std::string* a = prev->get("prior");
        const std::string* b = cur.get("prior");
        return "an earlier instruction changed: " + first_difference(a ? *a : "", b ? *b : "");
    }
    if (changed("instruction")) {
        return "the instruction changed: was `" + shown(*prev->get("instruction")) + "`, now `" +
               shown(*cur.get("instruction")) + "`";
    }
    // Build args, then ENV, then the rest, in the order the step lists them.
    for (const char* prefix : {"arg ", "env "}) {
        std::set<std::string> labels;
        for (const auto& [k, v] : prev->items) {
            if (k.rfind(prefix, 0) == 0) {
                labels.insert(k);
            }
        }
        for (const auto& [k, v] : cur.items) {
            if (k.rfind(prefix, 0) == 0) {
                labels.insert(k);
            }
        }
        for (const auto& label : labels) {
            if (!changed(label)) {
                continue;
            }
            std::string what = std::string(prefix) == "arg " ? "build arg " : "ENV ";
            std::string name = label.substr(4);
            const std::string* a = prev->get(label);
            const std::string* b = cur.get(label);
            if (a == nullptr) {
                return what + name + " is new: " + quoted(*b);
            }
            if (b == nullptr) {
                return what + name + " is no longer set (was " + quoted(*a) + ")";
            }
            return what + name + " changed: was " + quoted(*a) + ", now " + quoted(*b);
        }
    }
    if (changed("from")) {
        const std::string* b = cur.get("from");
        std::string ref = b ? b->substr(0, b->find(' ')) : "";
        return "what --from=" + ref + " holds changed";
    }
    if (changed("content")) {
        if (prev->files && cur.files) {
            return files_changed(*prev->files, *cur.files);
        }
        return "the files it reads changed";
    }
    for (const auto& [label, v] : cur.items) {
        if (label == "parent" || !changed(label)) {
            continue;
        }
        const std::string* a = prev->get(label);
        return label + " changed: was " + (a ? quoted(*a) : std::string("unset")) + ", now " +
               quoted(v);
    }
    for (const auto& [label, v] : prev->items) {
        if (cur.get(label) == nullptr) {
            return label + " is no longer set (was " + quoted(v) + ")";
        }
    }
    if (changed("parent")) {
        return "an earlier step changed";
    }
    return "not in the build cache, with the same inputs as this step's last build (its record was "
           "removed, e.g. by strata gc)";
}

BuildCache::BuildCache(std::string dir, std::vector<const CacheSource*> sources)
    : m_dir(std::move(dir)), m_sources(std::move(sources)) {
    fs::mkdirs(m_dir, 0700);
}

std::optional<CacheRecord> BuildCache::lookup_local(const std::string& key) const {
    std::string path = m_dir + "/" + key + ".json";
    if (!fs::exists(path)) {
        return std::nullopt;
    }
    try {
        CacheRecord r = parse_cache_record(fs::read_file(path, formats::k_max_document_size), path);
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
    for (const CacheSource* s : m_sources) {
        if (auto r = s->lookup(key)) {
            store(*r);
            return r;
        }
    }
    return std::nullopt;
}

bool BuildCache::ensure_layer(snapshot::Store& st, const CacheRecord& record,
                              std::string* from) const {
    if (!record.layer) {
        return true;
    }
    if (st.has_blob(record.layer->digest)) {
        return true;
    }
    for (const CacheSource* s : m_sources) {
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
    fs::write_file_atomic(m_dir + "/" + r.key + ".json", to_json(r) + "\n", 0600);
}

std::optional<std::string> BuildCache::last_content(const std::string& probe_key) const {
    std::string path = m_dir + "/" + probe_key + ".json";
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

void BuildCache::remember_content(const std::string& probe_key, const std::string& content_hash,
                                  const std::string& key) const {
    nlohmann::json j = {{"probe", probe_key}, {"content", content_hash}};
    if (!key.empty()) {
        j["key"] = key;
    }
    fs::write_file_atomic(m_dir + "/" + probe_key + ".json", j.dump() + "\n", 0600);
}

std::optional<CacheRecord> BuildCache::last_probe_record(const std::string& probe_key) const {
    std::string path = m_dir + "/" + probe_key + ".json";
    if (!fs::exists(path)) {
        return std::nullopt;
    }
    std::string key;
    try {
        auto j = formats::parse_json_strict(fs::read_file(path, 1 << 16), path);
        auto it = j.find("key");
        if (it == j.end() || !it->is_string()) {
            return std::nullopt;
        }
        key = it->get<std::string>();
    } catch (const std::exception&) {
        return std::nullopt;
    }
    // A key is 64 hex digits (it names a file under cache/).
    if (key.size() != 64 || key.find_first_not_of("0123456789abcdef") != std::string::npos) {
        return std::nullopt;
    }
    return lookup_local(key);
}

namespace {
std::string layer_size_path(const snapshot::Store& store, const formats::Digest& diff_id) {
    return store.cache_dir() + "/layer-sizes/" + std::string(diff_id.hex());
}
} // namespace

std::optional<std::uint64_t> known_layer_size(const snapshot::Store& store,
                                              const formats::Digest& diff_id) {
    std::string path = layer_size_path(store, diff_id);
    if (!fs::exists(path)) {
        return std::nullopt;
    }
    try {
        std::string text = fs::read_file(path, 64);
        while (!text.empty() && text.back() == '\n') {
            text.pop_back();
        }
        if (text.empty() || text.size() > 20 ||
            text.find_first_not_of("0123456789") != std::string::npos) {
            return std::nullopt;
        }
        return std::stoull(text);
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

void remember_layer_size(const snapshot::Store& store, const formats::Digest& diff_id,
                         std::uint64_t bytes) {
    try {
        fs::mkdirs(store.cache_dir() + "/layer-sizes", 0700);
        fs::write_file_atomic(layer_size_path(store, diff_id), std::to_string(bytes) + "\n", 0600);
    } catch (const Error& e) {
        STRATA_LOG_WARN("cannot remember the size of layer {}: {}", diff_id.str(), e.what());
    }
}

std::optional<StepInputs> BuildCache::last_inputs(const std::string& slot) const {
    std::string path = m_dir + "/explain/" + slot + ".json";
    if (!fs::exists(path)) {
        return std::nullopt;
    }
    try {
        return parse_step_inputs(fs::read_file(path, formats::k_max_document_size), path);
    } catch (const std::exception& e) {
        STRATA_LOG_DEBUG("ignoring unreadable step inputs {}: {}", path, e.what());
        return std::nullopt;
    }
}

void BuildCache::remember_inputs(const std::string& slot, const StepInputs& inputs) const {
    try {
        fs::mkdirs(m_dir + "/explain", 0700);
        std::string json = to_json(inputs);
        if (json.size() > formats::k_max_document_size) {
            StepInputs small = inputs;
            small.files.reset();
            json = to_json(small);
        }
        fs::write_file_atomic(m_dir + "/explain/" + slot + ".json", json + "\n", 0600);
    } catch (const Error& e) {
        STRATA_LOG_WARN("cannot remember the inputs of a build step: {}", e.what());
    }
}

} // namespace strata::builder
