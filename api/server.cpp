// Listeners, connections and HTTP/1.1 through Boost.Beast (api/http.hpp).
#include "api/http.hpp"

#include "api/tls.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

namespace strata::api {

namespace net = boost::asio;
namespace http = boost::beast::http;
using Socket = net::local::stream_protocol::socket;

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// Go's url.QueryUnescape (plus_as_space) / PathUnescape: a bad escape is a 400.
std::string unescape(std::string_view s, bool plus_as_space) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%') {
            int hi = i + 2 < s.size() ? hex_value(s[i + 1]) : -1;
            int lo = i + 2 < s.size() ? hex_value(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                throw HttpError(
                    400, "invalid URL escape \"" +
                             std::string(s.substr(i, std::min<std::size_t>(3, s.size() - i))) +
                             "\"");
            }
            out += static_cast<char>(hi * 16 + lo);
            i += 2;
        } else if (plus_as_space && s[i] == '+') {
            out += ' ';
        } else {
            out += s[i];
        }
    }
    return out;
}

std::vector<std::string> split_path(std::string_view path) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < path.size()) {
        if (path[i] == '/') {
            ++i;
            continue;
        }
        std::size_t j = path.find('/', i);
        if (j == std::string_view::npos) {
            j = path.size();
        }
        out.emplace_back(path.substr(i, j - i));
        i = j;
    }
    return out;
}

// "1.41" < "1.5"? Versions compare part by part as numbers (versions.LessThan).
int compare_versions(std::string_view a, std::string_view b) {
    while (!a.empty() || !b.empty()) {
        auto take = [](std::string_view& s) {
            std::size_t dot = s.find('.');
            std::string_view part = s.substr(0, dot);
            s = dot == std::string_view::npos ? std::string_view{} : s.substr(dot + 1);
            long v = 0;
            for (char c : part) {
                v = v * 10 + (c - '0');
            }
            return v;
        };
        long x = take(a);
        long y = take(b);
        if (x != y) {
            return x < y ? -1 : 1;
        }
    }
    return 0;
}

bool match_segments(const std::vector<std::string>& pattern, std::size_t pi,
                    const std::vector<std::string>& path, std::size_t si,
                    std::map<std::string, std::string>& params) {
    if (pi == pattern.size()) {
        return si == path.size();
    }
    const std::string& p = pattern[pi];
    if (p.size() > 3 && p.front() == '{' && p.ends_with("*}")) {
        std::string name = p.substr(1, p.size() - 3);
        // Greedy from the longest: "/images/a/json/json" names "a/json".
        for (std::size_t end = path.size(); end > si; --end) {
            if (match_segments(pattern, pi + 1, path, end, params)) {
                std::string v;
                for (std::size_t k = si; k < end; ++k) {
                    v += (k > si ? "/" : "") + path[k];
                }
                params[name] = v;
                return true;
            }
        }
        return false;
    }
    if (si == path.size()) {
        return false;
    }
    if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
        if (!match_segments(pattern, pi + 1, path, si + 1, params)) {
            return false;
        }
        params[p.substr(1, p.size() - 2)] = path[si];
        return true;
    }
    return p == path[si] && match_segments(pattern, pi + 1, path, si + 1, params);
}

} // namespace

std::optional<std::string> Request::maybe_query(const std::string& key) const {
    auto [b, e] = query.equal_range(key);
    if (b == e) {
        return std::nullopt;
    }
    return std::prev(e)->second;
}

bool Request::query_bool(const std::string& key) const {
    auto v = maybe_query(key);
    if (!v) {
        return false;
    }
    std::string s = *v;
    for (auto& c : s) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return !(s.empty() || s == "0" || s == "no" || s == "false" || s == "none");
}

