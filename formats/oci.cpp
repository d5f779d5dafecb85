#include "formats/oci.hpp"

#include "formats/media_types.hpp"
#include "util/base64.hpp"

#include <sys/utsname.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>

namespace strata::formats {

namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// Strata reads documents to use them; spec mode checks them the way the
// image-spec's validator does (see validate_document in oci.hpp).
enum class Mode { strata, spec };

class Doc {
public:
    Doc(std::string_view kind, std::string_view what, Mode mode) : m_mode(mode) {
        m_prefix = std::string(kind);
        if (!what.empty()) {
            m_prefix += " ";
            m_prefix += what;
        }
    }
    Mode mode() const { return m_mode; }
    bool spec() const { return m_mode == Mode::spec; }
    const std::string& prefix() const { return m_prefix; }

    [[noreturn]] void fail(const std::string& path, const std::string& msg) const {
        throw FormatError(m_prefix + ": " + (path.empty() ? "" : path + ": ") + msg);
    }

private:
    Mode m_mode;
    std::string m_prefix;
};

std::string sub(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
}
std::string at(const std::string& path, std::size_t i) {
    return path + "[" + std::to_string(i) + "]";
}

const char* type_name(const json& j) {
    switch (j.type()) {
    case json::value_t::null:
        return "null";
    case json::value_t::object:
        return "an object";
    case json::value_t::array:
        return "an array";
    case json::value_t::string:
        return "a string";
    case json::value_t::boolean:
        return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
        return "an integer";
    case json::value_t::number_float:
        return "a number with a fraction or exponent";
    case json::value_t::binary:
    case json::value_t::discarded:
        break;
    }
    return "an unknown value";
}

[[noreturn]] void wrong_type(const Doc& d, const std::string& path, const char* want,
                             const json& got) {
    d.fail(path, std::string("expected ") + want + ", got " + type_name(got));
}

void need_object(const Doc& d, const json& j, const std::string& path) {
    if (!j.is_object()) {
        wrong_type(d, path, "an object", j);
    }
}

// The member `key` of object j, or nullptr when absent. In strata mode an
// explicit null also counts as absent (Go's decoder treats it so).
const json* member(const Doc& d, const json& j, std::string_view key) {
    auto it = j.find(key);
    if (it == j.end()) {
        return nullptr;
    }
    if (it->is_null() && !d.spec()) {
        return nullptr;
    }
    return &*it;
}

const json& required(const Doc& d, const json& j, std::string_view key, const std::string& path) {
    auto it = j.find(key);
    if (it == j.end()) {
        d.fail(sub(path, key), "required field is missing");
    }
    return *it;
}

std::string as_string(const Doc& d, const json& j, const std::string& path) {
    if (!j.is_string()) {
        wrong_type(d, path, "a string", j);
    }
    return j.get<std::string>();
}

std::string opt_string(const Doc& d, const json& obj, std::string_view key,
                       const std::string& path) {
    const json* v = member(d, obj, key);
    return v ? as_string(d, *v, sub(path, key)) : std::string();
}

std::int64_t as_int(const Doc& d, const json& j, const std::string& path, std::int64_t min,
                    std::int64_t max) {
    if (j.is_number_unsigned()) {
        auto u = j.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(max)) {
            d.fail(path, "value " + std::to_string(u) + " is larger than " + std::to_string(max));
        }
        return static_cast<std::int64_t>(u);
    }
    if (!j.is_number_integer()) {
        wrong_type(d, path, "an integer", j);
    }
    auto v = j.get<std::int64_t>();
    if (v < min) {
        d.fail(path, v < 0 && min == 0 ? "negative value " + std::to_string(v)
                                       : "value " + std::to_string(v) + " is smaller than " +
                                             std::to_string(min));
    }
    if (v > max) {
        d.fail(path, "value " + std::to_string(v) + " is larger than " + std::to_string(max));
    }
    return v;
}

bool as_bool(const Doc& d, const json& j, const std::string& path) {
    if (!j.is_boolean()) {
        wrong_type(d, path, "a boolean", j);
    }
    return j.get<bool>();
}

std::vector<std::string> as_string_array(const Doc& d, const json& j, const std::string& path) {
    if (!j.is_array()) {
        wrong_type(d, path, "an array of strings", j);
    }
    std::vector<std::string> out;
    out.reserve(j.size());
    for (std::size_t i = 0; i < j.size(); ++i) {
        out.push_back(as_string(d, j[i], at(path, i)));
    }
    return out;
}

