// api/: the router, the request helpers, Docker's stream framing, and a
// Server answering raw HTTP on a unix socket of the test's own.
#include "api/http.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>

#include <cstring>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

using namespace strata;
using namespace strata::api;

namespace {

api::Request request(std::string method, std::string path) {
    api::Request r;
    r.method = std::move(method);
    r.path = std::move(path);
    return r;
}

// One request on a fresh connection (Connection: close), the whole answer.
std::string http_exchange(const std::string& socket_path, const std::string& raw) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(fd);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, socket_path.c_str(), sizeof sa.sun_path - 1);
    REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    REQUIRE(::write(fd.get(), raw.data(), raw.size()) == static_cast<ssize_t>(raw.size()));
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) {
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

} // namespace

TEST_CASE("router: literal, {name} and greedy {name*} segments, HEAD takes GET routes") {
    Router router;
    int hit = 0;
    router.add("GET", "/images/json", [&](Request&, Exchange&) { hit = 1; });
    router.add("GET", "/images/{name*}/json", [&](Request&, Exchange&) { hit = 2; });
    router.add("DELETE", "/images/{name*}", [&](Request&, Exchange&) { hit = 3; });
    router.add("POST", "/containers/{id}/start", [&](Request&, Exchange&) { hit = 4; });

    auto r = request("GET", "/images/json");
    REQUIRE(router.match(r) != nullptr);
    auto r2 = request("GET", "/images/example.com/team/box:v1/json");
    const Handler* h = router.match(r2);
    REQUIRE(h != nullptr);
    CHECK(r2.param("name") == "example.com/team/box:v1");
    // Greedy: an image whose name ends in /json.
    auto r3 = request("GET", "/images/a/json/json");
    REQUIRE(router.match(r3) != nullptr);
    CHECK(r3.param("name") == "a/json");
    auto r4 = request("DELETE", "/images/busybox");
    REQUIRE(router.match(r4) != nullptr);
    CHECK(r4.param("name") == "busybox");
    auto r5 = request("HEAD", "/images/json");
    CHECK(router.match(r5) != nullptr);
    // {id} is one segment; the method must match.
    auto r6 = request("POST", "/containers/a/b/start");
    CHECK(router.match(r6) == nullptr);
    auto r7 = request("GET", "/containers/abc/start");
    CHECK(router.match(r7) == nullptr);
    auto r8 = request("POST", "/containers/abc/start");
    REQUIRE(router.match(r8) != nullptr);
    CHECK(r8.param("id") == "abc");
    (void)hit;
}

TEST_CASE("request helpers read parameters as dockerd does") {
    Request r;
    r.query = {{"all", "1"}, {"force", "false"}, {"v", ""}, {"t", "10"}, {"bad", "1x"}};
    CHECK(r.query_bool("all"));
    CHECK_FALSE(r.query_bool("force"));
    CHECK_FALSE(r.query_bool("v"));
    CHECK_FALSE(r.query_bool("missing"));
    CHECK(r.query_int("t", -1) == 10);
    CHECK(r.query_int("missing", -1) == -1);
    CHECK_THROWS_AS(r.query_int("bad", 0), HttpError);

    r.query = {{"filters", R"({"dangling":{"true":true},"label":{"a=b":true,"c":false}})"}};
    CHECK(r.query_filters() == std::vector<std::string>{"dangling=true", "label=a=b"});
    r.query = {{"filters", R"({"reference":["busybox"]})"}}; // API < 1.22
    CHECK(r.query_filters() == std::vector<std::string>{"reference=busybox"});
    r.query = {{"filters", "{not json"}};
    CHECK_THROWS_AS(r.query_filters(), HttpError);
}

