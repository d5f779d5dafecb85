// Strict JSON for untrusted documents. nlohmann's plain parse accepts
// duplicate keys (keeping the last one), any nesting depth and any size;
// manifests and configs come from registries and archives, so this parser
// rejects all three with a FormatError that names the document and the path
// of the offending value ("layers[2].annotations: duplicate key ...").
#pragma once

#include "util/error.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace strata::formats {

// A malformed document (bad JSON, a wrong field, a bad digest).
class FormatError : public Error {
public:
    using Error::Error;
};

// Largest manifest/index/config strata reads: registries cap manifests at
// 4 MiB (distribution-spec); configs of images with very long histories stay
// well below 20 MiB, the limit containerd uses for config blobs.
inline constexpr std::size_t k_max_document_size = 20 * 1024 * 1024;
// Deepest nesting accepted. Real OCI documents nest at most 4 levels (index ->
// manifests[] -> platform -> os.features[]); 64 leaves room for extensions
// while keeping hostile input from costing stack or time.
inline constexpr int k_max_json_depth = 64;

// Parses text as one JSON value. Throws FormatError "<what>: ..." when the
// text is larger than max_size, is not JSON (with the byte offset), nests
// deeper than max_depth, or repeats a key inside one object.
nlohmann::json parse_json_strict(std::string_view text, std::string_view what,
                                 std::size_t max_size = k_max_document_size,
                                 int max_depth = k_max_json_depth);

// Serialises compactly the way Go's encoding/json does (what Docker and
// BuildKit write): no spaces, raw UTF-8, and '<', '>', '&', U+2028, U+2029
// escaped as \u003c, \u003e, \u0026, \u2028, \u2029. Keys keep the order of
// the value (use ordered_json for a struct's field order).
std::string dump_go_style(const nlohmann::ordered_json& value);

// Appends s (valid UTF-8) as a JSON string exactly as nlohmann's dump()
// writes it: '"' and '\\' escaped, control characters as \b \f \n \r \t or
// \u00XX, everything else as it is. For documents written by hand, where a
// tree of many small values would cost more than the writing.
void append_json_string(std::string& out, std::string_view s);

// "\"text\"" with control characters escaped and long text cut at 100 bytes,
// for quoting untrusted strings in error messages.
std::string quote_untrusted(std::string_view text);

} // namespace strata::formats