std::vector<std::string> opt_string_array(const Doc& d, const json& obj, std::string_view key,
                                          const std::string& path) {
    const json* v = member(d, obj, key);
    return v ? as_string_array(d, *v, sub(path, key)) : std::vector<std::string>{};
}

// mapStringString: every value a string.
std::map<std::string, std::string> as_string_map(const Doc& d, const json& j,
                                                 const std::string& path) {
    if (!j.is_object()) {
        wrong_type(d, path, "an object of strings", j);
    }
    std::map<std::string, std::string> out;
    for (const auto& [k, v] : j.items()) {
        out.emplace(k, as_string(d, v, sub(path, k)));
    }
    return out;
}

// mapStringObject used as a set ("ExposedPorts": {"80/tcp": {}}).
std::set<std::string> as_object_set(const Doc& d, const json& j, const std::string& path) {
    if (!j.is_object()) {
        wrong_type(d, path, "an object of objects", j);
    }
    std::set<std::string> out;
    for (const auto& [k, v] : j.items()) {
        if (!v.is_object()) {
            wrong_type(d, sub(path, k), "an object", v);
        }
        out.insert(k);
    }
    return out;
}

// ---- grammar checks --------------------------------------------------------

bool media_type_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("!#$&^_.+-", c) != nullptr;
}

// ^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$
bool media_type_part_ok(std::string_view part) {
    if (part.empty() || part.size() > 127 || !std::isalnum(static_cast<unsigned char>(part[0]))) {
        return false;
    }
    return std::all_of(part.begin(), part.end(), media_type_char);
}

bool media_type_ok(std::string_view mt) {
    auto slash = mt.find('/');
    if (slash == std::string_view::npos) {
        return false;
    }
    return media_type_part_ok(mt.substr(0, slash)) && media_type_part_ok(mt.substr(slash + 1));
}

std::string media_type_field(const Doc& d, const json& j, const std::string& path) {
    std::string mt = as_string(d, j, path);
    if (!media_type_ok(mt)) {
        d.fail(path, "invalid media type " + quote_untrusted(mt));
    }
    return mt;
}

bool lower_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// ^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$ (image-spec descriptor.md)
bool digest_grammar_ok(std::string_view s) {
    auto colon = s.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == s.size()) {
        return false;
    }
    std::string_view alg = s.substr(0, colon);
    bool prev_sep = true; // the algorithm may not start with a separator
    for (char c : alg) {
        if (lower_alnum(c)) {
            prev_sep = false;
        } else if (std::strchr("+._-", c) != nullptr) {
            if (prev_sep) {
                return false;
            }
            prev_sep = true;
        } else {
            return false;
        }
    }
    if (prev_sep) {
        return false;
    }
    for (char c : s.substr(colon + 1)) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '=' || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

// Registered algorithms need their exact hex length (go-digest Validate).
bool registered_digest_ok(std::string_view s) {
    auto colon = s.find(':');
    std::string_view alg = s.substr(0, colon);
    std::string_view enc = s.substr(colon + 1);
    std::size_t want = alg == "sha256" ? 64 : alg == "sha384" ? 96 : alg == "sha512" ? 128 : 0;
    if (want == 0) {
        return true;
    }
    return enc.size() == want && std::all_of(enc.begin(), enc.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

Digest digest_field(const Doc& d, const json& j, const std::string& path, bool top_level) {
    std::string s = as_string(d, j, path);
    if (d.spec()) {
        if (!digest_grammar_ok(s)) {
            d.fail(path, "invalid digest " + quote_untrusted(s) +
                             ": does not match algorithm:encoded grammar");
        }
        if (top_level && !registered_digest_ok(s)) {
            d.fail(path, "invalid digest " + quote_untrusted(s) +
                             ": wrong length or case for its algorithm");
        }
        // Spec mode only checks; the value is not used.
        return Digest::of("");
    }
    try {
        return Digest::parse(s);
    } catch (const BadDigest& e) {
        d.fail(path, e.what());
    }
}

bool all_digits(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int num(std::string_view s) {
    int v = 0;
    for (char c : s) {
        v = v * 10 + (c - '0');
    }
    return v;
}

// RFC 3339 date-time: 2006-01-02T15:04:05[.frac](Z|+hh:mm|-hh:mm).
bool rfc3339_ok(std::string_view s) {
    if (s.size() < 20) {
        return false;
    }
    if (!all_digits(s.substr(0, 4)) || s[4] != '-' || !all_digits(s.substr(5, 2)) || s[7] != '-' ||
        !all_digits(s.substr(8, 2)) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !all_digits(s.substr(11, 2)) || s[13] != ':' || !all_digits(s.substr(14, 2)) ||
        s[16] != ':' || !all_digits(s.substr(17, 2))) {
        return false;
    }
    int month = num(s.substr(5, 2)), day = num(s.substr(8, 2)), hour = num(s.substr(11, 2)),
        minute = num(s.substr(14, 2)), second = num(s.substr(17, 2));
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
        return false;
    }
    if (s[10] == ' ') {
        return false; // RFC 3339 allows it in prose only; the grammar needs T
    }
    std::size_t i = 19;
    if (i < s.size() && s[i] == '.') {
        std::size_t j = i + 1;
        while (j < s.size() && s[j] >= '0' && s[j] <= '9') {
            ++j;
        }
        if (j == i + 1) {
            return false;
        }
        i = j;
    }
    std::string_view zone = s.substr(i);
    if (zone == "Z" || zone == "z") {
        return true;
    }
    return zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') &&
           all_digits(zone.substr(1, 2)) && zone[3] == ':' && all_digits(zone.substr(4, 2)) &&
           num(zone.substr(1, 2)) <= 23 && num(zone.substr(4, 2)) <= 59;
}

// An absolute URI (RFC 3986): scheme ":" hier-part, no spaces or controls.
bool uri_ok(std::string_view s) {
    auto colon = s.find(':');
    if (colon == std::string_view::npos || colon == 0 ||
        !std::isalpha(static_cast<unsigned char>(s[0]))) {
        return false;
    }
    for (char c : s.substr(0, colon)) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.')) {
            return false;
        }
    }
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u == 0x7f || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' ||
            c == '`' || c == '{' || c == '|' || c == '}') {
            return false;
        }
    }
    return true;
}

