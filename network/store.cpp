#include "network/store.hpp"

#include "util/error.hpp"
#include "util/event_log.hpp"
#include "util/fs.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fcntl.h>
#include <set>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

namespace strata::network {

namespace {

constexpr const char* k_private = "StrataConfiguredSubnet";

bool is_hex(std::string_view s) {
    return !s.empty() && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

} // namespace

std::string random_hex(std::size_t n) {
    static constexpr char k_hex[] = "0123456789abcdef";
    std::string bytes((n + 1) / 2, '\0');
    std::size_t got = 0;
    while (got < bytes.size()) {
        ssize_t r = ::getrandom(bytes.data() + got, bytes.size() - got, 0);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw_errno("getrandom");
        }
        got += static_cast<std::size_t>(r);
    }
    std::string out;
    for (unsigned char b : bytes) {
        out.push_back(k_hex[b >> 4]);
        out.push_back(k_hex[b & 15]);
    }
    out.resize(n);
    return out;
}

std::string now_rfc3339nano() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    tm t{};
    ::gmtime_r(&ts.tv_sec, &t);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", t.tm_year + 1900,
                  t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec);
    return buf;
}

// ---------------------------------------------------------------------------

std::string NetworkRecord::device() const {
    if (name == "bridge") {
        return "strata0";
    }
    return "br-" + id.substr(0, 12);
}

nlohmann::ordered_json NetworkRecord::to_json() const {
    nlohmann::ordered_json j;
    j["Name"] = name;
    j["Id"] = id;
    j["Created"] = created;
    j["Scope"] = "local";
    j["Driver"] = driver;
    j["EnableIPv6"] = false;
    nlohmann::ordered_json config = nlohmann::ordered_json::array();
    if (subnet) {
        config.push_back({{"Subnet", subnet->str()}, {"Gateway", gateway.str()}});
    }
    j["IPAM"] = {
        {"Driver", "default"}, {"Options", nlohmann::ordered_json::object()}, {"Config", config}};
    j["Internal"] = internal;
    j["Attachable"] = attachable;
    j["Ingress"] = false;
    j["ConfigFrom"] = {{"Network", ""}};
    j["ConfigOnly"] = false;
    nlohmann::ordered_json opts = nlohmann::ordered_json::object();
    for (const auto& [k, v] : options) {
        opts[k] = v;
    }
    j["Options"] = opts;
    nlohmann::ordered_json lbls = nlohmann::ordered_json::object();
    for (const auto& [k, v] : labels) {
        lbls[k] = v;
    }
    j["Labels"] = lbls;
    return j;
}

nlohmann::ordered_json NetworkRecord::to_record() const {
    auto j = to_json();
    j[k_private] = configured_subnet;
    return j;
}

NetworkRecord NetworkRecord::from_json(const nlohmann::json& j) {
    NetworkRecord r;
    r.name = j.at("Name").get<std::string>();
    r.id = j.at("Id").get<std::string>();
    r.created = j.value("Created", std::string());
    r.driver = j.value("Driver", std::string("bridge"));
    r.internal = j.value("Internal", false);
    r.attachable = j.value("Attachable", false);
    r.configured_subnet = j.value(k_private, false);
    if (j.contains("IPAM") && j["IPAM"].contains("Config") && !j["IPAM"]["Config"].empty()) {
        const auto& c = j["IPAM"]["Config"][0];
        r.subnet = ipv4::Subnet::parse(c.at("Subnet").get<std::string>());
        r.gateway = ipv4::Address::parse(c.at("Gateway").get<std::string>());
    }
    if (j.contains("Options")) {
        for (const auto& [k, v] : j["Options"].items()) {
            r.options[k] = v.get<std::string>();
        }
    }
    if (j.contains("Labels")) {
        for (const auto& [k, v] : j["Labels"].items()) {
            r.labels[k] = v.get<std::string>();
        }
    }
    return r;
}

