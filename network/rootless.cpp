#include "network/rootless.hpp"

#include "network/dns.hpp"
#include "network/ipv4.hpp"
#include "util/error.hpp"
#include "util/log.hpp"
#include "util/sys/syscalls.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <linux/close_range.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace strata::network::rootless {

namespace {

constexpr auto k_start_timeout = std::chrono::seconds(20);

// The fd numbers the helper finds its namespace and pipes at.
constexpr int k_netns_fd = 3;
constexpr int k_ready_fd = 4;
constexpr int k_exit_fd = 5;

std::string read_all(int fd) {
    std::string out;
    if (::lseek(fd, 0, SEEK_SET) < 0) {
        return out;
    }
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0 && out.size() < 65536) {
        out.append(buf, static_cast<std::size_t>(n));
    }
    // Only what the tool said, not the syslog noise some builds print.
    std::string lines;
    std::size_t i = 0;
    while (i < out.size()) {
        std::size_t j = out.find('\n', i);
        if (j == std::string::npos) {
            j = out.size();
        }
        std::string line = out.substr(i, j - i);
        i = j + 1;
        if (line.empty() || line.rfind("Failed to send", 0) == 0) {
            continue;
        }
        lines += (lines.empty() ? "" : "; ") + line;
    }
    return lines;
}

// Brings lo up inside netns (pasta and slirp4netns only configure their own
// interface). Runs on a thread that joins the namespace.
void loopback_up(int netns_fd) {
    std::exception_ptr error;
    std::thread t([&] {
        try {
            if (::setns(netns_fd, CLONE_NEWNET) != 0) {
                throw_errno("rootless network: setns");
            }
            UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
            if (!s) {
                throw_errno("rootless network: socket");
            }
            ifreq ifr{};
            std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
            if (::ioctl(s.get(), SIOCGIFFLAGS, &ifr) != 0) {
                throw_errno("rootless network: SIOCGIFFLAGS", "lo");
            }
            ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
            if (::ioctl(s.get(), SIOCSIFFLAGS, &ifr) != 0) {
                throw_errno("rootless network: SIOCSIFFLAGS", "lo");
            }
        } catch (...) {
            error = std::current_exception();
        }
    });
    t.join();
    if (error) {
        std::rethrow_exception(error);
    }
}

// Binds p's host address and port (0: any free one) as the helper will;
// the port bound, or 0 when it is taken.
std::uint16_t try_bind(const PortForward& p, std::uint16_t port) {
    std::string ip = p.host_ip.empty() ? "0.0.0.0" : p.host_ip;
    bool udp = p.proto == "udp";
    sockaddr_in a4{};
    a4.sin_family = AF_INET;
    a4.sin_port = htons(port);
    a4.sin_addr = ipv4::Address::parse(ip).to_in_addr();
    UniqueFd s(::socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0));
    if (!s) {
        throw_errno("rootless network: socket");
    }
    int one = 1;
    if (!udp) {
        ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    }
    if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a4), sizeof a4) != 0) {
        int err = errno;
        if (err == EADDRINUSE) {
            return 0;
        }
        throw SysError("rootless network: bind", ip + ":" + std::to_string(port) + "/" + p.proto,
                       err);
    }
    socklen_t len = sizeof a4;
    if (::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a4), &len) != 0) {
        throw_errno("rootless network: getsockname");
    }
    return ntohs(a4.sin_port);
}

// The host port p gets: its own when free (Docker's refusal when taken), a
// free one of its range, or any free one for 0.
std::uint16_t pick_host_port(const PortForward& p) {
    std::string ip = p.host_ip.empty() ? "0.0.0.0" : p.host_ip;
    if (p.host_port == 0) {
        return try_bind(p, 0);
    }
    std::uint16_t last = std::max(p.host_port, p.host_port_end);
    for (std::uint32_t port = p.host_port; port <= last; ++port) {
        if (std::uint16_t got = try_bind(p, static_cast<std::uint16_t>(port))) {
            return got;
        }
    }
    std::string range = std::to_string(p.host_port) +
                        (last > p.host_port ? "-" + std::to_string(last) : std::string());
    throw Error("Bind for " + ip + ":" + range + " failed: port is already allocated");
}

struct Spawned {
    Child child;
    UniqueFd output; // a memfd with the helper's stdout and stderr
};

