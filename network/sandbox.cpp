#include "network/sandbox.hpp"

#include "network/netlink.hpp"
#include "network/netns.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <optional>

namespace strata::network {

namespace {

struct Joined {
    NetworkRecord net;
    Endpoint ep;
    UniqueFd lock;
    std::string ifname;
};

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

// Bridge up with its gateway address (call with the store lock held).
void ensure_bridge(netlink::Netlink& nl, const NetworkRecord& net) {
    std::string dev = net.device();
    nl.create_bridge(dev);
    nl.add_address(dev, net.gateway, net.subnet->prefix);
    nl.set_up(dev);
}

// The bridge goes once no endpoint is left on it (call with the store lock held).
void drop_bridge_if_unused(netlink::Netlink& nl, NetworkStore& store, const NetworkRecord& net) {
    for (const auto& e : store.sweep(net.id)) {
        nl.delete_link(e.host_veth);
    }
    if (store.endpoints(net.id).empty()) {
        nl.delete_link(net.device());
    }
}

} // namespace

struct Sandbox::State {
    SandboxRequest req;
    NetworkStore store;
    UniqueFd netns;
    netlink::Netlink host;
    std::optional<netlink::Netlink> inner;
    std::vector<Joined> joined;
    int next_if = 0;

    explicit State(const SandboxRequest& r)
        : req(r), store(r.store_root), host(netlink::Netlink::open()) {}

    ~State() {
        while (!joined.empty()) {
            try {
                detach(joined.size() - 1);
            } catch (const std::exception&) {
                // what is left is stale (its lock goes with this process): recover() takes it
                joined.pop_back();
            }
        }
    }

    void attach(const EndpointRequest& er) {
        NetworkRecord net = store.load(er.network);
        if (!net.is_bridge()) {
            throw UsageError("container cannot be connected to network " + net.name + " (driver " +
                             net.driver + "): only bridge networks take endpoints");
        }
        for (const auto& j : joined) {
            if (j.net.id == net.id) {
                throw Error("endpoint with name " + req.container_name +
                            " already exists in network " + net.name);
            }
        }
        std::vector<std::string> aliases = er.aliases;
        if (!er.ipv4.empty() && !net.configured_subnet) {
            throw UsageError("user specified IP address is supported only when connecting to "
                             "networks with user configured subnets");
        }
        Joined j;
        j.net = net;
        j.ifname = "eth" + std::to_string(next_if);
        std::string veth = "veth" + random_hex(7);
        {
            FileLock l = store.lock();
            for (const auto& e : store.sweep(net.id)) {
                host.delete_link(e.host_veth);
            }
            NetworkStore::Claim c =
                store.claim(net, req.container_id, req.container_name, aliases, er.ipv4, veth);
            try {
                ensure_bridge(host, net);
                host.create_veth(veth, host.ifindex(net.device()), j.ifname, netns.get(),
                                 netlink::mac_for(c.endpoint.address));
                // A container may reach its own published ports (hairpin NAT).
                host.set_hairpin(veth);
            } catch (...) {
                store.release(net.id, req.container_id);
                throw;
            }
            j.ep = std::move(c.endpoint);
            j.lock = std::move(c.lock);
        }
        joined.push_back(std::move(j));
        next_if += 1;
        Joined& added = joined.back();
        try {
            inner->add_address(added.ifname, added.ep.address, net.subnet->prefix);
            inner->set_up(added.ifname);
            if (joined.size() == 1) {
                inner->add_default_route(net.gateway, added.ifname);
            }
        } catch (...) {
            detach(joined.size() - 1);
            throw;
        }
    }

