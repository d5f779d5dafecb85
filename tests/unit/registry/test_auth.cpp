// WWW-Authenticate parsing, Link headers, insecure hosts, and the Docker
// config file strata shares with docker/podman/skopeo.
#include "registry/auth.hpp"
#include "registry/client.hpp"
#include "registry/http.hpp"
#include "tests/support/support.hpp"
#include "util/base64.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <sys/stat.h>

using namespace strata;
using namespace strata::registry;

TEST_CASE("WWW-Authenticate: a Bearer challenge with quoted, comma-holding values", "[auth]") {
    auto cs = parse_www_authenticate(
        R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push")");
    REQUIRE(cs.size() == 1);
    CHECK(cs[0].scheme == "bearer");
    CHECK(cs[0].params.at("realm") == "https://auth.docker.io/token");
    CHECK(cs[0].params.at("service") == "registry.docker.io");
    CHECK(cs[0].params.at("scope") == "repository:library/busybox:pull,push");
}

TEST_CASE("WWW-Authenticate: several challenges, tokens, escapes and spacing", "[auth]") {
    auto cs = parse_www_authenticate(
        R"(Basic realm="a \"quoted\" realm", charset=UTF-8 ,  BEARER realm = "https://x/t" , error="invalid_token")");
    REQUIRE(cs.size() == 2);
    CHECK(cs[0].scheme == "basic");
    CHECK(cs[0].params.at("realm") == R"(a "quoted" realm)");
    CHECK(cs[0].params.at("charset") == "UTF-8");
    CHECK(cs[1].scheme == "bearer");
    CHECK(cs[1].params.at("realm") == "https://x/t");
    CHECK(cs[1].params.at("error") == "invalid_token");
    CHECK(parse_www_authenticate("Basic").at(0).params.empty());
    CHECK_THROWS_AS(parse_www_authenticate(R"(Bearer realm="unterminated)"), RegistryError);
    CHECK_THROWS_AS(parse_www_authenticate("=oops"), RegistryError);
}

TEST_CASE("Link headers: the rel=next target is found among others", "[auth]") {
    CHECK(next_link(R"(</v2/_catalog?last=b&n=2>; rel="next")") == "/v2/_catalog?last=b&n=2");
    CHECK(next_link(R"(<https://r/prev>; rel="prev", <https://r/next?n=1>; rel=next)") ==
          "https://r/next?n=1");
    CHECK_FALSE(next_link(R"(</v2/x>; rel="prev")").has_value());
    CHECK_FALSE(next_link("garbage").has_value());
}

TEST_CASE("loopback registries and the listed ones are insecure", "[auth]") {
    CHECK(is_insecure_host("localhost:5000"));
    CHECK(is_insecure_host("127.0.0.1:5000"));
    CHECK(is_insecure_host("127.1.2.3"));
    CHECK(is_insecure_host("[::1]:5000"));
    CHECK_FALSE(is_insecure_host("docker.io"));
    CHECK_FALSE(is_insecure_host("quay.io"));
    ::setenv("STRATA_INSECURE_REGISTRIES", "reg.lan:5000,other.lan", 1);
    CHECK(is_insecure_host("reg.lan:5000"));
    CHECK(is_insecure_host("other.lan:443"));
    CHECK_FALSE(is_insecure_host("reg.lan:6000"));
    ::unsetenv("STRATA_INSECURE_REGISTRIES");
    CHECK(api_host("docker.io") == "registry-1.docker.io");
    CHECK(api_host("quay.io") == "quay.io");
}

TEST_CASE("backoff doubles, is capped, and honours Retry-After", "[auth]") {
    RetryPolicy p;
    p.initial_backoff = std::chrono::milliseconds(100);
    p.max_backoff = std::chrono::milliseconds(1000);
    CHECK(backoff_delay(p, 1, nullptr).count() == 100);
    CHECK(backoff_delay(p, 2, nullptr).count() == 200);
    CHECK(backoff_delay(p, 3, nullptr).count() == 400);
    CHECK(backoff_delay(p, 10, nullptr).count() == 1000);
    HttpResponse r;
    r.headers.add("retry-after", "0");
    CHECK(backoff_delay(p, 3, &r).count() == 0);
    r.headers.clear();
    r.headers.add("retry-after", "120");
    CHECK(backoff_delay(p, 1, &r).count() == 1000);
    CHECK(retryable_status(429));
    CHECK(retryable_status(503));
    CHECK_FALSE(retryable_status(404));
    CHECK_FALSE(retryable_status(401));
}

TEST_CASE("a config's auth must be base64 (padding may be left off)", "[auth]") {
    TempDir dir;
    std::string path = dir.path() + "/config.json";
    auto with_auth = [&](const std::string& auth) {
        test::write_file(path, R"({"auths": {"reg.lan": {"auth": ")" + auth + R"("}}})");
        return load_credentials("reg.lan", path);
    };
    CHECK(with_auth("YWxpY2U6czNjcmV0") == Credentials{"alice", "s3cret", ""});
    CHECK(with_auth("YTpi") == Credentials{"a", "b", ""});
    CHECK(with_auth("YTpiYw") == Credentials{"a", "bc", ""}); // "YTpiYw==" unpadded
    // Truncated, bad padding, whitespace, characters outside the alphabet.
    for (const char* bad : {"YTpiY", "YTpi=", "YTpiYw=", "YTpi====", "YT=pi", " YTpi", "YTpi ",
                            "YT\\npi", "YTp!", "YTp-", "YTp_"}) {
        INFO(bad);
        CHECK_THROWS_WITH(with_auth(bad), Catch::Contains("auth is not valid base64"));
    }
}

TEST_CASE("credentials are stored in config.json auths and read back", "[auth]") {
    TempDir dir;
    std::string path = dir.path() + "/docker/config.json";
    CHECK_FALSE(load_credentials("127.0.0.1:5000", path).has_value());
    store_credentials("127.0.0.1:5000", Credentials{"alice", "pa:ss", ""}, path);
    store_credentials("docker.io", Credentials{"bob", "hub", ""}, path);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);

    auto j = nlohmann::json::parse(fs::read_file(path));
    CHECK(j["auths"]["127.0.0.1:5000"]["auth"] == base64_encode("alice:pa:ss"));
    CHECK(j["auths"]["https://index.docker.io/v1/"]["auth"] == base64_encode("bob:hub"));

    CHECK(load_credentials("127.0.0.1:5000", path) == Credentials{"alice", "pa:ss", ""});
    CHECK(load_credentials("docker.io", path) == Credentials{"bob", "hub", ""});
    CHECK(load_credentials("registry-1.docker.io", path) == Credentials{"bob", "hub", ""});
    CHECK_FALSE(load_credentials("127.0.0.1:5001", path).has_value());

    CHECK(erase_credentials("127.0.0.1:5000", path));
    CHECK_FALSE(erase_credentials("127.0.0.1:5000", path));
    CHECK_FALSE(load_credentials("127.0.0.1:5000", path).has_value());
    CHECK(load_credentials("docker.io", path).has_value());
}

