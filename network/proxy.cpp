#include "network/proxy.hpp"

#include "network/nat.hpp"
#include "util/error.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <unordered_map>

namespace strata::network {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto k_udp_idle = std::chrono::seconds(90); // docker-proxy's UDPConnTrackTimeout
constexpr int k_pipe_size = 1 << 20; // as Go's splice (docker-proxy): fewer calls per byte

sockaddr_in make_addr(ipv4::Address a, std::uint16_t port) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr = a.to_in_addr();
    sa.sin_port = htons(port);
    return sa;
}

std::string endpoint_text(const PortBinding& b) {
    std::string text = (b.host_ip.empty() ? std::string("0.0.0.0") : b.host_ip) + ":" +
                       std::to_string(b.host_port);
    if (b.host_port_end != 0 && b.host_port_end != b.host_port) {
        text += "-" + std::to_string(b.host_port_end);
    }
    return text;
}

// Binds one host port of b (the first free one of a range); b.host_port is
// set to the port bound.
UniqueFd bind_port(PortBinding& b) {
    const bool tcp = b.proto == "tcp";
    if (!tcp && b.proto != "udp") {
        throw Error("cannot publish " + b.key() + ": strata publishes tcp and udp ports only");
    }
    ipv4::Address ip;
    if (!b.host_ip.empty()) {
        ip = ipv4::Address::parse(b.host_ip);
    }
    std::uint16_t first = b.host_port;
    std::uint16_t last = b.host_port_end != 0 ? b.host_port_end : b.host_port;
    for (unsigned port = first; port <= last; ++port) {
        UniqueFd fd(
            ::socket(AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        if (!fd) {
            throw_errno("socket");
        }
        int one = 1;
        if (tcp && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
            throw_errno("setsockopt SO_REUSEADDR");
        }
        sockaddr_in sa = make_addr(ip, static_cast<std::uint16_t>(port));
        if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
            if (errno == EADDRINUSE) {
                continue;
            }
            int err = errno;
            PortBinding shown = b;
            shown.host_port = static_cast<std::uint16_t>(port);
            shown.host_port_end = 0;
            throw SysError("Bind for " + endpoint_text(shown) + " failed: bind", err);
        }
        if (tcp && ::listen(fd.get(), SOMAXCONN) != 0) {
            if (errno == EADDRINUSE) {
                continue;
            }
            throw_errno("listen", endpoint_text(b));
        }
        sockaddr_in got{};
        socklen_t len = sizeof got;
        if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&got), &len) != 0) {
            throw_errno("getsockname", endpoint_text(b));
        }
        b.host_port = ntohs(got.sin_port);
        b.host_port_end = 0;
        return fd;
    }
    throw Error("Bind for " + endpoint_text(b) + " failed: port is already allocated");
}

} // namespace

struct Proxy::Loop {
    enum class Kind { tcp_listener, udp_listener, conn, udp_flow };
    struct Handle {
        Kind kind;
        explicit Handle(Kind k) : kind(k) {}
        virtual ~Handle() = default;
    };
    struct UdpFlow;
    struct Listener : Handle {
        using Handle::Handle;
        UniqueFd fd;
        std::uint16_t container_port = 0;
        std::map<std::pair<std::uint32_t, std::uint16_t>, std::unique_ptr<UdpFlow>> flows;
    };
    struct UdpFlow : Handle {
        UdpFlow() : Handle(Kind::udp_flow) {}
        UniqueFd fd; // connected to the container
        sockaddr_in client{};
        Listener* listener = nullptr;
        Clock::time_point last;
    };
    // One direction of a TCP connection: src -> pipe -> dst.
    struct Way {
        Pipe pipe;
        std::size_t capacity = 1 << 16; // the pipe's size
        std::size_t pending = 0;
        bool eof = false;  // src said EOF
        bool shut = false; // dst's write side shut after the last byte
    };
    struct Conn : Handle {
        Conn() : Handle(Kind::conn) {}
        UniqueFd client;
        UniqueFd upstream;
        Way up;   // client -> upstream
        Way down; // upstream -> client
        bool connecting = true;
    };

    UniqueFd ep;
    ipv4::Address target;
    std::vector<std::unique_ptr<Listener>> listeners;
    std::unordered_map<Conn*, std::unique_ptr<Conn>> conns;

    void watch(int fd, Handle* h, std::uint32_t events) {
        epoll_event ev{};
        ev.events = events;
        ev.data.ptr = h;
        if (::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
            throw_errno("epoll_ctl");
        }
    }

