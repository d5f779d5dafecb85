#include "runner/options.hpp"
#include "util/error.hpp"

#include <catch2/catch.hpp>
#include <sys/resource.h>

using namespace strata;
using namespace strata::runner;

TEST_CASE("a volume option SRC:DST:ro becomes a bind mount") {
    auto m = parse_volume("/host/data:/data");
    CHECK(m.type == Mount::Type::bind);
    CHECK(m.source == "/host/data");
    CHECK(m.target == "/data");
    CHECK_FALSE(m.read_only);
    CHECK(parse_volume("/a:/b:ro").read_only);
    CHECK_FALSE(parse_volume("/a:/b:rw").read_only);
    CHECK_THROWS_WITH(parse_volume("named:/data"),
                      "invalid --volume \"named:/data\": the source must be an absolute host path");
    CHECK_THROWS_AS(parse_volume("/a"), UsageError);
    CHECK_THROWS_AS(parse_volume("/a:rel"), UsageError);
    CHECK_THROWS_WITH(parse_volume("/a:/b:z"),
                      "invalid --volume \"/a:/b:z\": unknown option \"z\"");
}

TEST_CASE("a tmpfs option DST:OPTS becomes a tmpfs mount") {
    auto m = parse_tmpfs("/run:size=64m,ro,mode=1777");
    CHECK(m.type == Mount::Type::tmpfs);
    CHECK(m.target == "/run");
    CHECK(m.options == "size=64m,mode=1777");
    CHECK(m.read_only);
    CHECK(parse_tmpfs("/tmp").options.empty());
    CHECK_THROWS_AS(parse_tmpfs("tmp"), UsageError);
}

TEST_CASE("a ulimit option NAME=SOFT:HARD becomes an rlimit") {
    auto l = parse_ulimit("nofile=1024:2048");
    CHECK(l.resource == RLIMIT_NOFILE);
    CHECK(l.soft == 1024);
    CHECK(l.hard == 2048);
    l = parse_ulimit("core=-1");
    CHECK(l.resource == RLIMIT_CORE);
    CHECK(l.soft == RLIM_INFINITY);
    CHECK(l.hard == RLIM_INFINITY);
    CHECK(parse_ulimit("nproc=10").hard == 10);
    CHECK_THROWS_WITH(parse_ulimit("files=1"),
                      "invalid --ulimit \"files=1\": unknown limit \"files\"");
    CHECK_THROWS_AS(parse_ulimit("nofile=abc"), UsageError);
    CHECK_THROWS_AS(parse_ulimit("nofile=20:10"), UsageError);
    CHECK_THROWS_AS(parse_ulimit("nofile"), UsageError);
}

TEST_CASE("the network option takes none or host") {
    CHECK(parse_network("none") == Network::none);
    CHECK(parse_network("host") == Network::host);
    CHECK_THROWS_WITH(parse_network("bridge"),
                      "invalid --network \"bridge\": strata supports none and host");
}
