#include "network/sandbox.hpp"

#include "network/conntrack.hpp"
#include "network/dns.hpp"
#include "network/nat.hpp"
#include "network/netlink.hpp"
#include "network/netns.hpp"
#include "network/proxy.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <mutex>
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

// The network's bridge, made (up, with its gateway address) when missing;
// returns its index. Call with the store lock held. As Docker's, the device
// then stays while the network exists (`network rm` deletes it): making and
// deleting it around every container would cost tens of milliseconds (each
// deletion waits for RCU grace periods).
int ensure_bridge(netlink::Netlink& nl, const NetworkRecord& net) {
    std::string dev = net.device();
    int index = nl.ifindex(dev);
    if (index != 0) {
        return index;
    }
    nl.create_bridge(dev);
    nl.add_address(dev, net.gateway, net.subnet->prefix);
    nl.set_up(dev);
    // Masquerade (unless internal), isolation from the other strata bridges,
    // internal's drops. Without nftables containers still reach each other
    // and the host, not beyond.
    if (nat::available()) {
        nat::add_network({net.id, dev, *net.subnet, net.internal});
    }
    return nl.ifindex(dev);
}

// The user-defined networks' endpoints a name means: "web", "web.app"
// (the network's name as a domain), an alias, a 12-digit or full id.
struct Names {
    std::string store_root;
    std::vector<std::pair<std::string, std::string>> networks; // (id, name)

    std::vector<ipv4::Address> lookup(std::string_view query) const {
        std::string want = lower(query);
        std::vector<ipv4::Address> out;
        NetworkStore store(store_root);
        for (const auto& [id, name] : networks) {
            std::string key = want;
            std::string suffix = "." + lower(name);
            if (key.size() > suffix.size() &&
                key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0) {
                key.resize(key.size() - suffix.size());
            }
            for (const auto& e : store.endpoints(id)) {
                bool match = lower(e.name) == key || e.container_id == key ||
                             (key.size() == 12 && e.container_id.compare(0, 12, key) == 0);
                for (const auto& a : e.aliases) {
                    match = match || lower(a) == key;
                }
                if (match && std::find(out.begin(), out.end(), e.address) == out.end()) {
                    out.push_back(e.address);
                }
            }
        }
        return out;
    }

    std::optional<std::string> reverse(ipv4::Address a) const {
        NetworkStore store(store_root);
        for (const auto& [id, name] : networks) {
            for (const auto& e : store.endpoints(id)) {
                if (e.address == a) {
                    return (e.name.empty() ? e.container_id.substr(0, 12) : e.name) + "." + name;
                }
            }
        }
        return std::nullopt;
    }
};

// The sandbox's user-defined networks as the DNS server sees them: networks
// connected or disconnected while the container runs change what it answers.
struct NameTable {
    std::string store_root;
    mutable std::mutex mu;
    std::vector<std::pair<std::string, std::string>> networks; // (id, name)

    Names snapshot() const {
        std::lock_guard<std::mutex> g(mu);
        return Names{store_root, networks};
    }
};

} // namespace

struct Sandbox::State {
    SandboxRequest req;
    NetworkStore store;
    UniqueFd netns;
    netlink::Netlink host;
    std::optional<netlink::Netlink> inner;
    std::vector<Joined> joined;
    int next_if = 0;
    std::unique_ptr<PublishedPorts> published;
    std::unique_ptr<dns::DnsServer> dns_server;
    std::string resolv_conf;
    std::shared_ptr<NameTable> table = std::make_shared<NameTable>();

    Names names() const { return table->snapshot(); }

    void update_names() {
        std::vector<std::pair<std::string, std::string>> nets;
        for (const auto& j : joined) {
            if (j.net.name != "bridge") {
                nets.emplace_back(j.net.id, j.net.name);
            }
        }
        std::lock_guard<std::mutex> g(table->mu);
        table->store_root = req.store_root;
        table->networks = std::move(nets);
    }

    explicit State(const SandboxRequest& r)
        : req(r), store(r.store_root), host(netlink::Netlink::open()) {}