    void accept_all(Listener& l) {
        for (;;) {
            UniqueFd c(::accept4(l.fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
            if (!c) {
                return; // EAGAIN, or an aborted connection: nothing to do
            }
            auto conn = std::make_unique<Conn>();
            try {
                for (Way* w : {&conn->up, &conn->down}) {
                    w->pipe = Pipe::create();
                    int size = ::fcntl(w->pipe.write.get(), F_SETPIPE_SZ, k_pipe_size);
                    if (size > 0) {
                        w->capacity = static_cast<std::size_t>(size);
                    }
                }
            } catch (const Error&) {
                continue; // out of fds: the client sees its connection closed
            }
            conn->client = std::move(c);
            conn->upstream.reset(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
            if (!conn->upstream) {
                continue;
            }
            sockaddr_in sa = make_addr(target, l.container_port);
            if (::connect(conn->upstream.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
                conn->connecting = false;
            } else if (errno != EINPROGRESS) {
                continue;
            }
            Conn* raw = conn.get();
            const std::uint32_t ev = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
            watch(raw->client.get(), raw, ev);
            watch(raw->upstream.get(), raw, ev);
            conns.emplace(raw, std::move(conn));
            if (!raw->connecting) {
                service(*raw);
            }
        }
    }

    // Moves what can move without blocking; false on a fatal error.
    static bool pump(int src, Way& w, int dst) {
        for (;;) {
            bool progress = false;
            if (!w.eof && w.pending < w.capacity) {
                ssize_t n = ::splice(src, nullptr, w.pipe.write.get(), nullptr,
                                     w.capacity - w.pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (n > 0) {
                    w.pending += static_cast<std::size_t>(n);
                    progress = true;
                } else if (n == 0) {
                    w.eof = true;
                    progress = true;
                } else if (errno != EAGAIN && errno != EINTR) {
                    return false;
                }
            }
            if (w.pending > 0) {
                ssize_t n = ::splice(w.pipe.read.get(), nullptr, dst, nullptr, w.pending,
                                     SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (n > 0) {
                    w.pending -= static_cast<std::size_t>(n);
                    progress = true;
                } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                    return false;
                }
            }
            if (w.eof && w.pending == 0 && !w.shut) {
                ::shutdown(dst, SHUT_WR);
                w.shut = true;
            }
            if (!progress) {
                return true;
            }
        }
    }

    void close_conn(Conn& c) { conns.erase(&c); } // closing the fds removes them from epoll

    void service(Conn& c) {
        if (c.connecting) {
            int err = 0;
            socklen_t len = sizeof err;
            if (::getsockopt(c.upstream.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
                close_conn(c);
                return;
            }
            sockaddr_in peer{};
            socklen_t plen = sizeof peer;
            if (::getpeername(c.upstream.get(), reinterpret_cast<sockaddr*>(&peer), &plen) != 0) {
                return; // still connecting
            }
            c.connecting = false;
        }
        if (!pump(c.client.get(), c.up, c.upstream.get()) ||
            !pump(c.upstream.get(), c.down, c.client.get())) {
            close_conn(c);
            return;
        }
        if (c.up.shut && c.down.shut) {
            close_conn(c);
        }
    }

    void udp_in(Listener& l) {
        char buf[65536];
        for (;;) {
            sockaddr_in from{};
            socklen_t len = sizeof from;
            ssize_t n = ::recvfrom(l.fd.get(), buf, sizeof buf, MSG_DONTWAIT,
                                   reinterpret_cast<sockaddr*>(&from), &len);
            if (n < 0) {
                return;
            }
            auto key = std::make_pair(from.sin_addr.s_addr, from.sin_port);
            auto it = l.flows.find(key);
            if (it == l.flows.end()) {
                auto flow = std::make_unique<UdpFlow>();
                flow->fd.reset(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
                sockaddr_in sa = make_addr(target, l.container_port);
                if (!flow->fd ||
                    ::connect(flow->fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
                    continue;
                }
                flow->client = from;
                flow->listener = &l;
                watch(flow->fd.get(), flow.get(), EPOLLIN);
                it = l.flows.emplace(key, std::move(flow)).first;
            }
            it->second->last = Clock::now();
            (void)!::send(it->second->fd.get(), buf, static_cast<std::size_t>(n), MSG_DONTWAIT);
        }
    }

    void udp_out(UdpFlow& f) {
        char buf[65536];
        for (;;) {
            ssize_t n = ::recv(f.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    return;
                }
                continue; // ECONNREFUSED from an ICMP error: the datagram is lost, as with
                          // docker-proxy
            }
            f.last = Clock::now();
            (void)!::sendto(f.listener->fd.get(), buf, static_cast<std::size_t>(n), MSG_DONTWAIT,
                            reinterpret_cast<sockaddr*>(&f.client), sizeof f.client);
        }
    }

    void expire_udp() {
        auto now = Clock::now();
        for (auto& l : listeners) {
            for (auto it = l->flows.begin(); it != l->flows.end();) {
                it = now - it->second->last > k_udp_idle ? l->flows.erase(it) : std::next(it);
            }
        }
    }

    void run(int stop_fd) {
        sigset_t pipe_signal;
        sigemptyset(&pipe_signal);
        sigaddset(&pipe_signal, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr); // EPIPE instead
        epoll_event events[64];
        for (;;) {
            int n = ::epoll_wait(ep.get(), events, 64, 5000);
            if (n < 0 && errno != EINTR) {
                return;
            }
            for (int i = 0; i < n; ++i) {
                auto* h = static_cast<Handle*>(events[i].data.ptr);
                if (h == nullptr) {
                    (void)stop_fd;
                    return; // the stop eventfd
                }
                switch (h->kind) {
                case Kind::tcp_listener:
                    accept_all(static_cast<Listener&>(*h));
                    break;
                case Kind::udp_listener:
                    udp_in(static_cast<Listener&>(*h));
                    break;
                case Kind::conn: {
                    auto* c = static_cast<Conn*>(h);
                    if (conns.contains(c)) {
                        service(*c);
                    }
                    break;
                }
                case Kind::udp_flow:
                    udp_out(static_cast<UdpFlow&>(*h));
                    break;
                }
            }
            expire_udp();
        }
    }
};

Proxy::Proxy(const std::vector<PortBinding>& wanted, ipv4::Address target)
    : m_bound(wanted), m_loop(std::make_unique<Loop>()) {
    m_loop->target = target;
    m_loop->ep.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!m_loop->ep) {
        throw_errno("epoll_create1");
    }
    for (auto& b : m_bound) {
        auto l = std::make_unique<Loop::Listener>(b.proto == "tcp" ? Loop::Kind::tcp_listener
                                                                   : Loop::Kind::udp_listener);
        l->fd = bind_port(b);
        l->container_port = b.container_port;
        m_loop->watch(l->fd.get(), l.get(), EPOLLIN);
        m_loop->listeners.push_back(std::move(l));
    }
    m_stop.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!m_stop) {
        throw_errno("eventfd");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;
    if (::epoll_ctl(m_loop->ep.get(), EPOLL_CTL_ADD, m_stop.get(), &ev) != 0) {
        throw_errno("epoll_ctl");
    }
    m_thread = std::thread([loop = m_loop.get(), fd = m_stop.get()] { loop->run(fd); });
}

Proxy::~Proxy() {
    std::uint64_t one = 1;
    (void)!::write(m_stop.get(), &one, sizeof one);
    if (m_thread.joinable()) {
        m_thread.join();
    }
}

PublishedPorts::PublishedPorts(std::string owner, ipv4::Address container_ip,
                               const std::vector<PortBinding>& wanted, bool use_nat)
    : m_owner(std::move(owner)), m_proxy(wanted, container_ip) {
    if (!use_nat || m_proxy.bound().empty()) {
        m_nat.set_value("");
        m_kernel.emplace(false);
        return;
    }
    // On a thread of its own (in this thread's network namespace, as a new
    // thread starts in its creator's): loading libnftables and its first
    // batch take some 20 ms, which the container's start does not wait for.
    // Until the rules are in, the proxy serves every address.
    m_installer = std::thread([this, container_ip] {
        try { // no probe first: a refusal (no library, no nf_tables) is the answer
            nat::add_ports(m_owner, container_ip, m_proxy.bound());
            m_nat.set_value("");
        } catch (const std::exception& e) {
            m_nat.set_value(e.what());
        }
    });
}

void PublishedPorts::wait_nat() const {
    if (!m_kernel) {
        m_nat_error = m_nat.get_future().get();
        m_kernel.emplace(m_nat_error.empty());
    }
}

bool PublishedPorts::kernel() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    wait_nat();
    return *m_kernel;
}

std::string PublishedPorts::nat_error() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    wait_nat();
    return m_nat_error;
}

PublishedPorts::~PublishedPorts() {
    if (m_installer.joinable()) {
        m_installer.join();
    }
    bool installed = false;
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        wait_nat();
        installed = *m_kernel && m_proxy.bound().size() > 0;
    }
    if (installed) {
        try {
            nat::remove_owner(m_owner);
        } catch (const Error&) {
            // Left for the recovery sweep (nat::keep_only): a destructor cannot report it.
        }
    }
}

} // namespace strata::network
