#include "snapshot/reference.hpp"
#include "util/error.hpp"

#include <catch2/catch.hpp>

using strata::snapshot::Reference;

TEST_CASE("short names normalise as Docker does") {
    auto r = Reference::parse("busybox");
    CHECK(r.domain() == "docker.io");
    CHECK(r.path() == "library/busybox");
    CHECK(r.tag() == "latest");
    CHECK(r.full() == "docker.io/library/busybox:latest");
    CHECK(r.familiar() == "busybox:latest");
    CHECK(Reference::parse("docker.io/library/busybox:1.36").familiar() == "busybox:1.36");
    CHECK(Reference::parse("index.docker.io/library/busybox").full() == "docker.io/library/busybox:latest");
    CHECK(Reference::parse("user/app:v1").full() == "docker.io/user/app:v1");
    CHECK(Reference::parse("user/app:v1").familiar() == "user/app:v1");
}

TEST_CASE("registries with ports, localhost and digests are kept") {
    auto r = Reference::parse("localhost:5000/team/app:2.0");
    CHECK(r.domain() == "localhost:5000");
    CHECK(r.path() == "team/app");
    CHECK(r.tag() == "2.0");
    CHECK(r.familiar() == "localhost:5000/team/app:2.0");
    CHECK(Reference::parse("localhost/app").domain() == "localhost");
    std::string d = "sha256:" + std::string(64, 'a');
    auto withd = Reference::parse("127.0.0.1:5000/app@" + d);
    CHECK(withd.tag().empty());
    REQUIRE(withd.digest());
    CHECK(withd.digest()->str() == d);
    CHECK(withd.full() == "127.0.0.1:5000/app@" + d);
}

TEST_CASE("invalid references are rejected with the reason") {
    CHECK_THROWS_WITH(Reference::parse("Busybox"), Catch::Contains("must be lowercase"));
    CHECK_THROWS_WITH(Reference::parse("busybox:"), Catch::Contains("bad tag"));
    CHECK_THROWS_WITH(Reference::parse("busybox@sha256:abc"), Catch::Contains("bad digest"));
    CHECK_THROWS_WITH(Reference::parse("a//b"), Catch::Contains("bad repository name component"));
    CHECK_THROWS_WITH(Reference::parse(""), Catch::Contains("empty"));
    CHECK_THROWS_WITH(Reference::parse("app:-bad"), Catch::Contains("bad tag"));
    CHECK_THROWS_AS(Reference::parse(std::string(300, 'a')), strata::UsageError);
}
