#include "network/dns.hpp"

#include "util/fd.hpp"
#include "util/log.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fcntl.h>
#include <list>
#include <map>
#include <mutex>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace strata::network::dns {

// ---------------------------------------------------------------------------
// Wire format

namespace wire {
namespace {

constexpr std::size_t k_header_size = 12;
constexpr std::size_t k_max_name = 255; // wire length, RFC 1035 2.3.4
constexpr std::size_t k_max_label = 63;
constexpr std::uint32_t k_ttl = 600; // Docker's respTTL

[[noreturn]] void fail(std::string_view what, std::size_t offset) {
    throw ParseError("DNS message: " + std::string(what) + " at offset " + std::to_string(offset));
}

std::uint16_t get16(std::span<const std::uint8_t> msg, std::size_t pos) {
    if (pos + 2 > msg.size()) {
        fail("truncated", pos);
    }
    return static_cast<std::uint16_t>(msg[pos] << 8 | msg[pos + 1]);
}

void put16(std::vector<std::uint8_t>& out, std::uint16_t v) {
    out.push_back(static_cast<std::uint8_t>(v >> 8));
    out.push_back(static_cast<std::uint8_t>(v));
}
void put32(std::vector<std::uint8_t>& out, std::uint32_t v) {
    put16(out, static_cast<std::uint16_t>(v >> 16));
    put16(out, static_cast<std::uint16_t>(v));
}
void set16(std::vector<std::uint8_t>& out, std::size_t pos, std::uint16_t v) {
    out[pos] = static_cast<std::uint8_t>(v >> 8);
    out[pos + 1] = static_cast<std::uint8_t>(v);
}

bool plain_label_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

// Skips a resource record's name, type, class, ttl and rdata; returns its
// type and sets rdata_pos/rdlen.
std::uint16_t skip_rr(std::span<const std::uint8_t> msg, std::size_t& pos, std::size_t& rdata_pos,
                      std::uint16_t& rdlen, std::uint16_t& rclass) {
    read_name(msg, pos);
    std::uint16_t type = get16(msg, pos);
    rclass = get16(msg, pos + 2);
    rdlen = get16(msg, pos + 8);
    rdata_pos = pos + 10;
    if (rdata_pos + rdlen > msg.size()) {
        fail("record data past the end", rdata_pos);
    }
    pos = rdata_pos + rdlen;
    return type;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

// A name made only of plain labels (what Lookup may be asked).
bool plain_name(std::string_view name) {
    if (name.empty() || name.size() > 253) {
        return false;
    }
    std::size_t label = 0;
    for (char c : name) {
        if (c == '.') {
            if (label == 0) {
                return false;
            }
            label = 0;
        } else if (!plain_label_char(static_cast<unsigned char>(c))) {
            return false;
        } else {
            ++label;
        }
    }
    return label > 0;
}

// "4.3.2.1.in-addr.arpa" -> 1.2.3.4
std::optional<ipv4::Address> reverse_name(std::string_view name) {
    static constexpr std::string_view suffix = ".in-addr.arpa";
    std::string l = lower(name);
    if (l.size() <= suffix.size() ||
        l.compare(l.size() - suffix.size(), suffix.size(), suffix) != 0) {
        return std::nullopt;
    }
    std::string_view parts(l.data(), l.size() - suffix.size());
    std::uint32_t octets[4];
    int n = 0;
    while (!parts.empty()) {
        auto dot = parts.find('.');
        auto part = parts.substr(0, dot);
        if (n == 4 || part.empty() || part.size() > 3 ||
            !std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
            (part.size() > 1 && part[0] == '0')) {
            return std::nullopt;
        }
        octets[n] = static_cast<std::uint32_t>(std::stoul(std::string(part)));
        if (octets[n] > 255) {
            return std::nullopt;
        }
        ++n;
        if (dot == std::string_view::npos) {
            break;
        }
        parts.remove_prefix(dot + 1);
        if (parts.empty()) {
            return std::nullopt;
        }
    }
    if (n != 4) {
        return std::nullopt;
    }
    return ipv4::Address{octets[3] << 24 | octets[2] << 16 | octets[1] << 8 | octets[0]};
}

// The reply skeleton: header (id, QR, opcode, RD copied, RA set) and the
// question as asked.
std::vector<std::uint8_t> reply_start(const Header& h, const Question* q, int rcode, bool aa) {
    std::vector<std::uint8_t> out;
    out.reserve(512);
    put16(out, h.id);
    std::uint16_t flags = 0x8000 | (h.flags & 0x7800) | (h.flags & 0x0100) | 0x0080 |
                          static_cast<std::uint16_t>(rcode & 0xf);
    if (aa) {
        flags |= 0x0400;
    }
    put16(out, flags);
    put16(out, q ? 1 : 0);
    put16(out, 0);
    put16(out, 0);
    put16(out, 0);
    if (q) {
        write_name(out, q->name);
        put16(out, q->type);
        put16(out, q->qclass);
    }
    return out;
}

} // namespace

Header parse_header(std::span<const std::uint8_t> msg) {
    if (msg.size() < k_header_size) {
        fail("header truncated", msg.size());
    }
    Header h;
    h.id = get16(msg, 0);
    h.flags = get16(msg, 2);
    h.qdcount = get16(msg, 4);
    h.ancount = get16(msg, 6);
    h.nscount = get16(msg, 8);
    h.arcount = get16(msg, 10);
    return h;
}

std::string read_name(std::span<const std::uint8_t> msg, std::size_t& pos) {
    std::string out;
    std::size_t p = pos;
    std::size_t wire_len = 0;
    bool jumped = false;
    // Every pointer must go strictly backwards from the label that holds it,
    // so the walk ends; the hop limit is a second guard.
    std::size_t limit = p;
    int hops = 0;
    for (;;) {
        if (p >= msg.size()) {
            fail("name truncated", p);
        }
        std::uint8_t len = msg[p];
        if ((len & 0xc0) == 0xc0) {
            if (p + 1 >= msg.size()) {
                fail("compression pointer truncated", p);
            }
            std::size_t target = static_cast<std::size_t>((len & 0x3f) << 8 | msg[p + 1]);
            if (target >= limit || ++hops > 127) {
                fail("compression pointer loop", p);
            }
            if (!jumped) {
                pos = p + 2;
                jumped = true;
            }
            limit = target;
            p = target;
            continue;
        }
        if ((len & 0xc0) != 0) {
            fail("unsupported label type", p);
        }
        wire_len += 1 + len;
        if (wire_len > k_max_name) {
            fail("name longer than 255 bytes", p);
        }
        if (len == 0) {
            if (!jumped) {
                pos = p + 1;
            }
            return out;
        }
        if (p + 1 + len > msg.size()) {
            fail("label truncated", p);
        }
        if (!out.empty()) {
            out += '.';
        }
        for (std::size_t i = 0; i < len; ++i) {
            unsigned char c = msg[p + 1 + i];
            if (plain_label_char(c)) {
                out += static_cast<char>(c);
            } else {
                char buf[5];
                std::snprintf(buf, sizeof buf, "\\%03u", static_cast<unsigned>(c));
                out += buf;
            }
        }
        p += 1 + len;
    }
}

void write_name(std::vector<std::uint8_t>& out, std::string_view name) {
    if (!name.empty() && name.back() == '.') {
        name.remove_suffix(1);
    }
    std::size_t wire_len = 1;
    while (!name.empty()) {
        std::string label;
        std::size_t i = 0;
        for (; i < name.size() && name[i] != '.'; ++i) {
            if (name[i] == '\\' && i + 3 < name.size() &&
                std::isdigit(static_cast<unsigned char>(name[i + 1])) &&
                std::isdigit(static_cast<unsigned char>(name[i + 2])) &&
                std::isdigit(static_cast<unsigned char>(name[i + 3]))) {
                int v = (name[i + 1] - '0') * 100 + (name[i + 2] - '0') * 10 + (name[i + 3] - '0');
                if (v > 255) {
                    throw ParseError("DNS name: bad escape in " + std::string(name));
                }
                label += static_cast<char>(v);
                i += 3;
            } else {
                label += name[i];
            }
        }
        if (label.empty() || label.size() > k_max_label) {
            throw ParseError("DNS name: label of " + std::to_string(label.size()) + " bytes in " +
                             std::string(name));
        }
        wire_len += 1 + label.size();
        if (wire_len > k_max_name) {
            throw ParseError("DNS name: longer than 255 bytes: " + std::string(name));
        }
        out.push_back(static_cast<std::uint8_t>(label.size()));
        out.insert(out.end(), label.begin(), label.end());
        name.remove_prefix(std::min(name.size(), i + 1));
    }
    out.push_back(0);
}

Message parse(std::span<const std::uint8_t> msg) {
    Message m;
    m.header = parse_header(msg);
    std::size_t pos = k_header_size;
    for (unsigned i = 0; i < m.header.qdcount; ++i) {
        Question q;
        q.name = read_name(msg, pos);
        q.type = get16(msg, pos);
        q.qclass = get16(msg, pos + 2);
        pos += 4;
        if (!m.question) {
            m.question = std::move(q);
        }
    }
    unsigned records = unsigned{m.header.ancount} + m.header.nscount + m.header.arcount;
    for (unsigned i = 0; i < records; ++i) {
        std::size_t rdata = 0;
        std::uint16_t rdlen = 0, rclass = 0;
        std::uint16_t type = skip_rr(msg, pos, rdata, rdlen, rclass);
        bool answer = i < m.header.ancount;
        if (answer && type == type_a && rdlen == 4) {
            m.a.push_back(ipv4::Address{std::uint32_t{msg[rdata]} << 24 |
                                        std::uint32_t{msg[rdata + 1]} << 16 |
                                        std::uint32_t{msg[rdata + 2]} << 8 | msg[rdata + 3]});
        } else if (answer && type == type_ptr) {
            std::size_t p = rdata;
            m.ptr.push_back(read_name(msg, p));
            if (p != rdata + rdlen) {
                fail("PTR data length", rdata);
            }
        } else if (i >= unsigned{m.header.ancount} + m.header.nscount && type == type_opt) {
            m.udp_size = std::max<std::uint16_t>(512, rclass);
        }
    }
    return m;
}

std::vector<std::uint8_t> build_query(std::uint16_t id, std::string_view name, std::uint16_t type,
                                      bool recursion_desired) {
    std::vector<std::uint8_t> out;
    put16(out, id);
    put16(out, recursion_desired ? 0x0100 : 0);
    put16(out, 1);
    put16(out, 0);
    put16(out, 0);
    put16(out, 0);
    write_name(out, name);
    put16(out, type);
    put16(out, class_in);
    return out;
}

std::vector<std::uint8_t> truncated_copy(std::span<const std::uint8_t> msg) {
    Header h = parse_header(msg);
    std::size_t pos = k_header_size;
    if (h.qdcount > 0) {
        read_name(msg, pos);
        pos += 4;
        if (pos > msg.size()) {
            fail("question truncated", msg.size());
        }
    }
    std::vector<std::uint8_t> out(msg.begin(), msg.begin() + static_cast<std::ptrdiff_t>(pos));
    set16(out, 2, static_cast<std::uint16_t>(h.flags | 0x0200));
    set16(out, 4, h.qdcount > 0 ? 1 : 0);
    set16(out, 6, 0);
    set16(out, 8, 0);
    set16(out, 10, 0);
    return out;
}

Handling handle_query(std::span<const std::uint8_t> msg, const Lookup& lookup,
                      const ReverseLookup& reverse, bool can_forward, std::size_t max_size) {
    Handling h;
    Header header;
    bool udp = max_size == 0;
    if (udp) {
        max_size = 512;
    }
    try {
        header = parse_header(msg);
    } catch (const ParseError&) {
        return h; // nothing to answer to
    }
    if (header.qr()) {
        return h; // a response sent to the server: never answer (no loops)
    }
    try {
        h.query = parse(msg);
    } catch (const ParseError& e) {
        STRATA_LOG_DEBUG("DNS server: malformed query: {}", e.what());
        h.action = Handling::Action::reply;
        h.reply = reply_start(header, nullptr, rcode_formerr, false);
        return h;
    }
    if (udp) {
        max_size = std::max<std::size_t>(512, h.query.udp_size);
    }
    if (header.opcode() != 0) {
        h.action = Handling::Action::reply;
        h.reply = reply_start(header, nullptr, rcode_notimp, false);
        return h;
    }
    if (header.qdcount != 1) {
        h.action = Handling::Action::reply;
        h.reply = reply_start(header, nullptr, rcode_formerr, false);
        return h;
    }
    const Question& q = *h.query.question;
    std::string name = lower(q.name);
    bool in_class = q.qclass == class_in || q.qclass == type_any;
    std::vector<std::uint8_t> out;
    std::vector<std::vector<std::uint8_t>> answers; // each a whole RR
    bool local = false;
    try {
        if (in_class && q.type == type_ptr) {
            if (auto addr = reverse_name(name); addr && reverse) {
                if (auto target = reverse(*addr)) {
                    std::vector<std::uint8_t> rr;
                    put16(rr, 0xc00c); // the question's name
                    put16(rr, type_ptr);
                    put16(rr, class_in);
                    put32(rr, k_ttl);
                    std::vector<std::uint8_t> data;
                    try {
                        write_name(data, *target);
                        put16(rr, static_cast<std::uint16_t>(data.size()));
                        rr.insert(rr.end(), data.begin(), data.end());
                        answers.push_back(std::move(rr));
                        local = true;
                    } catch (const ParseError& e) {
                        STRATA_LOG_WARN("DNS server: PTR {} -> {}: {}", q.name, *target, e.what());
                    }
                }
            }
        } else if (in_class && plain_name(name) && lookup) {
            auto addrs = lookup(name);
            if (!addrs.empty()) {
                local = true;
                if (q.type == type_a || q.type == type_any) {
                    // Shuffled, as Docker's, so clients spread over the addresses.
                    for (std::size_t i = addrs.size(); i > 1; --i) {
                        std::uint32_t r = 0;
                        if (::getrandom(&r, sizeof r, 0) != sizeof r) {
                            r = static_cast<std::uint32_t>(i * 2654435761u);
                        }
                        std::swap(addrs[i - 1], addrs[r % i]);
                    }
                    for (auto a : addrs) {
                        std::vector<std::uint8_t> rr;
                        put16(rr, 0xc00c);
                        put16(rr, type_a);
                        put16(rr, class_in);
                        put32(rr, k_ttl);
                        put16(rr, 4);
                        put32(rr, a.value);
                        answers.push_back(std::move(rr));
                    }
                }
            }
        }
    } catch (const ParseError&) {
        throw;
    } catch (const std::exception& e) {
        // The store could not be read, say: SERVFAIL, the client retries.
        STRATA_LOG_WARN("DNS server: looking up {}: {}", q.name, e.what());
        h.action = Handling::Action::reply;
        h.reply = reply_start(header, &q, rcode_servfail, false);
        return h;
    }
    if (!local && can_forward) {
        h.action = Handling::Action::forward;
        return h;
    }
    // Known names are ours (NOERROR, possibly empty, as Docker answers AAAA
    // and MX for them). Unknown ones when nothing can be asked (no upstream,
    // internal networks) are SERVFAIL, as Docker's resolver answers what no
    // upstream could (libnetwork resolver.go serveDNS), not authoritative.
    if (!local) {
        h.action = Handling::Action::reply;
        h.reply = reply_start(header, &q, rcode_servfail, false);
        return h;
    }
    out = reply_start(header, &q, rcode_noerror, true);
    std::uint16_t count = 0;
    for (const auto& rr : answers) {
        if (out.size() + rr.size() > max_size) {
            set16(out, 2, static_cast<std::uint16_t>(get16(out, 2) | 0x0200));
            break;
        }
        out.insert(out.end(), rr.begin(), rr.end());
        ++count;
    }
    set16(out, 6, count);
    h.action = Handling::Action::reply;
    h.reply = std::move(out);
    return h;
}

} // namespace wire

// ---------------------------------------------------------------------------
// The server

namespace {

using wire::Handling;

constexpr std::size_t k_max_forwards = 256; // concurrent forwarded queries
constexpr std::size_t k_max_tcp_clients = 64;
constexpr std::size_t k_max_upstreams = 3;            // Docker's maxExtDNS
constexpr auto k_tcp_idle = std::chrono::seconds(10); // a client connection with nothing to do
constexpr std::size_t k_max_tcp_out = 256 * 1024;

using Clock = std::chrono::steady_clock;

std::string errno_text(int err) {
    return std::strerror(err);
}

UniqueFd make_socket(int family, int type) {
    UniqueFd fd(::socket(family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
        throw_errno("DNS server: socket");
    }
    return fd;
}

struct SockAddr {
    sockaddr_storage storage{};
    socklen_t len = 0;
    const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
    int family() const { return storage.ss_family; }
};

SockAddr resolve_numeric(const std::string& address, std::uint16_t port) {
    addrinfo hints{};
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    hints.ai_family = AF_UNSPEC;
    addrinfo* res = nullptr;
    std::string service = std::to_string(port);
    int rc = ::getaddrinfo(address.c_str(), service.c_str(), &hints, &res);
    if (rc != 0 || !res) {
        throw Error("DNS server: nameserver " + address + " is not an IP address");
    }
    SockAddr out;
    std::memcpy(&out.storage, res->ai_addr, res->ai_addrlen);
    out.len = static_cast<socklen_t>(res->ai_addrlen);
    ::freeaddrinfo(res);
    return out;
}

// Runs fn on a thread that has joined the network namespace netns_fd, so
// that the sockets fn makes belong to it; the caller's thread never moves.
template <typename F> void in_netns(int netns_fd, F&& fn) {
    if (netns_fd < 0) {
        fn();
        return;
    }
    std::exception_ptr error;
    std::thread t([&] {
        try {
            if (::setns(netns_fd, CLONE_NEWNET) != 0) {
                throw_errno("DNS server: setns into the container's network namespace");
            }
            fn();
        } catch (...) {
            error = std::current_exception();
        }
    });
    t.join();
    if (error) {
        std::rethrow_exception(error);
    }
}

// Brings lo up in the calling thread's namespace (a new one has it down).
void loopback_up() {
    UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!s) {
        throw_errno("DNS server: socket");
    }
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (::ioctl(s.get(), SIOCGIFFLAGS, &ifr) != 0) {
        throw_errno("DNS server: SIOCGIFFLAGS", "lo");
    }
    if (!(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
        if (::ioctl(s.get(), SIOCSIFFLAGS, &ifr) != 0) {
            throw_errno("DNS server: SIOCSIFFLAGS", "lo");
        }
    }
}

bool would_block(int err) {
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

} // namespace

struct DnsServer::Impl {
    ServerOptions options;
    UniqueFd udp;
    UniqueFd tcp;
    UniqueFd wake;
    std::uint16_t bound_port = 0;
    std::mutex upstream_mutex;
    std::vector<Upstream> upstreams; // under upstream_mutex
    std::thread thread;
    std::atomic<bool> stop{false};

    struct TcpClient {
        UniqueFd fd;
        std::vector<std::uint8_t> in;
        std::vector<std::uint8_t> out;
        Clock::time_point deadline;
    };
    std::map<std::uint64_t, TcpClient> clients;
    std::uint64_t next_client = 1;

    struct Forward {
        // The client: a UDP address, or a TCP connection (client id).
        SockAddr udp_client;
        std::uint64_t tcp_client = 0;
        std::size_t client_max = 512;
        std::vector<std::uint8_t> query; // as the client sent it
        std::uint16_t client_id = 0;
        wire::Question question;
        std::vector<Upstream> upstreams;
        std::size_t index = 0; // upstream being asked
        bool over_tcp = false;
        UniqueFd fd;
        std::uint16_t our_id = 0;
        Clock::time_point deadline;
        // TCP exchange with the upstream
        bool connected = false;
        std::vector<std::uint8_t> tcp_out;
        std::size_t tcp_out_pos = 0;
        std::vector<std::uint8_t> tcp_in;
        std::vector<std::uint8_t> truncated; // a UDP reply with TC, kept for the client
        std::vector<std::uint8_t> last;      // the last failed reply, for when all fail
    };
    std::list<Forward> forwards;

    void run() noexcept;
    void on_udp();
    void on_accept();
    void on_client(std::uint64_t id, short revents);
    void client_query(std::uint64_t id, std::span<const std::uint8_t> msg);
    void start_forward(Forward& f);
    bool try_upstream(Forward& f);
    void on_forward(Forward& f, short revents);
    bool accept_reply(Forward& f, std::vector<std::uint8_t> reply, bool was_udp);
    void finish(Forward& f, std::vector<std::uint8_t> reply);
    void send_udp(const SockAddr& to, std::span<const std::uint8_t> msg);
    void send_tcp(std::uint64_t id, std::span<const std::uint8_t> msg);
    bool flush_client(TcpClient& c);
};

DnsServer::DnsServer(int netns_fd, ServerOptions options) : m_impl(std::make_unique<Impl>()) {
    if (!options.lookup) {
        throw Error("DNS server: no lookup function");
    }
    m_impl->options = std::move(options);
    m_impl->upstreams = m_impl->options.upstreams;
    if (m_impl->upstreams.size() > k_max_upstreams) {
        m_impl->upstreams.resize(k_max_upstreams);
    }
    for (const auto& u : m_impl->upstreams) {
        resolve_numeric(u.address, u.port); // refuse a bad one now
    }
    const std::string& listen = m_impl->options.listen_address;
    std::uint16_t port = m_impl->options.port;
    in_netns(netns_fd, [&] {
        loopback_up(); // 127.0.0.11 exists once lo is up
        SockAddr addr = resolve_numeric(listen, port);
        std::string where = listen + ":" + std::to_string(port);
        UniqueFd udp = make_socket(addr.family(), SOCK_DGRAM);
        if (::bind(udp.get(), addr.get(), addr.len) != 0) {
            throw_errno("DNS server: bind " + where + "/udp");
        }
        sockaddr_storage got{};
        socklen_t len = sizeof got;
        if (::getsockname(udp.get(), reinterpret_cast<sockaddr*>(&got), &len) != 0) {
            throw_errno("DNS server: getsockname");
        }
        std::uint16_t bound =
            ntohs(addr.family() == AF_INET ? reinterpret_cast<sockaddr_in*>(&got)->sin_port
                                           : reinterpret_cast<sockaddr_in6*>(&got)->sin6_port);
        SockAddr taddr = resolve_numeric(listen, bound);
        UniqueFd tcp = make_socket(addr.family(), SOCK_STREAM);
        int one = 1;
        ::setsockopt(tcp.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(tcp.get(), taddr.get(), taddr.len) != 0) {
            throw_errno("DNS server: bind " + listen + ":" + std::to_string(bound) + "/tcp");
        }
        if (::listen(tcp.get(), 64) != 0) {
            throw_errno("DNS server: listen " + where + "/tcp");
        }
        m_impl->udp = std::move(udp);
        m_impl->tcp = std::move(tcp);
        m_impl->bound_port = bound;
    });
    m_impl->wake = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!m_impl->wake) {
        throw_errno("DNS server: eventfd");
    }
    Impl* impl = m_impl.get();
    m_impl->thread = std::thread([impl] { impl->run(); });
}

DnsServer::~DnsServer() {
    if (!m_impl) {
        return;
    }
    m_impl->stop = true;
    std::uint64_t one = 1;
    if (::write(m_impl->wake.get(), &one, sizeof one) < 0) {
        // the thread still sees stop at its next wake-up (at most a timeout)
    }
    if (m_impl->thread.joinable()) {
        m_impl->thread.join();
    }
}

std::uint16_t DnsServer::port() const {
    return m_impl->bound_port;
}

void DnsServer::set_upstreams(std::vector<Upstream> upstreams) {
    for (const auto& u : upstreams) {
        resolve_numeric(u.address, u.port);
    }
    if (upstreams.size() > k_max_upstreams) {
        upstreams.resize(k_max_upstreams);
    }
    std::lock_guard lock(m_impl->upstream_mutex);
    m_impl->upstreams = std::move(upstreams);
}

void DnsServer::Impl::run() noexcept {
    std::vector<pollfd> fds;
    std::vector<std::pair<int, std::uint64_t>> owners; // kind (0 listen, 1 client, 2 forward), id
    std::vector<Forward*> forward_of;
    while (!stop) {
        fds.clear();
        owners.clear();
        forward_of.clear();
        fds.push_back({wake.get(), POLLIN, 0});
        fds.push_back({udp.get(), POLLIN, 0});
        fds.push_back({tcp.get(), POLLIN, 0});
        auto now = Clock::now();
        auto next = now + std::chrono::seconds(60);
        for (auto& [id, c] : clients) {
            short ev = static_cast<short>(POLLIN | (c.out.empty() ? 0 : POLLOUT));
            fds.push_back({c.fd.get(), ev, 0});
            owners.emplace_back(1, id);
            next = std::min(next, c.deadline);
        }
        for (auto& f : forwards) {
            short ev = POLLIN;
            if (f.over_tcp && (!f.connected || f.tcp_out_pos < f.tcp_out.size())) {
                ev = POLLOUT;
            }
            fds.push_back({f.fd.get(), ev, 0});
            owners.emplace_back(2, 0);
            forward_of.push_back(&f);
            next = std::min(next, f.deadline);
        }
        auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count();
        int rc = ::poll(fds.data(), fds.size(),
                        static_cast<int>(std::clamp<long long>(wait + 1, 0, 60000)));
        if (rc < 0 && errno != EINTR) {
            STRATA_LOG_ERROR("DNS server: poll: {}", errno_text(errno));
            return;
        }
        if (stop) {
            return;
        }
        try {
            if (fds[1].revents & POLLIN) {
                on_udp();
            }
            if (fds[2].revents & POLLIN) {
                on_accept();
            }
            std::size_t fi = 0;
            for (std::size_t i = 3; i < fds.size(); ++i) {
                auto [kind, id] = owners[i - 3];
                if (kind == 1) {
                    if (fds[i].revents) {
                        on_client(id, fds[i].revents);
                    }
                } else {
                    Forward* f = forward_of[fi++];
                    if (fds[i].revents) {
                        on_forward(*f, fds[i].revents);
                    }
                }
            }
            // Timeouts: idle clients close, forwards move to the next server.
            now = Clock::now();
            for (auto it = clients.begin(); it != clients.end();) {
                if (it->second.deadline <= now) {
                    it = clients.erase(it);
                } else {
                    ++it;
                }
            }
            for (auto& f : forwards) {
                if (f.fd && f.deadline <= now) {
                    STRATA_LOG_DEBUG("DNS server: {} timed out for {}",
                                     f.upstreams[f.index].address, f.question.name);
                    if (f.over_tcp && !f.truncated.empty() && f.tcp_client == 0) {
                        finish(f, std::move(f.truncated)); // the UDP client retries over TCP
                    } else {
                        f.fd.reset();
                        ++f.index;
                        start_forward(f);
                    }
                }
            }
            forwards.remove_if([](const Forward& f) { return !f.fd; });
        } catch (const std::exception& e) {
            STRATA_LOG_ERROR("DNS server: {}", e.what());
        }
    }
}

void DnsServer::Impl::send_udp(const SockAddr& to, std::span<const std::uint8_t> msg) {
    if (::sendto(udp.get(), msg.data(), msg.size(), MSG_NOSIGNAL, to.get(), to.len) < 0) {
        STRATA_LOG_DEBUG("DNS server: sendto: {}", errno_text(errno));
    }
}

void DnsServer::Impl::send_tcp(std::uint64_t id, std::span<const std::uint8_t> msg) {
    auto it = clients.find(id);
    if (it == clients.end() || msg.size() > 0xffff) {
        return;
    }
    auto& c = it->second;
    if (c.out.size() + msg.size() + 2 > k_max_tcp_out) {
        clients.erase(it); // a client that does not read its answers
        return;
    }
    c.out.push_back(static_cast<std::uint8_t>(msg.size() >> 8));
    c.out.push_back(static_cast<std::uint8_t>(msg.size()));
    c.out.insert(c.out.end(), msg.begin(), msg.end());
    c.deadline = Clock::now() + k_tcp_idle;
    if (!flush_client(c)) {
        clients.erase(it);
    }
}

bool DnsServer::Impl::flush_client(TcpClient& c) {
    while (!c.out.empty()) {
        ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL);
        if (n < 0) {
            return would_block(errno);
        }
        c.out.erase(c.out.begin(), c.out.begin() + n);
    }
    return true;
}

void DnsServer::Impl::on_udp() {
    static thread_local std::uint8_t buf[65536];
    for (int i = 0; i < 64; ++i) { // a batch, then the other sockets get a turn
        SockAddr from;
        from.len = sizeof from.storage;
        ssize_t n = ::recvfrom(udp.get(), buf, sizeof buf, 0,
                               reinterpret_cast<sockaddr*>(&from.storage), &from.len);
        if (n < 0) {
            return;
        }
        std::span<const std::uint8_t> msg(buf, static_cast<std::size_t>(n));
        bool can_forward;
        {
            std::lock_guard lock(upstream_mutex);
            can_forward = !upstreams.empty();
        }
        // The client's size comes from the query (EDNS0), parsed in handle_query.
        Handling h = wire::handle_query(msg, options.lookup, options.reverse, can_forward, 0);
        if (h.action == Handling::Action::reply) {
            send_udp(from, h.reply);
        } else if (h.action == Handling::Action::forward) {
            if (forwards.size() >= k_max_forwards) {
                STRATA_LOG_WARN("DNS server: more than {} queries waiting for upstream servers",
                                k_max_forwards);
                continue;
            }
            Forward f;
            f.udp_client = from;
            f.client_max = h.query.udp_size;
            f.query.assign(msg.begin(), msg.end());
            f.client_id = h.query.header.id;
            f.question = *h.query.question;
            forwards.push_back(std::move(f));
            start_forward(forwards.back());
        }
    }
}

void DnsServer::Impl::on_accept() {
    for (int i = 0; i < 16; ++i) {
        UniqueFd fd(::accept4(tcp.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!fd) {
            return;
        }
        if (clients.size() >= k_max_tcp_clients) {
            continue; // closed: too many connections
        }
        TcpClient c;
        c.fd = std::move(fd);
        c.deadline = Clock::now() + k_tcp_idle;
        clients.emplace(next_client++, std::move(c));
    }
}

void DnsServer::Impl::on_client(std::uint64_t id, short revents) {
    auto it = clients.find(id);
    if (it == clients.end()) {
        return;
    }
    auto& c = it->second;
    if ((revents & POLLOUT) && !flush_client(c)) {
        clients.erase(it);
        return;
    }
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        std::uint8_t buf[16384];
        ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && !would_block(errno))) {
            clients.erase(it);
            return;
        }
        if (n < 0) {
            return;
        }
        c.in.insert(c.in.end(), buf, buf + n);
        c.deadline = Clock::now() + k_tcp_idle;
        // Whole messages: a 2-byte length, then the message.
        std::size_t pos = 0;
        std::vector<std::vector<std::uint8_t>> msgs;
        while (c.in.size() - pos >= 2) {
            std::size_t len = static_cast<std::size_t>(c.in[pos] << 8 | c.in[pos + 1]);
            if (c.in.size() - pos - 2 < len) {
                break;
            }
            msgs.emplace_back(c.in.begin() + static_cast<std::ptrdiff_t>(pos + 2),
                              c.in.begin() + static_cast<std::ptrdiff_t>(pos + 2 + len));
            pos += 2 + len;
        }
        c.in.erase(c.in.begin(), c.in.begin() + static_cast<std::ptrdiff_t>(pos));
        for (const auto& m : msgs) {
            client_query(id, m); // may erase the client
        }
    }
}

