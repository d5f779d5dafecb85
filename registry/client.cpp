#include "registry/client.hpp"

#include "formats/media_types.hpp"
#include "util/base64.hpp"
#include "util/log.hpp"

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <thread>

namespace strata::registry {

namespace {

using json = nlohmann::json;

std::string host_without_port(std::string_view host) {
    if (host.starts_with('[')) {
        auto end = host.find(']');
        return std::string(host.substr(1, end == std::string_view::npos ? host.size() : end - 1));
    }
    if (auto c = host.rfind(':'); c != std::string_view::npos) {
        return std::string(host.substr(0, c));
    }
    return std::string(host);
}

std::string accept_manifests() {
    return fmt::format("Accept: {}, {}, {}, {}", formats::media::oci_manifest,
                       formats::media::oci_index, formats::media::docker_manifest,
                       formats::media::docker_manifest_list);
}

// "MANIFEST_UNKNOWN: manifest unknown" from a distribution error body.
std::string error_detail(const HttpResponse& resp) {
    json j = json::parse(resp.body, nullptr, false);
    std::string out;
    if (!j.is_discarded() && j.is_object() && j.contains("errors") && j["errors"].is_array()) {
        for (const auto& e : j["errors"]) {
            if (!e.is_object()) {
                continue;
            }
            if (!out.empty()) {
                out += "; ";
            }
            std::string code = e.value("code", "");
            std::string msg = e.value("message", "");
            out += code.empty() ? msg : (msg.empty() ? code : code + ": " + msg);
        }
    }
    if (out.empty() && !resp.body.empty() && resp.body.size() < 200 &&
        std::all_of(resp.body.begin(), resp.body.end(),
                    [](unsigned char c) { return c >= 0x20 || c == '\n' || c == '\t'; })) {
        out = resp.body;
        while (!out.empty() && out.back() == '\n') {
            out.pop_back();
        }
    }
    return out;
}

std::string join(const std::vector<std::string>& v, std::string_view sep) {
    std::string out;
    for (const auto& s : v) {
        if (!out.empty()) {
            out += sep;
        }
        out += s;
    }
    return out;
}

} // namespace

std::string pull_scope(const std::string& repo) {
    return "repository:" + repo + ":pull";
}
std::string push_scope(const std::string& repo) {
    return "repository:" + repo + ":pull,push";
}

bool is_insecure_host(std::string_view registry) {
    std::string host = host_without_port(registry);
    if (host == "localhost" || host == "::1" || host.ends_with(".localhost")) {
        return true;
    }
    in_addr a{};
    if (::inet_pton(AF_INET, host.c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) == 127) {
        return true;
    }
    if (const char* env = std::getenv("STRATA_INSECURE_REGISTRIES"); env != nullptr) {
        std::stringstream ss(env);
        std::string item;
        while (std::getline(ss, item, ',')) {
            if (!item.empty() && (item == registry || item == host)) {
                return true;
            }
        }
    }
    return false;
}

std::string api_host(std::string_view registry) {
    if (registry == "docker.io" || registry == "index.docker.io") {
        return "registry-1.docker.io";
    }
    return std::string(registry);
}

std::optional<std::string> next_link(std::string_view h) {
    // <url>; rel="next", <url2>; rel="prev"
    size_t i = 0;
    while (i < h.size()) {
        auto lt = h.find('<', i);
        if (lt == std::string_view::npos) {
            break;
        }
        auto gt = h.find('>', lt);
        if (gt == std::string_view::npos) {
            break;
        }
        std::string url(h.substr(lt + 1, gt - lt - 1));
        auto end = h.find('<', gt);
        std::string_view params =
            h.substr(gt + 1, end == std::string_view::npos ? end : end - gt - 1);
        std::string p(params);
        p.erase(std::remove_if(p.begin(), p.end(), [](char c) { return c == ' ' || c == '"'; }),
                p.end());
        if (p.find("rel=next") != std::string::npos) {
            return url;
        }
        i = gt + 1;
    }
    return std::nullopt;
}

// Returns a borrowed session to the pool when it goes out of scope.
class Client::Lease {
public:
    explicit Lease(Client& c) : m_c(c), m_s(c.acquire()) {}
    ~Lease() { m_c.release(std::move(m_s)); }
    HttpSession& operator*() { return *m_s; }

private:
    Client& m_c;
    std::unique_ptr<HttpSession> m_s;
};

Client::Client(std::string registry, ClientOptions options)
    : m_registry(std::move(registry)), m_host(api_host(m_registry)), m_options(std::move(options)) {
    m_allow_http = m_options.insecure || !m_options.tls_verify || is_insecure_host(m_registry);
    if (m_allow_http) {
        m_options.http.tls_verify = false;
    } else {
        m_options.http.tls_verify = m_options.tls_verify;
    }
}

Client::~Client() = default;

std::unique_ptr<HttpSession> Client::acquire() {
    std::lock_guard lock(m_mu);
    if (!m_pool.empty()) {
        auto s = std::move(m_pool.back());
        m_pool.pop_back();
        return s;
    }
    return std::make_unique<HttpSession>(m_options.http);
}

void Client::release(std::unique_ptr<HttpSession> s) {
    std::lock_guard lock(m_mu);
    m_pool.push_back(std::move(s));
}

std::string Client::base_url() {
    Lease s(*this);
    ensure_ready(*s);
    std::lock_guard lock(m_mu);
    return m_scheme + "://" + m_host;
}

void Client::ensure_ready(HttpSession& s) {
    {
        std::lock_guard lock(m_mu);
        if (!m_scheme.empty()) {
            return;
        }
    }
    // Probe GET /v2/: https first; insecure registries fall back to http
    // when TLS cannot be spoken (Docker's order).
    auto probe = [&](const std::string& scheme) {
        HttpRequest req;
        req.url = scheme + "://" + m_host + "/v2/";
        req.max_body = 64 * 1024;
        return perform_with_retries(s, req, m_options.retry);
    };
    std::string scheme = "https";
    HttpResponse resp;
    try {
        resp = probe(scheme);
    } catch (const TransportError& e) {
        // Nothing listening (or no such host) is no reason to try plain HTTP
        // on the same port; a failed TLS handshake or garbled answer is.
        if (!m_allow_http || e.curl_code() == CURLE_COULDNT_CONNECT ||
            e.curl_code() == CURLE_COULDNT_RESOLVE_HOST ||
            e.curl_code() == CURLE_OPERATION_TIMEDOUT) {
            throw RegistryError(fmt::format("cannot reach registry {}: {}", m_registry, e.what()));
        }
        STRATA_LOG_DEBUG("{}: https failed ({}), trying http", m_registry, e.what());
        scheme = "http";
        try {
            resp = probe(scheme);
        } catch (const TransportError& e2) {
            throw RegistryError(fmt::format("cannot reach registry {}: {}", m_registry, e2.what()));
        }
    }
    if (resp.status == 401) {
        learn_challenge(scheme + "://" + m_host + "/v2/", resp);
    } else if (resp.status == 404) {
        throw RegistryError(fmt::format(
            "{}://{}/v2/ answered 404: {} does not speak the registry API (OCI distribution v2)",
            scheme, m_host, m_registry));
    }
    std::lock_guard lock(m_mu);
    m_scheme = scheme;
}

bool Client::learn_challenge(const std::string& request_url, const HttpResponse& resp) {
    std::vector<Challenge> challenges;
    for (const auto& h : resp.headers.get_all("www-authenticate")) {
        auto cs = parse_www_authenticate(h);
        challenges.insert(challenges.end(), cs.begin(), cs.end());
    }
    std::lock_guard lock(m_mu);
    for (const auto& c : challenges) {
        if (c.scheme == "bearer") {
            auto realm = c.params.find("realm");
            if (realm == c.params.end() || realm->second.empty()) {
                throw RegistryError(
                    fmt::format("registry {} sent a Bearer challenge without a realm", m_registry));
            }
            m_auth_scheme = "bearer";
            // A realm is a URL; a relative one is relative to the challenged request.
            m_realm = resolve_url(resp.effective_url.empty() ? request_url : resp.effective_url,
                                  realm->second);
            auto svc = c.params.find("service");
            m_service = svc == c.params.end() ? std::string() : svc->second;
            return true;
        }
    }
    for (const auto& c : challenges) {
        if (c.scheme == "basic") {
            m_auth_scheme = "basic";
            return m_options.credentials.has_value();
        }
    }
    return false;
}

std::string Client::fetch_token(HttpSession& s, const std::vector<std::string>& scopes) {
    std::string realm, service;
    {
        std::lock_guard lock(m_mu);
        realm = m_realm;
        service = m_service;
    }
    std::string url = realm;
    if (!service.empty()) {
        url = append_query(url, "service=" + url_escape(service));
    }
    for (const auto& sc : scopes) {
        url = append_query(url, "scope=" + url_escape(sc));
    }
    HttpRequest req;
    req.url = url;
    req.max_body = 1024 * 1024;
    if (const auto& c = m_options.credentials) {
        req.headers.push_back("Authorization: Basic " +
                              base64_encode(c->username + ":" + c->password));
    }
    HttpResponse resp;
    try {
        resp = perform_with_retries(s, req, m_options.retry);
    } catch (const TransportError& e) {
        throw RegistryError(
            fmt::format("cannot get a token for {} from {}: {}", m_registry, realm, e.what()));
    }
    if (resp.status == 401 || resp.status == 403) {
        throw UnauthorizedError(fmt::format(
            "{}: token server {} refused {} ({}){}", m_registry, realm,
            m_options.credentials ? "the credentials" : "anonymous access", resp.status,
            m_options.credentials ? "" : "; log in with `strata login " + m_registry + "`"));
    }
    if (!resp.ok()) {
        throw RegistryError(fmt::format("{}: token server {} answered HTTP {}: {}", m_registry,
                                        realm, resp.status, error_detail(resp)));
    }
    json j = json::parse(resp.body, nullptr, false);
    std::string token;
    if (!j.is_discarded() && j.is_object()) {
        if (j.contains("token") && j["token"].is_string()) {
            token = j["token"].get<std::string>();
        } else if (j.contains("access_token") && j["access_token"].is_string()) {
            token = j["access_token"].get<std::string>();
        }
    }
    if (token.empty()) {
        throw RegistryError(fmt::format("{}: token server {} sent no token", m_registry, realm));
    }
    long expires = 60;
    if (!j.is_discarded() && j.contains("expires_in") && j["expires_in"].is_number_integer()) {
        expires = std::max<long>(j["expires_in"].get<long>(), 10);
    }
    std::lock_guard lock(m_mu);
    m_tokens[join(scopes, " ")] =
        Token{token, std::chrono::steady_clock::now() + std::chrono::seconds(expires - 5)};
    return token;
}

std::optional<std::string>
Client::auth_header(HttpSession& s, const std::vector<std::string>& scopes, bool refresh) {
    std::string scheme;
    {
        std::lock_guard lock(m_mu);
        scheme = m_auth_scheme;
        if (scheme == "bearer" && !refresh) {
            auto it = m_tokens.find(join(scopes, " "));
            if (it != m_tokens.end() && it->second.expires > std::chrono::steady_clock::now()) {
                return "Authorization: Bearer " + it->second.value;
            }
        }
    }
    if (scheme == "basic") {
        if (!m_options.credentials) {
            return std::nullopt;
        }
        return "Authorization: Basic " + base64_encode(m_options.credentials->username + ":" +
                                                       m_options.credentials->password);
    }
    if (scheme == "bearer") {
        return "Authorization: Bearer " + fetch_token(s, scopes);
    }
    return std::nullopt;
}

HttpResponse Client::send(HttpSession& s, HttpRequest req, const std::vector<std::string>& scopes,
                          const RetryPolicy& policy, const std::function<void()>& restart) {
    ensure_ready(s);
    const std::vector<std::string> base_headers = req.headers;
    for (int attempt = 0;; ++attempt) {
        req.headers = base_headers;
        if (auto h = auth_header(s, scopes, attempt > 0)) {
            req.headers.push_back(*h);
        }
        HttpResponse resp;
        try {
            resp = perform_with_retries(s, req, policy, restart);
        } catch (const TransportError& e) {
            throw RegistryError(fmt::format("registry {}: {}", m_registry, e.what()));
        }
        if (resp.status != 401 || attempt > 0) {
            return resp;
        }
        std::string before;
        {
            std::lock_guard lock(m_mu);
            before = m_auth_scheme;
        }
        if (!learn_challenge(req.url, resp)) {
            return resp;
        }
        // Basic that was already sent, or nothing new learnt: give up.
        std::lock_guard lock(m_mu);
        if (m_auth_scheme == "basic" && before == "basic") {
            return resp;
        }
    }
}

void Client::check_blob_answer(const HttpResponse& resp, const std::string& what) {
    if (resp.status == 404) {
        throw NotFoundError(fmt::format("{}: blob unknown to the registry", what));
    }
    if (!resp.ok()) {
        fail(resp, what);
    }
}

[[noreturn]] void Client::fail(const HttpResponse& resp, const std::string& what) {
    std::string detail = error_detail(resp);
    std::string msg = fmt::format("{}: HTTP {}{}", what, resp.status,
                                  detail.empty() ? std::string() : " " + detail);
    if (resp.status == 401 || resp.status == 403) {
        bool anon = !m_options.credentials;
        throw UnauthorizedError(
            fmt::format("{}: unauthorized{}{}", what,
                        anon ? " (no credentials; run `strata login " + m_registry + "`)"
                             : " (the stored credentials were not accepted)",
                        detail.empty() ? std::string() : ": " + detail));
    }
    if (resp.status == 404) {
        throw NotFoundError(msg);
    }
    throw RegistryError(msg);
}

std::string Client::url(const std::string& path) {
    std::lock_guard lock(m_mu);
    return m_scheme + "://" + m_host + path;
}

void Client::ping() {
    Lease s(*this);
    ensure_ready(*s);
    HttpRequest req;
    req.url = url("/v2/");
    req.max_body = 64 * 1024;
    HttpResponse resp = send(*s, req, {});
    if (!resp.ok()) {
        fail(resp, fmt::format("registry {}", m_registry));
    }
}

RemoteManifest Client::get_manifest(const std::string& repo, const std::string& reference) {
    std::string what = fmt::format("manifest {}/{}{}{}", m_registry, repo,
                                   reference.starts_with("sha256:") ? "@" : ":", reference);
    Lease s(*this);
    ensure_ready(*s);
    HttpRequest req;
    req.url = url("/v2/" + repo + "/manifests/" + reference);
    req.headers.push_back(accept_manifests());
    req.max_body = m_options.max_manifest_size;
    HttpResponse resp;
    try {
        resp = send(*s, req, {pull_scope(repo)});
    } catch (const UnauthorizedError&) {
        throw;
    } catch (const RegistryError& e) {
        throw RegistryError(what + ": " + e.what());
    }
    if (resp.status == 404) {
        std::string detail = error_detail(resp);
        throw NotFoundError(fmt::format("{}: manifest unknown (no such image or tag){}", what,
                                        detail.empty() ? "" : " [" + detail + "]"));
    }
    if (!resp.ok()) {
        fail(resp, what);
    }
    formats::Digest digest = formats::Digest::of(resp.body);
    if (reference.starts_with("sha256:") && digest.str() != reference) {
        throw DigestMismatchError(
            fmt::format("{}: the registry sent bytes that hash to {}", what, digest.str()));
    }
    std::string media_type = resp.headers.get("content-type").value_or("");
    if (auto semi = media_type.find(';'); semi != std::string::npos) {
        media_type.resize(semi);
    }
    json j = json::parse(resp.body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        throw RegistryError(what + ": not a JSON document");
    }
    if (j.contains("mediaType") && j["mediaType"].is_string()) {
        // The document's own media type is authoritative when present.
        media_type = j["mediaType"].get<std::string>();
    } else if (media_type != formats::media::oci_manifest &&
               media_type != formats::media::oci_index) {
        // OCI documents may omit mediaType: tell a manifest from an index by its fields.
        media_type = j.contains("manifests") ? std::string(formats::media::oci_index)
                                             : std::string(formats::media::oci_manifest);
    }
    return RemoteManifest{media_type, std::move(resp.body), digest};
}

std::optional<formats::Digest> Client::head_manifest(const std::string& repo,
                                                     const std::string& reference) {
    Lease s(*this);
    ensure_ready(*s);
    HttpRequest req;
    req.method = "HEAD";
    req.url = url("/v2/" + repo + "/manifests/" + reference);
    req.headers.push_back(accept_manifests());
    HttpResponse resp = send(*s, req, {pull_scope(repo)});
    if (resp.status == 404) {
        return std::nullopt;
    }
    if (!resp.ok()) {
        fail(resp, fmt::format("manifest {}/{}:{}", m_registry, repo, reference));
    }
    if (auto d = resp.headers.get("docker-content-digest")) {
        return formats::Digest::try_parse(*d);
    }
    return std::nullopt;
}

formats::Digest Client::put_manifest(const std::string& repo, const std::string& reference,
                                     const std::string& media_type, const std::string& bytes) {
    std::string what = fmt::format("pushing manifest {}/{}:{}", m_registry, repo, reference);
    Lease s(*this);
    ensure_ready(*s);
    HttpRequest req;
    req.method = "PUT";
    req.url = url("/v2/" + repo + "/manifests/" + reference);
    req.headers.push_back("Content-Type: " + media_type);
    req.body = bytes;
    HttpResponse resp = send(*s, req, {push_scope(repo)});
    if (!resp.ok()) {
        fail(resp, what);
    }
    formats::Digest mine = formats::Digest::of(bytes);
    if (auto d = resp.headers.get("docker-content-digest")) {
        if (auto theirs = formats::Digest::try_parse(*d); theirs && *theirs != mine) {
            throw DigestMismatchError(
                fmt::format("{}: the registry stored it as {} but its bytes hash to {}", what,
                            theirs->str(), mine.str()));
        }
    }
    return mine;
}

std::optional<std::uint64_t> Client::blob_size(const std::string& repo,
                                               const formats::Digest& digest) {
    Lease s(*this);
    ensure_ready(*s);
    HttpRequest req;
    req.method = "HEAD";
    req.url = url("/v2/" + repo + "/blobs/" + digest.str());
    HttpResponse resp = send(*s, req, {pull_scope(repo)});
    if (resp.status == 404) {
        return std::nullopt;
    }
    if (!resp.ok()) {
        fail(resp, fmt::format("blob {}/{}@{}", m_registry, repo, digest.str()));
    }
    auto len = resp.headers.get("content-length");
    return len ? std::strtoull(len->c_str(), nullptr, 10) : 0;
}

void Client::fetch_blob(const std::string& repo, const formats::Digest& digest,
                        std::optional<std::uint64_t> expected_size,
                        const std::function<void(const char*, std::size_t)>& sink,
                        const std::function<void()>& restart, bool verify) {
    std::string what = fmt::format("blob {}/{}@{}", m_registry, repo, digest.str());
    Lease s(*this);
    ensure_ready(*s);
    std::optional<formats::DigestHasher> hasher;
    hasher.emplace();
    std::uint64_t received = 0;
    HttpRequest req;
    req.url = url("/v2/" + repo + "/blobs/" + digest.str());
    req.max_body = 64 * 1024;
    req.sink = [&](const char* d, std::size_t n) {
        received += n;
        if (expected_size && received > *expected_size) {
            throw DigestMismatchError(
                fmt::format("{}: the registry sent more than the {} bytes the manifest declares",
                            what, *expected_size));
        }
        if (verify) {
            hasher->update(d, n);
        }
        sink(d, n);
    };
    auto again = [&] {
        hasher.emplace();
        received = 0;
        if (restart) {
            restart();
        }
    };
    HttpResponse resp;
    try {
        resp = send(*s, req, {pull_scope(repo)}, m_options.retry, again);
    } catch (const DigestMismatchError&) {
        throw;
    } catch (const UnauthorizedError&) {
        throw;
    } catch (const RegistryError& e) {
        throw RegistryError(what + ": " + e.what());
    }
    check_blob_answer(resp, what);
    if (expected_size && received != *expected_size) {
        throw DigestMismatchError(fmt::format("{}: received {} bytes, the manifest declares {}",
                                              what, received, *expected_size));
    }
    if (verify) {
        formats::Digest got = hasher->finish();
        if (got != digest) {
            throw DigestMismatchError(
                fmt::format("{}: the registry sent bytes that hash to {}", what, got.str()));
        }
    }
}

std::uint64_t Client::fetch_blob_range(const std::string& repo, const formats::Digest& digest,
                                       std::uint64_t offset, std::uint64_t length,
                                       const std::function<void(const char*, std::size_t)>& sink) {
    std::string what = fmt::format("blob {}/{}@{} bytes {}..{}", m_registry, repo, digest.str(),
                                   offset, offset + length);
    if (length == 0) {
        return 0;
    }
    Lease s(*this);
    ensure_ready(*s);
    std::uint64_t received = 0;
    HttpRequest req;
    req.url = url("/v2/" + repo + "/blobs/" + digest.str());
    req.headers.push_back(fmt::format("Range: bytes={}-{}", offset, offset + length - 1));
    req.max_body = 64 * 1024;
    req.sink = [&](const char* d, std::size_t n) {
        if (received + n > length) {
            throw RegistryError(fmt::format(
                "{}: the registry sent more bytes than asked for (it does not answer range "
                "requests: pull the image whole, without --lazy)",
                what));
        }
        received += n;
        sink(d, n);
    };
    HttpResponse resp;
    try {
        // No restart: bytes given to sink stay given; a transfer cut short
        // returns what arrived, and the caller asks for the rest.
        resp = send(*s, req, {pull_scope(repo)}, m_options.retry, {});
    } catch (const UnauthorizedError&) {
        throw;
    } catch (const TransportError& e) {
        if (received > 0) {
            return received;
        }
        throw RegistryError(what + ": " + e.what());
    } catch (const RegistryError& e) {
        throw RegistryError(what + ": " + e.what());
    }
    check_blob_answer(resp, what);
    if (resp.status != 206 && !(offset == 0 && received == length)) {
        throw RegistryError(fmt::format("{}: the registry answered {} to a range request, not 206",
                                        what, resp.status));
    }
    if (auto cr = resp.headers.get("content-range")) {
        unsigned long long b = 0, e = 0;
        if (std::sscanf(cr->c_str(), "bytes %llu-%llu/", &b, &e) != 2 || b != offset ||
            e + 1 != offset + length) {
            throw RegistryError(fmt::format("{}: the registry sent Content-Range \"{}\"", what, *cr));
        }
    }
    if (received != length) {
        throw RegistryError(
            fmt::format("{}: the registry sent {} bytes of the {} asked for", what, received, length));
    }
    return received;
}

BlobPush Client::upload_once(HttpSession& s, const std::string& repo, const formats::Digest& digest,
                             std::uint64_t size, int fd,
                             const std::vector<std::string>& mount_from) {
    std::string what = fmt::format("uploading blob {} to {}/{}", digest.str(), m_registry, repo);
    std::optional<std::string> location;
    for (const auto& from : mount_from) {
        if (from == repo) {
            continue;
        }
        HttpRequest req;
        req.method = "POST";
        req.url = url("/v2/" + repo + "/blobs/uploads/?mount=" + url_escape(digest.str()) +
                      "&from=" + url_escape(from));
        HttpResponse resp = send(s, req, {push_scope(repo), pull_scope(from)});
        if (resp.status == 201) {
            STRATA_LOG_DEBUG("mounted {} from {} into {}/{}", digest.str(), from, m_registry, repo);
            return BlobPush::mounted;
        }
        if (resp.status == 202) {
            // The registry could not mount and opened an upload session instead.
            if (auto loc = resp.headers.get("location")) {
                location = resolve_url(response_url(req, resp), *loc);
                break;
            }
        }
    }
    if (!location) {
        HttpRequest req;
        req.method = "POST";
        req.url = url("/v2/" + repo + "/blobs/uploads/");
        HttpResponse resp = send(s, req, {push_scope(repo)});
        if (resp.status != 202) {
            fail(resp, what);
        }
        auto loc = resp.headers.get("location");
        if (!loc) {
            throw RegistryError(what + ": the registry opened an upload without a Location");
        }
        location = resolve_url(response_url(req, resp), *loc);
    }
    RetryPolicy once = m_options.retry;
    once.max_attempts = 1; // a failed upload restarts from a new session
    std::uint64_t chunk = m_options.chunk_size;
    if (chunk != 0 && size > chunk) {
        for (std::uint64_t off = 0; off < size; off += chunk) {
            std::uint64_t len = std::min(chunk, size - off);
            HttpRequest req;
            req.method = "PATCH";
            req.url = *location;
            req.headers.push_back("Content-Type: application/octet-stream");
            req.headers.push_back(fmt::format("Content-Range: {}-{}", off, off + len - 1));
            req.body_fd = fd;
            req.body_offset = off;
            req.body_size = len;
            req.follow_redirects = false;
            HttpResponse resp = send(s, req, {push_scope(repo)}, once);
            if (resp.status != 202) {
                fail(resp, fmt::format("{} (chunk at offset {})", what, off));
            }
            if (auto loc = resp.headers.get("location")) {
                location = resolve_url(response_url(req, resp), *loc);
            }
        }
        HttpRequest req;
        req.method = "PUT";
        req.url = append_query(*location, "digest=" + url_escape(digest.str()));
        req.headers.push_back("Content-Type: application/octet-stream");
        req.follow_redirects = false;
        HttpResponse resp = send(s, req, {push_scope(repo)}, once);
        if (resp.status != 201 && resp.status != 204) {
            fail(resp, what);
        }
        return BlobPush::uploaded;
    }
    HttpRequest req;
    req.method = "PUT";
    req.url = append_query(*location, "digest=" + url_escape(digest.str()));
    req.headers.push_back("Content-Type: application/octet-stream");
    req.body_fd = fd;
    req.body_offset = 0;
    req.body_size = size;
    req.follow_redirects = false;
    HttpResponse resp = send(s, req, {push_scope(repo)}, once);
    if (resp.status != 201 && resp.status != 204) {
        fail(resp, what);
    }
    return BlobPush::uploaded;
}

BlobPush Client::push_blob(const std::string& repo, const formats::Digest& digest,
                           std::uint64_t size, int fd, const std::vector<std::string>& mount_from) {
    if (blob_size(repo, digest)) {
        return BlobPush::existed;
    }
    Lease s(*this);
    ensure_ready(*s);
    for (int attempt = 1;; ++attempt) {
        try {
            return upload_once(*s, repo, digest, size, fd, mount_from);
        } catch (const UnauthorizedError&) {
            throw;
        } catch (const NotFoundError&) {
            throw;
        } catch (const TransportError& e) {
            if (e.connect_failure() || attempt >= m_options.retry.max_attempts) {
                throw; // already retried once, quickly, by perform_with_retries
            }
            auto delay = backoff_delay(m_options.retry, attempt, nullptr);
            STRATA_LOG_INFO("{}; restarting the upload in {} ms", e.what(), delay.count());
            std::this_thread::sleep_for(delay);
        } catch (const RegistryError& e) {
            if (attempt >= m_options.retry.max_attempts) {
                throw;
            }
            auto delay = backoff_delay(m_options.retry, attempt, nullptr);
            STRATA_LOG_INFO("{}; restarting the upload in {} ms", e.what(), delay.count());
            std::this_thread::sleep_for(delay);
        }
    }
}

std::vector<std::string> Client::list_paged(const std::string& first_path, const std::string& key,
                                            const std::vector<std::string>& scopes) {
    Lease s(*this);
    ensure_ready(*s);
    std::vector<std::string> out;
    std::string next = url(first_path);
    for (int page = 0; page < 100000; ++page) {
        HttpRequest req;
        req.url = next;
        req.max_body = 16 * 1024 * 1024;
        HttpResponse resp = send(*s, req, scopes);
        if (!resp.ok()) {
            fail(resp, fmt::format("listing {}{}", m_registry, first_path));
        }
        json j = json::parse(resp.body, nullptr, false);
        if (j.is_discarded() || !j.is_object()) {
            throw RegistryError(fmt::format("{}: not a JSON object", req.url));
        }
        if (auto it = j.find(key); it != j.end() && it->is_array()) {
            for (const auto& v : *it) {
                if (v.is_string()) {
                    out.push_back(v.get<std::string>());
                }
            }
        }
        auto link = resp.headers.get("link");
        auto target = link ? next_link(*link) : std::nullopt;
        if (!target) {
            return out;
        }
        next = resolve_url(response_url(req, resp), *target);
    }
    throw RegistryError(fmt::format("listing {}{}: too many pages", m_registry, first_path));
}

std::vector<std::string> Client::catalog(int page_size) {
    return list_paged(fmt::format("/v2/_catalog?n={}", page_size), "repositories",
                      {"registry:catalog:*"});
}

std::vector<std::string> Client::tags(const std::string& repo, int page_size) {
    return list_paged(fmt::format("/v2/{}/tags/list?n={}", repo, page_size), "tags",
                      {pull_scope(repo)});
}

} // namespace strata::registry
