#include "containers/network.hpp"

#include "util/error.hpp"
#include "util/fs.hpp"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace strata::containers {

namespace {

std::vector<std::string> strings(const nlohmann::json& j, const char* key) {
    if (!j.contains(key) || !j[key].is_array()) {
        return {};
    }
    return j[key].get<std::vector<std::string>>();
}

nlohmann::ordered_json or_null(const std::vector<std::string>& v) {
    return v.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(v);
}

} // namespace

NetworkConfig NetworkConfig::from_flags(const std::string& store_root, const std::string& mode_in,
                                        const std::string& ip,
                                        const std::vector<std::string>& aliases,
                                        const std::vector<std::string>& dns,
                                        const std::vector<std::string>& dns_search,
                                        const std::vector<std::string>& dns_options) {
    NetworkConfig c;
    c.mode = mode_in == "default" ? "bridge" : mode_in;
    c.dns = dns;
    c.dns_search = dns_search;
    c.dns_options = dns_options;
    bool shared = c.mode == "none" || c.mode == "host" || c.mode.rfind("container:", 0) == 0;
    if (c.mode == "container:") {
        throw UsageError("invalid container format container:<name|id>");
    }
    if (shared) {
        if (!ip.empty() || !aliases.empty()) {
            throw UsageError(c.mode == "none" || c.mode == "host"
                                 ? "Conflicting options: --network=" + c.mode +
                                       " and a network-scoped --ip or --network-alias"
                                 : "conflicting options: --ip/--network-alias and the network "
                                   "mode (" +
                                       c.mode + ")");
        }
        if (c.mode.rfind("container:", 0) == 0 &&
            (!dns.empty() || !dns_search.empty() || !dns_options.empty())) {
            throw UsageError("conflicting options: dns and the network mode");
        }
        return c;
    }
    network::NetworkStore store(store_root);
    network::NetworkRecord net = store.load(c.mode); // "network X not found"
    if (!net.is_bridge()) {
        c.mode = net.name; // host or none by id
        return c;
    }
    if (net.name == "bridge") {
        if (!aliases.empty()) {
            throw UsageError(
                "network-scoped alias is supported only for containers in user defined networks");
        }
        if (!ip.empty()) {
            throw UsageError(
                "user specified IP address is supported on user defined networks only");
        }
    }
    if (!ip.empty()) {
        network::ipv4::Address::parse(ip); // "invalid IPv4 address: X"
    }
    c.mode = net.name;
    c.endpoints.push_back({net.name, ip, aliases});
    return c;
}

NetworkConfig NetworkConfig::from_container(const nlohmann::json& config) {
    NetworkConfig c;
    const auto& host = config.at("HostConfig");
    c.mode = host.value("NetworkMode", std::string("none"));
    c.dns = strings(host, "Dns");
    c.dns_search = strings(host, "DnsSearch");
    c.dns_options = strings(host, "DnsOptions");
    if (config.contains("Config") && config["Config"].contains("ExposedPorts") &&
        config["Config"]["ExposedPorts"].is_object()) {
        for (const auto& [k, v] : config["Config"]["ExposedPorts"].items()) {
            c.exposed.push_back(k);
        }
    }
    c.ports =
        network::ports::bindings_for_start(host.value("PortBindings", nlohmann::json::object()),
                                           host.value("PublishAllPorts", false), c.exposed);
    bool shared = c.mode == "none" || c.mode == "host" || c.mode.rfind("container:", 0) == 0;
    if (shared || !config.contains("NetworkSettings") ||
        !config["NetworkSettings"].contains("Networks")) {
        return c;
    }
    // The mode's network first (the default route), then the connected ones.
    const auto& nets = config["NetworkSettings"]["Networks"];
    auto add = [&](const std::string& name, const nlohmann::json& n) {
        network::EndpointRequest e;
        e.network = name;
        if (n.contains("IPAMConfig") && n["IPAMConfig"].is_object()) {
            e.ipv4 = n["IPAMConfig"].value("IPv4Address", std::string());
        }
        e.aliases = strings(n, "Aliases");
        c.endpoints.push_back(std::move(e));
    };
    if (nets.contains(c.mode)) {
        add(c.mode, nets[c.mode]);
    }
    for (const auto& [name, n] : nets.items()) {
        if (name != c.mode) {
            add(name, n);
        }
    }
    return c;
}