void DnsServer::Impl::client_query(std::uint64_t id, std::span<const std::uint8_t> msg) {
    if (!clients.contains(id)) {
        return;
    }
    bool can_forward;
    {
        std::lock_guard lock(upstream_mutex);
        can_forward = !upstreams.empty();
    }
    // Kept open while its query may wait for every upstream in turn.
    clients[id].deadline = Clock::now() + k_tcp_idle + k_max_upstreams * options.upstream_timeout;
    Handling h = wire::handle_query(msg, options.lookup, options.reverse, can_forward, 0xffff);
    if (h.action == Handling::Action::reply) {
        send_tcp(id, h.reply);
    } else if (h.action == Handling::Action::forward) {
        if (forwards.size() >= k_max_forwards) {
            return;
        }
        Forward f;
        f.tcp_client = id;
        f.client_max = 0xffff;
        f.over_tcp = true;
        f.query.assign(msg.begin(), msg.end());
        f.client_id = h.query.header.id;
        f.question = *h.query.question;
        forwards.push_back(std::move(f));
        start_forward(forwards.back());
    }
}

// Asks upstreams from f.index on until one can be reached; with none left
// the client gets the last failed reply or SERVFAIL.
void DnsServer::Impl::start_forward(Forward& f) {
    if (f.upstreams.empty() && f.index == 0) {
        std::lock_guard lock(upstream_mutex);
        f.upstreams = upstreams;
    }
    while (f.index < f.upstreams.size()) {
        if (try_upstream(f)) {
            return;
        }
        ++f.index;
    }
    if (!f.last.empty()) {
        finish(f, std::move(f.last));
        return;
    }
    std::vector<std::uint8_t> reply = wire::truncated_copy(f.query);
    // SERVFAIL: QR, RA, rcode 2, no TC.
    std::uint16_t flags = static_cast<std::uint16_t>(reply[2] << 8 | reply[3]);
    flags = static_cast<std::uint16_t>((flags & 0x7900) | 0x8080 | wire::rcode_servfail);
    reply[2] = static_cast<std::uint8_t>(flags >> 8);
    reply[3] = static_cast<std::uint8_t>(flags);
    finish(f, std::move(reply));
}