// fork + exec path with argv, the namespace at fd 3 and the extra fds at 4
// and 5; the helper dies with the calling thread (PR_SET_PDEATHSIG).
Spawned spawn_helper(const std::string& path, const std::vector<std::string>& args, int netns_fd,
                     int fd4, int fd5) {
    Spawned out;
    out.output = UniqueFd(::memfd_create("strata-rootless-net", MFD_CLOEXEC));
    if (!out.output) {
        throw_errno("rootless network: memfd_create");
    }
    UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!devnull) {
        throw_errno("open", "/dev/null");
    }
    std::vector<char*> argv;
    for (const auto& a : args) {
        argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    Pipe report = Pipe::create(); // exec failure: errno
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) {
        throw_errno("fork");
    }
    if (pid == 0) {
        // Only async-signal-safe calls from here on.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) {
            ::_exit(127);
        }
        ::setpgid(0, 0);
        // Move everything out of the way of 3..5 first.
        int src[3] = {netns_fd, fd4, fd5};
        int moved[3] = {-1, -1, -1};
        for (int i = 0; i < 3; ++i) {
            if (src[i] >= 0) {
                moved[i] = ::fcntl(src[i], F_DUPFD_CLOEXEC, 100);
            }
        }
        int in = ::fcntl(devnull.get(), F_DUPFD_CLOEXEC, 100);
        int log = ::fcntl(out.output.get(), F_DUPFD_CLOEXEC, 100);
        int rep = ::fcntl(report.write.get(), F_DUPFD_CLOEXEC, 100);
        ::dup2(in, 0);
        ::dup2(log, 1);
        ::dup2(log, 2);
        for (int i = 0; i < 3; ++i) {
            if (moved[i] >= 0) {
                ::dup2(moved[i], k_netns_fd + i); // dup2 clears FD_CLOEXEC
            }
        }
        sys::close_range(k_exit_fd + 1, ~0u, CLOSE_RANGE_CLOEXEC);
        ::fcntl(rep, F_SETFD, FD_CLOEXEC);
        ::execv(path.c_str(), argv.data());
        int err = errno;
        if (::write(rep, &err, sizeof err) < 0) {
        }
        ::_exit(127);
    }
    out.child = Child::adopt(pid, true);
    report.write.reset();
    int err = 0;
    if (::read(report.read.get(), &err, sizeof err) == static_cast<ssize_t>(sizeof err)) {
        out.child.wait();
        throw SysError("rootless network: exec", path, err);
    }
    return out;
}

// Waits for ready_fd to become readable (the helper wrote to it, or closed
// it by exiting); false on timeout or EOF.
bool wait_ready(int ready_fd, Child& helper, std::string& got) {
    auto deadline = std::chrono::steady_clock::now() + k_start_timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
        if (left <= 0) {
            return false;
        }
        pollfd p{ready_fd, POLLIN, 0};
        int rc = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 200)));
        if (rc < 0 && errno != EINTR) {
            throw_errno("rootless network: poll");
        }
        if (rc > 0) {
            char buf[64];
            ssize_t n = ::read(ready_fd, buf, sizeof buf);
            if (n > 0) {
                got.assign(buf, static_cast<std::size_t>(n));
                return true;
            }
            return false; // EOF: the helper is gone
        }
        if (helper.try_wait()) {
            return false;
        }
    }
}

std::string describe(const PortForward& p) {
    return (p.host_ip.empty() ? "0.0.0.0" : p.host_ip) + ":" + std::to_string(p.host_port) + "->" +
           std::to_string(p.container_port) + "/" + p.proto;
}

[[noreturn]] void helper_failed(const char* tool, Child& helper, int output_fd, const char* what) {
    std::string status;
    if (auto st = helper.try_wait()) {
        status = " (" + st->describe() + ")";
    } else {
        helper.terminate(std::chrono::milliseconds(500));
    }
    std::string said = read_all(output_fd);
    throw Error(std::string("rootless network: ") + tool + " " + what + status +
                (said.empty() ? "" : ": " + said));
}

