#include "network/dns.hpp"

#include "util/child.hpp"
#include "util/fd.hpp"

#include <arpa/inet.h>
#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

using namespace strata;
using namespace strata::network;
using namespace strata::network::dns;
using Bytes = std::vector<std::uint8_t>;

namespace {

const Lookup k_lookup = [](std::string_view name) -> std::vector<ipv4::Address> {
    if (name == "web" || name == "web.mynet") {
        return {ipv4::Address::parse("172.18.0.2")};
    }
    if (name == "db") {
        return {ipv4::Address::parse("172.18.0.3"), ipv4::Address::parse("172.18.0.4")};
    }
    if (name == "many") {
        std::vector<ipv4::Address> out;
        for (std::uint32_t i = 0; i < 100; ++i) {
            out.push_back(ipv4::Address{0xac120000u + 10 + i});
        }
        return out;
    }
    return {};
};
const ReverseLookup k_reverse = [](ipv4::Address a) -> std::optional<std::string> {
    if (a.str() == "172.18.0.2") {
        return "web.mynet";
    }
    return std::nullopt;
};

Bytes header(std::uint16_t id, std::uint16_t flags, std::uint16_t qd, std::uint16_t an = 0,
             std::uint16_t ns = 0, std::uint16_t ar = 0) {
    Bytes b;
    for (std::uint16_t v : {id, flags, qd, an, ns, ar}) {
        b.push_back(static_cast<std::uint8_t>(v >> 8));
        b.push_back(static_cast<std::uint8_t>(v));
    }
    return b;
}

wire::Message reply_to(const Bytes& query, std::size_t max = 0, bool can_forward = false) {
    auto h = wire::handle_query(query, k_lookup, k_reverse, can_forward, max);
    REQUIRE(h.action == wire::Handling::Action::reply);
    return wire::parse(h.reply);
}

} // namespace

TEST_CASE("names are read with compression and written back", "[dns]") {
    Bytes q = wire::build_query(0x1234, "Web.MyNet.", wire::type_a);
    auto m = wire::parse(q);
    CHECK(m.header.id == 0x1234);
    CHECK(m.header.rd());
    REQUIRE(m.question);
    CHECK(m.question->name == "Web.MyNet");
    CHECK(m.question->type == wire::type_a);
    // A pointer to an earlier name.
    Bytes b = header(1, 0, 2);
    wire::write_name(b, "a.example.org");
    b.insert(b.end(), {0, 1, 0, 1});
    b.insert(b.end(), {1, 'x', 0xc0, 14, 0, 1, 0, 1}); // "x" + pointer to "example.org"
    auto m2 = wire::parse(b);
    std::size_t pos = 12 + 15 + 4;
    CHECK(wire::read_name(b, pos) == "x.example.org");
    CHECK(pos == b.size() - 4);
    CHECK(m2.question->name == "a.example.org");
    // Bytes that are not plain are escaped and survive a round trip.
    Bytes odd = header(1, 0, 1);
    odd.insert(odd.end(), {3, 'a', '.', 0, 2, 'b', '\\', 0, 0, 1, 0, 1});
    auto m3 = wire::parse(odd);
    CHECK(m3.question->name == "a\\046\\000.b\\092");
    Bytes again;
    wire::write_name(again, m3.question->name);
    CHECK(Bytes(odd.begin() + 12, odd.end() - 4) == again);
}