bool DnsServer::Impl::try_upstream(Forward& f) {
    const Upstream& u = f.upstreams[f.index];
    try {
        SockAddr addr = resolve_numeric(u.address, u.port);
        f.fd = make_socket(addr.family(), f.over_tcp ? SOCK_STREAM : SOCK_DGRAM);
        if (::getrandom(&f.our_id, sizeof f.our_id, 0) != sizeof f.our_id) {
            f.our_id = static_cast<std::uint16_t>(Clock::now().time_since_epoch().count());
        }
        std::vector<std::uint8_t> q = f.query;
        q[0] = static_cast<std::uint8_t>(f.our_id >> 8);
        q[1] = static_cast<std::uint8_t>(f.our_id);
        f.deadline = Clock::now() + options.upstream_timeout;
        if (::connect(f.fd.get(), addr.get(), addr.len) != 0 && errno != EINPROGRESS) {
            throw_errno("connect " + u.address);
        }
        if (f.over_tcp) {
            f.connected = false;
            f.tcp_out.clear();
            f.tcp_out.push_back(static_cast<std::uint8_t>(q.size() >> 8));
            f.tcp_out.push_back(static_cast<std::uint8_t>(q.size()));
            f.tcp_out.insert(f.tcp_out.end(), q.begin(), q.end());
            f.tcp_out_pos = 0;
            f.tcp_in.clear();
        } else if (::send(f.fd.get(), q.data(), q.size(), MSG_NOSIGNAL) < 0) {
            throw_errno("send to " + u.address);
        }
        STRATA_LOG_DEBUG("DNS server: forwarding {} (type {}) to {} over {}", f.question.name,
                         f.question.type, u.address, f.over_tcp ? "tcp" : "udp");
        return true;
    } catch (const Error& e) {
        STRATA_LOG_DEBUG("DNS server: upstream {}: {}", u.address, e.what());
        f.fd.reset();
        return false;
    }
}