std::int64_t Request::query_int(const std::string& key, std::int64_t fallback) const {
    auto v = maybe_query(key);
    if (!v || v->empty()) {
        return fallback;
    }
    try {
        std::size_t used = 0;
        long long n = std::stoll(*v, &used);
        if (used == v->size()) {
            return n;
        }
    } catch (const std::exception&) {
    }
    throw HttpError(400, "strconv.ParseInt: parsing \"" + *v + "\": invalid syntax");
}

std::vector<std::string> Request::query_filters() const {
    std::vector<std::string> out;
    auto text = maybe_query("filters");
    if (!text || text->empty()) {
        return out;
    }
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(*text);
    } catch (const std::exception& e) {
        throw HttpError(400, "invalid filter: " + std::string(e.what()));
    }
    if (!j.is_object()) {
        throw HttpError(400, "invalid filter: not a JSON object");
    }
    for (const auto& [key, values] : j.items()) {
        if (values.is_object()) { // {"key": {"value": true}}
            for (const auto& [v, on] : values.items()) {
                if (!on.is_boolean()) {
                    throw HttpError(400, "invalid filter: " + key);
                }
                if (on.get<bool>()) {
                    out.push_back(key + "=" + v);
                }
            }
        } else if (values.is_array()) { // API < 1.22: {"key": ["value"]}
            for (const auto& v : values) {
                if (!v.is_string()) {
                    throw HttpError(400, "invalid filter: " + key);
                }
                out.push_back(key + "=" + v.get<std::string>());
            }
        } else {
            throw HttpError(400, "invalid filter: " + key);
        }
    }
    return out;
}

void Exchange::respond_json(int status, const nlohmann::ordered_json& body) {
    // Strings that are not UTF-8 (a file name in a container's changes, a
    // command's argument) as dockerd's encoding/json writes them: each bad
    // byte a U+FFFD, never a failed response.
    respond(status, "application/json",
            body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n");
}

void Exchange::respond_error(int status, const std::string& message) {
    respond_json(status, nlohmann::ordered_json{{"message", message}});
}

std::string mux_frame(int stream, std::string_view payload) {
    std::string out(8, '\0');
    out[0] = static_cast<char>(stream);
    auto n = static_cast<std::uint32_t>(payload.size());
    out[4] = static_cast<char>((n >> 24) & 0xff);
    out[5] = static_cast<char>((n >> 16) & 0xff);
    out[6] = static_cast<char>((n >> 8) & 0xff);
    out[7] = static_cast<char>(n & 0xff);
    out.append(payload);
    return out;
}

bool send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

void Router::add(std::string method, std::string pattern, Handler handler) {
    m_routes.push_back({std::move(method), split_path(pattern), std::move(handler)});
}

const Handler* Router::match(Request& req) const {
    std::vector<std::string> segments = split_path(req.path);
    for (const auto& r : m_routes) {
        // HEAD is answered by a GET route (net/http writes no body for it).
        if (r.method != req.method && !(req.method == "HEAD" && r.method == "GET")) {
            continue;
        }
        std::map<std::string, std::string> params;
        if (match_segments(r.segments, 0, segments, 0, params)) {
            req.params = std::move(params);
            return &r.handler;
        }
    }
    return nullptr;
}

ListenAddress ListenAddress::parse(const std::string& text) {
    ListenAddress a;
    a.text = text;
    constexpr std::string_view unix_scheme = "unix://";
    constexpr std::string_view tcp_scheme = "tcp://";
    constexpr std::string_view fd_scheme = "fd://";
    if (text.starts_with(unix_scheme)) {
        a.kind = Kind::unix_socket;
        a.unix_path = text.substr(unix_scheme.size());
        if (a.unix_path.empty() || a.unix_path.front() != '/') {
            throw UsageError("-H " + text + ": a unix socket needs an absolute path");
        }
        if (a.unix_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
            throw UsageError("-H " + text + ": the socket path is too long");
        }
        return a;
    }
    if (text.starts_with(tcp_scheme)) {
        a.kind = Kind::tcp;
        std::string rest = text.substr(tcp_scheme.size());
        if (!rest.empty() && rest.back() == '/') {
            rest.pop_back();
        }
        if (rest.find('/') != std::string::npos) {
            throw UsageError("-H " + text + ": a TCP address has no path (tcp://HOST:PORT)");
        }
        std::string port;
        if (rest.starts_with("[")) { // [::1]:2376
            std::size_t close = rest.find(']');
            if (close == std::string::npos) {
                throw UsageError("-H " + text + ": missing ']' in the address");
            }
            a.host = rest.substr(1, close - 1);
            std::string tail = rest.substr(close + 1);
            if (!tail.empty()) {
                if (tail.front() != ':') {
                    throw UsageError("-H " + text + ": expected :PORT after the address");
                }
                port = tail.substr(1);
            }
        } else if (std::count(rest.begin(), rest.end(), ':') > 1) {
            throw UsageError("-H " + text +
                             ": an IPv6 address is written in brackets ([::1]:2376)");
        } else if (std::size_t colon = rest.rfind(':'); colon != std::string::npos) {
            a.host = rest.substr(0, colon);
            port = rest.substr(colon + 1);
        } else {
            a.host = rest;
        }
        if (port.empty()) {
            port = "2376"; // dockerd's port for TLS
        }
        if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
            std::stoul(port) > 65535) {
            throw UsageError("-H " + text + ": invalid port \"" + port + "\"");
        }
        a.port = port;
        return a;
    }
    if (text.starts_with(fd_scheme)) {
        a.kind = Kind::systemd;
        std::string rest = text.substr(fd_scheme.size());
        if (!rest.empty()) {
            if (rest.size() > 9 || rest.find_first_not_of("0123456789") != std::string::npos) {
                throw UsageError("-H " + text + ": expected fd:// or fd://N (a descriptor number)");
            }
            a.fd = std::stoi(rest);
        }
        return a;
    }
    throw UsageError("-H " + text + ": unknown address (unix:///PATH, tcp://HOST:PORT or fd://)");
}