void NetworkConfig::to_container(nlohmann::ordered_json& config) const {
    auto& host = config["HostConfig"];
    host["NetworkMode"] = mode;
    host["Dns"] = dns;
    host["DnsOptions"] = dns_options;
    host["DnsSearch"] = dns_search;
    nlohmann::ordered_json nets = nlohmann::ordered_json::object();
    for (const auto& e : endpoints) {
        nlohmann::ordered_json n;
        n["IPAMConfig"] = e.ipv4.empty() ? nlohmann::ordered_json(nullptr)
                                         : nlohmann::ordered_json{{"IPv4Address", e.ipv4}};
        n["Links"] = nullptr;
        n["Aliases"] = or_null(e.aliases);
        n["NetworkID"] = "";
        n["EndpointID"] = "";
        n["Gateway"] = "";
        n["IPAddress"] = "";
        n["IPPrefixLen"] = 0;
        n["IPv6Gateway"] = "";
        n["GlobalIPv6Address"] = "";
        n["GlobalIPv6PrefixLen"] = 0;
        n["MacAddress"] = "";
        n["DriverOpts"] = nullptr;
        nets[e.network] = n;
    }
    if (mode == "host" || mode == "none") {
        nets[mode] = {{"IPAMConfig", nullptr},   {"Links", nullptr},         {"Aliases", nullptr},
                      {"NetworkID", ""},         {"EndpointID", ""},         {"Gateway", ""},
                      {"IPAddress", ""},         {"IPPrefixLen", 0},         {"IPv6Gateway", ""},
                      {"GlobalIPv6Address", ""}, {"GlobalIPv6PrefixLen", 0}, {"MacAddress", ""},
                      {"DriverOpts", nullptr}};
    }
    config["NetworkSettings"] = {{"Bridge", ""},
                                 {"SandboxID", ""},
                                 {"HairpinMode", false},
                                 {"LinkLocalIPv6Address", ""},
                                 {"LinkLocalIPv6PrefixLen", 0},
                                 {"Ports", nlohmann::ordered_json::object()},
                                 {"SandboxKey", ""},
                                 {"SecondaryIPAddresses", nullptr},
                                 {"SecondaryIPv6Addresses", nullptr},
                                 {"EndpointID", ""},
                                 {"Gateway", ""},
                                 {"GlobalIPv6Address", ""},
                                 {"GlobalIPv6PrefixLen", 0},
                                 {"IPAddress", ""},
                                 {"IPPrefixLen", 0},
                                 {"IPv6Gateway", ""},
                                 {"MacAddress", ""},
                                 {"Networks", nets}};
}

void NetworkConfig::connect(const network::EndpointRequest& e) {
    endpoints.push_back(e); // NetworkMode stays, as Docker's
}

void NetworkConfig::disconnect(const std::string& store_root, const std::string& container_id,
                               const std::string& net) {
    network::NetworkStore store(store_root);
    auto want = store.find(net);
    auto it =
        std::find_if(endpoints.begin(), endpoints.end(), [&](const network::EndpointRequest& e) {
            if (e.network == net) {
                return true;
            }
            auto n = store.find(e.network);
            return want && n && n->id == want->id;
        });
    if (it == endpoints.end()) {
        throw Error("container " + container_id + " is not connected to the network " +
                    (want ? want->name : net));
    }
    // NetworkMode stays, as Docker's: from_container orders the networks
    // left (the mode's first when it is one of them); none left, the next
    // start has a namespace with only lo.
    endpoints.erase(it);
}