TEST_CASE("hostile packets are refused with a reason, never read past the end", "[dns]") {
    auto bad = [](const Bytes& b, const char* what) {
        INFO(what);
        CHECK_THROWS_WITH(wire::parse(b), Catch::Contains(what));
    };
    bad(Bytes{1, 2, 3}, "header truncated");
    // A pointer to itself, and two pointers to each other.
    Bytes self = header(1, 0, 1);
    self.insert(self.end(), {0xc0, 12, 0, 1, 0, 1});
    bad(self, "compression pointer loop");
    Bytes pair = header(1, 0, 1);
    pair.insert(pair.end(), {1, 'a', 0xc0, 16, 0xc0, 12, 0, 1, 0, 1});
    bad(pair, "compression pointer loop");
    // A forward pointer (could be used to build a loop) is refused too.
    Bytes fwd = header(1, 0, 1);
    fwd.insert(fwd.end(), {0xc0, 14, 0, 0, 1, 0, 1});
    bad(fwd, "compression pointer loop");
    // Label lengths 64..191 use reserved label types.
    Bytes long_label = header(1, 0, 1);
    long_label.push_back(64);
    long_label.insert(long_label.end(), 64, 'a');
    long_label.insert(long_label.end(), {0, 0, 1, 0, 1});
    bad(long_label, "unsupported label type");
    // A name over 255 bytes made of legal labels.
    Bytes huge = header(1, 0, 1);
    for (int i = 0; i < 5; ++i) {
        huge.push_back(63);
        huge.insert(huge.end(), 63, 'a');
    }
    huge.insert(huge.end(), {0, 0, 1, 0, 1});
    bad(huge, "name longer than 255 bytes");
    // A name that stops mid-label, a question without its type.
    Bytes cut = header(1, 0, 1);
    cut.insert(cut.end(), {5, 'a', 'b'});
    bad(cut, "label truncated");
    Bytes notype = header(1, 0, 1);
    notype.insert(notype.end(), {1, 'a', 0, 0});
    bad(notype, "truncated");
    Bytes noterm = header(1, 0, 1);
    noterm.insert(noterm.end(), {1, 'a'});
    bad(noterm, "name truncated");
    // Huge counts with nothing behind them.
    bad(header(1, 0, 0xffff, 0xffff, 0xffff, 0xffff), "truncated");
    Bytes q = wire::build_query(1, "web", wire::type_a);
    Bytes more = q;
    more[7] = 200; // 200 answers announced, none present
    bad(more, "truncated");
    // A record whose data length runs past the end.
    Bytes rr = q;
    rr[7] = 1;
    rr.insert(rr.end(), {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 1, 2, 3, 4});
    bad(rr, "record data past the end");
    // Writing: labels over 63 bytes and names over 255 are refused.
    Bytes out;
    CHECK_THROWS_WITH(wire::write_name(out, std::string(64, 'a')), Catch::Contains("label of 64"));
    CHECK_THROWS_WITH(wire::write_name(out, "a..b"), Catch::Contains("label of 0"));
    std::string big;
    for (int i = 0; i < 5; ++i) {
        big.append(60, 'b');
        big.push_back('.');
    }
    CHECK_THROWS_WITH(wire::write_name(out, big), Catch::Contains("longer than 255"));
}

TEST_CASE("every truncation of a valid reply fails cleanly", "[dns]") {
    Bytes q = wire::build_query(7, "db", wire::type_a);
    auto h = wire::handle_query(q, k_lookup, k_reverse, false, 0);
    REQUIRE(h.action == wire::Handling::Action::reply);
    CHECK(wire::parse(h.reply).a.size() == 2);
    for (std::size_t n = 0; n < h.reply.size(); ++n) {
        Bytes cut(h.reply.begin(), h.reply.begin() + static_cast<std::ptrdiff_t>(n));
        CHECK_THROWS_AS(wire::parse(cut), wire::ParseError);
    }
    // Every single-byte change parses or fails with ParseError, nothing else.
    for (std::size_t i = 0; i < h.reply.size(); ++i) {
        for (int v : {0x00, 0x3f, 0x40, 0xc0, 0xff}) {
            Bytes m = h.reply;
            m[i] = static_cast<std::uint8_t>(v);
            try {
                wire::parse(m);
                wire::handle_query(m, k_lookup, k_reverse, true, 0);
            } catch (const wire::ParseError&) {
            }
        }
    }
}