void DnsServer::Impl::on_forward(Forward& f, short revents) {
    if (!f.fd) {
        return;
    }
    auto next_server = [&] {
        f.fd.reset();
        if (f.over_tcp && !f.truncated.empty() && f.tcp_client == 0) {
            finish(f, std::move(f.truncated));
            return;
        }
        ++f.index;
        start_forward(f);
    };
    if (!f.over_tcp) {
        static thread_local std::uint8_t buf[65536];
        for (;;) {
            ssize_t n = ::recv(f.fd.get(), buf, sizeof buf, 0);
            if (n < 0) {
                if (would_block(errno)) {
                    return;
                }
                next_server(); // e.g. ECONNREFUSED: nothing listens there
                return;
            }
            if (accept_reply(f, std::vector<std::uint8_t>(buf, buf + n), true)) {
                return;
            }
        }
    }
    if (revents & (POLLERR | POLLHUP) && !(revents & POLLIN)) {
        next_server();
        return;
    }
    if (!f.connected) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(f.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            next_server();
            return;
        }
        f.connected = true;
    }
    while (f.tcp_out_pos < f.tcp_out.size()) {
        ssize_t n = ::send(f.fd.get(), f.tcp_out.data() + f.tcp_out_pos,
                           f.tcp_out.size() - f.tcp_out_pos, MSG_NOSIGNAL);
        if (n < 0) {
            if (would_block(errno)) {
                return;
            }
            next_server();
            return;
        }
        f.tcp_out_pos += static_cast<std::size_t>(n);
    }
    if (!(revents & POLLIN)) {
        return;
    }
    std::uint8_t buf[16384];
    ssize_t n = ::recv(f.fd.get(), buf, sizeof buf, 0);
    if (n < 0 && would_block(errno)) {
        return;
    }
    if (n <= 0) {
        next_server();
        return;
    }
    f.tcp_in.insert(f.tcp_in.end(), buf, buf + n);
    if (f.tcp_in.size() >= 2) {
        std::size_t len = static_cast<std::size_t>(f.tcp_in[0] << 8 | f.tcp_in[1]);
        if (f.tcp_in.size() >= 2 + len) {
            std::vector<std::uint8_t> reply(
                f.tcp_in.begin() + 2, f.tcp_in.begin() + 2 + static_cast<std::ptrdiff_t>(len));
            if (!accept_reply(f, std::move(reply), false)) {
                next_server(); // not an answer to our query
            }
        }
    }
}