nlohmann::ordered_json Endpoint::to_json() const {
    return {{"Name", name},
            {"Aliases", aliases},
            {"IPv4Address", address.str()},
            {"MacAddress", mac},
            {"EndpointID", endpoint_id},
            {"HostVeth", host_veth},
            {"Owner", owner},
            {"StaticAddress", static_address},
            {"ContainerID", container_id}};
}

Endpoint Endpoint::from_json(const nlohmann::json& j) {
    Endpoint e;
    e.name = j.value("Name", std::string());
    e.aliases = j.value("Aliases", std::vector<std::string>());
    e.address = ipv4::Address::parse(j.at("IPv4Address").get<std::string>());
    e.mac = j.value("MacAddress", std::string());
    e.endpoint_id = j.value("EndpointID", std::string());
    e.host_veth = j.value("HostVeth", std::string());
    e.owner = j.value("Owner", 0);
    e.static_address = j.value("StaticAddress", false);
    e.container_id = j.value("ContainerID", std::string());
    return e;
}

// ---------------------------------------------------------------------------

FileLock::FileLock(const std::string& path, bool exclusive)
    : m_fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
    if (!m_fd) {
        throw_errno("open", path);
    }
    while (::flock(m_fd.get(), exclusive ? LOCK_EX : LOCK_SH) != 0) {
        if (errno != EINTR) {
            throw_errno("flock", path);
        }
    }
}

NetworkStore::NetworkStore(std::string store_root) : m_dir(store_root + "/networks") {
    if (!fs::exists(m_dir + "/names/none")) {
        fs::mkdirs(m_dir + "/names", 0700);
        ensure_predefined();
    }
}

FileLock NetworkStore::lock(bool exclusive) const {
    return FileLock(m_dir + "/lock", exclusive);
}

void NetworkStore::ensure_predefined() {
    FileLock l = lock();
    auto make = [&](const std::string& name, const std::string& driver) {
        if (fs::exists(m_dir + "/names/" + name)) {
            return;
        }
        NetworkRecord r;
        r.name = name;
        r.driver = driver;
        if (name == "bridge") {
            r.subnet = ipv4::Subnet::parse("172.17.0.0/16");
            r.gateway = r.subnet->host(1);
            r.options = {{"com.docker.network.bridge.default_bridge", "true"},
                         {"com.docker.network.bridge.enable_icc", "true"},
                         {"com.docker.network.bridge.enable_ip_masquerade", "true"},
                         {"com.docker.network.bridge.host_binding_ipv4", "0.0.0.0"},
                         {"com.docker.network.bridge.name", "strata0"},
                         {"com.docker.network.driver.mtu", "1500"}};
        }
        write_new(std::move(r));
    };
    make("bridge", "bridge");
    make("host", "host");
    make("none", "null");
}

NetworkRecord NetworkStore::write_new(NetworkRecord rec) {
    rec.id = random_hex(64);
    rec.created = now_rfc3339nano();
    std::string d = m_dir + "/" + rec.id;
    fs::mkdirs(d + "/endpoints", 0700);
    fs::write_file_atomic(d + "/network.json", rec.to_record().dump(2) + "\n", 0600);
    if (::symlink(rec.id.c_str(), (m_dir + "/names/" + rec.name).c_str()) != 0) {
        int err = errno;
        fs::remove_all(d);
        if (err == EEXIST) {
            throw UsageError("network with name " + rec.name + " already exists");
        }
        throw SysError("symlink", m_dir + "/names/" + rec.name, err);
    }
    return rec;
}