TEST_CASE("the server answers its names as Docker's resolver does", "[dns]") {
    // A: the address, TTL 600, AA, RA, the client's id and RD.
    auto m = reply_to(wire::build_query(0xbeef, "WEB", wire::type_a));
    CHECK(m.header.id == 0xbeef);
    CHECK(m.header.qr());
    CHECK(m.header.rd());
    CHECK(m.header.rcode() == wire::rcode_noerror);
    REQUIRE(m.a.size() == 1);
    CHECK(m.a[0].str() == "172.18.0.2");
    CHECK(m.question->name == "WEB");
    // Several addresses: all of them.
    auto db = reply_to(wire::build_query(1, "db.", wire::type_a));
    CHECK(db.a.size() == 2);
    // AAAA and MX of a known name: NOERROR without records (not forwarded).
    for (auto type : {wire::type_aaaa, wire::type_mx}) {
        auto h =
            wire::handle_query(wire::build_query(2, "web", type), k_lookup, k_reverse, true, 0);
        REQUIRE(h.action == wire::Handling::Action::reply);
        auto r = wire::parse(h.reply);
        CHECK(r.header.rcode() == wire::rcode_noerror);
        CHECK(r.header.ancount == 0);
    }
    // PTR of a known address.
    auto ptr = reply_to(wire::build_query(3, "2.0.18.172.in-addr.arpa", wire::type_ptr));
    REQUIRE(ptr.ptr.size() == 1);
    CHECK(ptr.ptr[0] == "web.mynet");
    // Unknown names: forwarded when there are upstreams, otherwise SERVFAIL
    // (not authoritative), as Docker's resolver.
    auto fwd = wire::handle_query(wire::build_query(4, "example.org", wire::type_a), k_lookup,
                                  k_reverse, true, 0);
    CHECK(fwd.action == wire::Handling::Action::forward);
    CHECK(fwd.query.question->name == "example.org");
    auto nx = reply_to(wire::build_query(4, "example.org", wire::type_a));
    CHECK(nx.header.rcode() == wire::rcode_servfail);
    CHECK(!nx.header.aa());
    CHECK(nx.header.ancount == 0);
    for (const char* odd : {"3.0.18.172.in-addr.arpa", "1.2.3.in-addr.arpa",
                            "01.0.18.172.in-addr.arpa", "300.0.18.172.in-addr.arpa"}) {
        INFO(odd);
        CHECK(reply_to(wire::build_query(5, odd, wire::type_ptr)).header.rcode() ==
              wire::rcode_servfail);
    }
    // A name with bytes no container name has is never looked up.
    bool asked = false;
    Lookup spy = [&](std::string_view) {
        asked = true;
        return std::vector<ipv4::Address>{};
    };
    Bytes q = header(9, 0x0100, 1);
    q.insert(q.end(), {3, 'w', 0, 'b', 0, 0, 1, 0, 1});
    wire::handle_query(q, spy, k_reverse, false, 0);
    CHECK_FALSE(asked);
}

TEST_CASE("a lookup that fails gives SERVFAIL", "[dns]") {
    Lookup broken = [](std::string_view) -> std::vector<ipv4::Address> {
        throw strata::Error("store unreadable");
    };
    auto h =
        wire::handle_query(wire::build_query(1, "web", wire::type_a), broken, k_reverse, true, 0);
    REQUIRE(h.action == wire::Handling::Action::reply);
    CHECK(wire::parse(h.reply).header.rcode() == wire::rcode_servfail);
}

TEST_CASE("bad queries get FORMERR or NOTIMP, responses and garbage get nothing", "[dns]") {
    auto rcode = [](const Bytes& q) {
        auto h = wire::handle_query(q, k_lookup, k_reverse, true, 0);
        REQUIRE(h.action == wire::Handling::Action::reply);
        auto m = wire::parse(h.reply);
        CHECK(m.header.id == 0x4242);
        CHECK(m.header.qr());
        return m.header.rcode();
    };
    Bytes loop = header(0x4242, 0, 1);
    loop.insert(loop.end(), {0xc0, 12, 0, 1, 0, 1});
    CHECK(rcode(loop) == wire::rcode_formerr);
    CHECK(rcode(header(0x4242, 0, 0)) == wire::rcode_formerr);
    Bytes two = wire::build_query(0x4242, "web", wire::type_a);
    two[5] = 2;
    two.insert(two.end(), {0, 0, 1, 0, 1});
    CHECK(rcode(two) == wire::rcode_formerr);
    Bytes notify = wire::build_query(0x4242, "web", wire::type_a);
    notify[2] |= 4 << 3; // opcode NOTIFY
    CHECK(rcode(notify) == wire::rcode_notimp);
    // A response is never answered (no loop between two servers), nor is a
    // packet too short for a header.
    Bytes resp = wire::build_query(1, "web", wire::type_a);
    resp[2] |= 0x80;
    CHECK(wire::handle_query(resp, k_lookup, k_reverse, true, 0).action ==
          wire::Handling::Action::drop);
    CHECK(wire::handle_query(Bytes{1, 2, 3, 4, 5}, k_lookup, k_reverse, true, 0).action ==
          wire::Handling::Action::drop);
}

