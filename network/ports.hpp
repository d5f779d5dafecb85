// Published ports as Docker spells them: the -p grammar, -P, the JSON of
// HostConfig.PortBindings and NetworkSettings.Ports, and `port`'s lines.
//
//   auto b = ports::parse_publish("127.0.0.1:8080:80/tcp");   // one binding
//   auto all = ports::publish_all({"80/tcp", "53/udp"});       // -P
//   host["PortBindings"] = ports::port_bindings_json(b);       // HostConfig
//   settings["Ports"] = ports::ports_json(bound, exposed);     // NetworkSettings
//
// IPv4 only: an IPv6 host address ("[::1]:80:80") is refused with a message
// saying so. Everything here is pure (no sockets); network/proxy.hpp binds
// and network/nat.hpp programs the kernel.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace strata::network {

struct PortBinding {
    std::string proto = "tcp"; // "tcp" or "udp"
    std::uint16_t container_port = 0;
    std::string host_ip;         // "" = every address (Docker shows 0.0.0.0)
    std::uint16_t host_port = 0; // 0 = a free port picked when published
    // With host_port: a range to pick a free host port from ("8000-8010:80");
    // 0 when host_port is exact.
    std::uint16_t host_port_end = 0;

    // "80/tcp", the key Docker uses everywhere.
    std::string key() const;
    bool operator==(const PortBinding&) const = default;
};

namespace ports {

// One -p/--publish value, Docker's grammar (go-connections nat.ParsePortSpec):
// [IP:][HOSTPORT:]CONTAINERPORT[/PROTO], each port or a range (8000-8001);
// a host range with a single container port is the range to pick from.
// Throws UsageError with Docker's texts: "invalid containerPort: X",
// "invalid hostPort: X", "invalid IP address: X", "no port specified:
// SPEC<empty>", "invalid ranges specified for container and host Ports: A
// and B", "invalid proto: X"; sctp and IPv6 are refused as unsupported.
std::vector<PortBinding> parse_publish(std::string_view spec);

// -P: each exposed port ("80", "80/tcp", "53/udp", as Config.ExposedPorts'
// keys) to a free host port on every address; sctp ports are left out.
// Throws UsageError for a key that is not a port.
std::vector<PortBinding> publish_all(const std::vector<std::string>& exposed);

// Bindings in HostConfig.PortBindings' shape: {"80/tcp": [{"HostIp": "",
// "HostPort": "8080"}]} ("" for a free port, "8000-8010" for a range), and
// back. from_json throws Error naming the key of a malformed entry.
nlohmann::ordered_json port_bindings_json(const std::vector<PortBinding>& bindings);
std::vector<PortBinding> port_bindings_from_json(const nlohmann::json& json);

// What a container publishes at start: its HostConfig.PortBindings and, with
// PublishAllPorts, every exposed port (Config.ExposedPorts' keys) not bound
// already, to a free port.
std::vector<PortBinding> bindings_for_start(const nlohmann::json& port_bindings,
                                            bool publish_all_ports,
                                            const std::vector<std::string>& exposed);

// The exposed ports a container has: the image's/config's plus every
// published one ("80/tcp" keys, sorted as Go sorts map keys, no duplicates), as Docker adds -p's
// ports to Config.ExposedPorts.
std::vector<std::string> exposed_with(const std::vector<std::string>& exposed,
                                      const std::vector<PortBinding>& bindings);

// NetworkSettings.Ports: every exposed port, null when not published, else
// its bindings [{"HostIp":"0.0.0.0","HostPort":"8080"}] (bound ports: the
// host port is the one actually used). Keys sorted as Go's JSON sorts them.
nlohmann::ordered_json ports_json(const std::vector<PortBinding>& bound,
                                  const std::vector<std::string>& exposed);

// `docker port`'s output for NetworkSettings.Ports: "80/tcp -> 0.0.0.0:8080"
// lines, or with filter ("80", "80/tcp", "53/udp") just "0.0.0.0:8080"
// lines. Throws Error "No public port '80/tcp' published for NAME" when the
// filter matches nothing, UsageError for a filter that is not a port.
std::vector<std::string> port_lines(const nlohmann::json& ports, std::string_view filter,
                                    const std::string& container_name);

} // namespace ports
} // namespace strata::network
