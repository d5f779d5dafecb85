#include "network/ports.hpp"

#include "util/error.hpp"

#include <catch2/catch.hpp>

using strata::UsageError;
using strata::network::PortBinding;
namespace ports = strata::network::ports;

namespace {

PortBinding pb(const char* proto, std::uint16_t cport, const char* ip, std::uint16_t hport,
               std::uint16_t hend = 0) {
    PortBinding b;
    b.proto = proto;
    b.container_port = cport;
    b.host_ip = ip;
    b.host_port = hport;
    b.host_port_end = hend;
    return b;
}

} // namespace

TEST_CASE("publish flag: Docker's [ip:][hostPort:]containerPort[/proto]", "[ports]") {
    CHECK(ports::parse_publish("80") == std::vector{pb("tcp", 80, "", 0)});
    CHECK(ports::parse_publish("8080:80") == std::vector{pb("tcp", 80, "", 8080)});
    CHECK(ports::parse_publish("127.0.0.1:18080:80") ==
          std::vector{pb("tcp", 80, "127.0.0.1", 18080)});
    CHECK(ports::parse_publish("127.0.0.1::80") == std::vector{pb("tcp", 80, "127.0.0.1", 0)});
    CHECK(ports::parse_publish("0.0.0.0:53:53/udp") == std::vector{pb("udp", 53, "", 53)});
    CHECK(ports::parse_publish("53:53/UDP") == std::vector{pb("udp", 53, "", 53)});
    CHECK(ports::parse_publish("8000-8001:80-81") ==
          std::vector{pb("tcp", 80, "", 8000), pb("tcp", 81, "", 8001)});
    CHECK(ports::parse_publish("80-81") == std::vector{pb("tcp", 80, "", 0), pb("tcp", 81, "", 0)});
    // A host range for one container port: the range to pick a free port from.
    CHECK(ports::parse_publish("8000-8010:80") == std::vector{pb("tcp", 80, "", 8000, 8010)});
    CHECK(ports::parse_publish("0:80") == std::vector{pb("tcp", 80, "", 0)});
}

TEST_CASE("publish flag: Docker's error texts", "[ports]") {
    CHECK_THROWS_WITH(ports::parse_publish("abc"), "invalid containerPort: abc");
    CHECK_THROWS_WITH(ports::parse_publish("8080:"), "no port specified: 8080:<empty>");
    CHECK_THROWS_WITH(ports::parse_publish(""), "no port specified: <empty>");
    CHECK_THROWS_WITH(ports::parse_publish("x:80"), "invalid hostPort: x");
    CHECK_THROWS_WITH(ports::parse_publish("70000:80"), "invalid hostPort: 70000");
    CHECK_THROWS_WITH(ports::parse_publish("1.2.3:80:80"), "invalid IP address: 1.2.3");
    CHECK_THROWS_WITH(ports::parse_publish("8000-8002:80-81"),
                      "invalid ranges specified for container and host Ports: 80-81 and 8000-8002");
    CHECK_THROWS_WITH(ports::parse_publish("81-80"), "invalid containerPort: 81-80");
    CHECK_THROWS_WITH(ports::parse_publish("80/icmp"), "invalid proto: icmp");
    CHECK_THROWS_WITH(ports::parse_publish("80/sctp"), Catch::Contains("tcp and udp ports only"));
    CHECK_THROWS_AS(ports::parse_publish("0"), UsageError);
    // IPv6 is refused, saying so.
    CHECK_THROWS_WITH(ports::parse_publish("[::1]:80:80"), Catch::Contains("IPv4 addresses only"));
    CHECK_THROWS_WITH(ports::parse_publish("::1:80:80"), Catch::Contains("IPv4 addresses only"));
}

TEST_CASE("publish-all: every exposed port to a free one", "[ports]") {
    CHECK(ports::publish_all({"80/tcp", "53/udp", "8080", "132/sctp"}) ==
          std::vector{pb("tcp", 80, "", 0), pb("udp", 53, "", 0), pb("tcp", 8080, "", 0)});
    CHECK_THROWS_AS(ports::publish_all({"x/tcp"}), UsageError);
}