namespace {

// One connection: requests read one after the other (keep-alive).
class Connection final : public Exchange {
public:
    Connection(Socket sock, const ServerOptions& options, const Router& router)
        : m_sock(std::move(sock)), m_options(options), m_router(router) {}

    void serve() {
        for (;;) {
            m_parser.emplace();
            // No limit (handlers set theirs). Not boost::none: Boost 1.74
            // compares a Content-Length with an empty optional as "over".
            m_parser->body_limit(std::numeric_limits<std::uint64_t>::max());
            m_parser->header_limit(1 << 20);
            boost::system::error_code ec;
            http::read_header(m_sock, m_buffer, *m_parser, ec);
            if (ec) {
                return; // closed, or not HTTP: nothing to answer
            }
            m_body.reset();
            m_responded = false;
            m_streaming = false;
            m_extra_headers.clear();
            m_close = !m_parser->get().keep_alive();
            handle();
            if (m_streaming) {
                return; // a stream that ended early: the client may be gone
            }
            if (!drain_body()) {
                return;
            }
            if (m_close) {
                return;
            }
        }
    }

    std::string read_body(std::size_t limit) override {
        std::string out;
        read_body_chunks([&](const char* p, std::size_t n) {
            if (out.size() + n > limit) {
                throw HttpError(413, "request body too large");
            }
            out.append(p, n);
        });
        return out;
    }

    void read_body_to(int fd) override {
        read_body_chunks([&](const char* p, std::size_t n) {
            while (n > 0) {
                ssize_t w = ::write(fd, p, n);
                if (w < 0) {
                    if (errno == EINTR) {
                        continue;
                    }
                    throw_errno("write of the request body");
                }
                p += w;
                n -= static_cast<std::size_t>(w);
            }
        });
    }

    void add_header(std::string name, std::string value) override {
        m_extra_headers.emplace_back(std::move(name), std::move(value));
    }

