// The registry transport against the Python fake registry: uploads (monolithic,
// chunked, mounts), downloads verified by digest, retries, redirects, auth
// challenges, pagination and the error messages users see.
#include "registry/client.hpp"
#include "tests/unit/registry/servers.hpp"
#include "util/child.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>

using namespace strata;
using namespace strata::registry;
using strata::formats::Digest;

namespace {

ClientOptions fast_options() {
    ClientOptions o;
    o.retry.initial_backoff = std::chrono::milliseconds(10);
    o.retry.max_backoff = std::chrono::milliseconds(50);
    return o;
}

struct BlobFile {
    TempDir dir;
    std::string path;
    UniqueFd fd;
    std::string data;
    explicit BlobFile(std::string content) : data(std::move(content)) {
        path = dir.path() + "/blob";
        fs::write_file_atomic(path, data);
        fd = fs::open(path, O_RDONLY);
    }
    Digest digest() const { return Digest::of(data); }
};

std::string pattern(std::size_t n, unsigned seed) {
    std::string s(n, '\0');
    unsigned x = seed;
    for (auto& c : s) {
        x = x * 1103515245u + 12345u;
        c = static_cast<char>(x >> 16);
    }
    return s;
}

std::string fetch(Client& c, const std::string& repo, const Digest& d,
                  std::optional<std::uint64_t> size = std::nullopt, int* restarts = nullptr) {
    std::string out;
    c.fetch_blob(
        repo, d, size, [&](const char* p, std::size_t n) { out.append(p, n); },
        [&] {
            out.clear();
            if (restarts != nullptr) {
                ++*restarts;
            }
        });
    return out;
}

const std::string k_manifest =
    R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]})";

} // namespace

TEST_CASE("a blob uploaded monolithically downloads bit for bit", "[client]") {
    test::FakeRegistry reg;
    Client c(reg.host(), fast_options());
    BlobFile b(pattern(300 * 1024, 1));
    CHECK(c.push_blob("team/app", b.digest(), b.data.size(), b.fd.get()) == BlobPush::uploaded);
    CHECK(c.blob_size("team/app", b.digest()) == b.data.size());
    CHECK(fetch(c, "team/app", b.digest(), b.data.size()) == b.data);
    // A second push finds the blob with HEAD and sends nothing.
    CHECK(c.push_blob("team/app", b.digest(), b.data.size(), b.fd.get()) == BlobPush::existed);
    CHECK(reg.count("POST /v2/team/app/blobs/uploads/") == 1);
    CHECK(c.base_url() == "http://" + reg.host());
}

TEST_CASE("a chunked upload sends PATCH requests with Content-Range", "[client]") {
    test::FakeRegistry reg;
    ClientOptions o = fast_options();
    o.chunk_size = 64 * 1024;
    Client c(reg.host(), o);
    BlobFile b(pattern(200 * 1024 + 17, 2));
    CHECK(c.push_blob("app", b.digest(), b.data.size(), b.fd.get()) == BlobPush::uploaded);
    CHECK(reg.count("PATCH /v2/app/blobs/uploads/") == 4);
    CHECK(fetch(c, "app", b.digest()) == b.data);
}

TEST_CASE("Locations resolve against the request URL as RFC 3986 section 5.2 says", "[url]") {
    const std::string base = "https://reg.example:5000/v2/team/app/blobs/uploads/?mount=x";
    CHECK(resolve_url(base, "u1?_state=a") ==
          "https://reg.example:5000/v2/team/app/blobs/uploads/u1?_state=a");
    CHECK(resolve_url(base, "../x") == "https://reg.example:5000/v2/team/app/blobs/x");
    CHECK(resolve_url("http://h/v2/a/blobs/uploads/u1", "../uploads/u2?_state=b") ==
          "http://h/v2/a/blobs/uploads/u2?_state=b");
    CHECK(resolve_url(base, "/v2/team/app/blobs/uploads/u2") ==
          "https://reg.example:5000/v2/team/app/blobs/uploads/u2");
    CHECK(resolve_url(base, "https://storage.example/b?sig=1") ==
          "https://storage.example/b?sig=1");
    CHECK(resolve_url(base, "//cdn.example/p") == "https://cdn.example/p");
    CHECK(resolve_url("http://h/v2/a/blobs/uploads/u1?_state=a", "?_state=b") ==
          "http://h/v2/a/blobs/uploads/u1?_state=b");
    CHECK(resolve_url("http://h/v2/", "/token") == "http://h/token");
    CHECK(resolve_url("http://h/v2/a/b", "") == "http://h/v2/a/b");
    CHECK_THROWS_AS(resolve_url("not a url", "x"), RegistryError);
    CHECK_THROWS_WITH(resolve_url("http://h/", "http://[::1"), Catch::Contains("http://[::1"));
}