// Checks that reply answers f's query and acts on it; false when it is not
// an answer to this query (ignored, as a spoofing attempt may be).
bool DnsServer::Impl::accept_reply(Forward& f, std::vector<std::uint8_t> reply, bool was_udp) {
    wire::Header h;
    wire::Message m;
    try {
        m = wire::parse(reply);
        h = m.header;
    } catch (const wire::ParseError& e) {
        // A truncated UDP reply may end mid-record; its header and question
        // are what counts.
        try {
            h = wire::parse_header(reply);
            std::size_t pos = 12;
            if (h.qdcount != 1 || !h.tc()) {
                return false;
            }
            m.header = h;
            m.question = wire::Question{wire::read_name(reply, pos), 0, 0};
            if (pos + 4 > reply.size()) {
                return false;
            }
            m.question->type = static_cast<std::uint16_t>(reply[pos] << 8 | reply[pos + 1]);
            m.question->qclass = static_cast<std::uint16_t>(reply[pos + 2] << 8 | reply[pos + 3]);
        } catch (const wire::ParseError&) {
            return false;
        }
    }
    if (h.id != f.our_id || !h.qr() || !m.question ||
        wire::lower(m.question->name) != wire::lower(f.question.name) ||
        m.question->type != f.question.type || m.question->qclass != f.question.qclass) {
        STRATA_LOG_DEBUG("DNS server: ignoring a reply that does not match the query for {}",
                         f.question.name);
        return false;
    }
    reply[0] = static_cast<std::uint8_t>(f.client_id >> 8);
    reply[1] = static_cast<std::uint8_t>(f.client_id);
    if (was_udp && h.tc()) {
        // Ask the same server over TCP; the client gets the whole answer when
        // it fits its UDP size, else this truncated one (and retries over TCP).
        f.truncated = wire::truncated_copy(reply);
        f.over_tcp = true;
        f.fd.reset();
        if (!try_upstream(f)) {
            finish(f, std::move(f.truncated));
        }
        return true;
    }
    int rcode = h.rcode();
    if (rcode == wire::rcode_servfail || rcode == wire::rcode_refused ||
        (rcode == wire::rcode_nxdomain && !h.aa()) ||
        (rcode != wire::rcode_noerror && rcode != wire::rcode_nxdomain)) {
        STRATA_LOG_DEBUG("DNS server: {} answered rcode {} for {}", f.upstreams[f.index].address,
                         rcode, f.question.name);
        f.last = std::move(reply);
        f.fd.reset();
        if (f.tcp_client == 0) {
            f.over_tcp = false;
        }
        f.truncated.clear();
        ++f.index;
        start_forward(f);
        return true;
    }
    finish(f, std::move(reply));
    return true;
}

