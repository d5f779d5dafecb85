// Image references with Docker's grammar and short-name normalisation:
// "busybox" is "docker.io/library/busybox:latest", "localhost:5000/app@sha256:..."
// keeps its registry. Parsing rejects what Docker rejects, naming the reason.
#pragma once

#include "formats/digest.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace strata::snapshot {

class Reference {
public:
    // Parses and normalises; without tag or digest the tag is "latest" when
    // default_tag is set. Throws UsageError("invalid reference format: ...").
    static Reference parse(std::string_view text, bool default_tag = true);
    static std::optional<Reference> try_parse(std::string_view text, bool default_tag = true);

    const std::string& domain() const noexcept { return m_domain; } // "docker.io"
    const std::string& path() const noexcept { return m_path; }     // "library/busybox"
    const std::string& tag() const noexcept { return m_tag; }       // may be empty
    const std::optional<formats::Digest>& digest() const noexcept { return m_digest; }

    // "docker.io/library/busybox"
    std::string repository() const { return m_domain + "/" + m_path; }
    // "docker.io/library/busybox:latest" (with "@sha256:..." when it has a digest)
    std::string full() const;
    // Docker's familiar form: "busybox:latest", "myregistry:5000/app:v1".
    std::string familiar() const;
    // The familiar repository without tag: "busybox".
    std::string familiar_repository() const;
    Reference with_tag(std::string tag) const;

    bool operator==(const Reference&) const = default;

private:
    Reference() = default;
    std::string m_domain;
    std::string m_path;
    std::string m_tag;
    std::optional<formats::Digest> m_digest;
};

} // namespace strata::snapshot
