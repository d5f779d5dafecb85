// The embedded DNS server of user-defined networks (Docker's 127.0.0.11) and
// the resolv.conf a container gets.
//
// A container on a user-defined network has `nameserver 127.0.0.11` and
// `options ndots:0` in its resolv.conf. A DnsServer listens on
// 127.0.0.11:53, UDP and TCP, inside the container's network namespace (its
// sockets are made there), and is served by one thread of the owning process
// (the monitor or `run --rm`), which stays in that process's own namespace:
//
//   auto rc = dns::resolv_conf_for({.internal_resolver = true, .dns = opts.dns});
//   dns::ServerOptions o;
//   o.lookup = [&](std::string_view name) { return addresses_of(name); };  // "web", "web.net"
//   o.reverse = [&](ipv4::Address a) { return name_of(a); };               // PTR
//   o.upstreams = rc.upstreams;      // empty for --internal networks
//   dns::DnsServer server(netns_fd, std::move(o));   // serves until destroyed
//   write rc.text as the container's /etc/resolv.conf
//
// What it answers, as Docker's resolver: A for names the Lookup knows (TTL
// 600, shuffled), an empty NOERROR for their other types (AAAA, MX...), PTR
// for in-addr.arpa names the ReverseLookup knows. Every other query is
// forwarded to the upstream nameservers in order (at most 3), from the
// owning process's network namespace (so a host resolver on 127.0.0.53
// works), over the protocol the client used, with a timeout per server; a
// reply with TC set over UDP is retried over TCP and passed on when it fits
// the client's UDP size, else the client gets TC and retries over TCP.
// SERVFAIL, REFUSED and non-authoritative NXDOMAIN move on to the next
// server; when all fail the client gets the last reply, or SERVFAIL. With no
// upstream at all (internal networks) an unknown name is SERVFAIL (Docker's).
//
// Packets are parsed defensively (RFC 1035): compression pointers must
// point backwards, labels are at most 63 bytes and names 255, counts are
// checked against the bytes present; a malformed query gets FORMERR (when
// its header is readable) and a forwarded reply that does not match its
// query (id, question) is ignored.
#pragma once

#include "network/ipv4.hpp"
#include "util/error.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace strata::network::dns {

// The addresses of a name: lower-case, no trailing dot ("web", "web.mynet").
// Empty when the name is not a container's. Called on the server's thread.
using Lookup = std::function<std::vector<ipv4::Address>(std::string_view name)>;
// The name of an address for PTR ("web.mynet"), nullopt when unknown.
// Called on the server's thread.
using ReverseLookup = std::function<std::optional<std::string>(ipv4::Address address)>;

// An upstream nameserver: a numeric IPv4 or IPv6 address ("10.0.0.1",
// "fe80::1%eth0").
struct Upstream {
    std::string address;
    std::uint16_t port = 53;
    auto operator<=>(const Upstream&) const = default;
};

struct ServerOptions {
    Lookup lookup;         // required
    ReverseLookup reverse; // optional
    // Tried in order, at most the first 3 (Docker's maxExtDNS). Empty: no
    // forwarding, unknown names are SERVFAIL (Docker's).
    std::vector<Upstream> upstreams;
    std::chrono::milliseconds upstream_timeout{4000}; // per server, as Docker's
    // Where to listen inside the namespace (tests use other ports).
    std::string listen_address = "127.0.0.11";
    std::uint16_t port = 53;
};

class DnsServer {
public:
    // Binds listen_address:port (UDP and TCP) inside the network namespace
    // netns_fd (-1: the caller's own; its lo is brought up when down) and
    // starts serving. Throws Error (e.g.
    // "DNS server: bind 127.0.0.11:53/udp: Address already in use").
    DnsServer(int netns_fd, ServerOptions options);
    // Stops the thread and closes every socket.
    ~DnsServer();
    DnsServer(const DnsServer&) = delete;
    DnsServer& operator=(const DnsServer&) = delete;

    // The UDP/TCP port actually bound (port 0 in the options picks one).
    std::uint16_t port() const;
    // Replaces the upstream list for queries that arrive from now on.
    void set_upstreams(std::vector<Upstream> upstreams);

    struct Impl;

private:
    std::unique_ptr<Impl> m_impl;
};

// ---- resolv.conf ------------------------------------------------------------

struct ResolvConfRequest {
    // true: user-defined networks (nameserver 127.0.0.11, options ndots:0,
    // the host's or --dns servers become the upstreams); false: the default
    // bridge (the host's file with loopback nameservers removed, 8.8.8.8 and
    // 8.8.4.4 when none is left).
    bool internal_resolver = false;
    std::vector<std::string> dns;         // --dns: replaces the nameservers
    std::vector<std::string> dns_search;  // --dns-search: replaces search ("." = none)
    std::vector<std::string> dns_options; // --dns-option: replaces options
    // The host's file; nullopt reads /etc/resolv.conf (missing = empty).
    std::optional<std::string> host_text;
    std::string host_path = "/etc/resolv.conf"; // named in the comment lines
};

