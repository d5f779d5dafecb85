// A client for one registry over the OCI distribution API
// (https://github.com/opencontainers/distribution-spec): manifests, blobs
// (existence checks, streaming downloads verified by digest, monolithic and
// chunked uploads, cross-repository mounts), catalog and tag listing with
// Link pagination. Authentication follows the registry's challenges:
// anonymous, Basic, or the Bearer token flow. Transport: HTTPS with the
// system CAs; registries marked insecure (and loopback hosts) may use plain
// HTTP and unverified TLS.
//
// A Client is thread-safe: each call borrows a libcurl session from a pool,
// so layers can be transferred from several threads at once.
#pragma once

#include "formats/digest.hpp"
#include "registry/auth.hpp"
#include "registry/http.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::registry {

// The registry answered 401/403 even after authenticating.
class UnauthorizedError : public RegistryError {
public:
    using RegistryError::RegistryError;
};

// Manifest, blob or repository unknown (404, MANIFEST_UNKNOWN, NAME_UNKNOWN...).
class NotFoundError : public RegistryError {
public:
    using RegistryError::RegistryError;
};

// Bytes received do not hash to the digest they were asked for.
class DigestMismatchError : public RegistryError {
public:
    using RegistryError::RegistryError;
};

// The manifest registries accept at most (distribution's default limit).
inline constexpr std::size_t k_max_manifest_size = 4 * 1024 * 1024;

struct ClientOptions {
    bool tls_verify = true;
    // Allow plain HTTP (and unverified TLS). Loopback hosts are always insecure,
    // as in Docker; so are the hosts listed in STRATA_INSECURE_REGISTRIES.
    bool insecure = false;
    std::optional<Credentials> credentials; // nullopt: anonymous
    RetryPolicy retry;
    std::size_t max_manifest_size = k_max_manifest_size;
    // 0: monolithic uploads (POST + one PUT); otherwise PATCH chunks of this size.
    std::uint64_t chunk_size = 0;
    HttpOptions http;
};

struct RemoteManifest {
    std::string media_type; // Content-Type, or the document's mediaType
    std::string bytes;
    formats::Digest digest;
};

enum class BlobPush { existed, mounted, uploaded };

// Whether a registry host must be treated as insecure (loopback, or in
// STRATA_INSECURE_REGISTRIES, a comma-separated list of host[:port]).
bool is_insecure_host(std::string_view registry);

// The host API requests go to: "registry-1.docker.io" for "docker.io".
std::string api_host(std::string_view registry);

// Parses an RFC 5988 Link header and returns the target of rel="next".
std::optional<std::string> next_link(std::string_view link_header);

class Client {
public:
    Client(std::string registry, ClientOptions options = {});
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    const std::string& registry() const noexcept { return m_registry; }
    // "https://host" or "http://host", after probing (see ping).
    std::string base_url();

    // GET /v2/: checks the registry is reachable and that the credentials (if
    // any) are accepted, running the token flow when it asks for one.
    // Throws UnauthorizedError when they are rejected.
    void ping();

    // Fetches a manifest (or index) by tag or digest, accepting OCI and
    // Docker schema 2 media types. Checks the digest when reference is one,
    // and the size limit. Throws NotFoundError for an unknown manifest.
    RemoteManifest get_manifest(const std::string& repo, const std::string& reference);
    // HEAD: the manifest's digest when it exists.
    std::optional<formats::Digest> head_manifest(const std::string& repo,
                                                 const std::string& reference);
    // PUT; returns the digest the registry reports (or the bytes' digest).
    formats::Digest put_manifest(const std::string& repo, const std::string& reference,
                                 const std::string& media_type, const std::string& bytes);

    // HEAD /v2/<repo>/blobs/<digest>: the size when the blob exists.
    std::optional<std::uint64_t> blob_size(const std::string& repo, const formats::Digest& digest);