TEST_CASE("a query parameter is added to a URL that may already carry one", "[url]") {
    CHECK(append_query("http://h/up/u1", "digest=sha256%3Aab") ==
          "http://h/up/u1?digest=sha256%3Aab");
    CHECK(append_query("http://h/up/u1?_state=a", "digest=d") ==
          "http://h/up/u1?_state=a&digest=d");
    CHECK(append_query("http://h/token?x=1#frag", "scope=s") == "http://h/token?x=1&scope=s");
    CHECK(append_query("http://h/t?a=%2F", "b=%3A") == "http://h/t?a=%2F&b=%3A");
}

TEST_CASE("uploads follow Locations relative to the request, chunked or not", "[client]") {
    // The fake registry answers POST .../blobs/uploads/ with "UUID?_state=x"
    // and each PATCH with "../uploads/UUID?_state=y".
    test::FakeRegistry reg({"--relative-locations"});
    ClientOptions o = fast_options();
    SECTION("monolithic") {
        Client c(reg.host(), o);
        BlobFile b(pattern(70000, 11));
        CHECK(c.push_blob("team/app", b.digest(), b.data.size(), b.fd.get()) == BlobPush::uploaded);
        CHECK(fetch(c, "team/app", b.digest()) == b.data);
        CHECK(reg.count("PUT /v2/team/app/blobs/uploads/") == 1);
    }
    SECTION("chunked") {
        o.chunk_size = 16 * 1024;
        Client c(reg.host(), o);
        BlobFile b(pattern(40000, 12));
        CHECK(c.push_blob("team/app", b.digest(), b.data.size(), b.fd.get()) == BlobPush::uploaded);
        CHECK(reg.count("PATCH /v2/team/app/blobs/uploads/") == 3);
        CHECK(fetch(c, "team/app", b.digest()) == b.data);
        // (The fake registry logs a request after answering it: counted
        // once a later request was answered.)
        CHECK(reg.count("PUT /v2/team/app/blobs/uploads/") == 1);
    }
}

TEST_CASE("a relative token realm is resolved against the challenged request", "[client]") {
    test::FakeRegistry reg({"--relative-locations", "--auth", "bearer"}); // realm="/token"
    ClientOptions o = fast_options();
    o.credentials = Credentials{"alice", "s3cret", ""};
    Client c(reg.host(), o);
    BlobFile b(pattern(5000, 13));
    CHECK(c.push_blob("team/app", b.digest(), b.data.size(), b.fd.get()) == BlobPush::uploaded);
    CHECK(reg.count("GET /token?service=fake&scope=repository%3Ateam%2Fapp%3Apull%2Cpush") == 1);
}

TEST_CASE("a blob another repository has is mounted, not uploaded", "[client]") {
    test::FakeRegistry reg;
    Client c(reg.host(), fast_options());
    BlobFile b(pattern(50000, 3));
    REQUIRE(c.push_blob("base", b.digest(), b.data.size(), b.fd.get()) == BlobPush::uploaded);
    CHECK(c.push_blob("derived", b.digest(), b.data.size(), b.fd.get(), {"base"}) ==
          BlobPush::mounted);
    CHECK(reg.count("PUT /v2/derived/blobs/uploads") == 0);
    CHECK(fetch(c, "derived", b.digest()) == b.data);
    // A mount source that lacks the blob falls back to an upload.
    CHECK(c.push_blob("third", b.digest(), b.data.size(), b.fd.get(), {"nowhere"}) ==
          BlobPush::uploaded);
}

TEST_CASE("manifests round-trip and report their digest and media type", "[client]") {
    test::FakeRegistry reg;
    Client c(reg.host(), fast_options());
    Digest d =
        c.put_manifest("app", "v1", "application/vnd.oci.image.manifest.v1+json", k_manifest);
    CHECK(d == Digest::of(k_manifest));
    RemoteManifest m = c.get_manifest("app", "v1");
    CHECK(m.bytes == k_manifest);
    CHECK(m.digest == d);
    CHECK(m.media_type == "application/vnd.oci.image.manifest.v1+json");
    CHECK(c.get_manifest("app", d.str()).bytes == k_manifest);
    CHECK(c.head_manifest("app", "v1") == d);
    CHECK_FALSE(c.head_manifest("app", "v2").has_value());
}

