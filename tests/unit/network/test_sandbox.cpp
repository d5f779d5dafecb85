// Sandboxes on a bridge: runs as root in a network namespace of its own
// (the test process leaves the host's network first).
#include "network/netlink.hpp"
#include "network/netns.hpp"
#include "network/sandbox.hpp"

#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace strata;
using namespace strata::network;

namespace {

void private_netns() {
    REQUIRE(::unshare(CLONE_NEWNET) == 0);
    netlink::Netlink::open().set_up("lo");
}

// A TCP listener on port 7000 inside netns_fd.
UniqueFd listen_in(int netns_fd) {
    UniqueFd fd;
    with_netns(netns_fd, [&] {
        fd = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(7000);
        REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(fd.get(), 4) == 0);
    });
    return fd;
}

// The veths of this namespace (their peers' namespaces gone, the kernel
// deletes them shortly after).
int veths_left() {
    for (int i = 0; i < 200; ++i) {
        int n = 0;
        if (auto* names = ::if_nameindex()) {
            for (auto* p = names; p->if_index != 0; ++p) {
                n += std::string(p->if_name).rfind("veth", 0) == 0 ? 1 : 0;
            }
            ::if_freenameindex(names);
        }
        if (n == 0) {
            return 0;
        }
        ::usleep(10000);
    }
    return -1;
}

bool connects(const std::string& addr) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(7000);
    ::inet_pton(AF_INET, addr.c_str(), &a.sin_addr);
    return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
}

} // namespace

TEST_CASE("sandboxes on a bridge reach each other and the host; teardown leaves nothing",
          "[root]") {
    private_netns();
    TempDir tmp;
    NetworkStore store(tmp.path());
    CreateOptions o;
    o.name = "app";
    o.subnet = "10.77.0.0/24";
    auto net = store.create(o);
    auto nl = netlink::Netlink::open();
    {
        SandboxRequest r1{tmp.path(), std::string(64, '1'), "one", "one", {{"app", "", {"web"}}}};
        SandboxRequest r2{
            tmp.path(), std::string(64, '2'), "two", "two", {{"app", "10.77.0.50", {}}}};
        auto s1 = Sandbox::create(r1);
        auto s2 = Sandbox::create(r2);
        CHECK(s1.hosts_address() == "10.77.0.2");
        CHECK(s2.hosts_address() == "10.77.0.50");
        CHECK(s1.gateway() == "10.77.0.1");
        CHECK(nl.ifindex(net.device()) != 0);
        auto st = s1.settings();
        CHECK(st["Networks"]["app"]["IPAddress"] == "10.77.0.2");
        CHECK(st["Networks"]["app"]["MacAddress"] == "02:42:0a:4d:00:02");
        CHECK(st["Networks"]["app"]["Aliases"][0] == "web");
        CHECK(s2.settings()["Networks"]["app"]["IPAMConfig"]["IPv4Address"] == "10.77.0.50");
        CHECK(s1.lookup("WEB") == std::vector<ipv4::Address>{ipv4::Address::parse("10.77.0.2")});
        CHECK(s1.lookup("two") == std::vector<ipv4::Address>{ipv4::Address::parse("10.77.0.50")});
        CHECK(s1.lookup(std::string(12, '2')).size() == 1);
        CHECK(s1.lookup("three").empty());

        UniqueFd l2 = listen_in(s2.netns_fd());
        // Host (this namespace) -> container, and container -> container.
        CHECK(connects("10.77.0.50"));
        bool from_one = false;
        with_netns(s1.netns_fd(), [&] { from_one = connects("10.77.0.50"); });
        CHECK(from_one);

        // Default bridge alongside: a second network, a second device.
        SandboxRequest r3{tmp.path(), std::string(64, '3'), "three", "three", {{"bridge", "", {}}}};
        auto s3 = Sandbox::create(r3);
        CHECK(s3.hosts_address() == "172.17.0.2");
        CHECK(s3.settings()["IPAddress"] == "172.17.0.2");
        CHECK(nl.ifindex("strata0") != 0);
        CHECK(s3.lookup("one").empty());
    }
    // The bridges stay while their networks exist (Docker's); the veths go.
    CHECK(nl.ifindex(net.device()) != 0);
    CHECK(nl.ifindex("strata0") != 0);
    CHECK(veths_left() == 0);
    CHECK(store.endpoints(net.id).empty());
    remove_network(tmp.path(), store.load("app"));
    CHECK(nl.ifindex(net.device()) == 0);
    CHECK_FALSE(store.find("app"));
}

TEST_CASE("a dead owner's endpoint is recovered: veth deleted, address free", "[root]") {
    private_netns();
    TempDir tmp;
    NetworkStore store(tmp.path());
    CreateOptions o;
    o.name = "rec";
    o.subnet = "10.78.0.0/24";
    auto net = store.create(o);
    auto nl = netlink::Netlink::open();
    pid_t pid = ::fork();
    if (pid == 0) {
        try {
            SandboxRequest r{tmp.path(), std::string(64, '4'), "c", "c", {{"rec", "", {}}}};
            auto s = Sandbox::create(r);
            ::_exit(0); // no teardown: as a monitor killed by SIGKILL
        } catch (...) {
            ::_exit(1);
        }
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    auto files = [&] {
        return fs::list_dir(store.endpoint_path(net.id, "x")
                                .substr(0, store.endpoint_path(net.id, "x").rfind('/')));
    };
    CHECK(files().size() == 1); // stale: its owner died without teardown
    CHECK(store.endpoints(net.id).empty());
    recover(tmp.path());
    CHECK(files().empty());
    CHECK(veths_left() == 0);
    SandboxRequest r{tmp.path(), std::string(64, '5'), "d", "d", {{"rec", "", {}}}};
    auto s = Sandbox::create(r);
    CHECK(s.hosts_address() == "10.78.0.2");
}
