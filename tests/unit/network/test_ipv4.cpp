#include "network/ipv4.hpp"

#include <catch2/catch.hpp>

using namespace strata::network::ipv4;

TEST_CASE("IPv4 addresses parse as Go's net.ParseIP does", "[ipv4]") {
    CHECK(Address::parse("172.17.0.1").str() == "172.17.0.1");
    CHECK(Address::parse("0.0.0.0").value == 0);
    CHECK(Address::parse("255.255.255.255").value == 0xffffffffu);
    for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "1.2.3.4 ",
                            "a.b.c.d", "1..2.3", "-1.2.3.4", "1.2.3.4/8"}) {
        Address a;
        INFO(bad);
        CHECK_FALSE(Address::try_parse(bad, a));
        CHECK_THROWS_WITH(Address::parse(bad), Catch::Contains("invalid IPv4 address"));
    }
}

TEST_CASE("subnets: hosts, containment, overlap, Docker's host-bits rule", "[ipv4]") {
    Subnet s = Subnet::parse("172.18.0.0/16");
    CHECK(s.str() == "172.18.0.0/16");
    CHECK(s.host(1).str() == "172.18.0.1");
    CHECK(s.broadcast().str() == "172.18.255.255");
    CHECK(s.size() == 65536);
    CHECK(s.contains(Address::parse("172.18.200.3")));
    CHECK_FALSE(s.contains(Address::parse("172.19.0.1")));
    CHECK(s.overlaps(Subnet::parse("172.18.5.0/24")));
    CHECK(Subnet::parse("172.18.5.0/24").overlaps(s));
    CHECK_FALSE(s.overlaps(Subnet::parse("172.19.0.0/16")));
    CHECK_THROWS_WITH(s.host(65536), Catch::Contains("outside subnet 172.18.0.0/16"));
    CHECK_THROWS_WITH(Subnet::parse("10.1.2.3/16"), Catch::Contains("it should be 10.1.0.0/16"));
    CHECK_THROWS_WITH(Subnet::parse("10.1.0.0/33"), Catch::Contains("0 to 32"));
    CHECK_THROWS_WITH(Subnet::parse("10.1.0.0"), Catch::Contains("invalid subnet 10.1.0.0"));
    CHECK(Subnet::parse("0.0.0.0/0").contains(Address::parse("8.8.8.8")));
    CHECK(Subnet::of(Address::parse("10.1.2.3"), 24).str() == "10.1.2.0/24");
}