TEST_CASE("an unknown manifest is a NotFoundError naming registry, repository and tag",
          "[client]") {
    test::FakeRegistry reg;
    Client c(reg.host(), fast_options());
    try {
        c.get_manifest("team/nothing", "v9");
        FAIL("no error");
    } catch (const NotFoundError& e) {
        std::string msg = e.what();
        CHECK(msg.find(reg.host() + "/team/nothing:v9") != std::string::npos);
        CHECK(msg.find("manifest unknown") != std::string::npos);
    }
}

TEST_CASE("a manifest over the size limit is refused", "[client]") {
    test::FakeRegistry reg;
    ClientOptions o = fast_options();
    Client big(reg.host(), o);
    std::string huge = R"({"schemaVersion":2,"annotations":{"x":")" +
                       std::string(k_max_manifest_size, 'a') + "\"}}";
    big.put_manifest("app", "huge", "application/vnd.oci.image.manifest.v1+json", huge);
    try {
        big.get_manifest("app", "huge");
        FAIL("no error");
    } catch (const RegistryError& e) {
        std::string msg = e.what();
        CHECK(msg.find("app:huge") != std::string::npos);
        CHECK(msg.find("larger than 4194304 bytes") != std::string::npos);
    }
}

TEST_CASE("a blob whose bytes do not match its digest is detected", "[client]") {
    test::FakeRegistry good;
    Client up(good.host(), fast_options());
    BlobFile b(pattern(100000, 4));
    up.push_blob("app", b.digest(), b.data.size(), b.fd.get());

    SECTION("flipped byte") {
        test::FakeRegistry bad({"--corrupt-blobs"});
        Client c(bad.host(), fast_options());
        c.push_blob("app", b.digest(), b.data.size(), b.fd.get());
        try {
            fetch(c, "app", b.digest(), b.data.size());
            FAIL("no error");
        } catch (const DigestMismatchError& e) {
            std::string msg = e.what();
            CHECK(msg.find(b.digest().str()) != std::string::npos);
            CHECK(msg.find(bad.host() + "/app") != std::string::npos);
            CHECK(msg.find("hash to sha256:") != std::string::npos);
        }
    }
    SECTION("trailing extra byte") {
        test::FakeRegistry bad({"--extra-bytes"});
        Client c(bad.host(), fast_options());
        c.push_blob("app", b.digest(), b.data.size(), b.fd.get());
        CHECK_THROWS_AS(fetch(c, "app", b.digest(), b.data.size()), DigestMismatchError);
        CHECK_THROWS_AS(fetch(c, "app", b.digest()), DigestMismatchError);
    }
}

TEST_CASE("429 and 503 answers are retried with backoff", "[client]") {
    test::FakeRegistry reg({"--flaky", "3"});
    Client c(reg.host(), fast_options());
    BlobFile b(pattern(4096, 5));
    c.push_blob("app", b.digest(), b.data.size(), b.fd.get());
    CHECK(fetch(c, "app", b.digest()) == b.data);
    std::string path = "GET /v2/app/blobs/" + b.digest().str();
    CHECK(reg.count(path + " 429") == 2);
    CHECK(reg.count(path + " 503") == 1);
    CHECK(reg.count(path + " 200") == 1);

    SECTION("and give up after the last attempt, naming the status") {
        ClientOptions o = fast_options();
        o.retry.max_attempts = 2;
        Client impatient(reg.host(), o);
        c.put_manifest("app", "v1", "application/vnd.oci.image.manifest.v1+json", k_manifest);
        try {
            impatient.get_manifest("app", "v1");
            FAIL("no error");
        } catch (const RegistryError& e) {
            CHECK(std::string(e.what()).find("HTTP 503") != std::string::npos);
        }
    }
}

TEST_CASE("a download cut short restarts from the beginning", "[client]") {
    test::FakeRegistry reg({"--drop-after", "10000"});
    Client c(reg.host(), fast_options());
    BlobFile b(pattern(100000, 6));
    c.push_blob("app", b.digest(), b.data.size(), b.fd.get());
    int restarts = 0;
    CHECK(fetch(c, "app", b.digest(), b.data.size(), &restarts) == b.data);
    CHECK(restarts == 1);
}