struct ResolvConf {
    std::string text;                // the container's /etc/resolv.conf
    std::vector<Upstream> upstreams; // for the DnsServer (internal_resolver only)
};

// Docker's generated resolv.conf (moby libnetwork/internal/resolvconf):
// header, nameserver/search/options lines, unknown host lines kept, and the
// trailing comments ("# Based on host file: '/etc/resolv.conf' (internal
// resolver)", "# ExtServers: [host(127.0.0.53)]", "# Overrides: []",
// "# Option ndots from: internal"). Throws UsageError for a --dns that is
// not an IP address ("IP address is not correctly formatted: X", as Docker).
ResolvConf resolv_conf_for(const ResolvConfRequest& request);

// ---- wire format (RFC 1035), exposed for tests ------------------------------

namespace wire {

inline constexpr std::uint16_t type_a = 1;
inline constexpr std::uint16_t type_ptr = 12;
inline constexpr std::uint16_t type_mx = 15;
inline constexpr std::uint16_t type_aaaa = 28;
inline constexpr std::uint16_t type_opt = 41;
inline constexpr std::uint16_t type_any = 255;
inline constexpr std::uint16_t class_in = 1;

inline constexpr int rcode_noerror = 0;
inline constexpr int rcode_formerr = 1;
inline constexpr int rcode_servfail = 2;
inline constexpr int rcode_nxdomain = 3;
inline constexpr int rcode_notimp = 4;
inline constexpr int rcode_refused = 5;

// A malformed message: "DNS message: <what> at offset N".
class ParseError : public Error {
public:
    using Error::Error;
};

struct Header {
    std::uint16_t id = 0;
    std::uint16_t flags = 0; // QR opcode AA TC RD RA Z rcode
    std::uint16_t qdcount = 0, ancount = 0, nscount = 0, arcount = 0;

    bool qr() const { return flags & 0x8000; }
    int opcode() const { return (flags >> 11) & 0xf; }
    bool aa() const { return flags & 0x0400; }
    bool tc() const { return flags & 0x0200; }
    bool rd() const { return flags & 0x0100; }
    int rcode() const { return flags & 0xf; }
};

struct Question {
    // Presentation form without the trailing dot, case kept; bytes other than
    // letters, digits, '-' and '_' inside a label are escaped as \DDD ("\046"
    // for a '.' inside a label). The root is "".
    std::string name;
    std::uint16_t type = 0;
    std::uint16_t qclass = 0;
};

struct Message {
    Header header;
    std::optional<Question> question; // the first one
    std::vector<ipv4::Address> a;     // A records of the answer section
    std::vector<std::string> ptr;     // PTR targets of the answer section
    std::uint16_t udp_size = 512;     // the EDNS0 OPT payload size, when larger
};

Header parse_header(std::span<const std::uint8_t> msg);
// Reads the possibly compressed name at pos and moves pos past it.
std::string read_name(std::span<const std::uint8_t> msg, std::size_t& pos);
// The whole message: every section is walked (counts checked against the
// bytes present), A and PTR answers and the OPT size are collected.
Message parse(std::span<const std::uint8_t> msg);

// A query for name (presentation form, trailing dot optional).
std::vector<std::uint8_t> build_query(std::uint16_t id, std::string_view name, std::uint16_t type,
                                      bool recursion_desired = true);
// Appends name in wire form (no compression); throws ParseError for a label
// over 63 bytes or a name over 255.
void write_name(std::vector<std::uint8_t>& out, std::string_view name);

// What the server does with one query, without sockets (tests use it).
struct Handling {
    enum class Action { reply, forward, drop } action = Action::drop;
    std::vector<std::uint8_t> reply; // for reply
    Message query;                   // parsed, for forward
};
// max_size: the largest reply the client accepts (65535 over TCP; 0 for UDP:
// 512 or the query's EDNS0 size); longer replies are cut at a whole record
// with TC set.
Handling handle_query(std::span<const std::uint8_t> msg, const Lookup& lookup,
                      const ReverseLookup& reverse, bool can_forward, std::size_t max_size);

// A copy of msg's header and question with TC set and no records: the reply
// for a UDP client when the full one does not fit.
std::vector<std::uint8_t> truncated_copy(std::span<const std::uint8_t> msg);

} // namespace wire
} // namespace strata::network::dns
