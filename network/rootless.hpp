// Rootless networking, as rootless podman has it: a user without privileges
// cannot make veth pairs or bridges, so a user-mode network stack connects a
// container's network namespace to the host's: pasta (passt's pasta mode,
// preferred) or slirp4netns (the fallback). Either one puts an interface
// with an address and a default route in the namespace, forwards the
// container's traffic through ordinary sockets of the user, and binds the
// published ports on the host, forwarding connections into the namespace.
//
//   // In the user namespace strata made (it owns netns_fd), on a thread that
//   // lives as long as the container (the helper gets SIGKILL when the
//   // thread that started it exits, so a crash leaves nothing behind):
//   rootless::Options o;
//   o.ports = {{.proto = "tcp", .container_port = 80, .host_ip = "", .host_port = 8080}};
//   // net.ports(): the host ports actually bound (0 and ranges resolved)
//   auto net = rootless::Network::create(o);   // or start(netns_fd, o)
//   spec.network = runner::Network::join;
//   spec.netns_fd = net.netns_fd();
//   spec.resolv_conf = net.resolv_conf(dns, dns_search, dns_options);
//   ... run the container ...
//   // ~Network stops the helper
//
// The namespace's own loopback is brought up too. The helper runs in the
// caller's user namespace and network namespace (the host's), so host ports
// below 1024 need what they need for the user (net.ipv4.ip_unprivileged_port_start).
#pragma once

#include "util/child.hpp"
#include "util/fd.hpp"
#include "util/tempdir.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace strata::network::rootless {

// A published port (the fields of network/ports.hpp's PortBinding).
struct PortForward {
    std::string proto = "tcp"; // "tcp" or "udp"
    std::uint16_t container_port = 0;
    std::string host_ip;         // "" = every address (IPv4)
    std::uint16_t host_port = 0; // 0 = a free port
    // With host_port: the last port of a range to pick a free one from.
    std::uint16_t host_port_end = 0;
};

enum class Backend { pasta, slirp4netns };
// "pasta" or "slirp4netns"
const char* backend_name(Backend backend);

struct Options {
    std::vector<PortForward> ports;
    // Default: pasta when it is installed and starts, else slirp4netns
    // (STRATA_ROOTLESS_NETWORK=pasta|slirp4netns picks one too).
    std::optional<Backend> backend;
};

struct Info {
    Backend backend = Backend::pasta;
    // The nameserver for the container's resolv.conf: pasta forwards
    // 169.254.1.1 to the host's resolver, slirp4netns serves 10.0.2.3.
    std::string nameserver;
};

// True when pasta or slirp4netns is installed.
bool available();

class Network {
public:
    // Starts the helper for netns_fd (one per namespace) and returns once the namespace is
    // configured and every port forward listens. Throws Error naming the
    // tool and what it printed when it fails, "rootless networking needs
    // pasta (apt-get install passt) or slirp4netns (apt-get install
    // slirp4netns)" when neither is installed, and "Bind for IP:PORT failed:
    // port is already allocated" (Docker's text) when a host port is taken.
    static Network start(int netns_fd, const Options& options);
    // A new network namespace (made on a thread of its own, so in the
    // caller's user namespace, which must be one the caller is root in),
    // then start() for it: what a rootless `run` needs.
    static Network create(const Options& options);

    Network(Network&&) noexcept;
    Network& operator=(Network&&) noexcept;
    ~Network(); // stops the helper (SIGTERM, then SIGKILL) and reaps it

    const Info& info() const { return m_info; }
    // The forwards as bound: host_port is the port actually used.
    const std::vector<PortForward>& ports() const { return m_ports; }
    pid_t pid() const { return m_helper.pid(); }
    // The namespace made by create() (-1 after start()): RunSpec::netns_fd
    // with runner::Network::join.
    int netns_fd() const { return m_netns.get(); }
    // The container's /etc/resolv.conf: the helper's nameserver (or --dns),
    // the host's search and options (or --dns-search, --dns-option), in
    // Docker's format (network/dns.hpp).
    std::string resolv_conf(const std::vector<std::string>& dns = {},
                            const std::vector<std::string>& dns_search = {},
                            const std::vector<std::string>& dns_options = {}) const;

private:
    Network() = default;
    void start_pasta(const std::string& path, int netns_fd);
    void start_slirp4netns(const std::string& path, int netns_fd);
    UniqueFd m_netns; // create()'s; closed after the helper stops
    Info m_info;
    std::vector<PortForward> m_ports;
    Child m_helper;
    UniqueFd m_exit_fd;                 // slirp4netns exits when this closes
    std::unique_ptr<TempDir> m_api_dir; // slirp4netns' API socket
};

} // namespace strata::network::rootless
