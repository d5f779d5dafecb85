#include "network/ports.hpp"

#include "network/ipv4.hpp"
#include "util/error.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <optional>
#include <set>

namespace strata::network {

std::string PortBinding::key() const {
    return std::to_string(container_port) + "/" + proto;
}

namespace ports {

namespace {

// strconv.ParseUint(text, 10, 16): decimal digits only, at most 65535.
std::optional<std::uint16_t> parse_port(std::string_view text) {
    if (text.empty() || text.size() > 5) {
        return std::nullopt;
    }
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value > 65535) {
        return std::nullopt;
    }
    return static_cast<std::uint16_t>(value);
}

struct Range {
    std::uint16_t start = 0;
    std::uint16_t end = 0;
};

// go-connections nat.ParsePortRange: "80" or "80-81" (start <= end).
std::optional<Range> parse_range(std::string_view text) {
    std::size_t dash = text.find('-');
    if (dash == std::string_view::npos) {
        auto p = parse_port(text);
        if (!p) {
            return std::nullopt;
        }
        return Range{*p, *p};
    }
    auto a = parse_port(text.substr(0, dash));
    auto b = parse_port(text.substr(dash + 1));
    if (!a || !b || *b < *a) {
        return std::nullopt;
    }
    return Range{*a, *b};
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

// "80/tcp" -> (80, "tcp"); "80" -> tcp. Throws UsageError naming what.
std::pair<std::uint16_t, std::string> parse_key(std::string_view key, std::string_view what) {
    std::size_t slash = key.find('/');
    std::string proto = slash == std::string_view::npos ? "tcp" : lower(key.substr(slash + 1));
    auto port = parse_port(key.substr(0, slash));
    if (!port || *port == 0) {
        throw UsageError(std::string(what) + ": invalid port " + std::string(key));
    }
    if (proto != "tcp" && proto != "udp") {
        throw UsageError(std::string(what) + ": " + std::string(key) +
                         ": strata publishes tcp and udp ports only");
    }
    return {*port, proto};
}

// Go's sortorder.NaturalLess: digit runs compare as numbers.
bool natural_less(const std::string& a, const std::string& b) {
    std::size_t i = 0;
    std::size_t j = 0;
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    while (i < a.size() && j < b.size()) {
        if (digit(a[i]) && digit(b[j])) {
            std::size_t i0 = i;
            std::size_t j0 = j;
            while (i < a.size() && a[i] == '0') {
                ++i;
            }
            while (j < b.size() && b[j] == '0') {
                ++j;
            }
            std::size_t is = i;
            std::size_t js = j;
            while (i < a.size() && digit(a[i])) {
                ++i;
            }
            while (j < b.size() && digit(b[j])) {
                ++j;
            }
            std::string_view na(a.data() + is, i - is);
            std::string_view nb(b.data() + js, j - js);
            if (na.size() != nb.size()) {
                return na.size() < nb.size();
            }
            if (na != nb) {
                return na < nb;
            }
            if (i - i0 != j - j0) {
                return i - i0 < j - j0;
            }
        } else {
            if (a[i] != b[j]) {
                return a[i] < b[j];
            }
            ++i;
            ++j;
        }
    }
    return a.size() - i < b.size() - j;
}

std::string host_port_text(const PortBinding& b) {
    if (b.host_port == 0) {
        return "";
    }
    std::string text = std::to_string(b.host_port);
    if (b.host_port_end != 0 && b.host_port_end != b.host_port) {
        text += "-" + std::to_string(b.host_port_end);
    }
    return text;
}

} // namespace

std::vector<PortBinding> parse_publish(std::string_view spec) {
    const std::string raw(spec);
    // splitParts: the last part is the container port, the one before it
    // the host port, everything before that the address (IPv6 has colons).
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    for (;;) {
        std::size_t colon = spec.find(':', start);
        parts.push_back(
            spec.substr(start, colon == std::string_view::npos ? colon : colon - start));
        if (colon == std::string_view::npos) {
            break;
        }
        start = colon + 1;
    }
    std::string_view container = parts.back();
    std::string_view host_port;
    std::string ip;
    if (parts.size() >= 2) {
        host_port = parts[parts.size() - 2];
    }
    if (parts.size() >= 3) {
        std::size_t end = static_cast<std::size_t>(host_port.data() - spec.data()) - 1;
        ip = std::string(spec.substr(0, end));
    }
    std::string proto = "tcp";
    if (std::size_t slash = container.find('/'); slash != std::string_view::npos) {
        proto = std::string(container.substr(slash + 1));
        container = container.substr(0, slash);
    }
    if (!ip.empty() && ip.front() == '[') {
        if (ip.back() != ']') {
            throw UsageError("invalid IP address " + ip + ": missing ']' in address");
        }
        ip = ip.substr(1, ip.size() - 2);
    }
    if (!ip.empty()) {
        ipv4::Address addr;
        if (!ipv4::Address::try_parse(ip, addr)) {
            if (ip.find(':') != std::string::npos) {
                throw UsageError("invalid IP address " + ip +
                                 ": strata publishes ports on IPv4 addresses only");
            }
            throw UsageError("invalid IP address: " + ip);
        }
        ip = addr.str();
    }
    if (container.empty()) {
        throw UsageError("no port specified: " + raw + "<empty>");
    }
    auto cr = parse_range(container);
    if (!cr || cr->start == 0) {
        throw UsageError("invalid containerPort: " + std::string(container));
    }
    Range hr;
    if (!host_port.empty()) {
        auto parsed = parse_range(host_port);
        if (!parsed) {
            throw UsageError("invalid hostPort: " + std::string(host_port));
        }
        hr = *parsed;
        if (hr.end - hr.start != cr->end - cr->start && cr->end != cr->start) {
            throw UsageError("invalid ranges specified for container and host Ports: " +
                             std::string(container) + " and " + std::string(host_port));
        }
    }
    std::string p = lower(proto);
    if (p == "sctp") {
        throw UsageError("invalid proto: " + proto + ": strata publishes tcp and udp ports only");
    }
    if (p != "tcp" && p != "udp") {
        throw UsageError("invalid proto: " + proto);
    }
    std::vector<PortBinding> out;
    for (unsigned i = 0; i <= static_cast<unsigned>(cr->end - cr->start); ++i) {
        PortBinding b;
        b.proto = p;
        b.container_port = static_cast<std::uint16_t>(cr->start + i);
        b.host_ip = ip == "0.0.0.0" ? "" : ip;
        if (!host_port.empty()) {
            if (cr->start == cr->end && hr.start != hr.end) {
                b.host_port = hr.start;
                b.host_port_end = hr.end;
            } else {
                b.host_port = static_cast<std::uint16_t>(hr.start + i);
            }
        }
        out.push_back(b);
    }
    return out;
}

std::vector<PortBinding> publish_all(const std::vector<std::string>& exposed) {
    std::vector<PortBinding> out;
    for (const auto& key : exposed) {
        std::size_t slash = key.find('/');
        if (slash != std::string::npos && lower(key.substr(slash + 1)) == "sctp") {
            continue; // strata publishes tcp and udp only
        }
        auto [port, proto] = parse_key(key, "exposed port");
        PortBinding b;
        b.proto = proto;
        b.container_port = port;
        out.push_back(b);
    }
    return out;
}

nlohmann::ordered_json port_bindings_json(const std::vector<PortBinding>& bindings) {
    std::map<std::string, nlohmann::ordered_json> by_key;
    std::vector<std::string> order;
    for (const auto& b : bindings) {
        auto [it, fresh] = by_key.try_emplace(b.key(), nlohmann::ordered_json::array());
        if (fresh) {
            order.push_back(b.key());
        }
        it->second.push_back({{"HostIp", b.host_ip}, {"HostPort", host_port_text(b)}});
    }
    std::sort(order.begin(), order.end()); // Go's encoding/json: map keys sorted
    nlohmann::ordered_json out = nlohmann::ordered_json::object();
    for (const auto& k : order) {
        out[k] = by_key[k];
    }
    return out;
}

std::vector<PortBinding> port_bindings_from_json(const nlohmann::json& json) {
    std::vector<PortBinding> out;
    if (json.is_null()) {
        return out;
    }
    if (!json.is_object()) {
        throw Error("PortBindings: not an object");
    }
    for (const auto& [key, list] : json.items()) {
        auto [port, proto] = parse_key(key, "PortBindings");
        if (list.is_null()) {
            continue;
        }
        if (!list.is_array()) {
            throw Error("PortBindings: " + key + ": not a list");
        }
        for (const auto& entry : list) {
            if (!entry.is_object()) {
                throw Error("PortBindings: " + key + ": an entry is not an object");
            }
            PortBinding b;
            b.proto = proto;
            b.container_port = port;
            std::string ip = entry.value("HostIp", std::string());
            std::string hp = entry.value("HostPort", std::string());
            if (!ip.empty()) {
                ipv4::Address addr;
                if (!ipv4::Address::try_parse(ip, addr)) {
                    throw Error("PortBindings: " + key + ": invalid HostIp " + ip);
                }
                ip = addr.str() == "0.0.0.0" ? "" : addr.str();
            }
            b.host_ip = ip;
            if (!hp.empty()) {
                auto r = parse_range(hp);
                if (!r) {
                    throw Error("PortBindings: " + key + ": invalid HostPort " + hp);
                }
                b.host_port = r->start;
                b.host_port_end = r->end == r->start ? 0 : r->end;
            }
            out.push_back(b);
        }
    }
    return out;
}

std::vector<PortBinding> bindings_for_start(const nlohmann::json& port_bindings,
                                            bool publish_all_ports,
                                            const std::vector<std::string>& exposed) {
    std::vector<PortBinding> out = port_bindings_from_json(port_bindings);
    if (publish_all_ports) {
        std::set<std::string> bound;
        for (const auto& b : out) {
            bound.insert(b.key());
        }
        for (const auto& b : publish_all(exposed)) {
            if (!bound.contains(b.key())) {
                out.push_back(b);
            }
        }
    }
    return out;
}

std::vector<std::string> exposed_with(const std::vector<std::string>& exposed,
                                      const std::vector<PortBinding>& bindings) {
    std::vector<std::string> out;
    for (const auto& key : exposed) {
        try {
            auto [port, proto] = parse_key(key, "exposed port");
            out.push_back(std::to_string(port) + "/" + proto);
        } catch (const UsageError&) {
            out.push_back(key); // e.g. 132/sctp: kept as the image has it
        }
    }
    for (const auto& b : bindings) {
        out.push_back(b.key());
    }
    std::sort(out.begin(), out.end()); // as Go's encoding/json orders map keys
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

nlohmann::ordered_json ports_json(const std::vector<PortBinding>& bound,
                                  const std::vector<std::string>& exposed) {
    std::vector<std::string> keys = exposed_with(exposed, bound);
    nlohmann::ordered_json out = nlohmann::ordered_json::object();
    for (const auto& k : keys) {
        nlohmann::ordered_json list = nullptr;
        for (const auto& b : bound) {
            if (b.key() == k) {
                if (list.is_null()) {
                    list = nlohmann::ordered_json::array();
                }
                list.push_back({{"HostIp", b.host_ip.empty() ? "0.0.0.0" : b.host_ip},
                                {"HostPort", std::to_string(b.host_port)}});
            }
        }
        out[k] = list;
    }
    return out;
}

std::vector<std::string> port_lines(const nlohmann::json& ports, std::string_view filter,
                                    const std::string& container_name) {
    std::vector<std::string> out;
    auto frontend = [](const nlohmann::json& f) {
        std::string ip = f.value("HostIp", std::string());
        if (ip.find(':') != std::string::npos) {
            ip = "[" + ip + "]";
        }
        return ip + ":" + f.value("HostPort", std::string());
    };
    if (!filter.empty()) {
        std::size_t slash = filter.find('/');
        std::string_view port = filter.substr(0, slash);
        std::string proto =
            slash == std::string_view::npos ? "tcp" : std::string(filter.substr(slash + 1));
        if (!parse_port(port)) {
            throw UsageError("Error: invalid port (" + std::string(port) +
                             "): strconv.ParseUint: parsing \"" + std::string(port) +
                             "\": invalid syntax");
        }
        std::string key = std::string(port) + "/" + proto;
        if (!ports.is_object() || !ports.contains(key) || !ports[key].is_array()) {
            throw Error("Error: No public port '" + std::string(filter) + "' published for " +
                        container_name);
        }
        for (const auto& f : ports[key]) {
            out.push_back(frontend(f));
        }
    } else if (ports.is_object()) {
        for (const auto& [key, list] : ports.items()) {
            if (!list.is_array()) {
                continue;
            }
            for (const auto& f : list) {
                out.push_back(key + " -> " + frontend(f));
            }
        }
    }
    std::sort(out.begin(), out.end(), natural_less);
    return out;
}

} // namespace ports
} // namespace strata::network