void DnsServer::Impl::finish(Forward& f, std::vector<std::uint8_t> reply) {
    f.fd.reset();
    if (f.tcp_client != 0) {
        send_tcp(f.tcp_client, reply);
        return;
    }
    if (reply.size() > f.client_max) {
        try {
            reply = wire::truncated_copy(reply);
        } catch (const wire::ParseError&) {
            return;
        }
    }
    send_udp(f.udp_client, reply);
}

// ---------------------------------------------------------------------------
// resolv.conf

namespace {

struct ParsedResolvConf {
    std::vector<std::string> nameservers;
    std::vector<std::string> invalid;
    std::vector<std::string> search;
    std::vector<std::string> options;
    std::vector<std::string> other;
};

std::vector<std::string> fields_of(std::string_view line) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) {
            ++i;
        }
        std::size_t j = i;
        while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') {
            ++j;
        }
        if (j > i) {
            out.emplace_back(line.substr(i, j - i));
        }
        i = j;
    }
    return out;
}

bool is_ip(const std::string& s, bool* loopback = nullptr, bool* v6 = nullptr) {
    std::string addr = s;
    auto pct = addr.find('%');
    bool zone = pct != std::string::npos;
    if (zone) {
        addr.resize(pct);
    }
    in_addr a4{};
    in6_addr a6{};
    if (!zone && ::inet_pton(AF_INET, addr.c_str(), &a4) == 1) {
        if (loopback) {
            *loopback = (ntohl(a4.s_addr) >> 24) == 127;
        }
        if (v6) {
            *v6 = false;
        }
        return true;
    }
    if (::inet_pton(AF_INET6, addr.c_str(), &a6) == 1) {
        if (loopback) {
            *loopback = IN6_IS_ADDR_LOOPBACK(&a6) || zone;
        }
        if (v6) {
            *v6 = true;
        }
        return true;
    }
    return false;
}