TEST_CASE("mux_frame is Docker's stdcopy header and payload") {
    std::string f = mux_frame(2, "hello");
    REQUIRE(f.size() == 13);
    CHECK(f[0] == 2);
    CHECK(f.substr(1, 3) == std::string(3, '\0'));
    CHECK(static_cast<unsigned char>(f[7]) == 5);
    CHECK(f.substr(8) == "hello");
    std::string big = mux_frame(1, std::string(0x10203, 'x'));
    CHECK(static_cast<unsigned char>(big[5]) == 0x01);
    CHECK(static_cast<unsigned char>(big[6]) == 0x02);
    CHECK(static_cast<unsigned char>(big[7]) == 0x03);
}

TEST_CASE("listen addresses: unix paths, TCP as dockerd writes it, systemd's sockets") {
    auto u = ListenAddress::parse("unix:///run/x.sock");
    CHECK(u.kind == ListenAddress::Kind::unix_socket);
    CHECK(u.unix_path == "/run/x.sock");
    CHECK_THROWS_AS(ListenAddress::parse("unix://x.sock"), UsageError);
    CHECK_THROWS_AS(ListenAddress::parse("/run/x.sock"), UsageError);
    CHECK_THROWS_AS(ListenAddress::parse("unix:///" + std::string(200, 'a')), UsageError);

    auto t = ListenAddress::parse("tcp://127.0.0.1:2375");
    CHECK(t.kind == ListenAddress::Kind::tcp);
    CHECK(t.host == "127.0.0.1");
    CHECK(t.port == "2375");
    auto all = ListenAddress::parse("tcp://:4243");
    CHECK(all.host.empty());
    CHECK(all.port == "4243");
    CHECK(ListenAddress::parse("tcp://localhost").port == "2376"); // dockerd's TLS port
    auto v6 = ListenAddress::parse("tcp://[::1]:9999/");
    CHECK(v6.host == "::1");
    CHECK(v6.port == "9999");
    CHECK_THROWS_AS(ListenAddress::parse("tcp://::1:9999"), UsageError);
    CHECK_THROWS_AS(ListenAddress::parse("tcp://host:65536"), UsageError);
    CHECK_THROWS_AS(ListenAddress::parse("tcp://host:http"), UsageError);
    CHECK_THROWS_AS(ListenAddress::parse("tcp://host:1/path"), UsageError);
    CHECK_THROWS_AS(ListenAddress::parse("tcp://[::1"), UsageError);

    CHECK(ListenAddress::parse("fd://").fd == -1);
    CHECK(ListenAddress::parse("fd://").kind == ListenAddress::Kind::systemd);
    CHECK(ListenAddress::parse("fd://4").fd == 4);
    CHECK_THROWS_AS(ListenAddress::parse("fd://x"), UsageError);
    CHECK_THROWS_AS(ListenAddress::parse("http://x"), UsageError);
}

TEST_CASE("server: TCP only with TLS, fd:// only with sockets from systemd") {
    ServerOptions o;
    o.listen.push_back(ListenAddress::parse("tcp://127.0.0.1:0"));
    Server tcp(o, Router{});
    CHECK_THROWS_WITH(tcp.bind(), Catch::Contains("only with TLS client verification"));

    ServerOptions f;
    f.listen.push_back(ListenAddress::parse("fd://"));
    ::unsetenv("LISTEN_PID");
    Server fd(f, Router{});
    CHECK_THROWS_WITH(fd.bind(), Catch::Contains("no sockets were passed by systemd"));

    // Sockets passed to another process are not this one's.
    ::setenv("LISTEN_PID", "1", 1);
    ::setenv("LISTEN_FDS", "1", 1);
    Server other(f, Router{});
    CHECK_THROWS_WITH(other.bind(), Catch::Contains("no sockets were passed by systemd"));
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");

    ServerOptions bad;
    bad.tls = TlsOptions{"/nonexistent/ca.pem", "/nonexistent/cert.pem", "/nonexistent/key.pem"};
    Server tls(bad, Router{});
    CHECK_THROWS_WITH(tls.bind(), Catch::Contains("/nonexistent/cert.pem"));
}

