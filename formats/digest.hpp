// Digest: a validated content address, "sha256:<64 lowercase hex>". It can
// only be made by parsing (which checks the grammar) or from a hasher, so a
// Digest value is always well formed. Blob paths are derived from it in one
// place (blob_path).
#pragma once

#include "util/error.hpp"
#include "util/sha256.hpp"

#include <compare>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace strata::formats {

class BadDigest : public Error {
public:
    using Error::Error;
};

class Digest {
public:
    Digest() = delete;
    // Throws BadDigest naming the text. Only sha256 is accepted: OCI's
    // registered sha512 is rejected with a clear message.
    static Digest parse(std::string_view text);
    static std::optional<Digest> try_parse(std::string_view text) noexcept;
    static Digest from_hex(std::string_view hex) { return parse("sha256:" + std::string(hex)); }
    static Digest of(std::string_view data);
    static Digest from_hasher(Sha256& hasher);

    const std::string& str() const noexcept { return m_text; }
    std::string_view hex() const noexcept { return std::string_view(m_text).substr(7); }
    std::string_view algorithm() const noexcept { return std::string_view(m_text).substr(0, 6); }
    // "sha256:0123456789ab" (12 hex digits), as docker prints image IDs.
    std::string short_id() const { return std::string(hex().substr(0, 12)); }
    // "blobs/sha256/<hex>" relative to an OCI layout root.
    std::string blob_path() const { return "blobs/sha256/" + std::string(hex()); }

    auto operator<=>(const Digest&) const = default;
    bool operator==(const Digest&) const = default;

private:
    explicit Digest(std::string text) : m_text(std::move(text)) {}
    std::string m_text;
};

// A hasher that yields a Digest.
class DigestHasher {
public:
    void update(const void* data, std::size_t size) { m_sha.update(data, size); }
    void update(std::string_view s) { m_sha.update(s); }
    Digest finish() { return Digest::from_hasher(m_sha); }

private:
    Sha256 m_sha;
};

} // namespace strata::formats

template <> struct std::hash<strata::formats::Digest> {
    std::size_t operator()(const strata::formats::Digest& d) const noexcept {
        return std::hash<std::string>{}(d.str());
    }
};
