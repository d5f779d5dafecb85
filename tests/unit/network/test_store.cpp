#include "network/store.hpp"

#include "util/tempdir.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <thread>

using namespace strata;
using namespace strata::network;

TEST_CASE("network store: predefined networks, create, names, Docker's messages", "[network]") {
    TempDir tmp;
    NetworkStore store(tmp.path());
    auto names = [&] {
        std::vector<std::string> v;
        for (const auto& n : store.list()) {
            v.push_back(n.name);
        }
        return v;
    };
    CHECK(names() == std::vector<std::string>{"bridge", "host", "none"});
    auto bridge = store.load("bridge");
    CHECK(bridge.subnet->str() == "172.17.0.0/16");
    CHECK(bridge.gateway.str() == "172.17.0.1");
    CHECK(bridge.device() == "strata0");
    CHECK(store.load("none").driver == "null");
    CHECK(store.load("host").to_json()["IPAM"]["Config"].empty());

    CreateOptions o;
    o.name = "app";
    auto app = store.create(o);
    CHECK(app.id.size() == 64);
    // The first /16 after the default bridge's.
    CHECK(app.subnet->str() == "172.18.0.0/16");
    CHECK(app.gateway.str() == "172.18.0.1");
    CHECK(app.device() == "br-" + app.id.substr(0, 12));
    CHECK(store.load(app.id.substr(0, 5)).name == "app");
    CHECK(store.load(app.id).name == "app");
    CHECK_THROWS_WITH(store.create(o), "network with name app already exists");
    CHECK_THROWS_WITH(store.load("nope"), "network nope not found");
    CHECK_THROWS_AS(store.load("nope"), NetworkNotFound);

    CreateOptions fixed;
    fixed.name = "fixed";
    fixed.subnet = "10.10.0.0/24";
    fixed.gateway = "10.10.0.254";
    auto f = store.create(fixed);
    CHECK(f.gateway.str() == "10.10.0.254");
    CHECK(f.configured_subnet);
    auto doc = f.to_json();
    CHECK(doc["IPAM"]["Config"][0]["Subnet"] == "10.10.0.0/24");
    CHECK(doc["Scope"] == "local");
    CHECK_FALSE(doc.contains("StrataConfiguredSubnet"));
    CreateOptions overlap;
    overlap.name = "overlap";
    overlap.subnet = "10.10.0.128/25";
    CHECK_THROWS_WITH(store.create(overlap), Catch::Contains("Pool overlaps"));
    CreateOptions badgw;
    badgw.name = "badgw";
    badgw.subnet = "10.20.0.0/24";
    badgw.gateway = "10.21.0.1";
    CHECK_THROWS_WITH(store.create(badgw), "no matching subnet for gateway 10.21.0.1");

    CHECK_THROWS_WITH(store.remove(store.load("bridge")),
                      "bridge is a pre-defined network and cannot be removed");
    {
        FileLock l = store.lock();
        store.remove(app);
    }
    CHECK_FALSE(store.find("app"));
    // The name is free again.
    CHECK(store.create(o).name == "app");
}

TEST_CASE("IPAM: first free address, --ip honoured or refused, stale endpoints swept",
          "[network]") {
    TempDir tmp;
    NetworkStore store(tmp.path());
    CreateOptions o;
    o.name = "n";
    o.subnet = "10.5.0.0/24";
    auto net = store.create(o);
    FileLock l = store.lock();
    auto a = store.claim(net, std::string(64, 'a'), "a", {}, "", "vetha");
    CHECK(a.endpoint.address.str() == "10.5.0.2");
    CHECK(a.endpoint.mac == "02:42:0a:05:00:02");
    auto b = store.claim(net, std::string(64, 'b'), "b", {"web"}, "10.5.0.9", "vethb");
    CHECK(b.endpoint.address.str() == "10.5.0.9");
    CHECK(b.endpoint.static_address);
    CHECK_THROWS_WITH(store.claim(net, std::string(64, 'c'), "c", {}, "10.5.0.9", "vethc"),
                      "Address already in use");
    CHECK_THROWS_WITH(store.claim(net, std::string(64, 'c'), "c", {}, "10.6.0.9", "vethc"),
                      Catch::Contains("It does not belong to any of this network's subnets"));
    CHECK_THROWS_WITH(store.claim(net, std::string(64, 'a'), "a", {}, "", "vetha2"),
                      "endpoint with name a already exists in network n");
    auto c = store.claim(net, std::string(64, 'c'), "c", {}, "", "vethc");
    CHECK(c.endpoint.address.str() == "10.5.0.3");
    CHECK(store.endpoints(net.id).size() == 3);
    CHECK_THROWS_WITH(store.remove(net), Catch::Contains("has active endpoints"));

    // The default bridge's subnet is not the user's: --ip is refused.
    auto bridge = store.load("bridge");
    CHECK_THROWS_WITH(store.claim(bridge, std::string(64, 'd'), "d", {}, "172.17.0.5", "vethd"),
                      "user specified IP address is supported only when connecting to networks "
                      "with user configured subnets");

    // An owner that dies (its lock goes): the endpoint is stale, its address free.
    a.lock.reset();
    CHECK(store.endpoints(net.id).size() == 2);
    auto stale = store.sweep(net.id);
    REQUIRE(stale.size() == 1);
    CHECK(stale[0].host_veth == "vetha");
    auto d = store.claim(net, std::string(64, 'd'), "d", {}, "", "vethd");
    CHECK(d.endpoint.address.str() == "10.5.0.2");
}

TEST_CASE("IPAM: 20 concurrent claims get 20 distinct addresses", "[network]") {
    TempDir tmp;
    NetworkStore store(tmp.path());
    CreateOptions o;
    o.name = "par";
    auto net = store.create(o);
    std::vector<std::optional<NetworkStore::Claim>> claims(20);
    std::vector<std::thread> threads;
    for (int i = 0; i < 20; ++i) {
        threads.emplace_back([&, i] {
            NetworkStore s(tmp.path()); // as another process would
            FileLock l = s.lock();
            claims[static_cast<std::size_t>(i)] =
                s.claim(net, std::string(63, 'e') + "0123456789abcdefghijk"[i],
                        "c" + std::to_string(i), {}, "", "veth" + std::to_string(i));
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    std::set<std::string> addrs;
    for (const auto& c : claims) {
        REQUIRE(c);
        addrs.insert(c->endpoint.address.str());
    }
    CHECK(addrs.size() == 20);
    CHECK(store.endpoints(net.id).size() == 20);
}