    void respond(int status, std::string_view content_type, std::string_view body) override {
        if (m_responded) {
            return;
        }
        m_responded = true;
        boost::system::error_code ec;
        if (m_head) {
            http::response<http::empty_body> res{static_cast<http::status>(status), 11};
            set_headers(res, content_type);
            res.content_length(body.size());
            res.keep_alive(!m_close);
            http::write(m_sock, res, ec);
        } else {
            http::response<http::string_body> res{static_cast<http::status>(status), 11};
            set_headers(res, content_type);
            res.body() = std::string(body);
            res.keep_alive(!m_close);
            res.prepare_payload();
            http::write(m_sock, res, ec);
        }
        if (ec) {
            m_close = true;
        }
    }

    void begin_stream(int status, std::string_view content_type) override {
        m_responded = true;
        m_streaming = true;
        m_stream_json = content_type == "application/json";
        http::response<http::empty_body> res{static_cast<http::status>(status), 11};
        set_headers(res, content_type);
        res.chunked(true);
        res.keep_alive(!m_close);
        http::response_serializer<http::empty_body> sr{res};
        boost::system::error_code ec;
        http::write_header(m_sock, sr, ec);
        m_stream_ok = !ec;
    }

    bool write(std::string_view data) override {
        if (!m_stream_ok || data.empty()) {
            return m_stream_ok;
        }
        boost::system::error_code ec;
        net::write(m_sock, http::make_chunk(net::buffer(data.data(), data.size())), ec);
        m_stream_ok = !ec;
        return m_stream_ok;
    }

    void finish() override {
        if (m_stream_ok) {
            boost::system::error_code ec;
            net::write(m_sock, http::make_chunk_last(), ec);
            m_stream_ok = !ec;
            if (m_stream_ok) {
                m_streaming = false; // the connection may serve another request
            }
        }
    }

    Hijacked hijack() override {
        m_responded = true;
        m_streaming = true; // the connection is the handler's, then closes
        // A handler that read the body first (exec start) moved the headers
        // into the body parser.
        const http::request_header<>& h = m_body ? m_body->get().base() : m_parser->get().base();
        auto has_token = [](boost::beast::string_view value, std::string_view token) {
            std::string v(value.data(), value.size());
            for (auto& c : v) {
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            }
            return v.find(token) != std::string::npos;
        };
        bool upgrade = has_token(h[http::field::upgrade], "tcp") &&
                       has_token(h[http::field::connection], "upgrade");
        // dockerd's words (postContainersAttach), then the headers its
        // middleware set, in Go's sorted order.
        std::string head = upgrade ? "HTTP/1.1 101 UPGRADED\r\n"
                                     "Content-Type: application/vnd.docker.raw-stream\r\n"
                                     "Connection: Upgrade\r\nUpgrade: tcp\r\n"
                                   : "HTTP/1.1 200 OK\r\n"
                                     "Content-Type: application/vnd.docker.raw-stream\r\n";
        head += std::string("Api-Version: ") + k_api_version +
                "\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: " +
                m_options.server_header + "\r\n\r\n";
        boost::system::error_code ec;
        net::write(m_sock, net::buffer(head), ec);
        Hijacked out;
        if (ec) {
            return out; // the client is gone: fd -1
        }
        out.fd = m_sock.native_handle();
        auto data = m_buffer.data();
        out.buffered.assign(static_cast<const char*>(data.data()), data.size());
        m_buffer.consume(data.size());
        return out;
    }

    bool responded() const override { return m_responded; }

    bool client_gone() override {
        pollfd p{m_sock.native_handle(), POLLRDHUP, 0};
        return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
    }

private:
    template <class Res> void set_headers(Res& res, std::string_view content_type) {
        // dockerd's headers on every response (api/server/server.go, middleware).
        res.set("Api-Version", k_api_version);
        res.set("Docker-Experimental", "false");
        res.set("Ostype", "linux");
        res.set(http::field::server, m_options.server_header);
        if (!content_type.empty()) {
            res.set(http::field::content_type, std::string(content_type));
        }
        for (const auto& [name, value] : m_extra_headers) {
            res.set(name, value);
        }
    }