std::string date_time_field(const Doc& d, const json& j, const std::string& path) {
    std::string s = as_string(d, j, path);
    if (!rfc3339_ok(s)) {
        d.fail(path, "invalid RFC 3339 date-time " + quote_untrusted(s));
    }
    return s;
}

// ---- documents -------------------------------------------------------------

Platform read_platform(const Doc& d, const json& j, const std::string& path) {
    need_object(d, j, path);
    Platform p;
    p.architecture = as_string(d, required(d, j, "architecture", path), sub(path, "architecture"));
    p.os = as_string(d, required(d, j, "os", path), sub(path, "os"));
    p.os_version = opt_string(d, j, "os.version", path);
    p.os_features = opt_string_array(d, j, "os.features", path);
    p.variant = opt_string(d, j, "variant", path);
    return p;
}

// index_entry: an entry of an index's manifests[], whose schema types size
// as int64 rather than as a non-negative size.
Descriptor read_descriptor(const Doc& d, const json& j, const std::string& path, bool top_level,
                           bool index_entry = false) {
    need_object(d, j, path);
    Descriptor desc;
    desc.media_type =
        media_type_field(d, required(d, j, "mediaType", path), sub(path, "mediaType"));
    desc.digest = digest_field(d, required(d, j, "digest", path), sub(path, "digest"), top_level);
    std::int64_t min_size =
        (d.spec() && index_entry) ? std::numeric_limits<std::int64_t>::min() : 0;
    desc.size = as_int(d, required(d, j, "size", path), sub(path, "size"), min_size,
                       std::numeric_limits<std::int64_t>::max());
    if (const json* v = member(d, j, "urls")) {
        desc.urls = as_string_array(d, *v, sub(path, "urls"));
        for (std::size_t i = 0; i < desc.urls.size(); ++i) {
            if (!uri_ok(desc.urls[i])) {
                d.fail(at(sub(path, "urls"), i),
                       "not an absolute URI: " + quote_untrusted(desc.urls[i]));
            }
        }
    }
    if (const json* v = member(d, j, "annotations")) {
        desc.annotations = as_string_map(d, *v, sub(path, "annotations"));
    }
    if (const json* v = member(d, j, "data")) {
        std::string data = as_string(d, *v, sub(path, "data"));
        // Padded standard base64 as Go's StdEncoding decodes it: CR and LF
        // are skipped, everything else must fit.
        auto decoded = base64_decode(data, Base64Rules{.skip_newlines = true});
        if (!decoded) {
            d.fail(sub(path, "data"), "not padded standard base64");
        }
        if (!d.spec()) {
            // image-spec descriptor.md: embedded data MUST match digest and size.
            const std::string& bytes = *decoded;
            if (static_cast<std::int64_t>(bytes.size()) != desc.size ||
                Digest::of(bytes) != desc.digest) {
                d.fail(sub(path, "data"), "embedded data (" + std::to_string(bytes.size()) +
                                              " bytes, " + Digest::of(bytes).str() +
                                              ") does not match the descriptor's digest and size");
            }
        }
        desc.data = std::move(data);
    }
    if (const json* v = member(d, j, "platform")) {
        desc.platform = read_platform(d, *v, sub(path, "platform"));
    }
    if (const json* v = member(d, j, "artifactType")) {
        desc.artifact_type = media_type_field(d, *v, sub(path, "artifactType"));
    }
    return desc;
}