// One request on slirp4netns' API socket; throws with its error text.
void slirp_api(const std::string& socket_path, const std::string& request, const PortForward& p) {
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) {
        throw_errno("rootless network: socket");
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_path.size() >= sizeof addr.sun_path) {
        throw Error("rootless network: API socket path too long: " + socket_path);
    }
    std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        throw_errno("rootless network: connect", socket_path);
    }
    if (::send(s.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
        throw_errno("rootless network: send", socket_path);
    }
    ::shutdown(s.get(), SHUT_WR);
    timeval tv{10, 0};
    ::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string reply;
    char buf[1024];
    ssize_t n;
    while ((n = ::recv(s.get(), buf, sizeof buf, 0)) > 0 && reply.size() < 65536) {
        reply.append(buf, static_cast<std::size_t>(n));
    }
    if (reply.find("\"return\"") == std::string::npos) {
        throw Error("rootless network: slirp4netns refused the port forward " + describe(p) + ": " +
                    (reply.empty() ? "no reply" : reply));
    }
}

std::optional<Backend> backend_from_env() {
    const char* e = std::getenv("STRATA_ROOTLESS_NETWORK");
    if (!e || !*e) {
        return std::nullopt;
    }
    std::string v = e;
    if (v == "pasta") {
        return Backend::pasta;
    }
    if (v == "slirp4netns") {
        return Backend::slirp4netns;
    }
    throw Error("STRATA_ROOTLESS_NETWORK=" + v + ": expected pasta or slirp4netns");
}

} // namespace

const char* backend_name(Backend backend) {
    return backend == Backend::pasta ? "pasta" : "slirp4netns";
}

bool available() {
    return find_program("pasta") || find_program("slirp4netns");
}

Network::Network(Network&&) noexcept = default;
Network& Network::operator=(Network&&) noexcept = default;

Network::~Network() {
    if (!m_helper) {
        return;
    }
    try {
        if (m_exit_fd) {
            m_exit_fd.reset(); // slirp4netns leaves on its own when this closes
            if (m_helper.wait_for(std::chrono::milliseconds(1000))) {
                return;
            }
        }
        m_helper.terminate(std::chrono::milliseconds(1000));
    } catch (const std::exception& e) {
        STRATA_LOG_WARN("rootless network: stopping {}: {}", backend_name(m_info.backend),
                        e.what());
    }
}

Network Network::create(const Options& options) {
    UniqueFd ns;
    std::exception_ptr error;
    std::thread([&] {
        try {
            if (::unshare(CLONE_NEWNET) != 0) {
                throw_errno("rootless network: unshare(CLONE_NEWNET)");
            }
            ns = UniqueFd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
            if (!ns) {
                throw_errno("open", "/proc/thread-self/ns/net");
            }
        } catch (...) {
            error = std::current_exception();
        }
    }).join();
    if (error) {
        std::rethrow_exception(error);
    }
    Network net = start(ns.get(), options);
    net.m_netns = std::move(ns);
    return net;
}

std::string Network::resolv_conf(const std::vector<std::string>& dns,
                                 const std::vector<std::string>& dns_search,
                                 const std::vector<std::string>& dns_options) const {
    dns::ResolvConfRequest r;
    r.dns = dns.empty() ? std::vector<std::string>{m_info.nameserver} : dns;
    r.dns_search = dns_search;
    r.dns_options = dns_options;
    return dns::resolv_conf_for(r).text;
}

Network Network::start(int netns_fd, const Options& options) {
    std::vector<PortForward> ports = options.ports;
    for (auto& p : ports) {
        if (p.proto != "tcp" && p.proto != "udp") {
            throw Error("rootless network: unsupported protocol " + p.proto + " in " + describe(p));
        }
        if (p.container_port == 0) {
            throw Error("rootless network: port forward " + describe(p) + " has no container port");
        }
        p.host_port = pick_host_port(p);
        p.host_port_end = 0;
    }
    std::optional<Backend> chosen = options.backend ? options.backend : backend_from_env();
    auto pasta = find_program("pasta");
    auto slirp = find_program("slirp4netns");
    if (chosen == Backend::pasta && !pasta) {
        throw Error("rootless networking: pasta is not installed (apt-get install passt)");
    }
    if (chosen == Backend::slirp4netns && !slirp) {
        throw Error(
            "rootless networking: slirp4netns is not installed (apt-get install slirp4netns)");
    }
    if (!pasta && !slirp) {
        throw Error("rootless networking needs pasta (apt-get install passt) or slirp4netns "
                    "(apt-get install slirp4netns)");
    }
    loopback_up(netns_fd);

    Network net;
    net.m_ports = ports;
    if (chosen == Backend::slirp4netns || (!chosen && !pasta)) {
        net.start_slirp4netns(*slirp, netns_fd);
    } else if (chosen == Backend::pasta || !slirp) {
        net.start_pasta(*pasta, netns_fd);
    } else {
        // pasta preferred; slirp4netns when pasta cannot run here (e.g. no
        // host interface with a default route for it to copy).
        try {
            net.start_pasta(*pasta, netns_fd);
        } catch (const Error& e) {
            STRATA_LOG_DEBUG("{}; trying slirp4netns", e.what());
            net.m_helper = Child();
            net.start_slirp4netns(*slirp, netns_fd);
        }
    }
    STRATA_LOG_DEBUG("rootless network: {} started (pid {})", backend_name(net.m_info.backend),
                     net.m_helper.pid());
    return net;
}