ParsedResolvConf parse_resolv_conf(std::string_view text) {
    ParsedResolvConf rc;
    std::size_t i = 0;
    while (i < text.size()) {
        std::size_t j = text.find('\n', i);
        if (j == std::string_view::npos) {
            j = text.size();
        }
        std::string_view line = text.substr(i, j - i);
        i = j + 1;
        auto f = fields_of(line);
        if (f.empty() || f[0][0] == '#' || f[0][0] == ';') {
            continue;
        }
        if (f[0] == "nameserver") {
            if (f.size() < 2) {
                continue;
            }
            if (is_ip(f[1])) {
                rc.nameservers.push_back(f[1]);
            } else {
                rc.invalid.push_back(f[1]);
            }
        } else if (f[0] == "search" || f[0] == "domain") {
            if (f.size() >= 2) {
                rc.search.assign(f.begin() + 1, f.end()); // the last one counts
            }
        } else if (f[0] == "options") {
            rc.options.insert(rc.options.end(), f.begin() + 1, f.end());
        } else {
            std::string l(line);
            while (!l.empty() && l.back() == '\r') {
                l.pop_back();
            }
            rc.other.push_back(l);
        }
    }
    return rc;
}

std::string join(const std::vector<std::string>& v, std::string_view sep) {
    std::string out;
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (i) {
            out += sep;
        }
        out += v[i];
    }
    return out;
}