TEST_CASE("UDP replies fit 512 bytes or the EDNS0 size, cut with TC", "[dns]") {
    Bytes q = wire::build_query(1, "many", wire::type_a);
    auto small = wire::handle_query(q, k_lookup, k_reverse, false, 0);
    CHECK(small.reply.size() <= 512);
    auto m = wire::parse(small.reply);
    CHECK(m.header.tc());
    CHECK(m.a.size() == m.header.ancount);
    CHECK(m.a.size() < 100);
    // Over TCP everything fits.
    auto tcp = wire::parse(wire::handle_query(q, k_lookup, k_reverse, false, 65535).reply);
    CHECK_FALSE(tcp.header.tc());
    CHECK(tcp.a.size() == 100);
    // EDNS0 OPT record with a 4096-byte payload size.
    Bytes edns = q;
    edns[11] = 1;
    edns.insert(edns.end(), {0, 0, 41, 0x10, 0x00, 0, 0, 0, 0, 0, 0});
    CHECK(wire::parse(edns).udp_size == 4096);
    auto big = wire::parse(wire::handle_query(edns, k_lookup, k_reverse, false, 0).reply);
    CHECK_FALSE(big.header.tc());
    CHECK(big.a.size() == 100);
    // truncated_copy keeps the question only.
    auto t = wire::parse(
        wire::truncated_copy(wire::handle_query(q, k_lookup, k_reverse, false, 65535).reply));
    CHECK(t.header.tc());
    CHECK(t.header.ancount == 0);
    CHECK(t.question->name == "many");
}

TEST_CASE(
    "resolv.conf for user networks lists 127.0.0.11 and keeps the host's servers as upstreams",
    "[dns]") {
    ResolvConfRequest r;
    r.internal_resolver = true;
    r.host_text = "# comment\nnameserver 10.0.0.1\nnameserver 127.0.0.53\nsearch corp.example\n"
                  "options edns0 ndots:x\nsortlist 130.155.160.0\nnameserver bogus\n";
    auto rc = resolv_conf_for(r);
    CHECK(rc.text ==
          "# Generated by Docker Engine.\n"
          "# This file can be edited; Docker Engine will not make further changes once it\n"
          "# has been modified.\n\n"
          "nameserver 127.0.0.11\n"
          "search corp.example\n"
          "options edns0 ndots:0\n"
          "sortlist 130.155.160.0\n"
          "\n# Based on host file: '/etc/resolv.conf' (internal resolver)\n"
          "# ExtServers: [10.0.0.1 host(127.0.0.53)]\n"
          "# Invalid nameservers: [bogus]\n"
          "# Overrides: []\n"
          "# Option ndots from: internal\n");
    REQUIRE(rc.upstreams.size() == 2);
    CHECK(rc.upstreams[0].address == "10.0.0.1");
    CHECK(rc.upstreams[1].address == "127.0.0.53");
    // No nameserver at all: Google's, as Docker.
    r.host_text = "";
    rc = resolv_conf_for(r);
    CHECK(rc.upstreams == std::vector<Upstream>{{"8.8.8.8", 53}, {"8.8.4.4", 53}});
    CHECK(rc.text.find("# Used default nameservers.\n") != std::string::npos);
    // --dns, --dns-search, --dns-option override.
    r.host_text = "nameserver 10.0.0.1\noptions ndots:2\n";
    r.dns = {"1.1.1.1"};
    r.dns_search = {"a.example", "."};
    r.dns_options = {"ndots:3", "timeout:1"};
    rc = resolv_conf_for(r);
    CHECK(rc.upstreams == std::vector<Upstream>{{"1.1.1.1", 53}});
    CHECK(rc.text.find("nameserver 127.0.0.11\nsearch a.example\noptions ndots:3 timeout:1\n") !=
          std::string::npos);
    CHECK(rc.text.find(
              "# Overrides: [nameservers search options]\n# Option ndots from: override\n") !=
          std::string::npos);
    r.dns = {"not-an-ip"};
    CHECK_THROWS_WITH(resolv_conf_for(r), "IP address is not correctly formatted: not-an-ip");
}