TEST_CASE("a Docker-written config is read and its other keys are kept", "[auth]") {
    TempDir dir;
    std::string path = dir.path() + "/config.json";
    test::write_file(path, R"({
	"auths": {
		"https://quay.io/v1/": {"auth": "cXVheTpwdw=="},
		"reg.lan:5000": {"auth": "", "identitytoken": "tok"}
	},
	"psFormat": "table {{.ID}}",
	"HttpHeaders": {"User-Agent": "x"}
})");
    CHECK(load_credentials("quay.io", path) == Credentials{"quay", "pw", ""});
    CHECK(load_credentials("reg.lan:5000", path) == Credentials{"", "", "tok"});
    store_credentials("quay.io", Credentials{"quay", "new", ""}, path);
    auto j = nlohmann::json::parse(fs::read_file(path));
    CHECK(j["psFormat"] == "table {{.ID}}");
    CHECK(j["HttpHeaders"]["User-Agent"] == "x");
    CHECK_FALSE(j["auths"].contains("https://quay.io/v1/"));
    CHECK(j["auths"]["quay.io"]["auth"] == base64_encode("quay:new"));
}

TEST_CASE("a broken config file is an error naming the file", "[auth]") {
    TempDir dir;
    std::string path = dir.path() + "/config.json";
    test::write_file(path, "{not json");
    try {
        load_credentials("x", path);
        FAIL("no error");
    } catch (const RegistryError& e) {
        CHECK(std::string(e.what()).find(path) != std::string::npos);
    }
    test::write_file(path, R"({"auths":{"x":{"auth":"bm9jb2xvbg=="}}})");
    CHECK_THROWS_WITH(load_credentials("x", path), Catch::Contains("user:password"));
}

TEST_CASE("DOCKER_CONFIG chooses the config directory", "[auth]") {
    ::setenv("DOCKER_CONFIG", "/some/where", 1);
    CHECK(docker_config_path() == "/some/where/config.json");
    ::unsetenv("DOCKER_CONFIG");
    std::string home = std::getenv("HOME") != nullptr ? std::getenv("HOME") : "";
    ::setenv("HOME", "/home/u", 1);
    CHECK(docker_config_path() == "/home/u/.docker/config.json");
    ::setenv("HOME", home.c_str(), 1);
}

TEST_CASE("a credential helper named by credsStore stores, returns and erases credentials",
          "[auth]") {
    TempDir dir;
    // docker-credential-fake: keeps one JSON answer in a file, as the real
    // helpers keep it in a keychain.
    std::string bin = dir.path() + "/bin";
    std::string saved = dir.path() + "/saved.json";
    test::write_file(bin + "/docker-credential-fake",
                     "#!/bin/sh\n"
                     "case \"$1\" in\n"
                     "  store) cat > '" +
                         saved +
                         "' ;;\n"
                         "  get) read url; [ -f '" +
                         saved +
                         "' ] || { echo 'credentials not found in native keychain'; exit 1; }\n"
                         "       sed 's/\"ServerURL\":\"[^\"]*\",//' '" +
                         saved +
                         "' ;;\n"
                         "  erase) read url; rm -f '" +
                         saved +
                         "' ;;\n"
                         "esac\n",
                     0755);
    std::string old_path = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "";
    ::setenv("PATH", (bin + ":" + old_path).c_str(), 1);
    std::string path = dir.path() + "/config.json";
    test::write_file(path, R"({"credsStore":"fake"})");

    CHECK_FALSE(load_credentials("reg.lan", path).has_value());
    store_credentials("reg.lan", Credentials{"carol", "pw", ""}, path);
    CHECK(fs::read_file(saved).find("\"Username\":\"carol\"") != std::string::npos);
    CHECK(load_credentials("reg.lan", path) == Credentials{"carol", "pw", ""});
    // The password is not in config.json; Docker records the registry with an empty entry.
    auto j = nlohmann::json::parse(fs::read_file(path));
    CHECK(j["auths"]["reg.lan"] == nlohmann::json::object());
    CHECK(erase_credentials("reg.lan", path));
    CHECK_FALSE(load_credentials("reg.lan", path).has_value());
    ::setenv("PATH", old_path.c_str(), 1);
}
