#include "registry/http.hpp"

#include "util/libcurl.hpp"
#include "util/log.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <unistd.h>

namespace strata::registry {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() &&
           (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
        s.remove_suffix(1);
    }
    return s;
}

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK) {
            throw RegistryError("cannot initialise libcurl: " + libcurl_load_error());
        }
    });
}

// State shared with the C callbacks of one transfer.
struct Transfer {
    const HttpRequest* request = nullptr;
    HttpResponse* response = nullptr;
    std::exception_ptr error;
    // Request body source.
    std::string_view memory;
    int fd = -1;
    std::uint64_t base = 0;
    std::uint64_t size = 0;
    std::uint64_t pos = 0;
};

size_t header_cb(char* data, size_t size, size_t n, void* user) noexcept {
    auto* t = static_cast<Transfer*>(user);
    std::string_view line(data, size * n);
    try {
        if (line.starts_with("HTTP/")) {
            // A new response (after 100 Continue or a redirect): start over.
            t->response->headers.clear();
            t->response->body.clear();
            auto sp = line.find(' ');
            t->response->status =
                sp == std::string_view::npos ? 0 : std::strtol(line.data() + sp + 1, nullptr, 10);
        } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
            t->response->headers.add(lower(trim(line.substr(0, colon))),
                                     std::string(trim(line.substr(colon + 1))));
        }
    } catch (...) {
        t->error = std::current_exception();
        return 0;
    }
    return size * n;
}

size_t write_cb(char* data, size_t size, size_t n, void* user) noexcept {
    auto* t = static_cast<Transfer*>(user);
    size_t len = size * n;
    try {
        long status = t->response->status;
        if (status >= 300 && status < 400 && t->request->follow_redirects) {
            return len; // body of a redirect that curl follows
        }
        if (status >= 200 && status < 300 && t->request->sink) {
            t->request->sink(data, len);
        } else {
            if (t->response->body.size() + len > t->request->max_body) {
                throw RegistryError(fmt::format("response from {} is larger than {} bytes",
                                                t->request->url, t->request->max_body));
            }
            t->response->body.append(data, len);
        }
    } catch (...) {
        t->error = std::current_exception();
        return 0; // aborts the transfer with CURLE_WRITE_ERROR
    }
    return len;
}

size_t read_cb(char* buffer, size_t size, size_t n, void* user) noexcept {
    auto* t = static_cast<Transfer*>(user);
    size_t want = std::min<std::uint64_t>(size * n, t->size - t->pos);
    if (want == 0) {
        return 0;
    }
    if (t->fd < 0) {
        std::memcpy(buffer, t->memory.data() + t->pos, want);
        t->pos += want;
        return want;
    }
    for (;;) {
        ssize_t got = ::pread(t->fd, buffer, want, static_cast<off_t>(t->base + t->pos));
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            int err = got < 0 ? errno : EIO;
            t->error = std::make_exception_ptr(
                SysError("read request body from", "fd " + std::to_string(t->fd), err));
            return CURL_READFUNC_ABORT;
        }
        t->pos += static_cast<std::uint64_t>(got);
        return static_cast<size_t>(got);
    }
}

int seek_cb(void* user, curl_off_t offset, int origin) noexcept {
    auto* t = static_cast<Transfer*>(user);
    if (origin != SEEK_SET || offset < 0 || static_cast<std::uint64_t>(offset) > t->size) {
        return CURL_SEEKFUNC_CANTSEEK;
    }
    t->pos = static_cast<std::uint64_t>(offset);
    return CURL_SEEKFUNC_OK;
}

