// strata-netdriver: network/ports, nat and proxy driven from shell tests and
// bench/network.sh, plus the small TCP/UDP peers they need (busybox has no
// UDP nc). Run it only inside a network namespace of the test's own.
//
//   publish OWNER CONTAINER_IP [--no-nat] SPEC...   PublishedPorts until SIGTERM;
//                                                   prints "bound KEY IP:PORT",
//                                                   "kernel yes|no REASON", "ports JSON",
//                                                   "setup_us N" (PublishedPorts' time), "ready"
//   network OWNER BRIDGE SUBNET [internal]          nat::add_network
//   remove OWNER | keep-only [OWNER...] | owners | available
//   udp-echo PORT                                   answers "echo:DATA"
//   udp-ask HOST PORT TEXT                          prints the answer (2 s timeout)
//   tcp-sink PORT                                   reads each connection to EOF
//   tcp-send HOST PORT MIB                          prints MiB/s
//   tcp-connect HOST PORT N                         prints the median µs of N
//                                                   connect+1 byte+close
#include "network/nat.hpp"
#include "network/ports.hpp"
#include "network/proxy.hpp"
#include "util/error.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <cstring>
#include <iostream>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace strata;
using namespace strata::network;

namespace {

sockaddr_in addr(const std::string& host, const std::string& port) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr = ipv4::Address::parse(host).to_in_addr();
    sa.sin_port = htons(static_cast<std::uint16_t>(std::stoi(port)));
    return sa;
}

int listen_on(int type, const std::string& port) {
    int fd = ::socket(AF_INET, type, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa = addr("0.0.0.0", port);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
        (type == SOCK_STREAM && ::listen(fd, 128) != 0)) {
        throw_errno("bind", "port " + port);
    }
    return fd;
}

int connect_to(const std::string& host, const std::string& port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa = addr(host, port);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        throw_errno("connect", host + ":" + port);
    }
    return fd;
}

int publish(const std::vector<std::string>& args) {
    if (args.size() < 3) {
        throw UsageError("publish OWNER CONTAINER_IP [--no-nat] SPEC...");
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr); // before the proxy's thread exists
    bool nat = true;
    std::vector<PortBinding> wanted;
    for (std::size_t i = 2; i < args.size(); ++i) {
        if (args[i] == "--no-nat") {
            nat = false;
            continue;
        }
        for (const auto& b : ports::parse_publish(args[i])) {
            wanted.push_back(b);
        }
    }
    auto t0 = std::chrono::steady_clock::now();
    PublishedPorts pub(args[0], ipv4::Address::parse(args[1]), wanted, nat);
    auto setup =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    for (const auto& b : pub.bound()) {
        std::cout << "bound " << b.key() << " " << (b.host_ip.empty() ? "0.0.0.0" : b.host_ip)
                  << ":" << b.host_port << "\n";
    }
    std::cout << "kernel " << (pub.kernel() ? "yes" : "no") << " " << pub.nat_error() << "\n";
    std::cout << "ports " << ports::ports_json(pub.bound(), {}).dump() << "\n";
    std::cout << "setup_us " << setup << "\n";
    std::cout << "ready" << std::endl;
    int sig = 0;
    sigwait(&set, &sig);
    return 0;
}

int udp_echo(const std::string& port) {
    int fd = listen_on(SOCK_DGRAM, port);
    char buf[65536];
    for (;;) {
        sockaddr_in from{};
        socklen_t len = sizeof from;
        ssize_t n = ::recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (n < 0) {
            continue;
        }
        std::string reply = "echo:" + std::string(buf, static_cast<std::size_t>(n));
        ::sendto(fd, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
}

int udp_ask(const std::string& host, const std::string& port, const std::string& text) {
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in sa = addr(host, port);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        throw_errno("connect", host + ":" + port);
    }
    for (int attempt = 0; attempt < 4; ++attempt) { // UDP: a lost datagram is resent
        (void)!::send(fd, text.data(), text.size(), 0);
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 500) == 1) {
            char buf[65536];
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n >= 0) {
                std::cout << std::string(buf, static_cast<std::size_t>(n)) << "\n";
                return 0;
            }
        }
    }
    std::cerr << "no answer from " << host << ":" << port << "\n";
    return 1;
}