    // The published ports' rules and proxies; with UDP ones, the conntrack
    // entries of flows to the address too (a client that keeps sending
    // would stay bound to it after it is released).
    void drop_published() {
        if (!published) {
            return;
        }
        bool udp = std::any_of(published->bound().begin(), published->bound().end(),
                               [](const PortBinding& b) { return b.proto == "udp"; });
        ipv4::Address address = joined.front().ep.address;
        published.reset();
        if (udp) {
            try {
                conntrack::flush_udp_to(address);
            } catch (const std::exception& e) {
                STRATA_LOG_WARN("conntrack entries of {}: {}", address.str(), e.what());
            }
        }
    }

    ~State() {
        drop_published(); // its rules and proxy first: they lead to the addresses
        dns_server.reset();
        while (!joined.empty()) {
            try {
                // The namespace goes with this object: the kernel deletes the
                // veths with it, off the caller's path.
                detach(joined.size() - 1, true);
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
                int master = ensure_bridge(host, net);
                host.create_veth(veth, master, j.ifname, netns.get(),
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
        update_names();
        Joined& added = joined.back();
        try {
            inner->add_address(added.ifname, added.ep.address, net.subnet->prefix);
            inner->set_up(added.ifname);
            if (joined.size() == 1) {
                inner->add_default_route(net.gateway, added.ifname);
            }
        } catch (...) {
            detach(joined.size() - 1, false);
            throw;
        }
    }

    // netns_dying: the namespace is about to be closed, which deletes the
    // veth (a synchronous RTM_DELLINK waits for RCU grace periods). The
    // kernel does that later, off the caller's path; until then the old
    // interface still holds the address and its MAC (Docker's, made of the
    // address) on the bridge. So its bridge port is taken down first (which
    // also drops what the bridge learnt there): once the address is given
    // back, the next container to get it must be the only one answering for
    // it, or a neighbour's replies go to the dying namespace, which resets
    // them, and a client of the new container waits forever.
    void detach(std::size_t i, bool netns_dying) {
        Joined j = std::move(joined[i]);
        joined.erase(joined.begin() + static_cast<std::ptrdiff_t>(i));
        update_names();
        if (netns_dying) {
            try {
                host.set_down(j.ep.host_veth);
            } catch (const std::exception& e) {
                STRATA_LOG_WARN("taking {} down: {}", j.ep.host_veth, e.what());
            }
        } else {
            host.delete_link(j.ep.host_veth);
        }
        FileLock l = store.lock();
        store.release(j.net.id, req.container_id);
        j.lock.reset();
    }
};

Sandbox::Sandbox(std::unique_ptr<State> s) : m_s(std::move(s)) {}
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
    if (!req.ports.empty() && !s->joined.empty()) {
        s->published = std::make_unique<PublishedPorts>(req.container_id,
                                                        s->joined.front().ep.address, req.ports);
    }
    // Docker's resolv.conf: the embedded DNS server's on user-defined
    // networks (the host's or --dns servers become its upstreams, none when
    // every network is internal), the host's otherwise.
    s->update_names();
    Names names = s->names();
    dns::ResolvConfRequest rr;
    rr.internal_resolver = !names.networks.empty();
    rr.dns = req.dns;
    rr.dns_search = req.dns_search;
    rr.dns_options = req.dns_options;
    dns::ResolvConf rc = dns::resolv_conf_for(rr);
    s->resolv_conf = rc.text;
    if (rr.internal_resolver) {
        bool all_internal = std::all_of(s->joined.begin(), s->joined.end(),
                                        [](const Joined& j) { return j.net.internal; });
        dns::ServerOptions o;
        // Through the table: `network connect`/`disconnect` change it live.
        std::shared_ptr<NameTable> table = s->table;
        o.lookup = [table](std::string_view n) { return table->snapshot().lookup(n); };
        o.reverse = [table](ipv4::Address a) { return table->snapshot().reverse(a); };
        if (!all_internal) {
            o.upstreams = rc.upstreams;
        }
        s->dns_server = std::make_unique<dns::DnsServer>(s->netns.get(), std::move(o));
    }
    return Sandbox(std::move(s));
}

int Sandbox::netns_fd() const {
    return m_s->netns.get();
}

std::string Sandbox::hosts_address() const {
    return m_s->joined.empty() ? std::string() : m_s->joined.front().ep.address.str();
}

std::string Sandbox::gateway() const {
    return m_s->joined.empty() ? std::string() : m_s->joined.front().net.gateway.str();
}

std::string Sandbox::resolv_conf() const {
    return m_s->resolv_conf;
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
    s["Ports"] = ports::ports_json(
        m_s->published ? m_s->published->bound() : std::vector<PortBinding>{}, m_s->req.exposed);
    s["SandboxKey"] = "";
    s["SecondaryIPAddresses"] = nullptr;
    s["SecondaryIPv6Addresses"] = nullptr;
    const Joined* def = nullptr;
    for (const auto& j : m_s->joined) {
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
    for (const auto& j : m_s->joined) {
        nlohmann::ordered_json n;
        n["IPAMConfig"] = j.ep.static_address
                              ? nlohmann::ordered_json{{"IPv4Address", j.ep.address.str()}}
                              : nlohmann::ordered_json(nullptr);
        n["Links"] = nullptr;
        if (j.net.name == "bridge") {
            n["Aliases"] = nullptr;
        } else {
            auto a = j.ep.aliases;
            a.push_back(m_s->req.container_id.substr(0, 12));
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
    return m_s->names().lookup(name);
}

void Sandbox::connect(const EndpointRequest& req) {
    if (!m_s->inner) {
        m_s->inner.emplace(netlink::Netlink::open_in(m_s->netns.get()));
    }
    m_s->attach(req);
}

void Sandbox::disconnect(const std::string& network) {
    NetworkRecord net = m_s->store.load(network);
    for (std::size_t i = 0; i < m_s->joined.size(); ++i) {
        if (m_s->joined[i].net.id == net.id) {
            if (i == 0) {
                // The published ports lead to this endpoint's address, which
                // is released now: their rules and proxies go with it, as
                // Docker's port mappings go with their endpoint.
                m_s->drop_published();
            }
            m_s->detach(i, false);
            if (i == 0 && !m_s->joined.empty()) {
                // The default route went with the first network's link: the
                // next network's gateway takes it, as Docker picks another.
                const Joined& next = m_s->joined.front();
                m_s->inner->add_default_route(next.net.gateway, next.ifname);
            }
            return;
        }
    }
    throw Error("container " + m_s->req.container_id + " is not connected to network " + net.name);
}

void recover(const std::string& store_root) {
    NetworkStore store(store_root);
    auto nl = netlink::Netlink::open();
    FileLock l = store.lock();
    std::vector<std::string> live; // owners of nat rules: networks, containers with endpoints
    for (const auto& net : store.list()) {
        if (net.is_bridge()) {
            for (const auto& e : store.sweep(net.id)) {
                nl.delete_link(e.host_veth); // usually gone with its namespace already
            }
            live.push_back(net.id);
            for (const auto& e : store.endpoints(net.id)) {
                live.push_back(e.container_id);
            }
        }
    }
    if (nat::available()) {
        nat::keep_only(live);
    }
}

int remove_endpoints(const std::string& store_root, const NetworkRecord& net,
                     const std::string& ref) {
    NetworkStore store(store_root);
    auto nl = netlink::Netlink::open();
    FileLock l = store.lock();
    auto matches = [&](const Endpoint& e) {
        return e.name == ref || e.container_id == ref ||
               (ref.size() == 12 && e.container_id.compare(0, 12, ref) == 0);
    };
    int removed = 0;
    for (const auto& e : store.sweep(net.id)) {
        nl.delete_link(e.host_veth);
        removed += matches(e) ? 1 : 0;
    }
    for (const auto& e : store.endpoints(net.id)) {
        if (matches(e)) {
            nl.delete_link(e.host_veth);
            store.release(net.id, e.container_id);
            removed += 1;
        }
    }
    return removed;
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
        if (nat::available()) {
            nat::remove_owner(net.id);
        }
    }
}

} // namespace strata::network
