// rtnetlink through libnl-route: the link, address and route changes a
// bridge network needs. A Netlink works on the network namespace it was
// opened in, whatever thread later uses it.
//
//   auto nl = netlink::Netlink::open();
//   nl.create_bridge("strata0");
//   nl.add_address("strata0", gw, 16);
//   nl.set_up("strata0");
#pragma once

#include "network/ipv4.hpp"

#include <array>
#include <cstdint>
#include <string>

struct nl_sock;

namespace strata::network::netlink {

using Mac = std::array<std::uint8_t, 6>;

class Netlink {
public:
    // A route netlink socket in the calling thread's namespace.
    static Netlink open();
    // A route netlink socket in the namespace netns_fd.
    static Netlink open_in(int netns_fd);

    Netlink(Netlink&& o) noexcept;
    Netlink& operator=(Netlink&& o) noexcept;
    Netlink(const Netlink&) = delete;
    Netlink& operator=(const Netlink&) = delete;
    ~Netlink();

    // The interface's index; 0 when there is none of that name.
    int ifindex(const std::string& name);
    // A bridge device; false (nothing changed) when name already exists.
    bool create_bridge(const std::string& name);
    // Deletes a link (both ends of a veth); false when there is none.
    bool delete_link(const std::string& name);
    // addr/prefix on the link; an address already there is kept.
    void add_address(const std::string& name, ipv4::Address addr, int prefix);
    void set_up(const std::string& name);
    // Takes the link down; false when there is none of that name.
    bool set_down(const std::string& name);
    // A veth pair: host_name (up, enslaved to the bridge master_ifindex)
    // here, peer_name with mac in the namespace peer_netns_fd.
    void create_veth(const std::string& host_name, int master_ifindex, const std::string& peer_name,
                     int peer_netns_fd, const Mac& mac);
    // Hairpin mode on a bridge port (traffic may leave by the port it came in).
    void set_hairpin(const std::string& port_name);
    // The default route via gateway.
    void add_default_route(ipv4::Address gateway, const std::string& dev);

private:
    explicit Netlink(nl_sock* sk) : m_sk(sk) {}
    nl_sock* m_sk = nullptr;
};

// Docker's MAC of an address: 02:42 and the four bytes of the address.
Mac mac_for(ipv4::Address addr);
std::string mac_text(const Mac& mac);

} // namespace strata::network::netlink