bool overlaps_host_route(const ipv4::Subnet& subnet) {
    std::string text;
    try {
        text = fs::read_file("/proc/net/route", 1u << 20);
    } catch (const std::exception&) {
        return false;
    }
    std::size_t i = text.find('\n'); // header
    while (i != std::string::npos && i + 1 < text.size()) {
        std::size_t j = text.find('\n', i + 1);
        std::string line =
            text.substr(i + 1, j == std::string::npos ? std::string::npos : j - i - 1);
        i = j;
        // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
        char iface[64];
        unsigned dest = 0, gw = 0, flags = 0, refcnt = 0, use = 0, metric = 0, mask = 0;
        if (std::sscanf(line.c_str(), "%63s %x %x %x %u %u %u %x", iface, &dest, &gw, &flags,
                        &refcnt, &use, &metric, &mask) != 8) {
            continue;
        }
        if (mask == 0) {
            continue; // the default route
        }
        // Little-endian hex of network-order bytes.
        in_addr d{dest}, m{mask};
        std::uint32_t mh = ntohl(m.s_addr);
        int prefix = __builtin_popcount(mh);
        ipv4::Subnet route = ipv4::Subnet::of(ipv4::Address::from_in_addr(d), prefix);
        if (route.overlaps(subnet)) {
            return true;
        }
    }
    return false;
}

ipv4::Subnet NetworkStore::pick_subnet() const {
    std::vector<ipv4::Subnet> taken;
    for (const auto& n : list()) {
        if (n.subnet) {
            taken.push_back(*n.subnet);
        }
    }
    auto free = [&](const ipv4::Subnet& s) {
        return std::none_of(taken.begin(), taken.end(),
                            [&](const ipv4::Subnet& t) { return t.overlaps(s); }) &&
               !overlaps_host_route(s);
    };
    for (int b = 18; b <= 31; ++b) {
        auto s = ipv4::Subnet::parse("172." + std::to_string(b) + ".0.0/16");
        if (free(s)) {
            return s;
        }
    }
    for (int c = 0; c < 256; c += 16) {
        auto s = ipv4::Subnet::parse("192.168." + std::to_string(c) + ".0/20");
        if (free(s)) {
            return s;
        }
    }
    throw Error("could not find an available, non-overlapping IPv4 address pool among the "
                "defaults to assign to the network");
}

NetworkRecord NetworkStore::create(const CreateOptions& o) {
    if (o.driver != "bridge") {
        throw UsageError("plugin \"" + o.driver +
                         "\" not found: strata creates bridge networks only");
    }
    if (o.name.empty() || o.name.find('/') != std::string::npos || o.name == "." ||
        o.name == ".." || o.name.size() > 200) {
        throw UsageError("invalid network name \"" + o.name + "\"");
    }
    FileLock l = lock();
    if (fs::exists(m_dir + "/names/" + o.name) ||
        ::access((m_dir + "/names/" + o.name).c_str(), F_OK) == 0) {
        throw UsageError("network with name " + o.name + " already exists");
    }
    NetworkRecord r;
    r.name = o.name;
    r.driver = o.driver;
    r.internal = o.internal;
    r.attachable = o.attachable;
    r.labels = o.labels;
    r.options = o.options;
    if (!o.subnet.empty()) {
        r.subnet = ipv4::Subnet::parse(o.subnet);
        r.configured_subnet = true;
        for (const auto& n : list()) {
            if (n.subnet && n.subnet->overlaps(*r.subnet)) {
                throw Error("invalid pool request: Pool overlaps with other one on this address "
                            "space");
            }
        }
    } else {
        if (!o.gateway.empty()) {
            throw UsageError("every ip-range or gateway must have a corresponding subnet");
        }
        r.subnet = pick_subnet();
    }
    if (r.subnet->prefix > 30) {
        throw UsageError("invalid subnet " + r.subnet->str() + ": too small for a network");
    }
    if (!o.gateway.empty()) {
        r.gateway = ipv4::Address::parse(o.gateway);
        if (!r.subnet->contains(r.gateway)) {
            throw UsageError("no matching subnet for gateway " + o.gateway);
        }
    } else {
        r.gateway = r.subnet->host(1);
    }
    NetworkRecord made = write_new(std::move(r));
    events::record_event(fs::dirname(m_dir), "network", "create", made.id,
                         {{"name", made.name}, {"type", made.driver}});
    return made;
}

