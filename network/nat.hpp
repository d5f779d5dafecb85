// The kernel side of strata's networks: nftables rules in one table of its
// own, `table ip strata`, as Docker's iptables chains (DOCKER, POSTROUTING
// MASQUERADE, DOCKER-ISOLATION) and podman's netavark do.
//
//   chain prerouting  (nat, dstnat)  DNAT of published ports, to local addresses
//   chain output      (nat, -100)    the same for this host's own traffic (not
//                                    127.0.0.0/8: the userland proxy serves that)
//   chain postrouting (nat, srcnat)  masquerade of a non-internal subnet leaving
//                                    its bridge; hairpin (DNATed traffic from a
//                                    subnet back out of its own bridge)
//   chain forward     (filter)       isolation between strata bridges; internal
//                                    networks: nothing in or out of the bridge
//   chain isolate     (regular)      one drop per bridge, jumped to from forward
//
// Every rule carries the comment "strata:OWNER" (a container id for its
// ports, a network id for its network), so remove_owner() and keep_only()
// delete exactly what they should; the table goes when its last rule does.
// libnftables is dlopen()ed on first use (as util/libcurl.hpp does libcurl),
// so strata starts without it. Changes are serialized between strata
// processes by an flock on /run/strata/nat.lock.
//
// All calls act on the network namespace of the calling thread. Errors are
// strata::Error with nft's own message and the command that failed.
#pragma once

#include "network/ipv4.hpp"
#include "network/ports.hpp"

#include <string>
#include <vector>

namespace strata::network::nat {

// True when libnftables loads and the kernel answers it (root, nf_tables).
// When false, published ports go through the userland proxy only
// (network/proxy.hpp) and unavailable_reason() says why.
bool available();
std::string unavailable_reason();

struct NetworkRules {
    std::string owner;  // the network's id
    std::string bridge; // its device (strata0, br-<12 hex>)
    ipv4::Subnet subnet;
    bool internal = false; // no masquerade, no forwarding in or out of the bridge
};

// Masquerade (unless internal), hairpin, isolation from the other strata
// bridges, internal's drops. Adding a network whose owner has rules already
// replaces them (idempotent).
void add_network(const NetworkRules& net);

// DNAT for published ports (host ports already chosen, as Proxy::bound()
// gives them) to container_ip. Bindings on a loopback host address get no
// rule: the proxy serves them.
void add_ports(const std::string& owner, ipv4::Address container_ip,
               const std::vector<PortBinding>& bound);

// Deletes every rule of owner (no error when there is none, or no table).
void remove_owner(const std::string& owner);

// Crash recovery: deletes every rule whose owner is not in live.
void keep_only(const std::vector<std::string>& live);

// The owners that have rules now (sorted, unique).
std::vector<std::string> owners();

} // namespace strata::network::nat