    void detach(std::size_t i) {
        Joined j = std::move(joined[i]);
        joined.erase(joined.begin() + static_cast<std::ptrdiff_t>(i));
        host.delete_link(j.ep.host_veth);
        FileLock l = store.lock();
        store.release(j.net.id, req.container_id);
        j.lock.reset();
        drop_bridge_if_unused(host, store, j.net);
    }
};

Sandbox::Sandbox(std::unique_ptr<State> s) : s_(std::move(s)) {}
Sandbox::Sandbox(Sandbox&&) noexcept = default;
Sandbox& Sandbox::operator=(Sandbox&&) noexcept = default;
Sandbox::~Sandbox() = default;

Sandbox Sandbox::create(const SandboxRequest& req) {
    auto s = std::make_unique<State>(req);
    s->netns = new_netns([&] { s->inner.emplace(netlink::Netlink::open()); });
    s->inner->set_up("lo");
    for (const auto& e : req.endpoints) {
        s->attach(e);
    }
    return Sandbox(std::move(s));
}

int Sandbox::netns_fd() const {
    return s_->netns.get();
}

std::string Sandbox::hosts_address() const {
    return s_->joined.empty() ? std::string() : s_->joined.front().ep.address.str();
}

std::string Sandbox::gateway() const {
    return s_->joined.empty() ? std::string() : s_->joined.front().net.gateway.str();
}

std::string Sandbox::resolv_conf() const {
    const auto& r = s_->req;
    return resolv_conf_with(r.dns, r.dns_search, r.dns_options, false);
}

std::string resolv_conf_with(const std::vector<std::string>& dns,
                             const std::vector<std::string>& dns_search,
                             const std::vector<std::string>& dns_options, bool host_network) {
    if (dns.empty() && dns_search.empty() && dns_options.empty()) {
        return {};
    }
    // Docker: the flags replace the host's lines of the same kind.
    std::string host;
    try {
        host = fs::read_file("/etc/resolv.conf", 1u << 20);
    } catch (const std::exception&) {
    }
    std::vector<std::string> ns, search, options;
    std::size_t i = 0;
    while (i < host.size()) {
        std::size_t j = host.find('\n', i);
        std::string line = host.substr(i, j == std::string::npos ? std::string::npos : j - i);
        i = j == std::string::npos ? host.size() : j + 1;
        auto word = [&](const char* k) {
            std::size_t n = std::strlen(k);
            return line.compare(0, n, k) == 0 && line.size() > n &&
                   std::isspace(static_cast<unsigned char>(line[n]));
        };
        auto rest = [&](std::size_t n) {
            std::string v = line.substr(n);
            v.erase(0, v.find_first_not_of(" \t"));
            return v;
        };
        if (word("nameserver")) {
            std::string a = rest(10);
            if (host_network || (a.rfind("127.", 0) != 0 && a.rfind("::1", 0) != 0)) {
                ns.push_back(a);
            }
        } else if (word("search")) {
            search.push_back(rest(6));
        } else if (word("options")) {
            options.push_back(rest(7));
        }
    }
    if (!dns.empty()) {
        ns = dns;
    }
    if (ns.empty()) {
        ns = {"8.8.8.8", "8.8.4.4"};
    }
    auto join = [](const std::vector<std::string>& v) {
        std::string out;
        for (const auto& x : v) {
            out += (out.empty() ? "" : " ") + x;
        }
        return out;
    };
    std::string out;
    std::vector<std::string> s = dns_search.empty() ? search : dns_search;
    if (!s.empty() && !(s.size() == 1 && s[0] == ".")) {
        out += "search " + join(s) + "\n";
    }
    for (const auto& n : ns) {
        out += "nameserver " + n + "\n";
    }
    std::vector<std::string> o = dns_options.empty() ? options : dns_options;
    if (!o.empty()) {
        out += "options " + join(o) + "\n";
    }
    return out;
}

nlohmann::ordered_json Sandbox::settings() const {
    nlohmann::ordered_json s;
    s["Bridge"] = "";
    s["SandboxID"] = "";
    s["HairpinMode"] = false;
    s["LinkLocalIPv6Address"] = "";
    s["LinkLocalIPv6PrefixLen"] = 0;
    s["Ports"] = nlohmann::ordered_json::object();
    s["SandboxKey"] = "";
    s["SecondaryIPAddresses"] = nullptr;
    s["SecondaryIPv6Addresses"] = nullptr;
    const Joined* def = nullptr;
    for (const auto& j : s_->joined) {
        if (j.net.name == "bridge") {
            def = &j;
        }
    }
    s["EndpointID"] = def != nullptr ? def->ep.endpoint_id : "";
    s["Gateway"] = def != nullptr ? def->net.gateway.str() : "";
    s["GlobalIPv6Address"] = "";
    s["GlobalIPv6PrefixLen"] = 0;
    s["IPAddress"] = def != nullptr ? def->ep.address.str() : "";
    s["IPPrefixLen"] = def != nullptr ? def->net.subnet->prefix : 0;
    s["IPv6Gateway"] = "";
    s["MacAddress"] = def != nullptr ? def->ep.mac : "";
    nlohmann::ordered_json nets = nlohmann::ordered_json::object();
    for (const auto& j : s_->joined) {
        nlohmann::ordered_json n;
        n["IPAMConfig"] = j.ep.static_address
                              ? nlohmann::ordered_json{{"IPv4Address", j.ep.address.str()}}
                              : nlohmann::ordered_json(nullptr);
        n["Links"] = nullptr;
        if (j.net.name == "bridge") {
            n["Aliases"] = nullptr;
        } else {
            auto a = j.ep.aliases;
            a.push_back(s_->req.container_id.substr(0, 12));
            n["Aliases"] = a;
        }
        n["NetworkID"] = j.net.id;
        n["EndpointID"] = j.ep.endpoint_id;
        n["Gateway"] = j.net.gateway.str();
        n["IPAddress"] = j.ep.address.str();
        n["IPPrefixLen"] = j.net.subnet->prefix;
        n["IPv6Gateway"] = "";
        n["GlobalIPv6Address"] = "";
        n["GlobalIPv6PrefixLen"] = 0;
        n["MacAddress"] = j.ep.mac;
        n["DriverOpts"] = nullptr;
        nets[j.net.name] = n;
    }
    s["Networks"] = nets;
    return s;
}

std::vector<ipv4::Address> Sandbox::lookup(std::string_view name) const {
    std::string want = lower(name);
    std::vector<ipv4::Address> out;
    for (const auto& j : s_->joined) {
        if (j.net.name == "bridge") {
            continue; // Docker: no name resolution on the default bridge
        }
        for (const auto& e : s_->store.endpoints(j.net.id)) {
            bool match = lower(e.name) == want || e.container_id == want ||
                         (want.size() == 12 && e.container_id.compare(0, 12, want) == 0);
            for (const auto& a : e.aliases) {
                match = match || lower(a) == want;
            }
            if (match && std::find(out.begin(), out.end(), e.address) == out.end()) {
                out.push_back(e.address);
            }
        }
    }
    return out;
}

void Sandbox::connect(const EndpointRequest& req) {
    if (!s_->inner) {
        s_->inner.emplace(netlink::Netlink::open_in(s_->netns.get()));
    }
    s_->attach(req);
}

void Sandbox::disconnect(const std::string& network) {
    NetworkRecord net = s_->store.load(network);
    for (std::size_t i = 0; i < s_->joined.size(); ++i) {
        if (s_->joined[i].net.id == net.id) {
            s_->detach(i);
            return;
        }
    }
    throw Error("container " + s_->req.container_id + " is not connected to network " + net.name);
}

void recover(const std::string& store_root) {
    NetworkStore store(store_root);
    auto nl = netlink::Netlink::open();
    FileLock l = store.lock();
    for (const auto& net : store.list()) {
        if (net.is_bridge()) {
            drop_bridge_if_unused(nl, store, net);
        }
    }
}

void remove_network(const std::string& store_root, const NetworkRecord& net) {
    NetworkStore store(store_root);
    auto nl = netlink::Netlink::open();
    FileLock l = store.lock();
    for (const auto& e : store.remove(net)) {
        nl.delete_link(e.host_veth);
    }
    if (net.is_bridge()) {
        nl.delete_link(net.device());
    }
}

} // namespace strata::network
