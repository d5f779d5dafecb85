#include "network/conntrack.hpp"

#include "util/error.hpp"
#include "util/fd.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <memory>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace strata::network::conntrack {

namespace {

struct Attr {
    std::uint16_t type = 0; // NLA_TYPE_MASK applied
    const unsigned char* data = nullptr;
    std::size_t len = 0;                // payload
    const unsigned char* raw = nullptr; // header included
    std::size_t raw_len = 0;
};

// The attributes in [p, p + n), bounds-checked.
std::vector<Attr> attrs(const unsigned char* p, std::size_t n) {
    std::vector<Attr> out;
    while (n >= NLA_HDRLEN) {
        nlattr a;
        std::memcpy(&a, p, sizeof a);
        if (a.nla_len < NLA_HDRLEN || a.nla_len > n) {
            break;
        }
        out.push_back({static_cast<std::uint16_t>(a.nla_type & NLA_TYPE_MASK), p + NLA_HDRLEN,
                       static_cast<std::size_t>(a.nla_len) - NLA_HDRLEN, p, a.nla_len});
        std::size_t step = NLA_ALIGN(a.nla_len);
        if (step >= n) {
            break;
        }
        p += step;
        n -= step;
    }
    return out;
}

const Attr* find(const std::vector<Attr>& v, std::uint16_t type) {
    for (const auto& a : v) {
        if (a.type == type) {
            return &a;
        }
    }
    return nullptr;
}

class Socket {
public:
    Socket() : m_fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER)) {
        if (!m_fd) {
            throw_errno("socket", "NETLINK_NETFILTER");
        }
        sockaddr_nl sa{};
        sa.nl_family = AF_NETLINK;
        if (::bind(m_fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
            throw_errno("bind", "NETLINK_NETFILTER");
        }
    }

    void send(std::uint16_t msg, std::uint16_t flags, const std::string& payload) {
        std::string buf(NLMSG_LENGTH(sizeof(nfgenmsg)), '\0');
        nfgenmsg g{};
        g.nfgen_family = AF_INET;
        g.version = NFNETLINK_V0;
        std::memcpy(buf.data() + NLMSG_HDRLEN, &g, sizeof g);
        buf.resize(NLMSG_ALIGN(buf.size()));
        buf += payload;
        nlmsghdr h{};
        h.nlmsg_len = static_cast<std::uint32_t>(buf.size());
        h.nlmsg_type = static_cast<std::uint16_t>((NFNL_SUBSYS_CTNETLINK << 8) | msg);
        h.nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | flags);
        h.nlmsg_seq = ++m_seq;
        std::memcpy(buf.data(), &h, sizeof h);
        if (::send(m_fd.get(), buf.data(), buf.size(), 0) < 0) {
            throw_errno("send", "ctnetlink");
        }
    }

    // Calls f for every message of the answer to the last request; returns
    // the error of an NLMSG_ERROR (0 for an ack).
    template <class F> int receive(F&& f) {
        std::vector<unsigned char> buf(1 << 16);
        while (true) {
            ssize_t n = ::recv(m_fd.get(), buf.data(), buf.size(), 0);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0) {
                throw_errno("recv", "ctnetlink");
            }
            std::size_t left = static_cast<std::size_t>(n);
            const unsigned char* p = buf.data();
            while (left >= NLMSG_HDRLEN) {
                nlmsghdr h;
                std::memcpy(&h, p, sizeof h);
                if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > left) {
                    throw Error("ctnetlink: a truncated message");
                }
                if (h.nlmsg_seq == m_seq) {
                    if (h.nlmsg_type == NLMSG_DONE) {
                        return 0;
                    }
                    if (h.nlmsg_type == NLMSG_ERROR) {
                        nlmsgerr e{};
                        if (h.nlmsg_len >= NLMSG_LENGTH(sizeof e)) {
                            std::memcpy(&e, p + NLMSG_HDRLEN, sizeof e);
                        }
                        return -e.error;
                    }
                    f(p + NLMSG_HDRLEN, h.nlmsg_len - NLMSG_HDRLEN);
                }
                std::size_t step = NLMSG_ALIGN(h.nlmsg_len);
                if (step >= left) {
                    break;
                }
                p += step;
                left -= step;
            }
        }
    }

private:
    UniqueFd m_fd;
    std::uint32_t m_seq = 0;
};

} // namespace

int flush_udp_to(ipv4::Address addr) {
    std::unique_ptr<Socket> s;
    try {
        s = std::make_unique<Socket>();
    } catch (const SysError& e) {
        if (e.error_code() == EPROTONOSUPPORT) {
            return 0; // no nfnetlink in this kernel
        }
        throw;
    }
    std::uint32_t want = htonl(addr.value);
    std::vector<std::string> victims; // their CTA_TUPLE_ORIG, header included
    s->send(IPCTNL_MSG_CT_GET, NLM_F_DUMP, {});
    int err = s->receive([&](const unsigned char* p, std::size_t n) {
        if (n < NLMSG_ALIGN(sizeof(nfgenmsg))) {
            return;
        }
        auto top = attrs(p + NLMSG_ALIGN(sizeof(nfgenmsg)), n - NLMSG_ALIGN(sizeof(nfgenmsg)));
        const Attr* orig = find(top, CTA_TUPLE_ORIG);
        const Attr* reply = find(top, CTA_TUPLE_REPLY);
        if (orig == nullptr || reply == nullptr) {
            return;
        }
        auto r = attrs(reply->data, reply->len);
        const Attr* ip = find(r, CTA_TUPLE_IP);
        const Attr* proto = find(r, CTA_TUPLE_PROTO);
        if (ip == nullptr || proto == nullptr) {
            return;
        }
        auto ips = attrs(ip->data, ip->len); // find() points into them
        auto protos = attrs(proto->data, proto->len);
        const Attr* src = find(ips, CTA_IP_V4_SRC);
        const Attr* num = find(protos, CTA_PROTO_NUM);
        if (src == nullptr || src->len != 4 || num == nullptr || num->len < 1) {
            return;
        }
        std::uint32_t v;
        std::memcpy(&v, src->data, 4);
        if (v == want && num->data[0] == IPPROTO_UDP) {
            victims.emplace_back(reinterpret_cast<const char*>(orig->raw), orig->raw_len);
        }
    });
    if (err == ENOENT || err == EOPNOTSUPP || err == EPROTONOSUPPORT) {
        return 0; // no conntrack module
    }
    if (err != 0) {
        throw SysError("ctnetlink dump", err);
    }
    int deleted = 0;
    for (auto& t : victims) {
        t.resize(NLA_ALIGN(t.size()), '\0');
        s->send(IPCTNL_MSG_CT_DELETE, NLM_F_ACK, t);
        int e = s->receive([](const unsigned char*, std::size_t) {});
        if (e == 0) {
            deleted += 1;
        } else if (e != ENOENT) {
            throw SysError("ctnetlink delete", e);
        }
    }
    return deleted;
}

} // namespace strata::network::conntrack
