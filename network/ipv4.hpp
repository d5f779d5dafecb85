// IPv4 addresses and subnets as the network code needs them: parsing with
// Docker's messages, the n-th host of a subnet, overlap checks.
//
//   auto net = ipv4::Subnet::parse("172.18.0.0/16");
//   ipv4::Address gw = net.host(1);          // 172.18.0.1
//   net.contains(ipv4::Address::parse("172.18.3.4"));
#pragma once

#include "util/error.hpp"

#include <cstdint>
#include <netinet/in.h>
#include <string>
#include <string_view>

namespace strata::network::ipv4 {

struct Address {
    std::uint32_t value = 0; // host byte order

    // Dotted quad, exactly four decimal parts 0..255 (no leading "+", no
    // octal); throws Error "invalid IPv4 address: TEXT".
    static Address parse(std::string_view text);
    // Like parse, but nothing is thrown: false when text is not an address.
    static bool try_parse(std::string_view text, Address& out);
    std::string str() const;
    in_addr to_in_addr() const;
    static Address from_in_addr(in_addr a);

    auto operator<=>(const Address&) const = default;
};

struct Subnet {
    Address network; // the address with the host bits cleared
    int prefix = 0;  // 0..32

    // "A.B.C.D/N"; the host bits must be zero, as Docker requires
    // ("invalid subnet 10.1.2.3/16: it should be 10.1.0.0/16").
    static Subnet parse(std::string_view text);
    // The subnet of addr/prefix with the host bits cleared (never throws).
    static Subnet of(Address addr, int prefix);
    std::string str() const;

    std::uint32_t mask() const;
    // Count of addresses (2^(32-prefix)).
    std::uint64_t size() const;
    bool contains(Address a) const;
    bool overlaps(const Subnet& other) const;
    // network + n; throws Error when n is outside the subnet.
    Address host(std::uint64_t n) const;
    Address broadcast() const;

    auto operator<=>(const Subnet&) const = default;
};

} // namespace strata::network::ipv4