std::optional<NetworkRecord> NetworkStore::find(std::string_view ref) const {
    std::string id;
    char buf[128];
    std::string ref_s(ref);
    if (!ref.empty() && ref_s.find('/') == std::string::npos && ref_s != "." && ref_s != "..") {
        ssize_t n = ::readlink((m_dir + "/names/" + ref_s).c_str(), buf, sizeof buf);
        if (n > 0) {
            id.assign(buf, static_cast<std::size_t>(n));
        }
    }
    if (id.empty() && is_hex(ref)) {
        std::string match;
        for (const auto& e : fs::list_dir(m_dir)) {
            if (e.size() == 64 && e.compare(0, ref.size(), ref) == 0) {
                if (!match.empty()) {
                    return std::nullopt; // ambiguous
                }
                match = e;
            }
        }
        id = match;
    }
    if (id.empty()) {
        return std::nullopt;
    }
    std::string path = m_dir + "/" + id + "/network.json";
    std::string text;
    try {
        text = fs::read_file(path, 1u << 20);
    } catch (const SysError& e) {
        if (e.error_code() == ENOENT) {
            return std::nullopt;
        }
        throw;
    }
    try {
        return NetworkRecord::from_json(nlohmann::json::parse(text));
    } catch (const nlohmann::json::exception& e) {
        throw Error("network record " + path + ": " + e.what());
    }
}

NetworkRecord NetworkStore::load(std::string_view ref) const {
    auto r = find(ref);
    if (!r) {
        throw NetworkNotFound("network " + std::string(ref) + " not found");
    }
    return *r;
}

std::vector<NetworkRecord> NetworkStore::list() const {
    std::vector<NetworkRecord> out;
    for (const auto& name : fs::list_dir(m_dir + "/names")) {
        if (auto r = find(name)) {
            out.push_back(std::move(*r));
        }
    }
    return out;
}

std::string NetworkStore::endpoint_path(const std::string& network_id,
                                        const std::string& container_id) const {
    return m_dir + "/" + network_id + "/endpoints/" + container_id + ".json";
}

