// A container's network sandbox on bridge networks: a network namespace of
// its own with one veth per network (eth0, eth1...) whose other end is a
// port of the network's Linux bridge, an address from the network's IPAM,
// the default route via the first network's gateway; the network's nftables
// rules (masquerade, isolation, internal: network/nat.hpp) when its bridge
// is made, the published ports (network/proxy.hpp), and on user-defined
// networks the embedded DNS server at 127.0.0.11 (network/dns.hpp) that
// answers the names, aliases and ids of the containers on the same networks. The monitor (kept
// containers) and `run --rm` make one before starting the container and
// drop it after it exits; the runner joins netns_fd().
//
//   network::SandboxRequest req{store_root, id, name, hostname, {{"bridge", "", {}}}};
//   auto sb = network::Sandbox::create(req);
//   spec.network = runner::Network::join;
//   spec.netns_fd = sb.netns_fd();
//   spec.hosts_address = sb.hosts_address();
//
// Destruction tears it down: the addresses released, the namespace closed
// (the kernel deletes its veths with it). The bridge device stays while its
// network exists, as Docker's docker0 and br-* do (`network rm` deletes it).
// A process killed before that leaves endpoints whose lock is free: the
// next sandbox on the network, or recover(), cleans them.
#pragma once

#include "network/ports.hpp"
#include "network/store.hpp"

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace strata::network {

struct EndpointRequest {
    std::string network;              // name or id
    std::string ipv4;                 // --ip: "" for the first free address
    std::vector<std::string> aliases; // --network-alias
};

struct SandboxRequest {
    std::string store_root;
    std::string container_id;
    std::string container_name;
    std::string hostname;
    std::vector<EndpointRequest> endpoints; // the first gives the default route
    std::vector<std::string> dns, dns_search, dns_options;
    // Published ports of this start (ports::bindings_for_start), to the
    // first network's address: DNAT rules where nftables works, the userland
    // proxy for loopback bindings and as the fallback (network/proxy.hpp).
    std::vector<PortBinding> ports;
    std::vector<std::string> exposed; // "80/tcp": NetworkSettings.Ports lists them
};

class Sandbox {
public:
    // Throws NetworkNotFound, UsageError (--ip refused), Error (netlink).
    static Sandbox create(const SandboxRequest& req);

    Sandbox(Sandbox&&) noexcept;
    Sandbox& operator=(Sandbox&&) noexcept;
    Sandbox(const Sandbox&) = delete;
    Sandbox& operator=(const Sandbox&) = delete;
    ~Sandbox();

    int netns_fd() const;
    // The container's /etc/resolv.conf; "" for the runner's default (the
    // host's, loopback nameservers dropped).
    std::string resolv_conf() const;
    // The address /etc/hosts gives the container's hostname.
    std::string hosts_address() const;
    // The first network's gateway (--add-host NAME:host-gateway).
    std::string gateway() const;
    // Docker's NetworkSettings.
    nlohmann::ordered_json settings() const;
    // Names, aliases and ids of the containers on the sandbox's user-defined
    // networks (lower case, no trailing dot): their addresses.
    std::vector<ipv4::Address> lookup(std::string_view name) const;

    void connect(const EndpointRequest& req);
    // Throws Error when the sandbox is not on that network.
    void disconnect(const std::string& network);

    struct State;

private:
    explicit Sandbox(std::unique_ptr<State> s);
    std::unique_ptr<State> m_s;
};

// /etc/resolv.conf with Docker's --dns, --dns-search and --dns-option
// replacing the host's lines of the same kind (loopback nameservers dropped
// unless host_network; Google's when none is left); "" when all three are
// empty (the runner's default then).
std::string resolv_conf_with(const std::vector<std::string>& dns,
                             const std::vector<std::string>& dns_search,
                             const std::vector<std::string>& dns_options, bool host_network);

// Cleans what dead owners left: stale endpoints (and their veths, when the
// kernel has not deleted them with the namespace).
void recover(const std::string& store_root);

// `network disconnect -f` of a container that no longer exists (Docker's
// forced endpoint removal): the endpoints on net named ref (a container's
// name, full or 12-digit id), live or stale, with their veths. Returns how
// many it removed.
int remove_endpoints(const std::string& store_root, const NetworkRecord& net,
                     const std::string& ref);

// `network rm`: the record, and its bridge device.
void remove_network(const std::string& store_root, const NetworkRecord& net);

} // namespace strata::network