// host and port of an http(s) URL ("[::1]:5000"), the port defaulted from
// the scheme, as Go's dialer names the address.
std::pair<std::string, std::string> host_port_of(std::string_view url) {
    std::string_view scheme = "http";
    if (auto p = url.find("://"); p != std::string_view::npos) {
        scheme = url.substr(0, p);
        url.remove_prefix(p + 3);
    }
    url = url.substr(0, url.find_first_of("/?#"));
    if (auto at = url.rfind('@'); at != std::string_view::npos) {
        url.remove_prefix(at + 1);
    }
    std::string_view host = url;
    std::string_view port;
    if (!url.empty() && url.front() == '[') {
        auto close = url.find(']');
        host = url.substr(0, close == std::string_view::npos ? url.size() : close + 1);
        if (close != std::string_view::npos && close + 1 < url.size() && url[close + 1] == ':') {
            port = url.substr(close + 2);
        }
    } else if (auto colon = url.rfind(':'); colon != std::string_view::npos) {
        host = url.substr(0, colon);
        port = url.substr(colon + 1);
    }
    std::string p(port);
    if (p.empty()) {
        p = lower(scheme) == "https" ? "443" : "80";
    }
    return {std::string(host), p};
}

// Go's wording for a failed dial (what Docker prints): "dial tcp
// 127.0.0.1:5999: connect: connection refused", "dial tcp: lookup
// nosuch.example: no such host".
std::string dial_error(CURLcode rc, std::string_view url, long os_errno,
                       const std::string& detail) {
    auto [host, port] = host_port_of(url);
    if (rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_RESOLVE_PROXY) {
        std::string host_only = host;
        if (host_only.size() > 1 && host_only.front() == '[') {
            host_only = host_only.substr(1, host_only.size() - 2);
        }
        return fmt::format("dial tcp: lookup {}: no such host ({})", host_only, detail);
    }
    std::string cause;
    if (os_errno != 0) {
        cause = std::strerror(static_cast<int>(os_errno));
        if (!cause.empty()) {
            cause[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(cause[0])));
        }
    } else {
        cause = detail;
    }
    return fmt::format("dial tcp {}:{}: connect: {}", host, port, cause);
}

bool is_tls_code(CURLcode c) {
    switch (c) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        return true;
    default:
        return false;
    }
}

} // namespace

bool TransportError::transient() const noexcept {
    switch (static_cast<CURLcode>(m_curl_code)) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_COULDNT_RESOLVE_HOST:
        return true;
    default:
        return false;
    }
}

bool TransportError::connect_failure() const noexcept {
    switch (static_cast<CURLcode>(m_curl_code)) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return true;
    default:
        return false;
    }
}

void Headers::add(std::string name, std::string value) {
    m_items.emplace_back(std::move(name), std::move(value));
}

std::optional<std::string> Headers::get(std::string_view name) const {
    std::string key = lower(name);
    for (const auto& [k, v] : m_items) {
        if (k == key) {
            return v;
        }
    }
    return std::nullopt;
}

std::vector<std::string> Headers::get_all(std::string_view name) const {
    std::string key = lower(name);
    std::vector<std::string> out;
    for (const auto& [k, v] : m_items) {
        if (k == key) {
            out.push_back(v);
        }
    }
    return out;
}

HttpSession::HttpSession(HttpOptions options) : m_options(std::move(options)) {
    global_init();
    m_curl = curl_easy_init();
    if (m_curl == nullptr) {
        throw RegistryError("cannot create a libcurl handle" +
                            (libcurl_load_error().empty() ? "" : ": " + libcurl_load_error()));
    }
}

HttpSession::~HttpSession() {
    curl_easy_cleanup(static_cast<CURL*>(m_curl));
}