void check_schema_version(const Doc& d, const json& j) {
    const json& v = required(d, j, "schemaVersion", "");
    std::int64_t n = as_int(d, v, "schemaVersion", std::numeric_limits<std::int64_t>::min(),
                            std::numeric_limits<std::int64_t>::max());
    if (n != 2) {
        d.fail("schemaVersion", "unsupported schema version " + std::to_string(n) + " (want 2)");
    }
}

Manifest read_manifest(const Doc& d, const json& j) {
    need_object(d, j, "");
    Manifest m;
    check_schema_version(d, j);
    if (const json* v = member(d, j, "mediaType")) {
        m.media_type = media_type_field(d, *v, "mediaType");
        if (!d.spec() && !is_manifest_media_type(m.media_type)) {
            d.fail("mediaType", "media type " + quote_untrusted(m.media_type) +
                                    " contradicts the document, which is read as an image "
                                    "manifest");
        }
    }
    if (const json* v = member(d, j, "artifactType")) {
        m.artifact_type = media_type_field(d, *v, "artifactType");
    }
    m.config = read_descriptor(d, required(d, j, "config", ""), "config", false);
    const json& layers = required(d, j, "layers", "");
    if (!layers.is_array()) {
        wrong_type(d, "layers", "an array", layers);
    }
    if (d.spec() && layers.empty()) {
        d.fail("layers", "must hold at least one layer");
    }
    for (std::size_t i = 0; i < layers.size(); ++i) {
        m.layers.push_back(read_descriptor(d, layers[i], at("layers", i), false));
    }
    if (const json* v = member(d, j, "subject")) {
        m.subject = read_descriptor(d, *v, "subject", false);
    }
    if (const json* v = member(d, j, "annotations")) {
        m.annotations = as_string_map(d, *v, "annotations");
    }
    return m;
}

Index read_index(const Doc& d, const json& j) {
    need_object(d, j, "");
    Index idx;
    check_schema_version(d, j);
    if (const json* v = member(d, j, "mediaType")) {
        idx.media_type = media_type_field(d, *v, "mediaType");
        if (!d.spec() && !is_index_media_type(idx.media_type)) {
            d.fail("mediaType", "media type " + quote_untrusted(idx.media_type) +
                                    " contradicts the document, which is read as an image index");
        }
    }
    if (const json* v = member(d, j, "artifactType")) {
        idx.artifact_type = media_type_field(d, *v, "artifactType");
    }
    const json& manifests = required(d, j, "manifests", "");
    if (!manifests.is_array()) {
        wrong_type(d, "manifests", "an array", manifests);
    }
    for (std::size_t i = 0; i < manifests.size(); ++i) {
        idx.manifests.push_back(read_descriptor(d, manifests[i], at("manifests", i), false, true));
    }
    if (const json* v = member(d, j, "subject")) {
        idx.subject = read_descriptor(d, *v, "subject", false);
    }
    if (const json* v = member(d, j, "annotations")) {
        idx.annotations = as_string_map(d, *v, "annotations");
    }
    return idx;
}

std::optional<std::vector<std::string>>
opt_nullable_array(const Doc& d, const json& obj, std::string_view key, const std::string& path) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) {
        return std::nullopt;
    }
    return as_string_array(d, *it, sub(path, key));
}

Healthcheck read_healthcheck(const Doc& d, const json& j, const std::string& path) {
    need_object(d, j, path);
    Healthcheck h;
    h.test = opt_string_array(d, j, "Test", path);
    auto dur = [&](std::string_view key) -> std::int64_t {
        const json* v = member(d, j, key);
        return v ? as_int(d, *v, sub(path, key), 0, std::numeric_limits<std::int64_t>::max()) : 0;
    };
    h.interval = dur("Interval");
    h.timeout = dur("Timeout");
    h.start_period = dur("StartPeriod");
    h.start_interval = dur("StartInterval");
    if (const json* v = member(d, j, "Retries")) {
        h.retries = static_cast<int>(
            as_int(d, *v, sub(path, "Retries"), 0, std::numeric_limits<int>::max()));
    }
    return h;
}