TEST_CASE("resolv.conf for the default bridge drops loopback servers", "[dns]") {
    ResolvConfRequest r;
    r.host_text = "nameserver 127.0.0.53\nnameserver 192.168.1.1\nnameserver ::1\noptions edns0\n";
    auto rc = resolv_conf_for(r);
    CHECK(rc.upstreams.empty());
    CHECK(rc.text.find("\n\nnameserver 192.168.1.1\noptions edns0\n\n# Based on host file: "
                       "'/etc/resolv.conf' (legacy)\n# Overrides: []\n") != std::string::npos);
    r.host_text = "nameserver 127.0.0.53\n";
    rc = resolv_conf_for(r);
    CHECK(rc.text.find("nameserver 8.8.8.8\nnameserver 8.8.4.4\n") != std::string::npos);
    CHECK(rc.text.find("# Used default nameservers.\n") != std::string::npos);
    r.dns = {"127.0.0.1"}; // an explicit --dns is kept as given
    rc = resolv_conf_for(r);
    CHECK(rc.text.find("\nnameserver 127.0.0.1\n\n") != std::string::npos);
}

// ---- the server in a network namespace -------------------------------------

namespace {

int failures = 0;
#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "FAILED line %d: %s: ", __LINE__, #cond);                         \
            std::fprintf(stderr, __VA_ARGS__);                                                     \
            std::fprintf(stderr, "\n");                                                            \
            ++failures;                                                                            \
        }                                                                                          \
    } while (0)