TEST_CASE("blob downloads follow redirects", "[client]") {
    test::FakeRegistry reg({"--redirect-blobs"});
    Client c(reg.host(), fast_options());
    BlobFile b(pattern(30000, 7));
    c.push_blob("app", b.digest(), b.data.size(), b.fd.get());
    CHECK(fetch(c, "app", b.digest()) == b.data);
    CHECK(reg.count("GET /v2/app/blobs/" + b.digest().str() + " 307") == 1);
    CHECK(reg.count("GET /storage/" + b.digest().str() + " 200") == 1);
}

TEST_CASE("basic auth: the right password works, a wrong one is a clear error", "[client]") {
    test::FakeRegistry reg({"--auth", "basic"});
    BlobFile b(pattern(1000, 8));
    {
        ClientOptions o = fast_options();
        o.credentials = Credentials{"alice", "s3cret", ""};
        Client c(reg.host(), o);
        c.ping();
        CHECK(c.push_blob("app", b.digest(), b.data.size(), b.fd.get()) == BlobPush::uploaded);
        CHECK(fetch(c, "app", b.digest()) == b.data);
    }
    {
        ClientOptions o = fast_options();
        o.credentials = Credentials{"alice", "wrong", ""};
        Client c(reg.host(), o);
        try {
            c.ping();
            FAIL("no error");
        } catch (const UnauthorizedError& e) {
            std::string msg = e.what();
            CHECK(msg.find(reg.host()) != std::string::npos);
            CHECK(msg.find("credentials were not accepted") != std::string::npos);
        }
    }
    {
        Client anon(reg.host(), fast_options());
        try {
            anon.get_manifest("app", "latest");
            FAIL("no error");
        } catch (const UnauthorizedError& e) {
            CHECK(std::string(e.what()).find("strata login " + reg.host()) != std::string::npos);
        }
    }
}

TEST_CASE("bearer auth: tokens are fetched per scope from the challenge's realm", "[client]") {
    test::FakeRegistry reg({"--auth", "bearer"});
    BlobFile b(pattern(5000, 9));
    ClientOptions o = fast_options();
    o.credentials = Credentials{"alice", "s3cret", ""};
    Client c(reg.host(), o);
    CHECK(c.push_blob("team/app", b.digest(), b.data.size(), b.fd.get()) == BlobPush::uploaded);
    c.put_manifest("team/app", "v1", "application/vnd.oci.image.manifest.v1+json", k_manifest);
    CHECK(reg.count("GET /token?service=fake&scope=repository%3Ateam%2Fapp%3Apull%2Cpush") == 1);

    // Anonymous pulls get a pull token; anonymous pushes are refused.
    Client anon(reg.host(), fast_options());
    CHECK(fetch(anon, "team/app", b.digest()) == b.data);
    CHECK(anon.get_manifest("team/app", "v1").bytes == k_manifest);
    CHECK_THROWS_AS(anon.push_blob("team/other", Digest::of("x"), 1, b.fd.get()),
                    UnauthorizedError);

    ClientOptions wrong = fast_options();
    wrong.credentials = Credentials{"alice", "nope", ""};
    Client w(reg.host(), wrong);
    try {
        w.ping();
        FAIL("no error");
    } catch (const UnauthorizedError& e) {
        std::string msg = e.what();
        CHECK(msg.find("refused the credentials") != std::string::npos);
        CHECK(msg.find("/token") != std::string::npos);
    }
}

TEST_CASE("catalog and tags follow Link pagination", "[client]") {
    test::FakeRegistry reg({"--page", "2"});
    Client c(reg.host(), fast_options());
    for (const char* repo : {"a", "b", "c", "d", "e"}) {
        c.put_manifest(repo, "latest", "application/vnd.oci.image.manifest.v1+json", k_manifest);
    }
    for (const char* tag : {"v1", "v2", "v3"}) {
        c.put_manifest("a", tag, "application/vnd.oci.image.manifest.v1+json", k_manifest);
    }
    CHECK(c.catalog() == std::vector<std::string>{"a", "b", "c", "d", "e"});
    CHECK(c.tags("a") == std::vector<std::string>{"latest", "v1", "v2", "v3"});
    CHECK(reg.count("GET /v2/_catalog") == 3);
    CHECK_THROWS_AS(c.tags("zzz"), NotFoundError);
}

TEST_CASE("an unreachable registry is a clear error", "[client]") {
    int port = test::free_port();
    ClientOptions o = fast_options();
    o.retry.max_attempts = 1;
    Client c("127.0.0.1:" + std::to_string(port), o);
    try {
        c.ping();
        FAIL("no error");
    } catch (const RegistryError& e) {
        CHECK(std::string(e.what()).find("cannot reach registry 127.0.0.1:" +
                                         std::to_string(port)) != std::string::npos);
    }
}

