// Connection tracking entries of a container's address, deleted when its
// published ports go (Docker's clearEndpointConnections): a UDP client that
// keeps sending to a published port would otherwise stay bound, through its
// conntrack entry and its DNAT, to an address that is released and may be
// given to another container. Talks ctnetlink (NETLINK_NETFILTER) directly
// in the calling thread's network namespace, where the DNAT happened.
//
//   network::conntrack::flush_udp_to(ipv4::Address::parse("172.18.0.2"));
#pragma once

#include "network/ipv4.hpp"

namespace strata::network::conntrack {

// Deletes the UDP entries whose reply comes from addr (flows NATed or
// proxied to it); returns how many. 0 when the kernel has no conntrack.
// Throws Error when netlink fails otherwise.
int flush_udp_to(ipv4::Address addr);

} // namespace strata::network::conntrack