    template <class F> void read_body_chunks(F&& sink) {
        if (m_body_done) {
            return;
        }
        if (!m_body) {
            m_body.emplace(std::move(*m_parser));
            m_body->body_limit(std::numeric_limits<std::uint64_t>::max());
        }
        std::vector<char> chunk(64 * 1024);
        while (!m_body->is_done()) {
            m_body->get().body().data = chunk.data();
            m_body->get().body().size = chunk.size();
            boost::system::error_code ec;
            http::read(m_sock, m_buffer, *m_body, ec);
            if (ec == http::error::need_buffer) {
                ec = {};
            }
            if (ec) {
                m_close = true;
                throw HttpError(400, "reading the request body: " + ec.message());
            }
            std::size_t n = chunk.size() - m_body->get().body().size;
            if (n > 0) {
                sink(chunk.data(), n);
            }
        }
        m_body_done = true;
    }

    // Reads what the handler left of the body, so the next request parses.
    bool drain_body() {
        try {
            read_body_chunks([](const char*, std::size_t) {});
        } catch (const HttpError&) {
            return false;
        }
        return true;
    }

    void handle() {
        const auto& h = m_parser->get();
        m_head = h.method() == http::verb::head;
        Request req;
        req.method = std::string(h.method_string());
        req.target = std::string(h.target());
        for (const auto& f : h) {
            std::string name(f.name_string());
            for (auto& c : name) {
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            }
            req.headers[name] = std::string(f.value());
        }
        m_body_done =
            !h.chunked() && (!h.has_content_length() || h[http::field::content_length] == "0");
        if (m_body_done) {
            m_body.reset();
        } else {
            m_body_done = false;
        }
        try {
            std::string_view target = req.target;
            std::size_t q = target.find('?');
            std::string_view raw_path = target.substr(0, q);
            if (q != std::string_view::npos) {
                std::string_view qs = target.substr(q + 1);
                while (!qs.empty()) {
                    std::size_t amp = qs.find('&');
                    std::string_view pair = qs.substr(0, amp);
                    qs = amp == std::string_view::npos ? std::string_view{} : qs.substr(amp + 1);
                    if (pair.empty()) {
                        continue;
                    }
                    std::size_t eq = pair.find('=');
                    std::string key = unescape(pair.substr(0, eq), true);
                    std::string value =
                        eq == std::string_view::npos ? "" : unescape(pair.substr(eq + 1), true);
                    req.query.emplace(std::move(key), std::move(value));
                }
            }
            req.path = unescape(raw_path, false);
            // "/v1.41/..." (dockerd's "/v{version:[0-9.]+}" prefix).
            if (req.path.size() > 2 && req.path.starts_with("/v") &&
                std::isdigit(static_cast<unsigned char>(req.path[2]))) {
                std::size_t end = req.path.find('/', 2);
                std::string v =
                    req.path.substr(2, end == std::string::npos ? std::string::npos : end - 2);
                if (v.find_first_not_of("0123456789.") == std::string::npos) {
                    req.version = v;
                    req.path = end == std::string::npos ? "/" : req.path.substr(end);
                }
            }
            const Handler* handler = m_router.match(req);
            if (!handler) {
                respond_error(404, "page not found");
                return;
            }
            if (!req.version.empty()) {
                if (compare_versions(req.version, k_api_version) > 0) {
                    throw HttpError(400, "client version " + req.version +
                                             " is too new. Maximum supported API version is " +
                                             k_api_version);
                }
                if (compare_versions(req.version, k_min_api_version) < 0) {
                    throw HttpError(400, "client version " + req.version +
                                             " is too old. Minimum supported API version is " +
                                             k_min_api_version +
                                             ", please upgrade your client to a newer version");
                }
            }
            (*handler)(req, *this);
        } catch (const HttpError& e) {
            fail(req, e.status(), e.what());
        } catch (const std::exception& e) {
            int status = 500;
            std::string message = e.what();
            if (m_options.classify) {
                std::tie(status, message) = m_options.classify(e);
            }
            fail(req, status, message);
        }
    }