// A socket made inside netns (on a thread that joins it).
UniqueFd socket_in(int netns, int type) {
    UniqueFd fd;
    std::thread t([&] {
        if (::setns(netns, CLONE_NEWNET) == 0) {
            fd = UniqueFd(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
        }
    });
    t.join();
    return fd;
}

sockaddr_in addr_of(const char* ip, std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

// One query from inside netns, over UDP or TCP; empty on timeout.
Bytes ask(int netns, const Bytes& q, bool tcp, const char* server = "127.0.0.11") {
    UniqueFd fd = socket_in(netns, tcp ? SOCK_STREAM : SOCK_DGRAM);
    timeval tv{3, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    auto a = addr_of(server, 53);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        return {};
    }
    Bytes out = q;
    if (tcp) {
        out.insert(out.begin(),
                   {static_cast<std::uint8_t>(q.size() >> 8), static_cast<std::uint8_t>(q.size())});
    }
    if (::send(fd.get(), out.data(), out.size(), 0) < 0) {
        return {};
    }
    Bytes buf(70000);
    std::size_t have = 0;
    for (;;) {
        ssize_t n = ::recv(fd.get(), buf.data() + have, buf.size() - have, 0);
        if (n <= 0) {
            return {};
        }
        have += static_cast<std::size_t>(n);
        if (!tcp) {
            break;
        }
        if (have >= 2 && have >= 2u + (buf[0] << 8 | buf[1])) {
            return Bytes(buf.begin() + 2, buf.begin() + 2 + (buf[0] << 8 | buf[1]));
        }
    }
    buf.resize(have);
    return buf;
}

// A reply to q (parsed), with rcode and A records.
Bytes make_reply(const Bytes& q, int rcode, bool aa, bool tc, int count, std::uint32_t base) {
    auto m = wire::parse(q);
    Bytes r =
        header(m.header.id,
               static_cast<std::uint16_t>(0x8180 | (aa ? 0x400 : 0) | (tc ? 0x200 : 0) | rcode), 1,
               static_cast<std::uint16_t>(count));
    wire::write_name(r, m.question->name);
    r.insert(r.end(), {static_cast<std::uint8_t>(m.question->type >> 8),
                       static_cast<std::uint8_t>(m.question->type), 0, 1});
    for (int i = 0; i < count; ++i) {
        std::uint32_t a = base + static_cast<std::uint32_t>(i);
        r.insert(r.end(), {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4,
                           static_cast<std::uint8_t>(a >> 24), static_cast<std::uint8_t>(a >> 16),
                           static_cast<std::uint8_t>(a >> 8), static_cast<std::uint8_t>(a)});
    }
    return r;
}

// The upstream: example.org A 10.9.8.7; big.example.org TC over UDP and 60
// records over TCP; fail.example.org SERVFAIL; others NXDOMAIN (AA).
Bytes upstream_answer(const Bytes& q, bool tcp) {
    auto m = wire::parse(q);
    std::string name = m.question->name;
    if (name == "example.org" || name == "spoof.example.org") {
        return make_reply(q, 0, false, false, m.question->type == wire::type_a ? 1 : 0, 0x0a090807);
    }
    if (name == "big.example.org") {
        return tcp ? make_reply(q, 0, false, false, 60, 0x0a010000)
                   : make_reply(q, 0, false, true, 0, 0);
    }
    if (name == "fail.example.org") {
        return make_reply(q, wire::rcode_servfail, false, false, 0, 0);
    }
    return make_reply(q, wire::rcode_nxdomain, true, false, 0, 0);
}

void serve_upstream(int udp, int tcp, const std::atomic<bool>& stop) {
    while (!stop) {
        pollfd p[2] = {{udp, POLLIN, 0}, {tcp, POLLIN, 0}};
        if (::poll(p, 2, 100) <= 0) {
            continue;
        }
        if (p[0].revents & POLLIN) {
            Bytes buf(4096);
            sockaddr_in from{};
            socklen_t len = sizeof from;
            ssize_t n = ::recvfrom(udp, buf.data(), buf.size(), 0,
                                   reinterpret_cast<sockaddr*>(&from), &len);
            if (n > 0) {
                buf.resize(static_cast<std::size_t>(n));
                Bytes r = upstream_answer(buf, false);
                if (wire::parse(buf).question->name == "spoof.example.org") {
                    // Forged replies first: another id, another question.
                    Bytes forged = make_reply(buf, 0, false, false, 1, 0x0a060606);
                    forged[1] ^= 0x5a;
                    ::sendto(udp, forged.data(), forged.size(), 0,
                             reinterpret_cast<sockaddr*>(&from), len);
                    Bytes other = make_reply(
                        wire::build_query(static_cast<std::uint16_t>(buf[0] << 8 | buf[1]),
                                          "example.org", wire::type_a),
                        0, false, false, 1, 0x0a060606);
                    ::sendto(udp, other.data(), other.size(), 0, reinterpret_cast<sockaddr*>(&from),
                             len);
                }
                ::sendto(udp, r.data(), r.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
            }
        }
        if (p[1].revents & POLLIN) {
            UniqueFd c(::accept4(tcp, nullptr, nullptr, SOCK_CLOEXEC));
            timeval tv{2, 0};
            ::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            std::uint8_t lenbuf[2] = {0, 0};
            if (::recv(c.get(), lenbuf, 2, MSG_WAITALL) != 2) {
                continue;
            }
            Bytes q(static_cast<std::size_t>(lenbuf[0] << 8 | lenbuf[1]));
            if (::recv(c.get(), q.data(), q.size(), MSG_WAITALL) !=
                static_cast<ssize_t>(q.size())) {
                continue;
            }
            Bytes r = upstream_answer(q, true);
            r.insert(r.begin(), {static_cast<std::uint8_t>(r.size() >> 8),
                                 static_cast<std::uint8_t>(r.size())});
            ::send(c.get(), r.data(), r.size(), MSG_NOSIGNAL);
        }
    }
}

std::string sh(const std::vector<std::string>& argv) {
    auto r = run_capture(argv, true);
    return r.out;
}

int dns_in_netns() {
    if (::unshare(CLONE_NEWNET) != 0) {
        std::perror("unshare(CLONE_NEWNET)");
        return 2;
    }
    sh({"ip", "link", "set", "lo", "up"});
    // The container's namespace, as netcore makes it.
    UniqueFd container;
    std::thread([&] {
        if (::unshare(CLONE_NEWNET) == 0) {
            container = UniqueFd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
        }
    }).join();
    if (!container) {
        std::perror("container netns");
        return 2;
    }
    std::string ns_path =
        "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(container.get());
    // (Its lo stays down: the server brings it up.)

    // Upstreams in the "host" namespace: 127.0.0.3 never answers (UDP) and
    // refuses TCP; 127.0.0.2 answers.
    UniqueFd silent(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    auto sa = addr_of("127.0.0.3", 53);
    ::bind(silent.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    UniqueFd up_udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    UniqueFd up_tcp(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    auto ua = addr_of("127.0.0.2", 53);
    if (::bind(up_udp.get(), reinterpret_cast<sockaddr*>(&ua), sizeof ua) != 0 ||
        ::bind(up_tcp.get(), reinterpret_cast<sockaddr*>(&ua), sizeof ua) != 0 ||
        ::listen(up_tcp.get(), 8) != 0) {
        std::perror("upstream bind");
        return 2;
    }
    std::atomic<bool> stop{false};
    std::thread upstream([&] { serve_upstream(up_udp.get(), up_tcp.get(), stop); });

    {
        ServerOptions o;
        o.lookup = k_lookup;
        o.reverse = k_reverse;
        o.upstreams = {{"127.0.0.3", 53}, {"127.0.0.2", 53}};
        o.upstream_timeout = std::chrono::milliseconds(300);
        DnsServer server(container.get(), o);
        EXPECT(server.port() == 53, "port %u", server.port());
        ServerOptions internal;
        internal.lookup = k_lookup;
        internal.listen_address = "127.0.0.12";
        DnsServer no_upstream(container.get(), internal);
        // Nothing listens on 127.0.0.11 in the test's own namespace.
        EXPECT(sh({"busybox", "nslookup", "-timeout=1", "web", "127.0.0.11"}).find("172.18.0.2") ==
                   std::string::npos,
               "reachable outside the container's namespace");

        auto nslookup = [&](std::vector<std::string> args) {
            std::vector<std::string> argv = {"nsenter", "--net=" + ns_path, "busybox", "nslookup"};
            argv.insert(argv.end(), args.begin(), args.end());
            return sh(argv);
        };
        std::string out = nslookup({"web", "127.0.0.11"});
        EXPECT(out.find("Address: 172.18.0.2") != std::string::npos, "web: %s", out.c_str());
        out = nslookup({"-type=a", "db", "127.0.0.11"});
        EXPECT(out.find("Address: 172.18.0.3") != std::string::npos &&
                   out.find("Address: 172.18.0.4") != std::string::npos,
               "db: %s", out.c_str());
        out = nslookup({"172.18.0.2", "127.0.0.11"});
        EXPECT(out.find("name = web.mynet") != std::string::npos, "PTR: %s", out.c_str());
        // Forwarded: the first upstream times out, the second answers.
        out = nslookup({"-type=a", "example.org", "127.0.0.11"});
        EXPECT(out.find("Address: 10.9.8.7") != std::string::npos, "example.org: %s", out.c_str());
        // Replies with another id or question are not taken for the answer.
        out = nslookup({"-type=a", "spoof.example.org", "127.0.0.11"});
        EXPECT(out.find("Address: 10.9.8.7") != std::string::npos &&
                   out.find("10.6.6.6") == std::string::npos,
               "spoof: %s", out.c_str());
        out = nslookup({"-type=a", "nosuch.example.org", "127.0.0.11"});
        EXPECT(out.find("NXDOMAIN") != std::string::npos, "nosuch: %s", out.c_str());
        // No upstream: unknown names are SERVFAIL (Docker's), known ones answer.
        out = nslookup({"-type=a", "example.org", "127.0.0.12"});
        EXPECT(out.find("SERVFAIL") != std::string::npos, "no upstream: %s", out.c_str());
        out = nslookup({"web", "127.0.0.12"});
        EXPECT(out.find("Address: 172.18.0.2") != std::string::npos, "no upstream web: %s",
               out.c_str());

        // TC over UDP from the upstream: retried over TCP, passed on whole
        // to a client that said (EDNS0) it takes 4096 bytes...
        Bytes big = wire::build_query(0x7777, "big.example.org", wire::type_a);
        Bytes edns = big;
        edns[11] = 1;
        edns.insert(edns.end(), {0, 0, 41, 0x10, 0x00, 0, 0, 0, 0, 0, 0});
        Bytes r = ask(container.get(), edns, false);
        EXPECT(!r.empty(), "no UDP reply for big.example.org");
        if (!r.empty()) {
            auto m = wire::parse(r);
            EXPECT(m.header.id == 0x7777 && !m.header.tc() && m.a.size() == 60,
                   "EDNS big: tc=%d a=%zu", m.header.tc(), m.a.size());
        }
        // ... cut with TC for a 512-byte client, whole over TCP.
        r = ask(container.get(), big, false);
        EXPECT(!r.empty() && wire::parse(r).header.tc() && wire::parse(r).a.empty(), "512 big");
        r = ask(container.get(), big, true);
        EXPECT(!r.empty() && wire::parse(r).a.size() == 60 && wire::parse(r).header.id == 0x7777,
               "TCP big");
        // SERVFAIL from every upstream reaches the client.
        r = ask(container.get(), wire::build_query(5, "fail.example.org", wire::type_a), false);
        EXPECT(!r.empty() && wire::parse(r).header.rcode() == wire::rcode_servfail, "servfail");
        // Local names over TCP.
        r = ask(container.get(), wire::build_query(6, "db", wire::type_a), true);
        EXPECT(!r.empty() && wire::parse(r).a.size() == 2, "TCP db");

        // Hostile packets: a loop gets FORMERR, garbage nothing; the server
        // keeps serving.
        Bytes loop = header(0x4242, 0, 1);
        loop.insert(loop.end(), {0xc0, 12, 0, 1, 0, 1});
        r = ask(container.get(), loop, false);
        EXPECT(!r.empty() && wire::parse(r).header.rcode() == wire::rcode_formerr, "loop");
        UniqueFd junk = socket_in(container.get(), SOCK_DGRAM);
        auto sa11 = addr_of("127.0.0.11", 53);
        for (int i = 0; i < 200; ++i) {
            Bytes g(static_cast<std::size_t>(i % 40));
            for (auto& b : g) {
                b = static_cast<std::uint8_t>(i * 37 + (&b - g.data()) * 11);
            }
            ::sendto(junk.get(), g.data(), g.size(), 0, reinterpret_cast<sockaddr*>(&sa11),
                     sizeof sa11);
        }
        // A TCP client that sends half a message and stalls does not block others.
        UniqueFd stall = socket_in(container.get(), SOCK_STREAM);
        ::connect(stall.get(), reinterpret_cast<sockaddr*>(&sa11), sizeof sa11);
        std::uint8_t half[3] = {0, 40, 1};
        ::send(stall.get(), half, sizeof half, 0);
        r = ask(container.get(), wire::build_query(8, "web", wire::type_a), false);
        EXPECT(!r.empty() && wire::parse(r).a.size() == 1, "after garbage");
    }
    // The server is gone with its object.
    UniqueFd probe = socket_in(container.get(), SOCK_DGRAM);
    auto sa11 = addr_of("127.0.0.11", 53);
    EXPECT(::bind(probe.get(), reinterpret_cast<sockaddr*>(&sa11), sizeof sa11) == 0,
           "port 53 still bound after the server was destroyed");
    stop = true;
    upstream.join();
    return failures == 0 ? 0 : 1;
}

} // namespace

TEST_CASE("the DNS server in a network namespace answers busybox nslookup, forwards and survives "
          "hostile packets",
          "[root]") {
    Child c = Child::fork_fn([] {
        try {
            return dns_in_netns();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "error: %s\n", e.what());
            return 3;
        }
    });
    auto status = c.wait();
    INFO(status.describe());
    CHECK(status.success());
}
