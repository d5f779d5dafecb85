// OCI image documents (descriptor, manifest, index, image config) with the
// Docker fields OCI lacks (Healthcheck, OnBuild, Shell, ArgsEscaped). Parsing
// is strict: it rejects malformed documents with a FormatError naming the
// field (JSON over 20 MiB, nesting too deep, duplicate keys, bad digests,
// negative sizes, a media type that contradicts the document). Serialising is
// deterministic: fixed key order, compact, so equal values give equal bytes.
#pragma once

#include "formats/digest.hpp"
#include "util/error.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace strata::formats {

class FormatError : public Error {
public:
    using Error::Error;
};

inline constexpr std::size_t kMaxDocumentSize = 20 * 1024 * 1024;

struct Platform {
    std::string architecture;
    std::string os;
    std::string os_version;
    std::vector<std::string> os_features;
    std::string variant;
    bool operator==(const Platform&) const = default;
};

// The platform strata runs on ("linux", "amd64"/"arm64"/..., variant).
Platform host_platform();

struct Descriptor {
    std::string media_type;
    Digest digest = Digest::of("");
    std::int64_t size = 0;
    std::vector<std::string> urls;
    std::map<std::string, std::string> annotations;
    std::optional<Platform> platform;
    std::string artifact_type;
    std::optional<std::string> data; // base64 as in the document
    bool operator==(const Descriptor&) const = default;
};

struct Manifest {
    int schema_version = 2;
    std::string media_type; // may be empty in OCI; Docker requires it
    std::string artifact_type;
    Descriptor config;
    std::vector<Descriptor> layers;
    std::optional<Descriptor> subject;
    std::map<std::string, std::string> annotations;
};

struct Index {
    int schema_version = 2;
    std::string media_type;
    std::string artifact_type;
    std::vector<Descriptor> manifests;
    std::optional<Descriptor> subject;
    std::map<std::string, std::string> annotations;
};

struct Healthcheck {
    std::vector<std::string> test; // ["NONE"], ["CMD", ...], ["CMD-SHELL", "..."]
    std::int64_t interval = 0;     // nanoseconds; 0 = inherit
    std::int64_t timeout = 0;
    std::int64_t start_period = 0;
    std::int64_t start_interval = 0;
    int retries = 0;
    bool operator==(const Healthcheck&) const = default;
};

// The "config" object of an image config (Docker's field names).
struct ContainerConfig {
    std::string user;
    std::set<std::string> exposed_ports; // "80/tcp"
    std::vector<std::string> env;        // "K=V"
    std::optional<std::vector<std::string>> entrypoint;
    std::optional<std::vector<std::string>> cmd;
    std::set<std::string> volumes;
    std::string working_dir;
    std::map<std::string, std::string> labels;
    std::string stop_signal;
    bool args_escaped = false;
    std::optional<Healthcheck> healthcheck;
    std::vector<std::string> on_build;
    std::vector<std::string> shell;
    bool operator==(const ContainerConfig&) const = default;
};

struct History {
    std::string created; // RFC 3339
    std::string created_by;
    std::string author;
    std::string comment;
    bool empty_layer = false;
    bool operator==(const History&) const = default;
};

struct ImageConfig {
    std::string created; // RFC 3339, may be empty
    std::string author;
    std::string architecture;
    std::string os;
    std::string os_version;
    std::vector<std::string> os_features;
    std::string variant;
    ContainerConfig config;
    std::vector<Digest> diff_ids; // rootfs.diff_ids, rootfs.type "layers"
    std::vector<History> history;
};

// Parsing: `what` names the document in errors (a path or a digest).
Descriptor parse_descriptor(std::string_view json, std::string_view what);
Manifest parse_manifest(std::string_view json, std::string_view what);
Index parse_index(std::string_view json, std::string_view what);
ImageConfig parse_image_config(std::string_view json, std::string_view what);

std::string to_json(const Descriptor& d);
std::string to_json(const Manifest& m);
std::string to_json(const Index& i);
std::string to_json(const ImageConfig& c);

// The OCI chain ID of a list of diff IDs (image-spec config.md).
Digest chain_id(const std::vector<Digest>& diff_ids);

} // namespace strata::formats