ContainerConfig read_container_config(const Doc& d, const json& j, const std::string& path) {
    need_object(d, j, path);
    ContainerConfig c;
    c.user = opt_string(d, j, "User", path);
    if (const json* v = member(d, j, "ExposedPorts")) {
        c.exposed_ports = as_object_set(d, *v, sub(path, "ExposedPorts"));
    }
    c.env = opt_string_array(d, j, "Env", path);
    for (std::size_t i = 0; i < c.env.size(); ++i) {
        // ^[^=]+=.*$ (image-spec config.md: "VARNAME=VARVALUE")
        auto eq = c.env[i].find('=');
        if (eq == std::string::npos || eq == 0) {
            d.fail(at(sub(path, "Env"), i),
                   "environment entry " + quote_untrusted(c.env[i]) + " is not NAME=VALUE");
        }
    }
    c.entrypoint = opt_nullable_array(d, j, "Entrypoint", path);
    c.cmd = opt_nullable_array(d, j, "Cmd", path);
    if (auto it = j.find("Volumes"); it != j.end() && !it->is_null()) {
        c.volumes = as_object_set(d, *it, sub(path, "Volumes"));
    }
    c.working_dir = opt_string(d, j, "WorkingDir", path);
    if (auto it = j.find("Labels"); it != j.end() && !it->is_null()) {
        c.labels = as_string_map(d, *it, sub(path, "Labels"));
    }
    c.stop_signal = opt_string(d, j, "StopSignal", path);
    if (const json* v = member(d, j, "ArgsEscaped")) {
        c.args_escaped = as_bool(d, *v, sub(path, "ArgsEscaped"));
    }
    // Docker's extensions (not in the OCI schema, so null is fine in both modes).
    if (auto it = j.find("Healthcheck"); it != j.end() && !it->is_null()) {
        c.healthcheck = read_healthcheck(d, *it, sub(path, "Healthcheck"));
    }
    if (auto v = opt_nullable_array(d, j, "OnBuild", path)) {
        c.on_build = std::move(*v);
    }
    if (auto v = opt_nullable_array(d, j, "Shell", path)) {
        c.shell = std::move(*v);
    }
    return c;
}

ImageConfig read_image_config(const Doc& d, const json& j) {
    need_object(d, j, "");
    ImageConfig c;
    if (const json* v = member(d, j, "created")) {
        c.created = date_time_field(d, *v, "created");
    }
    c.author = opt_string(d, j, "author", "");
    c.architecture = as_string(d, required(d, j, "architecture", ""), "architecture");
    c.os = as_string(d, required(d, j, "os", ""), "os");
    c.os_version = opt_string(d, j, "os.version", "");
    c.os_features = opt_string_array(d, j, "os.features", "");
    c.variant = opt_string(d, j, "variant", "");
    if (const json* v = member(d, j, "config")) {
        c.config = read_container_config(d, *v, "config");
    }
    const json& rootfs = required(d, j, "rootfs", "");
    need_object(d, rootfs, "rootfs");
    std::string type = as_string(d, required(d, rootfs, "type", "rootfs"), "rootfs.type");
    if (type != "layers") {
        d.fail("rootfs.type",
               "unsupported rootfs type " + quote_untrusted(type) + " (want \"layers\")");
    }
    const json& diff_ids = required(d, rootfs, "diff_ids", "rootfs");
    if (!diff_ids.is_array() && !(diff_ids.is_null() && !d.spec())) {
        wrong_type(d, "rootfs.diff_ids", "an array", diff_ids);
    }
    for (std::size_t i = 0; i < diff_ids.size() && diff_ids.is_array(); ++i) {
        std::string path = at("rootfs.diff_ids", i);
        if (d.spec()) {
            as_string(d, diff_ids[i], path);
        } else {
            c.diff_ids.push_back(digest_field(d, diff_ids[i], path, false));
        }
    }
    if (const json* v = member(d, j, "history")) {
        if (!v->is_array()) {
            wrong_type(d, "history", "an array", *v);
        }
        for (std::size_t i = 0; i < v->size(); ++i) {
            const json& h = (*v)[i];
            std::string path = at("history", i);
            need_object(d, h, path);
            History entry;
            if (const json* cr = member(d, h, "created")) {
                entry.created = date_time_field(d, *cr, sub(path, "created"));
            }
            entry.created_by = opt_string(d, h, "created_by", path);
            entry.author = opt_string(d, h, "author", path);
            entry.comment = opt_string(d, h, "comment", path);
            if (const json* e = member(d, h, "empty_layer")) {
                entry.empty_layer = as_bool(d, *e, sub(path, "empty_layer"));
            }
            c.history.push_back(std::move(entry));
        }
    }
    return c;
}