    void fail(const Request& req, int status, const std::string& message) {
        if (m_options.log && status >= 500) {
            m_options.log(req.method + " " + req.target + ": " + message);
        }
        if (!m_responded) {
            respond_error(status, message);
        } else if (m_streaming && m_stream_ok) {
            // Mid-stream: dockerd's JSON progress streams carry the error as
            // a message; a raw stream (logs, export) just ends, as dockerd's
            // does, rather than carrying JSON its reader would take for data.
            if (m_stream_json) {
                write_json(nlohmann::ordered_json{{"errorDetail", {{"message", message}}},
                                                  {"error", message}});
            } else if (m_options.log && status < 500) {
                m_options.log(req.method + " " + req.target + ": " + message);
            }
            finish();
        }
    }

    Socket m_sock;
    const ServerOptions& m_options;
    const Router& m_router;
    boost::beast::flat_buffer m_buffer;
    std::optional<http::request_parser<http::empty_body>> m_parser;
    std::optional<http::request_parser<http::buffer_body>> m_body;
    bool m_body_done = true;
    bool m_responded = false;
    bool m_streaming = false;
    bool m_stream_ok = false;
    bool m_stream_json = false;
    bool m_close = false;
    bool m_head = false;
    std::vector<std::pair<std::string, std::string>> m_extra_headers;
};

} // namespace

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
    struct Listener {
        UniqueFd fd;
        bool tls = false; // a TCP socket: connections are served through tls_relay
    };
    ServerOptions options;
    Router router;
    net::io_context ioc; // only for the sockets' sync operations
    std::vector<Listener> listeners;
    std::vector<std::string> bound_paths;
    std::unique_ptr<TlsContext> tls;
    Pipe wake;

    void bind_unix(const ListenAddress& a);
    void bind_tcp(const ListenAddress& a);
    void take_systemd(const ListenAddress& a, std::vector<std::string>& described);
    void need_tls(const std::string& what) const;
    void serve(UniqueFd fd, bool tls);
};

namespace {

std::string tls_suffix() {
    return " (TLS, client certificates verified)";
}

std::string describe_inet(const sockaddr* sa) {
    char host[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        return "tcp://" + std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
    }
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    return "tcp://[" + std::string(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
}

} // namespace

Server::Server(ServerOptions options, Router router) : m_impl(std::make_shared<Impl>()) {
    m_impl->options = std::move(options);
    m_impl->router = std::move(router);
    m_impl->wake = Pipe::create();
}

Server::~Server() {
    for (const auto& p : m_impl->bound_paths) {
        ::unlink(p.c_str());
    }
}

void Server::Impl::need_tls(const std::string& what) const {
    if (!tls) {
        throw UsageError(
            what + ": strata serve listens on TCP only with TLS client verification, as "
                   "dockerd requires (--tlsverify --tlscacert CA --tlscert CERT --tlskey KEY)");
    }
}

void Server::Impl::bind_unix(const ListenAddress& a) {
    const std::string& path = a.unix_path;
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) {
        throw_errno("socket");
    }
    // A socket file left by a server that died is replaced (dockerd does
    // the same); anything else at the path is an error from bind.
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
        if (::unlink(path.c_str()) != 0) {
            throw_errno("unlink", path);
        }
    }
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    // Never reachable by others, not even between bind and chmod.
    mode_t old = ::umask(0117);
    int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    int err = errno;
    ::umask(old);
    if (rc != 0) {
        throw SysError("bind", path, err);
    }
    bound_paths.push_back(path);
    if (::chmod(path.c_str(), 0660) != 0) {
        throw_errno("chmod", path);
    }
    if (options.socket_gid && ::chown(path.c_str(), -1, *options.socket_gid) != 0) {
        throw_errno("chown", path);
    }
    if (::listen(fd.get(), SOMAXCONN) != 0) {
        throw_errno("listen", path);
    }
    listeners.push_back({std::move(fd), false});
}

