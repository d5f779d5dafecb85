// A container's network as configured (`--network`, `--ip`, `--network-alias`,
// `--dns*`) and as set up for one start: a bridge sandbox (network/sandbox.hpp)
// the runner joins, the namespace of another container (container:NAME), the
// host's, or none. Kept containers (the monitor) and `run --rm` share it.
#pragma once

#include "containers/store.hpp"
#include "network/sandbox.hpp"
#include "runner/runner.hpp"
#include "util/fd.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace strata::containers {

struct NetworkConfig {
    // none, host, bridge, a network's name or id, container:NAME
    std::string mode = "none";
    std::vector<network::EndpointRequest> endpoints; // bridge networks, the mode's first
    std::vector<std::string> dns, dns_search, dns_options;
    // Published ports of a start (-p, -P), and the exposed ones ("80/tcp").
    std::vector<network::PortBinding> ports;
    std::vector<std::string> exposed;

    bool bridged() const { return !endpoints.empty(); }
    // From flags: resolves the network names (NetworkNotFound "network X not
    // found"), refuses --ip/--network-alias where Docker does.
    static NetworkConfig from_flags(const std::string& store_root, const std::string& mode,
                                    const std::string& ip, const std::vector<std::string>& aliases,
                                    const std::vector<std::string>& dns,
                                    const std::vector<std::string>& dns_search,
                                    const std::vector<std::string>& dns_options);
    // From a container's config.json (HostConfig and NetworkSettings.Networks;
    // the ports from HostConfig.PortBindings/PublishAllPorts and Config.ExposedPorts).
    static NetworkConfig from_container(const nlohmann::json& config);
    // HostConfig.NetworkMode/Dns/DnsSearch/DnsOptions and NetworkSettings
    // (Docker's shape for a container that does not run: addresses empty).
    void to_container(nlohmann::ordered_json& config) const;

    // `network connect`/`disconnect` on the configuration (the next start
    // joins what it says). disconnect throws Error "container ID is not
    // connected to the network NAME" when it is not. NetworkMode stays.
    void connect(const network::EndpointRequest& e);
    void disconnect(const std::string& store_root, const std::string& container_id,
                    const std::string& network);
};

// The network of one start; its destruction tears the sandbox down.
class ContainerNetwork {
public:
    // Sets spec.network, netns_fd, hosts_address, resolv_conf, and the
    // address of `--add-host NAME:host-gateway` entries.
    static ContainerNetwork attach(const std::string& store_root, const std::string& id,
                                   const std::string& name, const NetworkConfig& cfg,
                                   runner::RunSpec& spec);
    // Docker's NetworkSettings while it runs (nullopt: none, host, container:).
    std::optional<nlohmann::ordered_json> settings() const;

    std::optional<network::Sandbox> sandbox;
    UniqueFd joined; // container:NAME's namespace
};

// Where a running container's NetworkSettings are (<store>/containers/<id>/network.json).
std::string network_settings_path(const Store& store, const std::string& id);
// The container's NetworkSettings: the running sandbox's, else the configured
// ones. While it runs, SandboxKey is the path of its network namespace,
// /proc/<PID 1>/ns/net (strata bind-mounts none: the monitor holds it open),
// valid for the life of that start.
nlohmann::ordered_json network_settings(const Store& store, const std::string& id,
                                        const nlohmann::json& config);

} // namespace strata::containers
