// OCI image documents (descriptor, manifest, index, image config) with the
// Docker fields OCI lacks (Healthcheck, OnBuild, Shell, ArgsEscaped). Parsing
// is strict: it rejects malformed documents with a FormatError naming the
// field (JSON over 20 MiB, nesting too deep, duplicate keys, bad digests,
// negative sizes, a media type that contradicts the document). Serialising is
// deterministic: fixed key order, compact, so equal values give equal bytes.
#pragma once

#include "formats/digest.hpp"
#include "formats/json.hpp"
#include "util/error.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace strata::formats {

// FormatError and k_max_document_size live in formats/json.hpp.

struct Platform {
    std::string architecture;
    std::string os;
    std::string os_version;
    std::vector<std::string> os_features;
    std::string variant;
    bool operator==(const Platform&) const = default;
};

// The platform strata runs on ("linux", "amd64"/"arm64"/..., variant), with
// Go's architecture names as images use them (x86_64 -> amd64, aarch64 ->
// arm64 variant v8, armv7l -> arm variant v7).
Platform host_platform();
// "os/arch[/variant]", as docker --platform takes and prints it.
std::string to_string(const Platform& p);
// Parses "os/arch[/variant]" (also "arch" alone, meaning linux). Architecture
// aliases are normalised (x86_64 -> amd64, aarch64 -> arm64); throws
// UsageError naming the text.
Platform parse_platform(std::string_view text);
// True when an image for `image` runs on `want`: same os and architecture,
// and the same variant when `want` names one (arm64 without a variant counts
// as v8).
bool platform_matches(const Platform& want, const Platform& image);

struct Descriptor {
    std::string media_type;
    Digest digest = Digest::of("");
    std::int64_t size = 0;
    std::vector<std::string> urls;
    std::map<std::string, std::string> annotations;
    std::optional<Platform> platform;
    std::string artifact_type;
    // Embedded content, base64 as in the document. parse_* check that it
    // decodes to exactly `size` bytes hashing to `digest`.
    std::optional<std::string> data;
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
    bool operator==(const Manifest&) const = default;
};

struct Index {
    int schema_version = 2;
    std::string media_type;
    std::string artifact_type;
    std::vector<Descriptor> manifests;
    std::optional<Descriptor> subject;
    std::map<std::string, std::string> annotations;
    bool operator==(const Index&) const = default;
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
    bool operator==(const ImageConfig&) const = default;
};

// Parsing: `what` names the document in errors (a path or a digest); errors
// read "<kind> <what>: <field path>: <problem>", for example
//   manifest sha256:ab..: layers[2].digest: invalid digest "sha256:xyz": ...
// Strict: the JSON limits of parse_json_strict, every known field with the
// right JSON type, digests in strata's grammar (sha256 only), sizes >= 0,
// schemaVersion 2, media types well formed and, for manifests and indexes, not
// contradicting the document (an index's mediaType may not say "manifest").
// Unknown fields are ignored (forward compatibility, as Go's decoder does);
// null counts as absent for optional fields (Docker writes "Cmd": null).
// Manifests with no layers are accepted (BuildKit writes them for images
// with only metadata).
Descriptor parse_descriptor(std::string_view json, std::string_view what);
Manifest parse_manifest(std::string_view json, std::string_view what);
Index parse_index(std::string_view json, std::string_view what);
ImageConfig parse_image_config(std::string_view json, std::string_view what);

std::string to_json(const Descriptor& d);
std::string to_json(const Manifest& m);
std::string to_json(const Index& i);
std::string to_json(const ImageConfig& c);

// The OCI chain ID of a list of diff IDs (image-spec config.md):
// chain(L0) = diff(L0), chain(Ln) = sha256(chain(Ln-1) + " " + diff(Ln)).
// Throws Error for an empty list (no layers have no chain).
Digest chain_id(const std::vector<Digest>& diff_ids);

// Checks that a document fetched through descriptor d does not contradict
// it: when the document states its own mediaType, it must equal
// d.media_type. Throws FormatError "<what>: descriptor says .., the document
// says ..". (Without this an index could be served where a manifest was
// pinned, or the other way round.)
void check_media_type_matches(const Descriptor& d, std::string_view document_media_type,
                              std::string_view what);

// A descriptor for content held in memory.
Descriptor descriptor_for(std::string_view media_type, std::string_view content);

bool is_manifest_media_type(std::string_view mt); // OCI manifest or Docker schema 2
bool is_index_media_type(std::string_view mt);    // OCI index or Docker manifest list
bool is_config_media_type(std::string_view mt);   // OCI or Docker image config
// Any OCI or Docker layer media type (tar, +gzip, +zstd, nondistributable, foreign).
bool is_layer_media_type(std::string_view mt);

// Validation exactly as the OCI image-spec's own validator decides (its JSON
// schemas plus the Go-side checks; tests/data/oci-image-spec/README section
// 3.2): digests need only the grammar (any algorithm;
// sha256/sha384/sha512 checked for length and case on a top-level
// descriptor), manifests need at least one layer, config Env entries need
// "=", descriptor data must be padded standard base64, urls must be absolute
// URIs, created must be RFC 3339. This is for checking documents against the
// spec (`strata` conformance, other tools' output); strata itself reads with
// the parse_* functions above. Throws FormatError naming the field.
enum class DocumentKind { descriptor, manifest, index, config, layout_header };
void validate_document(DocumentKind kind, std::string_view json, std::string_view what = {});
// The kind for a media type ("application/vnd.oci.image.manifest.v1+json" ->
// manifest, also the Docker equivalents); nullopt for anything else.
std::optional<DocumentKind> document_kind_for(std::string_view media_type);

// The oci-layout file: {"imageLayoutVersion":"1.0.0"}. parse checks it and
// throws FormatError otherwise.
void parse_layout_header(std::string_view json, std::string_view what);
std::string layout_header_json();

} // namespace strata::formats