int tcp_sink(const std::string& port) {
    int fd = listen_on(SOCK_STREAM, port);
    for (;;) {
        int c = ::accept(fd, nullptr, nullptr);
        if (c < 0) {
            continue;
        }
        std::thread([c] {
            std::vector<char> buf(1 << 18);
            while (::read(c, buf.data(), buf.size()) > 0) {
            }
            ::close(c);
        }).detach();
    }
}

int tcp_send(const std::string& host, const std::string& port, const std::string& mib) {
    std::size_t total = std::stoul(mib) << 20;
    std::vector<char> buf(1 << 18, 'x');
    auto t0 = std::chrono::steady_clock::now();
    int fd = connect_to(host, port);
    std::size_t sent = 0;
    while (sent < total) {
        ssize_t n = ::write(fd, buf.data(), std::min(buf.size(), total - sent));
        if (n <= 0) {
            throw_errno("write", host + ":" + port);
        }
        sent += static_cast<std::size_t>(n);
    }
    ::shutdown(fd, SHUT_WR);
    char c;
    while (::read(fd, &c, 1) > 0) { // the sink closes once it has read everything
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cout << static_cast<long>(static_cast<double>(total >> 20) / s) << "\n";
    return 0;
}

int tcp_connect(const std::string& host, const std::string& port, const std::string& count) {
    std::vector<double> us;
    for (int i = 0; i < std::stoi(count); ++i) {
        auto t0 = std::chrono::steady_clock::now();
        int fd = connect_to(host, port);
        (void)!::write(fd, "x", 1);
        ::shutdown(fd, SHUT_WR);
        char c;
        while (::read(fd, &c, 1) > 0) {
        }
        ::close(fd);
        us.push_back(
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                .count());
    }
    std::sort(us.begin(), us.end());
    std::cout << static_cast<long>(us[us.size() / 2]) << "\n";
    return 0;
}

int run(const std::vector<std::string>& a) {
    if (a.empty()) {
        throw UsageError("usage: strata-netdriver COMMAND ARGS (see tests/helpers/netdriver.cpp)");
    }
    const std::string& cmd = a[0];
    std::vector<std::string> args(a.begin() + 1, a.end());
    auto need = [&](std::size_t n) {
        if (args.size() < n) {
            throw UsageError(cmd + ": missing arguments");
        }
    };
    if (cmd == "publish") {
        return publish(args);
    }
    if (cmd == "network") {
        need(3);
        nat::add_network({args[0], args[1], ipv4::Subnet::parse(args[2]),
                          args.size() > 3 && args[3] == "internal"});
        return 0;
    }
    if (cmd == "remove") {
        need(1);
        nat::remove_owner(args[0]);
        return 0;
    }
    if (cmd == "keep-only") {
        nat::keep_only(args);
        return 0;
    }
    if (cmd == "owners") {
        for (const auto& o : nat::owners()) {
            std::cout << o << "\n";
        }
        return 0;
    }
    if (cmd == "available") {
        std::string why = nat::unavailable_reason();
        std::cout << (why.empty() ? "yes" : "no: " + why) << "\n";
        return why.empty() ? 0 : 1;
    }
    if (cmd == "udp-echo") {
        need(1);
        return udp_echo(args[0]);
    }
    if (cmd == "udp-ask") {
        need(3);
        return udp_ask(args[0], args[1], args[2]);
    }
    if (cmd == "tcp-sink") {
        need(1);
        return tcp_sink(args[0]);
    }
    if (cmd == "tcp-send") {
        need(3);
        return tcp_send(args[0], args[1], args[2]);
    }
    if (cmd == "tcp-connect") {
        need(3);
        return tcp_connect(args[0], args[1], args[2]);
    }
    throw UsageError("unknown command " + cmd);
}

} // namespace

int main(int argc, char** argv) {
    try {
        return run(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const std::exception& e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
}