TEST_CASE("HostConfig.PortBindings round-trips in Docker's shape", "[ports]") {
    auto b = ports::parse_publish("127.0.0.1:18080:80");
    auto more = ports::parse_publish("9000-9009:90");
    b.insert(b.end(), more.begin(), more.end());
    b.push_back(pb("udp", 53, "", 0));
    b.push_back(pb("tcp", 80, "", 8081));
    auto json = ports::port_bindings_json(b);
    CHECK(json.dump() == R"({"53/udp":[{"HostIp":"","HostPort":""}],)"
                         R"("80/tcp":[{"HostIp":"127.0.0.1","HostPort":"18080"},)"
                         R"({"HostIp":"","HostPort":"8081"}],)"
                         R"("90/tcp":[{"HostIp":"","HostPort":"9000-9009"}]})");
    auto back = ports::port_bindings_from_json(nlohmann::json::parse(json.dump()));
    CHECK(back.size() == b.size());
    for (const auto& x : b) {
        CHECK(std::find(back.begin(), back.end(), x) != back.end());
    }
    CHECK(ports::port_bindings_from_json(nullptr).empty());
    CHECK_THROWS_WITH(ports::port_bindings_from_json(
                          nlohmann::json::parse(R"({"80/tcp":[{"HostIp":"","HostPort":"x"}]})")),
                      Catch::Contains("80/tcp"));
}

TEST_CASE("start bindings: PortBindings plus -P's exposed ports not bound", "[ports]") {
    auto host = nlohmann::json::parse(R"({"80/tcp":[{"HostIp":"","HostPort":"8080"}]})");
    auto got = ports::bindings_for_start(host, true, {"80/tcp", "443/tcp"});
    CHECK(got == std::vector{pb("tcp", 80, "", 8080), pb("tcp", 443, "", 0)});
    CHECK(ports::bindings_for_start(host, false, {"443/tcp"}) ==
          std::vector{pb("tcp", 80, "", 8080)});
    CHECK(ports::exposed_with({"443", "80/tcp", "132/sctp"}, {pb("udp", 53, "", 5353)}) ==
          std::vector<std::string>{"132/sctp", "443/tcp", "53/udp", "80/tcp"});
}

TEST_CASE("NetworkSettings.Ports and the lines of `port`", "[ports]") {
    std::vector<PortBinding> bound{pb("tcp", 80, "", 8080), pb("tcp", 80, "127.0.0.1", 18080),
                                   pb("udp", 53, "", 32768)};
    auto json = ports::ports_json(bound, {"443/tcp", "80/tcp"});
    CHECK(json.dump() == R"({"443/tcp":null,"53/udp":[{"HostIp":"0.0.0.0","HostPort":"32768"}],)"
                         R"("80/tcp":[{"HostIp":"0.0.0.0","HostPort":"8080"},)"
                         R"({"HostIp":"127.0.0.1","HostPort":"18080"}]})");
    nlohmann::json doc = nlohmann::json::parse(json.dump());
    CHECK(ports::port_lines(doc, "", "web") ==
          std::vector<std::string>{"53/udp -> 0.0.0.0:32768", "80/tcp -> 0.0.0.0:8080",
                                   "80/tcp -> 127.0.0.1:18080"});
    CHECK(ports::port_lines(doc, "80", "web") ==
          std::vector<std::string>{"0.0.0.0:8080", "127.0.0.1:18080"});
    CHECK(ports::port_lines(doc, "53/udp", "web") == std::vector<std::string>{"0.0.0.0:32768"});
    CHECK_THROWS_WITH(ports::port_lines(doc, "81/tcp", "web"),
                      "Error: No public port '81/tcp' published for web");
    CHECK_THROWS_WITH(ports::port_lines(doc, "443", "web"),
                      "Error: No public port '443' published for web");
    CHECK_THROWS_WITH(ports::port_lines(doc, "x", "web"), Catch::Contains("invalid port (x)"));
    CHECK(ports::port_lines(nullptr, "", "web").empty());
}
