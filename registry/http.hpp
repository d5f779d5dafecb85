// HTTP over libcurl for the registry client: one HttpSession per thread (a
// CURL easy handle that keeps its connections alive between requests),
// request bodies from memory or from a file descriptor, response bodies
// collected (bounded) or streamed to a sink, and a retry loop with
// exponential backoff for 429, 5xx and transient transport failures.
//
// No exception crosses a libcurl callback: a sink that throws stops the
// transfer and its exception is rethrown by perform().
#pragma once

#include "util/error.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace strata::registry {

// Any failure talking to a registry.
class RegistryError : public Error {
public:
    using Error::Error;
};

// The connection itself failed (DNS, TCP, TLS, timeout): no HTTP status.
class TransportError : public RegistryError {
public:
    TransportError(const std::string& what, int curl_code, bool tls)
        : RegistryError(what), m_curl_code(curl_code), m_tls(tls) {}
    int curl_code() const noexcept { return m_curl_code; }
    // The TLS handshake failed (e.g. the server speaks plain HTTP).
    bool tls_failure() const noexcept { return m_tls; }
    // Worth another attempt (timeouts, resets, refused connections).
    bool transient() const noexcept;
    // No connection could be made at all: refused, no route, no such host.
    // Nothing listens there; waiting seconds for it does not help, so these
    // get one quick retry only (RetryPolicy::connect_attempts).
    bool connect_failure() const noexcept;

private:
    int m_curl_code;
    bool m_tls;
};

// Response headers in arrival order, names lower-cased.
class Headers {
public:
    void add(std::string name, std::string value);
    void clear() { m_items.clear(); }
    std::optional<std::string> get(std::string_view name) const;
    std::vector<std::string> get_all(std::string_view name) const;
    const std::vector<std::pair<std::string, std::string>>& items() const { return m_items; }

private:
    std::vector<std::pair<std::string, std::string>> m_items;
};

struct HttpRequest {
    std::string method = "GET"; // GET HEAD POST PUT PATCH DELETE
    std::string url;
    std::vector<std::string> headers; // "Name: value"
    // Request body: from memory, or size bytes of body_fd starting at body_offset.
    std::string body;
    int body_fd = -1;
    std::uint64_t body_offset = 0;
    std::uint64_t body_size = 0;
    bool follow_redirects = true;
    // 2xx response bodies go to sink when set (it may throw to abort);
    // other bodies are collected into HttpResponse::body, up to max_body.
    std::function<void(const char*, std::size_t)> sink;
    std::size_t max_body = 1024 * 1024;
};

struct HttpResponse {
    long status = 0;
    Headers headers;
    std::string body;
    std::string effective_url; // after redirects
    bool ok() const { return status >= 200 && status < 300; }
};

struct HttpOptions {
    bool tls_verify = true;
    std::chrono::seconds connect_timeout{30};
    // Abort when fewer than 1 byte/s flow for this long.
    std::chrono::seconds stall_timeout{120};
    std::string user_agent = "strata";
};

// One CURL easy handle. Not thread-safe: use one per thread.
class HttpSession {
public:
    explicit HttpSession(HttpOptions options = {});
    HttpSession(const HttpSession&) = delete;
    HttpSession& operator=(const HttpSession&) = delete;
    ~HttpSession();

    // One attempt. Throws TransportError when no response arrives, or what
    // the sink threw; HTTP error statuses are returned, not thrown.
    HttpResponse perform(const HttpRequest& request);
    const HttpOptions& options() const { return m_options; }

private:
    HttpOptions m_options;
    void* m_curl;
};

struct RetryPolicy {
    int max_attempts = 5; // total, including the first
    std::chrono::milliseconds initial_backoff{250};
    std::chrono::milliseconds max_backoff{8000};
    // Connection refused / no route / DNS failure: attempts in all (at most
    // max_attempts) and the pause between them.
    int connect_attempts = 2;
    std::chrono::milliseconds connect_backoff{100};
};

// Whether a status is worth retrying (429, 500, 502, 503, 504).
bool retryable_status(long status);

// The delay before attempt `attempt` (1-based retry count): Retry-After when
// the response carries one (seconds, capped at max_backoff), else
// exponential backoff from initial_backoff.
std::chrono::milliseconds backoff_delay(const RetryPolicy& policy, int attempt,
                                        const HttpResponse* response);

// perform() with retries on 429/5xx and transient transport errors (a failure
// to connect at all is retried once, quickly: see connect_failure). When the
// request has a sink, `restart` is called before each new attempt so the
// sink can discard what it received (without restart, a request whose sink
// already received bytes is not retried).
HttpResponse perform_with_retries(HttpSession& session, const HttpRequest& request,
                                  const RetryPolicy& policy,
                                  const std::function<void()>& restart = {});

// Percent-encodes a query parameter value.
std::string url_escape(std::string_view s);

// The one place where strata turns a URL a registry sent (a Location header on
// a redirect or an upload session, a token realm, a Link to the next page)
// into the URL to request: `reference` resolved against `base`, the URL of
// the request whose response carried it, as RFC 3986 section 5.2 says
// (libcurl's URL API). "uploads/x" and "../x" are relative to base's path,
// "/v2/x" to its host, "//host/x" keeps its scheme, "?q" keeps its path.
// Throws RegistryError naming both when either is not a URL.
std::string resolve_url(std::string_view base, std::string_view reference);

// The URL a response answers: where redirects ended, else the request's URL.
// Relative references in the response resolve against it.
std::string response_url(const HttpRequest& request, const HttpResponse& response);

// url with `param` ("name=value", already escaped) added to its query, and
// without its fragment (never sent over HTTP).
std::string append_query(std::string_view url, std::string_view param);

} // namespace strata::registry