void Server::Impl::bind_tcp(const ListenAddress& a) {
    need_tls("-H " + a.text);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(a.host.empty() ? nullptr : a.host.c_str(), a.port.c_str(), &hints, &res);
    if (rc != 0) {
        throw UsageError("-H " + a.text + ": " + ::gai_strerror(rc));
    }
    std::unique_ptr<addrinfo, void (*)(addrinfo*)> hold(res, ::freeaddrinfo);
    // Every address the name has (Go's net.Listen takes the first; a host
    // name with an IPv4 and an IPv6 address answers on both here).
    int bound = 0;
    int err = 0;
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
        UniqueFd fd(::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!fd) {
            err = errno;
            continue;
        }
        int one = 1;
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6) {
            ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        }
        if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 ||
            ::listen(fd.get(), SOMAXCONN) != 0) {
            err = errno;
            continue;
        }
        listeners.push_back({std::move(fd), true});
        ++bound;
    }
    if (bound == 0) {
        throw SysError("bind", a.text, err != 0 ? err : EADDRNOTAVAIL);
    }
}

void Server::Impl::take_systemd(const ListenAddress& a, std::vector<std::string>& described) {
    const char* pid = std::getenv("LISTEN_PID");
    const char* count = std::getenv("LISTEN_FDS");
    if (pid == nullptr || count == nullptr || std::atol(pid) != static_cast<long>(::getpid())) {
        throw UsageError("-H " + a.text +
                         ": no sockets were passed by systemd (LISTEN_PID and LISTEN_FDS are not "
                         "set for this process)");
    }
    int n = std::atoi(count);
    constexpr int first = 3; // SD_LISTEN_FDS_START
    if (n <= 0) {
        throw UsageError("-H " + a.text +
                         ": systemd passed no sockets (LISTEN_FDS=" + std::string(count) + ")");
    }
    if (a.fd != -1 && (a.fd < first || a.fd >= first + n)) {
        throw UsageError("-H " + a.text + ": systemd passed descriptors " + std::to_string(first) +
                         " to " + std::to_string(first + n - 1));
    }
    for (int fd = first; fd < first + n; ++fd) {
        if (a.fd != -1 && fd != a.fd) {
            continue;
        }
        std::string what = "-H " + a.text + " (descriptor " + std::to_string(fd) + ")";
        int type = 0;
        int listening = 0;
        socklen_t len = sizeof type;
        socklen_t len2 = sizeof listening;
        if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
            ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len2) != 0 ||
            type != SOCK_STREAM || listening == 0) {
            throw UsageError(what + ": not a listening stream socket");
        }
        sockaddr_storage ss{};
        socklen_t sl = sizeof ss;
        if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl) != 0) {
            throw_errno("getsockname", what);
        }
        bool inet = ss.ss_family == AF_INET || ss.ss_family == AF_INET6;
        if (inet) {
            need_tls(what);
        } else if (ss.ss_family != AF_UNIX) {
            throw UsageError(what + ": neither a unix nor a TCP socket");
        }
        ::fcntl(fd, F_SETFD, FD_CLOEXEC); // not for the containers' processes
        listeners.push_back({UniqueFd(fd), inet});
        if (inet) {
            described.push_back(describe_inet(reinterpret_cast<sockaddr*>(&ss)) + tls_suffix() +
                                " from systemd");
        } else {
            const auto* un = reinterpret_cast<const sockaddr_un*>(&ss);
            std::string path = sl > offsetof(sockaddr_un, sun_path) ? un->sun_path : "";
            described.push_back("unix://" + path + " from systemd");
        }
    }
}

