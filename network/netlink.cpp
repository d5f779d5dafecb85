#include "network/netlink.hpp"

#include "network/netns.hpp"
#include "util/error.hpp"

#include <arpa/inet.h>
#include <cstdio>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>
#include <sys/socket.h>

namespace strata::network::netlink {

namespace {

[[noreturn]] void fail(const std::string& what, int err) {
    throw Error("netlink: " + what + ": " + nl_geterror(err));
}

// Owners of libnl objects.
struct LinkRef {
    rtnl_link* p;
    ~LinkRef() {
        if (p != nullptr) {
            rtnl_link_put(p);
        }
    }
};
struct AddrRef {
    nl_addr* p;
    ~AddrRef() {
        if (p != nullptr) {
            nl_addr_put(p);
        }
    }
};

nl_addr* build_v4(ipv4::Address a, int prefix) {
    in_addr in = a.to_in_addr();
    nl_addr* n = nl_addr_build(AF_INET, &in, sizeof in);
    if (n == nullptr) {
        throw std::bad_alloc();
    }
    nl_addr_set_prefixlen(n, prefix);
    return n;
}

nl_sock* connect_socket() {
    nl_sock* sk = nl_socket_alloc();
    if (sk == nullptr) {
        throw std::bad_alloc();
    }
    int err = nl_connect(sk, NETLINK_ROUTE);
    if (err < 0) {
        nl_socket_free(sk);
        fail("connect", err);
    }
    return sk;
}

} // namespace

Netlink Netlink::open() {
    return Netlink(connect_socket());
}

Netlink Netlink::open_in(int netns_fd) {
    nl_sock* sk = nullptr;
    with_netns(netns_fd, [&] { sk = connect_socket(); });
    return Netlink(sk);
}

Netlink::Netlink(Netlink&& o) noexcept : m_sk(std::exchange(o.m_sk, nullptr)) {}

Netlink& Netlink::operator=(Netlink&& o) noexcept {
    if (this != &o) {
        if (m_sk != nullptr) {
            nl_socket_free(m_sk);
        }
        m_sk = std::exchange(o.m_sk, nullptr);
    }
    return *this;
}

Netlink::~Netlink() {
    if (m_sk != nullptr) {
        nl_socket_free(m_sk);
    }
}

int Netlink::ifindex(const std::string& name) {
    rtnl_link* link = nullptr;
    int err = rtnl_link_get_kernel(m_sk, 0, name.c_str(), &link);
    if (err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV) {
        return 0;
    }
    if (err < 0) {
        fail("get link " + name, err);
    }
    LinkRef ref{link};
    return rtnl_link_get_ifindex(link);
}

bool Netlink::create_bridge(const std::string& name) {
    LinkRef link{rtnl_link_bridge_alloc()};
    if (link.p == nullptr) {
        throw std::bad_alloc();
    }
    rtnl_link_set_name(link.p, name.c_str());
    int err = rtnl_link_add(m_sk, link.p, NLM_F_CREATE | NLM_F_EXCL);
    if (err == -NLE_EXIST) {
        return false;
    }
    if (err < 0) {
        fail("create bridge " + name, err);
    }
    return true;
}

bool Netlink::delete_link(const std::string& name) {
    LinkRef link{rtnl_link_alloc()};
    rtnl_link_set_name(link.p, name.c_str());
    int err = rtnl_link_delete(m_sk, link.p);
    if (err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV) {
        return false;
    }
    if (err < 0) {
        fail("delete link " + name, err);
    }
    return true;
}

void Netlink::add_address(const std::string& name, ipv4::Address addr, int prefix) {
    int index = ifindex(name);
    if (index == 0) {
        throw Error("netlink: add address " + addr.str() + " to " + name + ": no such device");
    }
    rtnl_addr* a = rtnl_addr_alloc();
    if (a == nullptr) {
        throw std::bad_alloc();
    }
    struct Put {
        rtnl_addr* a;
        ~Put() { rtnl_addr_put(a); }
    } put{a};
    AddrRef local{build_v4(addr, prefix)};
    rtnl_addr_set_ifindex(a, index);
    rtnl_addr_set_local(a, local.p);
    AddrRef bcast{build_v4(ipv4::Subnet::of(addr, prefix).broadcast(), prefix)};
    if (prefix < 31) {
        rtnl_addr_set_broadcast(a, bcast.p);
    }
    int err = rtnl_addr_add(m_sk, a, NLM_F_CREATE | NLM_F_EXCL);
    if (err < 0 && err != -NLE_EXIST) {
        fail("add address " + addr.str() + "/" + std::to_string(prefix) + " to " + name, err);
    }
}

void Netlink::set_up(const std::string& name) {
    int index = ifindex(name);
    if (index == 0) {
        throw Error("netlink: set " + name + " up: no such device");
    }
    LinkRef link{rtnl_link_alloc()};
    LinkRef change{rtnl_link_alloc()};
    rtnl_link_set_ifindex(link.p, index);
    rtnl_link_set_flags(change.p, IFF_UP);
    int err = rtnl_link_change(m_sk, link.p, change.p, 0);
    if (err < 0) {
        fail("set " + name + " up", err);
    }
}

bool Netlink::set_down(const std::string& name) {
    int index = ifindex(name);
    if (index == 0) {
        return false;
    }
    LinkRef link{rtnl_link_alloc()};
    LinkRef change{rtnl_link_alloc()};
    rtnl_link_set_ifindex(link.p, index);
    rtnl_link_unset_flags(change.p, IFF_UP);
    int err = rtnl_link_change(m_sk, link.p, change.p, 0);
    if (err == -NLE_NODEV || err == -NLE_OBJ_NOTFOUND) {
        return false; // gone meanwhile
    }
    if (err < 0) {
        fail("set " + name + " down", err);
    }
    return true;
}

void Netlink::create_veth(const std::string& host_name, int master_ifindex,
                          const std::string& peer_name, int peer_netns_fd, const Mac& mac) {
    LinkRef link{rtnl_link_veth_alloc()};
    if (link.p == nullptr) {
        throw std::bad_alloc();
    }
    rtnl_link_set_name(link.p, host_name.c_str());
    rtnl_link_set_master(link.p, master_ifindex);
    rtnl_link_set_flags(link.p, IFF_UP);
    rtnl_link* peer = rtnl_link_veth_get_peer(link.p);
    LinkRef peer_ref{peer};
    rtnl_link_set_name(peer, peer_name.c_str());
    rtnl_link_set_ns_fd(peer, peer_netns_fd);
    AddrRef ll{nl_addr_build(AF_LLC, mac.data(), mac.size())};
    rtnl_link_set_addr(peer, ll.p);
    int err = rtnl_link_add(m_sk, link.p, NLM_F_CREATE | NLM_F_EXCL);
    if (err < 0) {
        fail("create veth " + host_name + " (peer " + peer_name + ")", err);
    }
}

void Netlink::set_hairpin(const std::string& port_name) {
    int index = ifindex(port_name);
    if (index == 0) {
        throw Error("netlink: hairpin on " + port_name + ": no such device");
    }
    LinkRef link{rtnl_link_alloc()};
    rtnl_link_set_ifindex(link.p, index);
    rtnl_link_set_family(link.p, AF_BRIDGE);
    int err = rtnl_link_bridge_set_flags(link.p, RTNL_BRIDGE_HAIRPIN_MODE);
    if (err >= 0) {
        err = rtnl_link_change(m_sk, link.p, link.p, 0);
    }
    if (err < 0) {
        fail("hairpin on " + port_name, err);
    }
}

void Netlink::add_default_route(ipv4::Address gateway, const std::string& dev) {
    int index = ifindex(dev);
    rtnl_route* r = rtnl_route_alloc();
    if (r == nullptr) {
        throw std::bad_alloc();
    }
    struct Put {
        rtnl_route* r;
        ~Put() { rtnl_route_put(r); }
    } put{r};
    rtnl_route_set_family(r, AF_INET);
    AddrRef dst{build_v4(ipv4::Address{}, 0)};
    rtnl_route_set_dst(r, dst.p);
    rtnl_nexthop* nh = rtnl_route_nh_alloc();
    AddrRef gw{build_v4(gateway, 32)};
    rtnl_route_nh_set_gateway(nh, gw.p);
    rtnl_route_nh_set_ifindex(nh, index);
    rtnl_route_add_nexthop(r, nh); // the route owns nh
    int err = rtnl_route_add(m_sk, r, NLM_F_CREATE | NLM_F_EXCL);
    if (err < 0 && err != -NLE_EXIST) {
        fail("default route via " + gateway.str() + " dev " + dev, err);
    }
}

Mac mac_for(ipv4::Address addr) {
    return Mac{0x02,
               0x42,
               static_cast<std::uint8_t>(addr.value >> 24),
               static_cast<std::uint8_t>(addr.value >> 16),
               static_cast<std::uint8_t>(addr.value >> 8),
               static_cast<std::uint8_t>(addr.value)};
}

std::string mac_text(const Mac& mac) {
    char buf[18];
    std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
                  mac[4], mac[5]);
    return buf;
}

} // namespace strata::network::netlink