ContainerNetwork ContainerNetwork::attach(const std::string& store_root, const std::string& id,
                                          const std::string& name, const NetworkConfig& cfg,
                                          runner::RunSpec& spec) {
    ContainerNetwork n;
    std::string gateway;
    // A container on bridge networks has a sandbox even when `network
    // disconnect` left it none: `network connect` joins one while it runs.
    bool shared = cfg.mode == "none" || cfg.mode == "host" || cfg.mode.rfind("container:", 0) == 0;
    if (cfg.bridged() || !shared) {
        network::SandboxRequest req;
        req.store_root = store_root;
        req.container_id = id;
        req.container_name = name;
        req.hostname = spec.hostname;
        req.endpoints = cfg.endpoints;
        req.dns = cfg.dns;
        req.dns_search = cfg.dns_search;
        req.dns_options = cfg.dns_options;
        req.ports = cfg.ports;
        req.exposed = cfg.exposed;
        n.sandbox.emplace(network::Sandbox::create(req));
        spec.network = runner::Network::join;
        spec.netns_fd = n.sandbox->netns_fd();
        spec.hosts_address = n.sandbox->hosts_address();
        spec.resolv_conf = n.sandbox->resolv_conf();
        gateway = n.sandbox->gateway();
    } else if (cfg.mode.rfind("container:", 0) == 0) {
        std::string other = cfg.mode.substr(10);
        Store cs(store_root);
        std::string oid = cs.resolve(other);
        State st = cs.load_state(oid);
        if (st.status != "running" || st.pid <= 0) {
            throw Error("cannot join network of a non running container: " + oid);
        }
        std::string path = "/proc/" + std::to_string(st.pid) + "/ns/net";
        n.joined = UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!n.joined) {
            throw_errno("open", path);
        }
        spec.network = runner::Network::join;
        spec.netns_fd = n.joined.get();
    } else {
        spec.network = cfg.mode == "host" ? runner::Network::host : runner::Network::none;
    }
    if (shared && cfg.mode.rfind("container:", 0) != 0) {
        spec.resolv_conf =
            network::resolv_conf_with(cfg.dns, cfg.dns_search, cfg.dns_options, cfg.mode == "host");
    }
    for (auto& [h, addr] : spec.extra_hosts) {
        if (addr == "host-gateway") {
            if (gateway.empty()) {
                // Docker's host-gateway without a bridge of the container's:
                // the default bridge's gateway.
                network::NetworkStore ns(store_root);
                gateway = ns.load("bridge").gateway.str();
            }
            addr = gateway;
        }
    }
    return n;
}

std::optional<nlohmann::ordered_json> ContainerNetwork::settings() const {
    if (!sandbox) {
        return std::nullopt;
    }
    return sandbox->settings();
}

std::string network_settings_path(const Store& store, const std::string& id) {
    return store.path(id) + "/network.json";
}

namespace {

// The running sandbox's settings (<id>/network.json); nullopt when there is
// none (not running, or no bridge network).
std::optional<nlohmann::ordered_json> live_settings(const Store& store, const std::string& id) {
    try {
        std::string text = fs::read_file(network_settings_path(store, id), 1u << 20);
        return nlohmann::ordered_json::parse(text);
    } catch (const SysError& e) {
        if (e.error_code() != ENOENT) {
            throw;
        }
    } catch (const nlohmann::json::exception&) {
        // being rewritten: the configured ones
    }
    return std::nullopt;
}

} // namespace

nlohmann::ordered_json network_settings(const Store& store, const std::string& id,
                                        const nlohmann::json& config) {
    int pid = 0;
    try {
        State st = store.load_state(id);
        if (st.status == "running" || st.status == "paused") {
            pid = st.pid;
        }
    } catch (const SysError& e) {
        if (e.error_code() != ENOENT) {
            throw;
        }
    }
    std::optional<nlohmann::ordered_json> out;
    if (pid > 0) {
        out = live_settings(store, id);
    }
    if (!out && config.contains("NetworkSettings")) {
        out = config["NetworkSettings"];
    }
    if (!out) {
        NetworkConfig c = NetworkConfig::from_container(config);
        nlohmann::ordered_json tmp;
        c.to_container(tmp);
        out = tmp["NetworkSettings"];
    }
    // Docker's SandboxKey is its bind mount of the namespace
    // (/var/run/docker/netns/ID); strata's namespace lives as long as PID 1.
    (*out)["SandboxKey"] = pid > 0 ? "/proc/" + std::to_string(pid) + "/ns/net" : "";
    return *out;
}

} // namespace strata::containers