HttpResponse HttpSession::perform(const HttpRequest& req) {
    CURL* h = static_cast<CURL*>(m_curl);
    curl_easy_reset(h); // keeps the connection cache
    HttpResponse resp;
    Transfer t;
    t.request = &req;
    t.response = &resp;
    bool has_body = false;
    if (req.body_fd >= 0) {
        t.fd = req.body_fd;
        t.base = req.body_offset;
        t.size = req.body_size;
        has_body = true;
    } else if (!req.body.empty() || req.method == "PUT" || req.method == "PATCH") {
        t.memory = req.body;
        t.size = req.body.size();
        has_body = true;
    }

    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(h, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, m_options.user_agent.c_str());
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT,
                     static_cast<long>(m_options.connect_timeout.count()));
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(m_options.stall_timeout.count()));
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, m_options.tls_verify ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, m_options.tls_verify ? 2L : 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, req.follow_redirects ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
    // A redirected POST stays a POST (301/302/303), as registries expect.
    curl_easy_setopt(h, CURLOPT_POSTREDIR, static_cast<long>(CURL_REDIR_POST_ALL));
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 2L * 1024 * 1024);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);

    if (req.method == "HEAD") {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (req.method == "POST") {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        if (has_body) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t.size));
        } else {
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        }
    } else if (req.method == "PUT" || req.method == "PATCH") {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(t.size));
        if (req.method == "PATCH") {
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PATCH");
        }
    } else if (req.method != "GET") {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    }
    if (has_body) {
        curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
        curl_easy_setopt(h, CURLOPT_READDATA, &t);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, &t);
    }

    curl_slist* list = nullptr;
    auto free_list = [&] { curl_slist_free_all(list); };
    for (const auto& hd : req.headers) {
        list = curl_slist_append(list, hd.c_str());
    }
    // No "Expect: 100-continue" round trip before uploads.
    list = curl_slist_append(list, "Expect:");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);

    CURLcode rc = curl_easy_perform(h);
    free_list();
    if (t.error) {
        std::rethrow_exception(t.error);
    }
    if (rc != CURLE_OK) {
        std::string detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
        if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
            rc == CURLE_COULDNT_RESOLVE_PROXY) {
            long os_errno = 0;
            curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
            char* eff = nullptr;
            std::string where = req.url;
            if (curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &eff) == CURLE_OK && eff != nullptr) {
                where = eff; // after a redirect: the host that refused
            }
            detail = dial_error(rc, where, os_errno, detail);
        }
        throw TransportError(fmt::format("{} {}: {}", req.method, req.url, detail),
                             static_cast<int>(rc), is_tls_code(rc));
    }
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    resp.status = code;
    char* eff = nullptr;
    if (curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &eff) == CURLE_OK && eff != nullptr) {
        resp.effective_url = eff;
    }
    STRATA_LOG_TRACE("{} {} -> {}", req.method, req.url, resp.status);
    return resp;
}