void read_layout_header(const Doc& d, const json& j) {
    need_object(d, j, "");
    std::string v = as_string(d, required(d, j, "imageLayoutVersion", ""), "imageLayoutVersion");
    if (v != "1.0.0") {
        d.fail("imageLayoutVersion",
               "unsupported image layout version " + quote_untrusted(v) + " (want \"1.0.0\")");
    }
}

json parse_doc(std::string_view text, const Doc& d) {
    return parse_json_strict(text, d.prefix());
}

// ---- serialising (field order of the Go structs Docker and BuildKit use) ---

ojson platform_json(const Platform& p) {
    ojson j = ojson::object();
    j["architecture"] = p.architecture;
    j["os"] = p.os;
    if (!p.os_version.empty()) {
        j["os.version"] = p.os_version;
    }
    if (!p.os_features.empty()) {
        j["os.features"] = p.os_features;
    }
    if (!p.variant.empty()) {
        j["variant"] = p.variant;
    }
    return j;
}

ojson string_map_json(const std::map<std::string, std::string>& m) {
    ojson j = ojson::object();
    for (const auto& [k, v] : m) {
        j[k] = v;
    }
    return j;
}

ojson descriptor_json(const Descriptor& d) {
    ojson j = ojson::object();
    j["mediaType"] = d.media_type;
    j["digest"] = d.digest.str();
    j["size"] = d.size;
    if (!d.urls.empty()) {
        j["urls"] = d.urls;
    }
    if (!d.annotations.empty()) {
        j["annotations"] = string_map_json(d.annotations);
    }
    if (d.data) {
        j["data"] = *d.data;
    }
    if (d.platform) {
        j["platform"] = platform_json(*d.platform);
    }
    if (!d.artifact_type.empty()) {
        j["artifactType"] = d.artifact_type;
    }
    return j;
}

ojson set_json(const std::set<std::string>& s) {
    ojson j = ojson::object();
    for (const auto& k : s) {
        j[k] = ojson::object();
    }
    return j;
}

ojson container_config_json(const ContainerConfig& c) {
    ojson j = ojson::object();
    if (!c.user.empty()) {
        j["User"] = c.user;
    }
    if (!c.exposed_ports.empty()) {
        j["ExposedPorts"] = set_json(c.exposed_ports);
    }
    if (!c.env.empty()) {
        j["Env"] = c.env;
    }
    if (c.entrypoint) {
        j["Entrypoint"] = *c.entrypoint;
    }
    if (c.cmd) {
        j["Cmd"] = *c.cmd;
    }
    if (!c.volumes.empty()) {
        j["Volumes"] = set_json(c.volumes);
    }
    if (!c.working_dir.empty()) {
        j["WorkingDir"] = c.working_dir;
    }
    if (!c.labels.empty()) {
        j["Labels"] = string_map_json(c.labels);
    }
    if (!c.stop_signal.empty()) {
        j["StopSignal"] = c.stop_signal;
    }
    if (c.args_escaped) {
        j["ArgsEscaped"] = true;
    }
    if (c.healthcheck) {
        const Healthcheck& h = *c.healthcheck;
        ojson hj = ojson::object();
        if (!h.test.empty()) {
            hj["Test"] = h.test;
        }
        if (h.interval != 0) {
            hj["Interval"] = h.interval;
        }
        if (h.timeout != 0) {
            hj["Timeout"] = h.timeout;
        }
        if (h.start_period != 0) {
            hj["StartPeriod"] = h.start_period;
        }
        if (h.start_interval != 0) {
            hj["StartInterval"] = h.start_interval;
        }
        if (h.retries != 0) {
            hj["Retries"] = h.retries;
        }
        j["Healthcheck"] = std::move(hj);
    }
    if (!c.on_build.empty()) {
        j["OnBuild"] = c.on_build;
    }
    if (!c.shell.empty()) {
        j["Shell"] = c.shell;
    }
    return j;
}

std::string normalise_arch(std::string_view arch, std::string* variant) {
    if (arch == "x86_64" || arch == "x86-64" || arch == "amd64") {
        return "amd64";
    }
    if (arch == "aarch64" || arch == "arm64") {
        return "arm64";
    }
    if (arch == "i386" || arch == "i486" || arch == "i586" || arch == "i686" || arch == "386") {
        return "386";
    }
    if (arch.starts_with("armv") && arch.size() >= 5) {
        // armv7l -> arm v7, armv6l -> arm v6
        if (variant && variant->empty()) {
            *variant = "v" + std::string(1, arch[4]);
        }
        return "arm";
    }
    return std::string(arch);
}

} // namespace