bool has_option(const std::vector<std::string>& options, std::string_view name) {
    for (const auto& o : options) {
        if (o.substr(0, o.find(':')) == name) {
            return true;
        }
    }
    return false;
}

std::string read_small_file(const std::string& path) {
    std::string out;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        return out;
    }
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd.get(), buf, sizeof buf)) > 0 && out.size() < (1u << 20)) {
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

} // namespace

ResolvConf resolv_conf_for(const ResolvConfRequest& request) {
    std::string host = request.host_text ? *request.host_text : read_small_file(request.host_path);
    ParsedResolvConf rc = parse_resolv_conf(host);
    std::string ndots_from;
    if (has_option(rc.options, "ndots")) {
        ndots_from = "host";
    }
    std::vector<std::string> overrides;
    bool ns_override = !request.dns.empty();
    if (ns_override) {
        for (const auto& d : request.dns) {
            if (!is_ip(d)) {
                throw UsageError("IP address is not correctly formatted: " + d);
            }
        }
        rc.nameservers = request.dns;
        overrides.push_back("nameservers");
    }
    if (!request.dns_search.empty()) {
        rc.search.clear();
        for (const auto& s : request.dns_search) {
            if (s != ".") {
                rc.search.push_back(s);
            }
        }
        overrides.push_back("search");
    }
    if (!request.dns_options.empty()) {
        rc.options = request.dns_options;
        ndots_from = has_option(rc.options, "ndots") ? "override" : "";
        overrides.push_back("options");
    }

    ResolvConf out;
    std::vector<std::string> nameservers;
    std::vector<std::string> ext;
    bool used_default = false;
    std::string transform;
    if (request.internal_resolver) {
        transform = "internal resolver";
        nameservers = {"127.0.0.11"};
        for (const auto& ns : rc.nameservers) {
            bool loopback = false, v6 = false;
            is_ip(ns, &loopback, &v6);
            // A loopback nameserver of the host's file is the host's own
            // resolver: asked from the host's namespace, as all are here.
            // (IPv6 is not enabled on strata's networks: also the host's.)
            bool host_loopback = !ns_override && (loopback || v6);
            ext.push_back(host_loopback ? "host(" + ns + ")" : ns);
            auto addr = ns;
            out.upstreams.push_back(Upstream{addr, 53});
        }
        if (out.upstreams.empty()) {
            used_default = true;
            for (const char* d : {"8.8.8.8", "8.8.4.4"}) {
                ext.emplace_back(d);
                out.upstreams.push_back(Upstream{d, 53});
            }
        }
        // Docker's required option; an invalid ndots from the host goes.
        std::vector<std::string> kept;
        for (const auto& o : rc.options) {
            if (o.rfind("ndots", 0) == 0 && (o.size() == 5 || o[5] == ':')) {
                auto v = o.size() > 6 ? o.substr(6) : std::string();
                bool ok = !v.empty() && v.size() < 9 && std::all_of(v.begin(), v.end(), [](char c) {
                    return c >= '0' && c <= '9';
                });
                if (!ok) {
                    continue;
                }
            }
            kept.push_back(o);
        }
        rc.options = std::move(kept);
        if (!has_option(rc.options, "ndots")) {
            rc.options.push_back("ndots:0");
            ndots_from = "internal";
        }
    } else {
        transform = "legacy";
        if (ns_override) {
            nameservers = rc.nameservers;
        } else {
            for (const auto& ns : rc.nameservers) {
                bool loopback = false, v6 = false;
                is_ip(ns, &loopback, &v6);
                // IPv6 is not enabled on strata's networks.
                if (!loopback && !v6) {
                    nameservers.push_back(ns);
                }
            }
            if (nameservers.empty()) {
                nameservers = {"8.8.8.8", "8.8.4.4"};
                used_default = true;
            }
        }
    }

    std::string& t = out.text;
    t = "# Generated by Docker Engine.\n"
        "# This file can be edited; Docker Engine will not make further changes once it\n"
        "# has been modified.\n\n";
    for (const auto& ns : nameservers) {
        t += "nameserver " + ns + "\n";
    }
    if (!rc.search.empty()) {
        t += "search " + join(rc.search, " ") + "\n";
    }
    if (!rc.options.empty()) {
        t += "options " + join(rc.options, " ") + "\n";
    }
    for (const auto& o : rc.other) {
        t += o + "\n";
    }
    t += "\n# Based on host file: '" + request.host_path + "' (" + transform + ")\n";
    if (used_default) {
        t += "# Used default nameservers.\n";
    }
    if (!ext.empty()) {
        t += "# ExtServers: [" + join(ext, " ") + "]\n";
    }
    if (!rc.invalid.empty()) {
        t += "# Invalid nameservers: [" + join(rc.invalid, " ") + "]\n";
    }
    t += "# Overrides: [" + join(overrides, " ") + "]\n";
    if (!ndots_from.empty()) {
        t += "# Option ndots from: " + ndots_from + "\n";
    }
    return out;
}

} // namespace strata::network::dns