namespace {

// Whether someone holds the endpoint file's lock (its owner lives).
bool endpoint_live(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        return false;
    }
    return ::flock(fd.get(), LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
}

std::optional<Endpoint> read_endpoint(const std::string& path) {
    try {
        std::string text = fs::read_file(path, 1u << 20);
        if (text.empty()) {
            return std::nullopt;
        }
        return Endpoint::from_json(nlohmann::json::parse(text));
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

} // namespace

std::vector<Endpoint> NetworkStore::endpoints(const std::string& network_id) const {
    std::vector<Endpoint> out;
    std::string d = m_dir + "/" + network_id + "/endpoints";
    for (const auto& f : fs::list_dir(d)) {
        if (f.size() < 5 || f.substr(f.size() - 5) != ".json") {
            continue;
        }
        std::string path = d + "/" + f;
        if (!endpoint_live(path)) {
            continue;
        }
        if (auto e = read_endpoint(path)) {
            out.push_back(std::move(*e));
        }
    }
    return out;
}

std::vector<Endpoint> NetworkStore::sweep(const std::string& network_id) {
    std::vector<Endpoint> out;
    std::string d = m_dir + "/" + network_id + "/endpoints";
    for (const auto& f : fs::list_dir(d)) {
        std::string path = d + "/" + f;
        if (f.size() < 5 || f.substr(f.size() - 5) != ".json") {
            ::unlink(path.c_str()); // a write that never finished
            continue;
        }
        if (endpoint_live(path)) {
            continue;
        }
        if (auto e = read_endpoint(path)) {
            out.push_back(std::move(*e));
        }
        ::unlink(path.c_str());
    }
    return out;
}

NetworkStore::Claim NetworkStore::claim(const NetworkRecord& net, const std::string& container_id,
                                        const std::string& container_name,
                                        const std::vector<std::string>& aliases,
                                        const std::string& requested,
                                        const std::string& host_veth) {
    if (!net.subnet) {
        throw Error("network " + net.name + " has no addresses to give (driver " + net.driver +
                    ")");
    }
    const ipv4::Subnet& subnet = *net.subnet;
    std::string path = endpoint_path(net.id, container_id);
    if (endpoint_live(path)) {
        throw Error("endpoint with name " + container_name + " already exists in network " +
                    net.name);
    }
    ::unlink(path.c_str());
    std::set<std::uint32_t> used;
    used.insert(net.gateway.value);
    for (const auto& e : endpoints(net.id)) {
        used.insert(e.address.value);
    }
    Endpoint ep;
    if (!requested.empty()) {
        ipv4::Address want = ipv4::Address::parse(requested);
        if (!net.configured_subnet) {
            throw UsageError("user specified IP address is supported only when connecting to "
                             "networks with user configured subnets");
        }
        if (!subnet.contains(want) || want == subnet.network || want == subnet.broadcast()) {
            throw UsageError("Invalid address " + requested +
                             ": It does not belong to any of this network's subnets");
        }
        if (used.count(want.value) != 0) {
            throw Error("Address already in use");
        }
        ep.address = want;
        ep.static_address = true;
    } else {
        bool found = false;
        for (std::uint64_t n = 2; n + 1 < subnet.size(); ++n) {
            ipv4::Address a = subnet.host(n);
            if (used.count(a.value) == 0) {
                ep.address = a;
                found = true;
                break;
            }
        }
        if (!found) {
            throw Error("no available IPv4 addresses on this network's address pools: " + net.name +
                        " (" + net.id + ")");
        }
    }
    ep.container_id = container_id;
    ep.name = container_name;
    ep.aliases = aliases;
    ep.endpoint_id = random_hex(64);
    ep.host_veth = host_veth;
    ep.owner = static_cast<int>(::getpid());
    char mac[18];
    std::uint32_t v = ep.address.value;
    std::snprintf(mac, sizeof mac, "02:42:%02x:%02x:%02x:%02x", (v >> 24) & 255, (v >> 16) & 255,
                  (v >> 8) & 255, v & 255);
    ep.mac = mac;

    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd) {
        throw_errno("open", path);
    }
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        ::unlink(path.c_str());
        throw SysError("flock", path, err);
    }
    try {
        fs::write_all(fd.get(), ep.to_json().dump() + "\n");
    } catch (...) {
        ::unlink(path.c_str());
        throw;
    }
    events::record_event(fs::dirname(m_dir), "network", "connect", net.id,
                         {{"container", container_id}, {"name", net.name}, {"type", net.driver}});
    return Claim{std::move(ep), std::move(fd)};
}

void NetworkStore::release(const std::string& network_id, const std::string& container_id) {
    std::string path = endpoint_path(network_id, container_id);
    if (::unlink(path.c_str()) == 0) {
        std::map<std::string, std::string> attrs{{"container", container_id}};
        try {
            if (auto net = find(network_id)) {
                attrs["name"] = net->name;
                attrs["type"] = net->driver;
            }
        } catch (const std::exception&) {
            // the network's record is unreadable: the event names the container only
        }
        events::record_event(fs::dirname(m_dir), "network", "disconnect", network_id,
                             std::move(attrs));
    }
}

std::vector<Endpoint> NetworkStore::remove(const NetworkRecord& net) {
    if (net.predefined()) {
        throw UsageError(net.name + " is a pre-defined network and cannot be removed");
    }
    std::vector<Endpoint> stale = sweep(net.id);
    if (!endpoints(net.id).empty()) {
        throw Error("error while removing network: network " + net.name + " id " + net.id +
                    " has active endpoints");
    }
    ::unlink((m_dir + "/names/" + net.name).c_str());
    fs::remove_all(m_dir + "/" + net.id);
    events::record_event(fs::dirname(m_dir), "network", "destroy", net.id,
                         {{"name", net.name}, {"type", net.driver}});
    return stale;
}

} // namespace strata::network