// ---- public API --------------------------------------------------------------

Platform host_platform() {
    struct utsname u {};
    if (::uname(&u) != 0) {
        throw_errno("uname");
    }
    Platform p;
    p.os = "linux";
    p.architecture = normalise_arch(u.machine, &p.variant);
    if (p.architecture == "arm64") {
        p.variant = "v8";
    }
    return p;
}

std::string to_string(const Platform& p) {
    std::string s = p.os + "/" + p.architecture;
    if (!p.variant.empty()) {
        s += "/" + p.variant;
    }
    return s;
}

Platform parse_platform(std::string_view text) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (true) {
        auto slash = text.find('/', start);
        parts.emplace_back(
            text.substr(start, slash == std::string_view::npos ? slash : slash - start));
        if (slash == std::string_view::npos) {
            break;
        }
        start = slash + 1;
    }
    for (const auto& p : parts) {
        if (p.empty()) {
            throw UsageError("invalid platform " + quote_untrusted(text) +
                             ": expected os/arch[/variant]");
        }
    }
    Platform p;
    if (parts.size() == 1) {
        p.os = "linux";
        p.architecture = parts[0];
    } else if (parts.size() <= 3) {
        p.os = parts[0];
        p.architecture = parts[1];
        if (parts.size() == 3) {
            p.variant = parts[2];
        }
    } else {
        throw UsageError("invalid platform " + quote_untrusted(text) +
                         ": expected os/arch[/variant]");
    }
    p.architecture = normalise_arch(p.architecture, &p.variant);
    return p;
}

bool platform_matches(const Platform& want, const Platform& image) {
    if (want.os != image.os || want.architecture != image.architecture) {
        return false;
    }
    if (want.variant.empty()) {
        return true;
    }
    std::string have = image.variant;
    if (have.empty() && image.architecture == "arm64") {
        have = "v8";
    }
    return have == want.variant;
}

Descriptor parse_descriptor(std::string_view json, std::string_view what) {
    Doc d("descriptor", what, Mode::strata);
    return read_descriptor(d, parse_doc(json, d), "", true);
}

Manifest parse_manifest(std::string_view json, std::string_view what) {
    Doc d("manifest", what, Mode::strata);
    return read_manifest(d, parse_doc(json, d));
}

Index parse_index(std::string_view json, std::string_view what) {
    Doc d("index", what, Mode::strata);
    return read_index(d, parse_doc(json, d));
}

ImageConfig parse_image_config(std::string_view json, std::string_view what) {
    Doc d("image config", what, Mode::strata);
    return read_image_config(d, parse_doc(json, d));
}

void parse_layout_header(std::string_view json, std::string_view what) {
    Doc d("oci-layout", what, Mode::strata);
    read_layout_header(d, parse_doc(json, d));
}

std::string layout_header_json() {
    return R"({"imageLayoutVersion":"1.0.0"})";
}

std::string to_json(const Descriptor& d) {
    return dump_go_style(descriptor_json(d));
}

std::string to_json(const Manifest& m) {
    ojson j = ojson::object();
    j["schemaVersion"] = m.schema_version;
    if (!m.media_type.empty()) {
        j["mediaType"] = m.media_type;
    }
    if (!m.artifact_type.empty()) {
        j["artifactType"] = m.artifact_type;
    }
    j["config"] = descriptor_json(m.config);
    j["layers"] = ojson::array();
    for (const auto& l : m.layers) {
        j["layers"].push_back(descriptor_json(l));
    }
    if (m.subject) {
        j["subject"] = descriptor_json(*m.subject);
    }
    if (!m.annotations.empty()) {
        j["annotations"] = string_map_json(m.annotations);
    }
    return dump_go_style(j);
}

std::string to_json(const Index& i) {
    ojson j = ojson::object();
    j["schemaVersion"] = i.schema_version;
    if (!i.media_type.empty()) {
        j["mediaType"] = i.media_type;
    }
    if (!i.artifact_type.empty()) {
        j["artifactType"] = i.artifact_type;
    }
    j["manifests"] = ojson::array();
    for (const auto& m : i.manifests) {
        j["manifests"].push_back(descriptor_json(m));
    }
    if (i.subject) {
        j["subject"] = descriptor_json(*i.subject);
    }
    if (!i.annotations.empty()) {
        j["annotations"] = string_map_json(i.annotations);
    }
    return dump_go_style(j);
}