std::vector<std::string> Server::bind() {
    std::vector<std::string> described;
    if (m_impl->options.tls) {
        const auto& t = *m_impl->options.tls;
        m_impl->tls = std::make_unique<TlsContext>(TlsFiles{t.ca_cert, t.cert, t.key});
    }
    bool systemd = false;
    for (const auto& a : m_impl->options.listen) {
        switch (a.kind) {
        case ListenAddress::Kind::unix_socket:
            m_impl->bind_unix(a);
            described.push_back(a.text);
            break;
        case ListenAddress::Kind::tcp: {
            std::size_t before = m_impl->listeners.size();
            m_impl->bind_tcp(a);
            for (std::size_t i = before; i < m_impl->listeners.size(); ++i) {
                sockaddr_storage ss{};
                socklen_t sl = sizeof ss;
                ::getsockname(m_impl->listeners[i].fd.get(), reinterpret_cast<sockaddr*>(&ss), &sl);
                described.push_back(describe_inet(reinterpret_cast<sockaddr*>(&ss)) + tls_suffix());
            }
            break;
        }
        case ListenAddress::Kind::systemd:
            m_impl->take_systemd(a, described);
            systemd = true;
            break;
        }
    }
    if (systemd) {
        // sd_listen_fds(1): the sockets are this process's, not its children's.
        ::unsetenv("LISTEN_PID");
        ::unsetenv("LISTEN_FDS");
        ::unsetenv("LISTEN_FDNAMES");
    }
    return described;
}

void Server::Impl::serve(UniqueFd fd, bool with_tls) {
    auto log = [this](const std::string& line) {
        if (options.log) {
            options.log(line);
        }
    };
    if (with_tls) {
        int one = 1;
        ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int pair[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
            log(std::string("socketpair: ") + std::strerror(errno));
            return;
        }
        UniqueFd plain(pair[1]);
        // The HTTP side serves its end of the pair as any unix connection;
        // this thread relays.
        std::thread([inner = UniqueFd(pair[0]), impl = shared_from_this()]() mutable {
            impl->serve(std::move(inner), false);
        }).detach();
        tls_relay(*tls, std::move(fd), std::move(plain), log);
        return;
    }
    Socket sock(ioc);
    boost::system::error_code ec;
    sock.assign(net::local::stream_protocol(), fd.get(), ec);
    if (ec) {
        return;
    }
    (void)fd.release(); // the socket owns it now
    try {
        Connection conn(std::move(sock), options, router);
        conn.serve();
    } catch (const std::exception& e) {
        log(std::string("connection: ") + e.what());
    }
}

void Server::run() {
    std::vector<pollfd> fds;
    fds.push_back({m_impl->wake.read.get(), POLLIN, 0});
    for (const auto& l : m_impl->listeners) {
        fds.push_back({l.fd.get(), POLLIN, 0});
    }
    for (;;) {
        int n = ::poll(fds.data(), fds.size(), -1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw_errno("poll");
        }
        if (fds[0].revents != 0) {
            break;
        }
        for (std::size_t i = 1; i < fds.size(); ++i) {
            if ((fds[i].revents & POLLIN) == 0) {
                continue;
            }
            int c = ::accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) {
                if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED &&
                    m_impl->options.log) {
                    m_impl->options.log(std::string("accept: ") + std::strerror(errno));
                }
                continue;
            }
            // One thread per connection (two with TLS); it ends with the
            // connection (or with the process, for a stream still open at
            // stop()).
            std::thread([fd = UniqueFd(c), tls = m_impl->listeners[i - 1].tls,
                         impl = m_impl]() mutable {
                impl->serve(std::move(fd), tls);
            }).detach();
        }
    }
    for (const auto& p : m_impl->bound_paths) {
        ::unlink(p.c_str());
    }
    m_impl->bound_paths.clear();
}

void Server::stop() {
    char b = 1;
    [[maybe_unused]] ssize_t n = ::write(m_impl->wake.write.get(), &b, 1);
}

} // namespace strata::api
