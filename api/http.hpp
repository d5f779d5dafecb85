// The HTTP side of `strata serve` (DESIGN.md "The container half": api/):
// listeners on unix sockets, one thread per connection, HTTP/1.1 parsed by
// Boost.Beast, a router over Docker Engine API paths (version-prefixed
// "/v1.41/..." and unprefixed), dockerd's `{"message": ...}` errors, chunked
// streaming and Docker's multiplexed stdout/stderr framing.
//
// This library knows nothing of images or containers: the endpoints live in
// cli/ (cmd_serve.cpp, cli/serve/) and call the functions the CLI commands
// call. Beast stays inside api/server.cpp; nothing here exposes it.
//
// Listeners: unix sockets, TCP with TLS client verification (api/tls.hpp),
// and sockets systemd passes (socket activation).
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace strata::api {

// The highest and lowest API versions served, as dockerd 20.10 has them.
inline constexpr const char* k_api_version = "1.41";
inline constexpr const char* k_min_api_version = "1.12";

// An error the client sees as dockerd sends it: the status and
// {"message": MESSAGE}. Handlers throw it; the router answers.
class HttpError : public std::runtime_error {
public:
    HttpError(int status, const std::string& message)
        : std::runtime_error(message), m_status(status) {}
    int status() const noexcept { return m_status; }

private:
    int m_status;
};

struct Request {
    std::string method;  // "GET", "HEAD", ...
    std::string target;  // as sent: "/v1.41/images/json?all=1"
    std::string path;    // percent-decoded, without the version prefix: "/images/json"
    std::string version; // "1.41" from the prefix, "" when unprefixed
    std::multimap<std::string, std::string> query; // decoded
    std::map<std::string, std::string> headers;    // names in lower case
    std::map<std::string, std::string> params;     // from the route: {name} -> value

    // The last value of a query parameter, when present.
    std::optional<std::string> maybe_query(const std::string& key) const;
    // A query parameter as dockerd's httputils.BoolValue reads it: absent,
    // "", "0", "no", "false" and "none" are false, anything else true.
    bool query_bool(const std::string& key) const;
    // An integer parameter; `fallback` when absent or empty; HttpError 400
    // when it is not a number.
    std::int64_t query_int(const std::string& key, std::int64_t fallback) const;
    // The JSON `filters` parameter ({"key": {"value": true}} or the old
    // {"key": ["value"]}) as "key=value" strings; HttpError 400 when it does
    // not parse.
    std::vector<std::string> query_filters() const;
    const std::string& param(const std::string& name) const { return params.at(name); }
};

// One request's response, written on the connection.
class Exchange {
public:
    virtual ~Exchange() = default;

    // The request body in memory; HttpError 413 over `limit` bytes.
    virtual std::string read_body(std::size_t limit = 16 << 20) = 0;
    // Copies the request body to fd (a file or a pipe), as it arrives.
    virtual void read_body_to(int fd) = 0;

    // A header of the next response (whole, streamed), beside dockerd's own:
    // X-Docker-Container-Path-Stat on /containers/{id}/archive.
    virtual void add_header(std::string name, std::string value) = 0;

    // A whole response.
    virtual void respond(int status, std::string_view content_type, std::string_view body) = 0;
    void respond_json(int status, const nlohmann::ordered_json& body);
    void respond_empty(int status) { respond(status, "", ""); }
    // dockerd's error document.
    void respond_error(int status, const std::string& message);

    // A chunked response: the status and headers, then write() as data
    // comes, then finish(). write() returns false when the client is gone.
    virtual void begin_stream(int status, std::string_view content_type) = 0;
    virtual bool write(std::string_view data) = 0;
    virtual void finish() = 0;
    // One JSON document and a newline, as dockerd's progress streams.
    bool write_json(const nlohmann::ordered_json& j) { return write(j.dump() + "\n"); }

    // A hijacked connection (attach, exec start), as dockerd answers one:
    // "101 UPGRADED" with Connection: Upgrade / Upgrade: tcp when the
    // request asked for the upgrade, else "200 OK"; Content-Type
    // application/vnd.docker.raw-stream (API 1.41: the bytes are still
    // multiplexed when the container has no TTY). From then on the socket
    // carries raw bytes both ways: the handler reads and writes `fd` (bytes
    // the client sent after its request headers are in `buffered`) until it
    // returns; the connection then closes.
    struct Hijacked {
        int fd = -1;
        std::string buffered;
    };
    virtual Hijacked hijack() = 0;

    // True once a response (whole or streamed) has begun.
    virtual bool responded() const = 0;
    // True once the client has closed its side of the connection (it gave
    // up waiting: a `docker run -d` cancels its wait once the container
    // started). Does not block.
    virtual bool client_gone() = 0;
};

// Docker's stdcopy framing of a multiplexed stream: an 8-byte header
// (stream 0 stdin, 1 stdout, 2 stderr; three zero bytes; the payload size,
// big-endian 32 bits) then the payload.
std::string mux_frame(int stream, std::string_view payload);

// Writes all of data to a hijacked connection's socket (no SIGPIPE when the
// client has gone); false when the client is gone.
bool send_all(int fd, std::string_view data);

using Handler = std::function<void(Request&, Exchange&)>;

// Routes by method and path. A pattern's segments are literals or {name}
// (one segment); {name*} takes one or more segments, as image names have
// slashes ("/images/{name*}/json" matches "/images/library/busybox/json").
class Router {
public:
    void add(std::string method, std::string pattern, Handler handler);
    // The handler for the request (filling req.params), when a route matches.
    const Handler* match(Request& req) const;

private:
    struct Route {
        std::string method;
        std::vector<std::string> segments;
        Handler handler;
    };
    std::vector<Route> m_routes;
};

// Where a server listens, as dockerd's -H: "unix:///run/strata/strata.sock";
// "tcp://HOST:PORT" (HOST empty for every address, PORT 2376 when left
// out; served only with TLS client verification, ServerOptions::tls);
// "fd://" for every socket systemd passed (socket activation,
// LISTEN_FDS), "fd://N" for the one at descriptor N.
struct ListenAddress {
    enum class Kind { unix_socket, tcp, systemd };
    Kind kind = Kind::unix_socket;
    std::string text;      // as given
    std::string unix_path; // unix_socket
    std::string host;      // tcp: a name or an address ("::1" without brackets)
    std::string port;      // tcp
    int fd = -1;           // systemd: -1 for all of them
    static ListenAddress parse(const std::string& text); // throws UsageError
};

// The PEM files of a TLS listener (dockerd's --tlscacert, --tlscert,
// --tlskey with --tlsverify).
struct TlsOptions {
    std::string ca_cert;
    std::string cert;
    std::string key;
};

struct ServerOptions {
    std::vector<ListenAddress> listen;
    std::optional<unsigned> socket_gid; // the sockets' group (dockerd -G); root otherwise
    // TLS with client verification for the TCP listeners (and TCP sockets
    // systemd passes); a TCP listener without it is refused at bind().
    std::optional<TlsOptions> tls;
    std::string server_header; // "strata/0.1 (linux)"
    // Called for requests that fail in a handler with an exception that is
    // not an HttpError: the status and message to answer (e.g. 404 for a
    // missing image). Unset: 500 and the exception's message.
    std::function<std::pair<int, std::string>(const std::exception&)> classify;
    // Diagnostics (one line per failed request, listener errors).
    std::function<void(const std::string&)> log;
};

// Listens on every address (socket files mode 0660, an existing socket file
// replaced), serves each connection on its own thread, and returns when
// stop() is called from another thread or a signal handler's helper; the
// socket files it made are then removed (systemd's stay systemd's). Connections still open are
// abandoned to the process's exit.
class Server {
public:
    Server(ServerOptions options, Router router);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds every listener (throws SysError naming the socket path or
    // address, UsageError for TCP without TLS or fd:// without sockets from
    // systemd). Returns what it listens on, one line each ("unix:///x.sock",
    // "tcp://127.0.0.1:2376 (TLS, client certificates verified)").
    std::vector<std::string> bind();
    // Accepts until stop().
    void run();
    // Async-signal-safe enough for a signal-waiting thread: wakes run().
    void stop();

    struct Impl;

private:
    std::shared_ptr<Impl> m_impl; // shared with the connections' threads
};

} // namespace strata::api
