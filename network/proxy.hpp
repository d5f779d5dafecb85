// The userland proxy (docker-proxy's job) and a container's published ports.
//
// Proxy binds every published host port in the network namespace of the
// calling thread (binding is also what reserves a port: a second container
// asking for it is refused with Docker's "Bind for 0.0.0.0:18080 failed: port
// is already allocated") and forwards what reaches those sockets to the
// container: TCP with splice(2) through a pipe per direction, UDP per client
// address (90 s idle, as docker-proxy). One thread of the owning process
// serves all the ports of a Proxy with epoll.
//
// PublishedPorts is what a sandbox holds per container: a Proxy for every
// binding plus, where the kernel path works (network/nat.hpp), DNAT rules so
// that traffic to the host's addresses other than 127.0.0.0/8 goes to the
// container without the proxy (full speed, the client's own address kept).
//
//   network::PublishedPorts pub(container_id, ipv4::Address::parse("172.17.0.2"),
//                               ports::parse_publish("8080:80"));
//   settings["Ports"] = ports::ports_json(pub.bound(), exposed);
//   // ~PublishedPorts: rules removed, sockets closed, thread joined
#pragma once

#include "network/ipv4.hpp"
#include "network/ports.hpp"
#include "util/fd.hpp"

#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace strata::network {

class Proxy {
public:
    // Binds every binding (host_port 0: a free port chosen by the kernel; a
    // range: its first free port), then starts the thread forwarding to
    // target:container_port. Throws Error with Docker's message when a port
    // is taken, SysError for other failures (e.g. an address not on the host).
    Proxy(const std::vector<PortBinding>& wanted, ipv4::Address target);
    Proxy(const Proxy&) = delete;
    Proxy& operator=(const Proxy&) = delete;
    // Stops the thread; open connections are closed.
    ~Proxy();

    // wanted with the host ports actually bound, in the same order.
    const std::vector<PortBinding>& bound() const { return m_bound; }

private:
    struct Loop;
    std::vector<PortBinding> m_bound;
    std::unique_ptr<Loop> m_loop;
    UniqueFd m_stop;
    std::thread m_thread;
};

class PublishedPorts {
public:
    // owner: the container's id, the tag of its nat rules (remove_owner(owner)
    // at destruction). Binds every port (throws as Proxy does) before it
    // returns; the DNAT rules are installed by a thread of their own, so the
    // container's start does not wait for libnftables: until they are in,
    // the proxy serves all traffic. use_nat false: the proxy alone (as
    // Docker with userland-proxy and no iptables). When nat refuses, the
    // proxy keeps serving everything and nat_error() says why.
    PublishedPorts(std::string owner, ipv4::Address container_ip,
                   const std::vector<PortBinding>& wanted, bool use_nat = true);
    PublishedPorts(const PublishedPorts&) = delete;
    PublishedPorts& operator=(const PublishedPorts&) = delete;
    // Waits for the rules' installation, removes them, stops the proxy.
    ~PublishedPorts();

    const std::vector<PortBinding>& bound() const { return m_proxy.bound(); }
    // Whether the DNAT rules are in (waits for their installation).
    bool kernel() const;
    // Why they are not ("" when they are, or when nat was not wanted).
    std::string nat_error() const;

private:
    void wait_nat() const; // with m_mutex held

    std::string m_owner;
    Proxy m_proxy;
    mutable std::mutex m_mutex;
    mutable std::promise<std::string> m_nat; // the installer's error, "" for success
    mutable std::optional<bool> m_kernel;
    mutable std::string m_nat_error;
    std::thread m_installer;
};

} // namespace strata::network
