#include "network/ipv4.hpp"

#include <arpa/inet.h>
#include <charconv>

namespace strata::network::ipv4 {

bool Address::try_parse(std::string_view text, Address& out) {
    // glibc's inet_pton takes exactly four decimal parts 0..255 and refuses
    // leading zeros, as Go's net.ParseIP does.
    in_addr a{};
    if (text.size() > 15 || ::inet_pton(AF_INET, std::string(text).c_str(), &a) != 1) {
        return false;
    }
    out = from_in_addr(a);
    return true;
}

Address Address::parse(std::string_view text) {
    Address a;
    if (!try_parse(text, a)) {
        throw Error("invalid IPv4 address: " + std::string(text));
    }
    return a;
}

std::string Address::str() const {
    return std::to_string(value >> 24) + "." + std::to_string((value >> 16) & 0xff) + "." +
           std::to_string((value >> 8) & 0xff) + "." + std::to_string(value & 0xff);
}

in_addr Address::to_in_addr() const {
    in_addr a{};
    a.s_addr = htonl(value);
    return a;
}

Address Address::from_in_addr(in_addr a) {
    return Address{ntohl(a.s_addr)};
}

std::uint32_t Subnet::mask() const {
    return prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
}

std::uint64_t Subnet::size() const {
    return std::uint64_t{1} << (32 - prefix);
}

Subnet Subnet::of(Address addr, int prefix) {
    Subnet s;
    s.prefix = prefix < 0 ? 0 : prefix > 32 ? 32 : prefix;
    s.network.value = addr.value & s.mask();
    return s;
}

Subnet Subnet::parse(std::string_view text) {
    auto slash = text.find('/');
    Address addr;
    if (slash == std::string_view::npos || !Address::try_parse(text.substr(0, slash), addr)) {
        throw Error("invalid subnet " + std::string(text) + ": not an IPv4 CIDR (A.B.C.D/N)");
    }
    std::string_view bits = text.substr(slash + 1);
    int prefix = -1;
    auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
    if (bits.empty() || ec != std::errc() || end != bits.data() + bits.size() || prefix < 0 ||
        prefix > 32 || (bits.size() > 1 && bits[0] == '0')) {
        throw Error("invalid subnet " + std::string(text) + ": the prefix length must be 0 to 32");
    }
    Subnet s = of(addr, prefix);
    if (s.network != addr) {
        throw Error("invalid subnet " + std::string(text) + ": it should be " + s.str());
    }
    return s;
}

std::string Subnet::str() const {
    return network.str() + "/" + std::to_string(prefix);
}

bool Subnet::contains(Address a) const {
    return (a.value & mask()) == network.value;
}

bool Subnet::overlaps(const Subnet& other) const {
    return contains(other.network) || other.contains(network);
}

Address Subnet::host(std::uint64_t n) const {
    if (n >= size()) {
        throw Error("address " + std::to_string(n) + " is outside subnet " + str());
    }
    return Address{network.value + static_cast<std::uint32_t>(n)};
}

Address Subnet::broadcast() const {
    return Address{network.value | ~mask()};
}

} // namespace strata::network::ipv4