    // Streams a blob to sink, following redirects. With verify, bytes that do
    // not hash to digest (or exceed expected_size) throw DigestMismatchError.
    // restart is called before a retry resends the blob from its start.
    void fetch_blob(const std::string& repo, const formats::Digest& digest,
                    std::optional<std::uint64_t> expected_size,
                    const std::function<void(const char*, std::size_t)>& sink,
                    const std::function<void()>& restart, bool verify = true);

    // Streams the bytes [offset, offset + length) of a blob to sink with an
    // HTTP range request (a lazy pull's frames and TOCs). The bytes are not
    // verified here (the caller checks them against the digests of its
    // TOC). Throws RegistryError when the registry answers with anything but
    // exactly those bytes (a registry that ignores Range sends the whole
    // blob: the transfer stops at the first byte too many). Returns the
    // bytes sent to sink, less than length only when a transport error
    // stopped the transfer after some arrived (the caller asks for the rest).
    std::uint64_t fetch_blob_range(const std::string& repo, const formats::Digest& digest,
                                   std::uint64_t offset, std::uint64_t length,
                                   const std::function<void(const char*, std::size_t)>& sink);
    // Uploads size bytes of fd (from offset 0) as blob digest, unless the
    // registry has it already or can mount it from one of mount_from (other
    // repositories on this registry).
    BlobPush push_blob(const std::string& repo, const formats::Digest& digest, std::uint64_t size,
                       int fd, const std::vector<std::string>& mount_from = {});

    // GET /v2/_catalog and /v2/<repo>/tags/list, following Link pagination.
    std::vector<std::string> catalog(int page_size = 100);
    std::vector<std::string> tags(const std::string& repo, int page_size = 100);

private:
    class Lease;
    struct Token {
        std::string value;
        std::chrono::steady_clock::time_point expires;
    };

    std::unique_ptr<HttpSession> acquire();
    void release(std::unique_ptr<HttpSession> s);
    void ensure_ready(HttpSession& s);
    // Sends with retries and authentication for the given scopes.
    HttpResponse send(HttpSession& s, HttpRequest req, const std::vector<std::string>& scopes,
                      const RetryPolicy& policy, const std::function<void()>& restart = {});
    HttpResponse send(HttpSession& s, HttpRequest req, const std::vector<std::string>& scopes) {
        return send(s, std::move(req), scopes, m_options.retry);
    }
    std::optional<std::string> auth_header(HttpSession& s, const std::vector<std::string>& scopes,
                                           bool refresh);
    // Records the challenge of a 401 to request_url; false when it cannot be
    // answered.
    bool learn_challenge(const std::string& request_url, const HttpResponse& resp);
    std::string fetch_token(HttpSession& s, const std::vector<std::string>& scopes);
    [[noreturn]] void fail(const HttpResponse& resp, const std::string& what);
    // A blob GET's answer: 404 is a blob the registry does not know (NotFoundError);
    // any other failure goes to fail().
    void check_blob_answer(const HttpResponse& resp, const std::string& what);
    std::vector<std::string> list_paged(const std::string& first_path, const std::string& key,
                                        const std::vector<std::string>& scopes);
    BlobPush upload_once(HttpSession& s, const std::string& repo, const formats::Digest& digest,
                         std::uint64_t size, int fd, const std::vector<std::string>& mount_from);
    std::string url(const std::string& path);

    std::string m_registry;
    std::string m_host;
    ClientOptions m_options;
    bool m_allow_http;

    std::mutex m_mu;
    std::vector<std::unique_ptr<HttpSession>> m_pool;
    std::string m_scheme; // "" until probed
    // Learnt from the registry's challenges.
    std::string m_auth_scheme; // "", "basic" or "bearer"
    std::string m_realm;
    std::string m_service;
    std::map<std::string, Token> m_tokens; // by joined scopes
};

std::string pull_scope(const std::string& repo);
std::string push_scope(const std::string& repo);

} // namespace strata::registry