TEST_CASE("a refused connection fails after one quick retry, naming host:port and the cause",
          "[client]") {
    int port = test::free_port(); // nothing listens there
    std::string hostport = "127.0.0.1:" + std::to_string(port);
    ClientOptions defaults; // the real retry policy: 5 attempts, 250 ms backoff
    SECTION("one request") {
        HttpSession s;
        HttpRequest req;
        req.url = "http://" + hostport + "/v2/";
        auto t0 = std::chrono::steady_clock::now();
        try {
            perform_with_retries(s, req, defaults.retry);
            FAIL("no error");
        } catch (const TransportError& e) {
            CHECK(e.connect_failure());
            CHECK_THAT(e.what(), Catch::Contains("GET http://" + hostport + "/v2/: dial tcp " +
                                                 hostport + ": connect: connection refused"));
        }
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - t0);
        CHECK(ms.count() >= 100); // the one retry
        CHECK(ms.count() < 1000); // not 250+500+1000+2000 ms of backoff
    }
    SECTION("the client: ping, pull and push") {
        Client c(hostport, defaults);
        auto t0 = std::chrono::steady_clock::now();
        CHECK_THROWS_WITH(c.ping(), Catch::Contains("cannot reach registry " + hostport) &&
                                        Catch::Contains("dial tcp " + hostport +
                                                        ": connect: connection refused"));
        Client c2(hostport, defaults);
        CHECK_THROWS_WITH(
            c2.get_manifest("library/busybox", "latest"),
            Catch::Contains("dial tcp " + hostport + ": connect: connection refused"));
        Client c3(hostport, defaults);
        BlobFile b(pattern(1000, 3));
        CHECK_THROWS_WITH(
            c3.push_blob("app", b.digest(), b.data.size(), b.fd.get()),
            Catch::Contains("dial tcp " + hostport + ": connect: connection refused"));
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - t0);
        CHECK(ms.count() < 3000); // three clients, ~100 ms each
    }
    SECTION("IPv6 loopback") {
        HttpSession s;
        HttpRequest req;
        req.url = "http://[::1]:" + std::to_string(port) + "/v2/";
        CHECK_THROWS_WITH(
            perform_with_retries(s, req, defaults.retry),
            Catch::Contains("dial tcp [::1]:" + std::to_string(port) + ": connect: "));
    }
    SECTION("an unknown host") {
        HttpSession s;
        HttpRequest req;
        req.url = "https://nosuch.invalid:5000/v2/";
        auto t0 = std::chrono::steady_clock::now();
        try {
            perform_with_retries(s, req, defaults.retry);
            FAIL("no error");
        } catch (const TransportError& e) {
            CHECK(e.connect_failure());
            CHECK_THAT(e.what(), Catch::Contains("dial tcp: lookup nosuch.invalid: no such host"));
        }
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - t0);
        CHECK(ms.count() < 1500);
    }
}

TEST_CASE("TLS: a self-signed certificate fails verification unless it is turned off", "[client]") {
    auto openssl = find_program("openssl");
    REQUIRE(openssl.has_value());
    TempDir certs;
    std::string cert = certs.path() + "/cert.pem", key = certs.path() + "/key.pem";
    RunResult gen = run_capture({*openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
                                 "/CN=127.0.0.1", "-days", "1", "-keyout", key, "-out", cert},
                                true);
    REQUIRE(gen.status.success());
    test::FakeRegistry reg({"--tls", cert, key});

    HttpRequest req;
    req.url = "https://" + reg.host() + "/v2/";
    HttpOptions strict;
    HttpSession verifying(strict);
    try {
        verifying.perform(req);
        FAIL("no error");
    } catch (const TransportError& e) {
        CHECK(e.tls_failure());
        CHECK(std::string(e.what()).find("certificate") != std::string::npos);
    }
    HttpOptions lax;
    lax.tls_verify = false;
    HttpSession trusting(lax);
    CHECK(trusting.perform(req).status == 200);

    // A loopback registry is insecure: HTTPS without verification, no HTTP fallback needed.
    Client c(reg.host(), fast_options());
    CHECK(c.base_url() == "https://" + reg.host());
    BlobFile b(pattern(10000, 10));
    CHECK(c.push_blob("app", b.digest(), b.data.size(), b.fd.get()) == BlobPush::uploaded);
    CHECK(fetch(c, "app", b.digest()) == b.data);
}