void Network::start_pasta(const std::string& path, int netns_fd) {
    m_info.backend = Backend::pasta;
    // Foreground (so it is our child and dies with us); it writes its pid to
    // --pid once the namespace is configured and the ports are bound: a
    // pipe, read here, is the readiness signal.
    // IPv4 only, as strata's networks (configuring IPv6 doubles the start).
    std::vector<std::string> args = {"pasta",        "--foreground",  "--quiet",     "--ipv4-only",
                                     "--config-net", "--dns-forward", "169.254.1.1", "--no-map-gw"};
    std::string tcp, udp;
    for (const auto& p : m_ports) {
        std::string spec = (p.host_ip.empty() ? "" : p.host_ip + "/") +
                           std::to_string(p.host_port) + ":" + std::to_string(p.container_port);
        std::string& list = p.proto == "tcp" ? tcp : udp;
        list += (list.empty() ? "" : ",") + spec;
    }
    // Nothing else is forwarded (pasta's default would follow every port
    // bound on either side).
    for (auto [flag, spec] : {std::pair{"-t", tcp}, std::pair{"-u", udp},
                              std::pair{"-T", std::string()}, std::pair{"-U", std::string()}}) {
        args.push_back(flag);
        args.push_back(spec.empty() ? "none" : spec);
    }
    args.push_back("--pid");
    args.push_back("/proc/self/fd/" + std::to_string(k_ready_fd));
    args.push_back("--netns");
    args.push_back("/proc/self/fd/" + std::to_string(k_netns_fd));
    Pipe ready = Pipe::create();
    auto spawned = spawn_helper(path, args, netns_fd, ready.write.get(), -1);
    ready.write.reset();
    m_helper = std::move(spawned.child);
    std::string got;
    if (!wait_ready(ready.read.get(), m_helper, got)) {
        helper_failed("pasta", m_helper, spawned.output.get(), "did not start");
    }
    m_info.nameserver = "169.254.1.1";
}

void Network::start_slirp4netns(const std::string& path, int netns_fd) {
    m_info.backend = Backend::slirp4netns;
    m_api_dir = std::make_unique<TempDir>(std::string{}, "strata-slirp-");
    std::string api = m_api_dir->path() + "/api.sock";
    Pipe ready = Pipe::create();
    Pipe exit = Pipe::create();
    std::vector<std::string> args = {"slirp4netns",
                                     "--configure",
                                     "--mtu=65520",
                                     "--disable-host-loopback",
                                     "--ready-fd=" + std::to_string(k_ready_fd),
                                     "--exit-fd=" + std::to_string(k_exit_fd),
                                     "--api-socket",
                                     api,
                                     "--netns-type=path",
                                     "/proc/self/fd/" + std::to_string(k_netns_fd),
                                     "tap0"};
    auto spawned = spawn_helper(path, args, netns_fd, ready.write.get(), exit.read.get());
    ready.write.reset();
    exit.read.reset();
    m_helper = std::move(spawned.child);
    m_exit_fd = std::move(exit.write);
    std::string got;
    if (!wait_ready(ready.read.get(), m_helper, got)) {
        helper_failed("slirp4netns", m_helper, spawned.output.get(), "did not start");
    }
    for (const auto& p : m_ports) {
        std::string req = "{\"execute\": \"add_hostfwd\", \"arguments\": {\"proto\": \"" + p.proto +
                          "\", \"host_addr\": \"" + (p.host_ip.empty() ? "0.0.0.0" : p.host_ip) +
                          "\", \"host_port\": " + std::to_string(p.host_port) +
                          ", \"guest_port\": " + std::to_string(p.container_port) + "}}";
        slirp_api(api, req, p);
    }
    m_info.nameserver = "10.0.2.3";
}

} // namespace strata::network::rootless