TEST_CASE("server: versions, dockerd's errors, bodies, streams, the socket's mode") {
    TempDir dir;
    std::string sock = dir.path() + "/s.sock";
    ServerOptions options;
    options.listen.push_back(ListenAddress::parse("unix://" + sock));
    options.server_header = "strata/test (linux)";
    options.classify = [](const std::exception& e) {
        return std::make_pair(404, std::string(e.what()));
    };
    Router router;
    router.add("GET", "/_ping",
               [](Request&, Exchange& ex) { ex.respond(200, "text/plain", "OK"); });
    router.add("POST", "/echo", [](Request&, Exchange& ex) {
        ex.respond(200, "text/plain", "[" + ex.read_body() + "]");
    });
    router.add("GET", "/missing", [](Request&, Exchange&) { throw Error("No such thing: x"); });
    router.add("GET", "/stream", [](Request&, Exchange& ex) {
        ex.begin_stream(200, "application/json");
        ex.write_json({{"stream", "a\n"}});
        ex.write("xyz");
        ex.finish();
    });
    Server server(std::move(options), std::move(router));
    server.bind();
    struct stat st {};
    REQUIRE(::stat(sock.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0660);
    std::thread t([&] { server.run(); });

    std::string out =
        http_exchange(sock, "GET /v1.41/_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    CHECK(out.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(out.find("Api-Version: 1.41\r\n") != std::string::npos);
    CHECK(out.find("Ostype: linux\r\n") != std::string::npos);
    CHECK(out.find("Server: strata/test (linux)\r\n") != std::string::npos);
    CHECK(out.ends_with("\r\n\r\nOK"));

    out = http_exchange(sock, "HEAD /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    CHECK(out.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(out.ends_with("\r\n\r\n")); // no body

    out = http_exchange(sock, "GET /v1.42/_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    CHECK(out.starts_with("HTTP/1.1 400 "));
    CHECK(out.ends_with(
        R"({"message":"client version 1.42 is too new. Maximum supported API version is 1.41"})"
        "\n"));
    out = http_exchange(sock, "GET /v1.11/_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    CHECK(out.starts_with("HTTP/1.1 400 "));
    CHECK(out.find("client version 1.11 is too old") != std::string::npos);

    out = http_exchange(sock, "GET /nowhere HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    CHECK(out.starts_with("HTTP/1.1 404 "));
    CHECK(out.ends_with("{\"message\":\"page not found\"}\n"));
    out = http_exchange(sock, "GET /missing HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    CHECK(out.starts_with("HTTP/1.1 404 "));
    CHECK(out.ends_with("{\"message\":\"No such thing: x\"}\n"));

    // Content-Length: 0, as Go's client sends on a POST without a body (Boost
    // 1.74 refused it with body_limit(none)); a body; a chunked body.
    out = http_exchange(
        sock, "POST /echo HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    CHECK(out.ends_with("\r\n\r\n[]"));
    out = http_exchange(
        sock,
        "POST /echo HTTP/1.1\r\nHost: d\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc");
    CHECK(out.ends_with("\r\n\r\n[abc]"));
    out = http_exchange(sock, "POST /echo HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n"
                              "Connection: close\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n");
    CHECK(out.ends_with("\r\n\r\n[abc]"));

    // Two requests on one connection (keep-alive), the second one closing.
    out = http_exchange(sock, "POST /echo HTTP/1.1\r\nHost: d\r\nContent-Length: 1\r\n\r\nx"
                              "GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    CHECK(out.find("[x]HTTP/1.1 200 OK") != std::string::npos);
    CHECK(out.ends_with("OK"));

    out = http_exchange(sock, "GET /stream HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    CHECK(out.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
    CHECK(out.find("{\"stream\":\"a\\n\"}\n") != std::string::npos);
    CHECK(out.ends_with("3\r\nxyz\r\n0\r\n\r\n"));

    server.stop();
    t.join();
    CHECK(::access(sock.c_str(), F_OK) != 0); // removed
}

TEST_CASE("server: a hijacked connection (attach) answers 101 UPGRADED, then raw bytes both ways") {
    TempDir dir;
    std::string sock = dir.path() + "/s.sock";
    ServerOptions options;
    options.listen.push_back(ListenAddress::parse("unix://" + sock));
    options.server_header = "strata/test (linux)";
    Router router;
    router.add("POST", "/containers/{id}/attach", [](Request& req, Exchange& ex) {
        Exchange::Hijacked h = ex.hijack();
        REQUIRE(h.fd >= 0);
        // What the client sent until its half-close, then our answer.
        std::string got = h.buffered;
        char buf[256];
        ssize_t n;
        while ((n = ::read(h.fd, buf, sizeof buf)) > 0) {
            got.append(buf, static_cast<std::size_t>(n));
        }
        std::string answer = mux_frame(1, req.param("id") + " got " + got);
        REQUIRE(::write(h.fd, answer.data(), answer.size()) == static_cast<ssize_t>(answer.size()));
    });
    // exec start reads its JSON body, then hijacks: the upgrade headers must
    // still be seen (the docker 28 client refuses a 200 there).
    router.add("POST", "/exec/{id}/start", [](Request&, Exchange& ex) {
        std::string body = ex.read_body();
        Exchange::Hijacked h = ex.hijack();
        REQUIRE(h.fd >= 0);
        std::string answer = mux_frame(1, "body " + body);
        REQUIRE(::write(h.fd, answer.data(), answer.size()) == static_cast<ssize_t>(answer.size()));
    });
    Server server(std::move(options), std::move(router));
    server.bind();
    std::thread t([&] { server.run(); });

    auto exchange = [&](const std::string& raw) {
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        REQUIRE(fd);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strncpy(sa.sun_path, sock.c_str(), sizeof sa.sun_path - 1);
        REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
        REQUIRE(::write(fd.get(), raw.data(), raw.size()) == static_cast<ssize_t>(raw.size()));
        REQUIRE(::shutdown(fd.get(), SHUT_WR) == 0); // the client's stdin ends
        std::string out;
        char buf[4096];
        ssize_t n;
        while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) {
            out.append(buf, static_cast<std::size_t>(n));
        }
        return out;
    };
    // Bytes right behind the headers belong to the stream.
    std::string out = exchange("POST /v1.41/containers/c1/attach?stream=1&stdin=1 HTTP/1.1\r\n"
                               "Host: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nabc");
    CHECK(out.starts_with("HTTP/1.1 101 UPGRADED\r\n"
                          "Content-Type: application/vnd.docker.raw-stream\r\n"
                          "Connection: Upgrade\r\nUpgrade: tcp\r\n"));
    CHECK(out.find("Api-Version: 1.41\r\n") != std::string::npos);
    CHECK(out.ends_with("\r\n\r\n" + mux_frame(1, "c1 got abc")));

    // Without the upgrade: dockerd's 200 and the same raw stream.
    out = exchange("POST /containers/c2/attach?stream=1 HTTP/1.1\r\nHost: d\r\n\r\nxy");
    CHECK(out.starts_with("HTTP/1.1 200 OK\r\n"
                          "Content-Type: application/vnd.docker.raw-stream\r\n"));
    CHECK(out.ends_with("\r\n\r\n" + mux_frame(1, "c2 got xy")));

    out = exchange("POST /v1.41/exec/e1/start HTTP/1.1\r\nHost: d\r\nContent-Length: 16\r\n"
                   "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n{\"Detach\":false}");
    CHECK(out.starts_with("HTTP/1.1 101 UPGRADED\r\n"));
    CHECK(out.ends_with("\r\n\r\n" + mux_frame(1, "body {\"Detach\":false}")));

    server.stop();
    t.join();
}