bool retryable_status(long status) {
    return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

std::chrono::milliseconds backoff_delay(const RetryPolicy& policy, int attempt,
                                        const HttpResponse* response) {
    if (response != nullptr) {
        if (auto ra = response->headers.get("retry-after")) {
            char* end = nullptr;
            long secs = std::strtol(ra->c_str(), &end, 10);
            if (end != ra->c_str() && *end == '\0' && secs >= 0) {
                return std::min(std::chrono::milliseconds(secs * 1000), policy.max_backoff);
            }
        }
    }
    auto d = policy.initial_backoff;
    for (int i = 1; i < attempt && d < policy.max_backoff; ++i) {
        d *= 2;
    }
    return std::min(d, policy.max_backoff);
}

HttpResponse perform_with_retries(HttpSession& session, const HttpRequest& request,
                                  const RetryPolicy& policy, const std::function<void()>& restart) {
    bool delivered = false;
    HttpRequest req = request;
    if (request.sink) {
        req.sink = [&](const char* d, std::size_t n) {
            delivered = true;
            request.sink(d, n);
        };
    }
    int connect_failures = 0;
    for (int attempt = 1;; ++attempt) {
        bool last = attempt >= policy.max_attempts;
        if (attempt > 1 && delivered && restart) {
            restart();
            delivered = false;
        }
        try {
            HttpResponse resp = session.perform(req);
            if (!retryable_status(resp.status) || last) {
                return resp;
            }
            auto delay = backoff_delay(policy, attempt, &resp);
            STRATA_LOG_INFO("{} {}: HTTP {}, retrying in {} ms (attempt {}/{})", req.method,
                            req.url, resp.status, delay.count(), attempt + 1, policy.max_attempts);
            std::this_thread::sleep_for(delay);
        } catch (const TransportError& e) {
            if (!e.transient() || last || (delivered && !restart)) {
                throw;
            }
            if (e.connect_failure()) {
                // Nothing listens (or no such host): one quick retry, not
                // seconds of backoff.
                if (++connect_failures >= policy.connect_attempts) {
                    throw;
                }
                STRATA_LOG_INFO("{}; retrying in {} ms", e.what(), policy.connect_backoff.count());
                std::this_thread::sleep_for(policy.connect_backoff);
                continue;
            }
            auto delay = backoff_delay(policy, attempt, nullptr);
            STRATA_LOG_INFO("{}; retrying in {} ms (attempt {}/{})", e.what(), delay.count(),
                            attempt + 1, policy.max_attempts);
            std::this_thread::sleep_for(delay);
        }
    }
}

std::string url_escape(std::string_view s) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

namespace {

struct UrlHandle {
    CURLU* u = curl_url();
    UrlHandle() {
        if (u == nullptr) {
            throw RegistryError("cannot parse URLs: libcurl is not available" +
                                (libcurl_load_error().empty() ? "" : ": " + libcurl_load_error()));
        }
    }
    UrlHandle(const UrlHandle&) = delete;
    UrlHandle& operator=(const UrlHandle&) = delete;
    ~UrlHandle() { curl_url_cleanup(u); }

    std::string get() const {
        char* out = nullptr;
        CURLUcode rc = curl_url_get(u, CURLUPART_URL, &out, 0);
        if (rc != CURLUE_OK) {
            throw RegistryError(std::string("cannot form a URL: ") + curl_url_strerror(rc));
        }
        std::string s(out);
        curl_free(out);
        return s;
    }
};

} // namespace

std::string resolve_url(std::string_view base, std::string_view reference) {
    UrlHandle h;
    std::string b(base), r(reference);
    if (CURLUcode rc = curl_url_set(h.u, CURLUPART_URL, b.c_str(), 0); rc != CURLUE_OK) {
        throw RegistryError(fmt::format("{} is not a URL: {}", b, curl_url_strerror(rc)));
    }
    // An empty reference is the base itself (RFC 3986 section 5.2.2, without
    // its fragment), which curl_url_set would refuse.
    if (!r.empty()) {
        if (CURLUcode rc = curl_url_set(h.u, CURLUPART_URL, r.c_str(), 0); rc != CURLUE_OK) {
            throw RegistryError(
                fmt::format("cannot resolve \"{}\" against {}: {}", r, b, curl_url_strerror(rc)));
        }
    }
    curl_url_set(h.u, CURLUPART_FRAGMENT, nullptr, 0);
    return h.get();
}

std::string response_url(const HttpRequest& request, const HttpResponse& response) {
    return response.effective_url.empty() ? request.url : response.effective_url;
}

std::string append_query(std::string_view url, std::string_view param) {
    UrlHandle h;
    std::string u(url);
    if (CURLUcode rc = curl_url_set(h.u, CURLUPART_URL, u.c_str(), 0); rc != CURLUE_OK) {
        throw RegistryError(fmt::format("{} is not a URL: {}", u, curl_url_strerror(rc)));
    }
    // Setting CURLUPART_QUERY would re-case the query's percent-escapes
    // (libcurl 7.88): the parameter is added to the URL's text instead, and
    // the result parsed again.
    curl_url_set(h.u, CURLUPART_FRAGMENT, nullptr, 0);
    char* query = nullptr;
    bool has_query = curl_url_get(h.u, CURLUPART_QUERY, &query, 0) == CURLUE_OK &&
                     query != nullptr && query[0] != '\0';
    bool ends_with_amp = has_query && std::string_view(query).ends_with('&');
    curl_free(query);
    std::string out = h.get();
    if (!out.empty() && out.back() == '?') {
        out.pop_back();
    }
    out += has_query ? (ends_with_amp ? "" : "&") : "?";
    out += param;
    UrlHandle check;
    if (CURLUcode rc = curl_url_set(check.u, CURLUPART_URL, out.c_str(), 0); rc != CURLUE_OK) {
        throw RegistryError(
            fmt::format("cannot add {} to {}: {}", param, u, curl_url_strerror(rc)));
    }
    return out;
}

} // namespace strata::registry