std::string to_json(const ImageConfig& c) {
    ojson j = ojson::object();
    if (!c.created.empty()) {
        j["created"] = c.created;
    }
    if (!c.author.empty()) {
        j["author"] = c.author;
    }
    j["architecture"] = c.architecture;
    if (!c.variant.empty()) {
        j["variant"] = c.variant;
    }
    j["os"] = c.os;
    if (!c.os_version.empty()) {
        j["os.version"] = c.os_version;
    }
    if (!c.os_features.empty()) {
        j["os.features"] = c.os_features;
    }
    j["config"] = container_config_json(c.config);
    ojson rootfs = ojson::object();
    rootfs["type"] = "layers";
    rootfs["diff_ids"] = ojson::array();
    for (const auto& d : c.diff_ids) {
        rootfs["diff_ids"].push_back(d.str());
    }
    j["rootfs"] = std::move(rootfs);
    if (!c.history.empty()) {
        ojson hist = ojson::array();
        for (const auto& h : c.history) {
            ojson hj = ojson::object();
            if (!h.created.empty()) {
                hj["created"] = h.created;
            }
            if (!h.created_by.empty()) {
                hj["created_by"] = h.created_by;
            }
            if (!h.author.empty()) {
                hj["author"] = h.author;
            }
            if (!h.comment.empty()) {
                hj["comment"] = h.comment;
            }
            if (h.empty_layer) {
                hj["empty_layer"] = true;
            }
            hist.push_back(std::move(hj));
        }
        j["history"] = std::move(hist);
    }
    return dump_go_style(j);
}

Digest chain_id(const std::vector<Digest>& diff_ids) {
    if (diff_ids.empty()) {
        throw Error("chain ID of an empty list of layers");
    }
    Digest chain = diff_ids[0];
    for (std::size_t i = 1; i < diff_ids.size(); ++i) {
        chain = Digest::of(chain.str() + " " + diff_ids[i].str());
    }
    return chain;
}

void check_media_type_matches(const Descriptor& d, std::string_view document_media_type,
                              std::string_view what) {
    if (!document_media_type.empty() && document_media_type != d.media_type) {
        throw FormatError(std::string(what) + ": the descriptor says media type " +
                          quote_untrusted(d.media_type) + ", the document says " +
                          quote_untrusted(document_media_type));
    }
}

Descriptor descriptor_for(std::string_view media_type, std::string_view content) {
    Descriptor d;
    d.media_type = std::string(media_type);
    d.digest = Digest::of(content);
    d.size = static_cast<std::int64_t>(content.size());
    return d;
}

bool is_manifest_media_type(std::string_view mt) {
    return mt == media::oci_manifest || mt == media::docker_manifest;
}
bool is_index_media_type(std::string_view mt) {
    return mt == media::oci_index || mt == media::docker_manifest_list;
}
bool is_config_media_type(std::string_view mt) {
    return mt == media::oci_config || mt == media::docker_config;
}
bool is_layer_media_type(std::string_view mt) {
    return mt == media::oci_layer || mt == media::oci_layer_gzip || mt == media::oci_layer_zstd ||
           mt == media::oci_layer_nd || mt == media::oci_layer_nd_gzip ||
           mt == media::oci_layer_nd_zstd || mt == media::docker_layer ||
           mt == media::docker_layer_gzip || mt == media::docker_layer_foreign;
}

std::optional<DocumentKind> document_kind_for(std::string_view mt) {
    if (mt == "application/vnd.oci.descriptor.v1+json") {
        return DocumentKind::descriptor;
    }
    if (is_manifest_media_type(mt)) {
        return DocumentKind::manifest;
    }
    if (is_index_media_type(mt)) {
        return DocumentKind::index;
    }
    if (is_config_media_type(mt)) {
        return DocumentKind::config;
    }
    if (mt == media::oci_layout_header) {
        return DocumentKind::layout_header;
    }
    return std::nullopt;
}

void validate_document(DocumentKind kind, std::string_view text, std::string_view what) {
    switch (kind) {
    case DocumentKind::descriptor: {
        Doc d("descriptor", what, Mode::spec);
        read_descriptor(d, parse_doc(text, d), "", true);
        return;
    }
    case DocumentKind::manifest: {
        Doc d("manifest", what, Mode::spec);
        read_manifest(d, parse_doc(text, d));
        return;
    }
    case DocumentKind::index: {
        Doc d("index", what, Mode::spec);
        read_index(d, parse_doc(text, d));
        return;
    }
    case DocumentKind::config: {
        Doc d("image config", what, Mode::spec);
        read_image_config(d, parse_doc(text, d));
        return;
    }
    case DocumentKind::layout_header: {
        Doc d("oci-layout", what, Mode::spec);
        read_layout_header(d, parse_doc(text, d));
        return;
    }
    }
}

} // namespace strata::formats
