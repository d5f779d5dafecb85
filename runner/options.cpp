#include "runner/options.hpp"

#include "util/error.hpp"

#include <charconv>
#include <string>
#include <sys/resource.h>
#include <vector>

namespace strata::runner {

namespace {

[[noreturn]] void bad(std::string_view option, std::string_view value, std::string_view why) {
    throw UsageError("invalid " + std::string(option) + " \"" + std::string(value) +
                     "\": " + std::string(why));
}

} // namespace

Mount parse_volume(std::string_view value) {
    Mount m;
    m.type = Mount::Type::bind;
    auto first = value.find(':');
    if (first == std::string_view::npos) {
        bad("--volume", value, "expected SRC:DST[:ro]");
    }
    m.source = std::string(value.substr(0, first));
    std::string_view rest = value.substr(first + 1);
    auto second = rest.find(':');
    m.target = std::string(rest.substr(0, second));
    if (second != std::string_view::npos) {
        std::string_view opts = rest.substr(second + 1);
        std::size_t i = 0;
        while (i <= opts.size()) {
            std::size_t j = opts.find(',', i);
            if (j == std::string_view::npos) {
                j = opts.size();
            }
            std::string_view o = opts.substr(i, j - i);
            if (o == "ro") {
                m.read_only = true;
            } else if (o == "rw") {
                m.read_only = false;
            } else if (!o.empty()) {
                bad("--volume", value, "unknown option \"" + std::string(o) + "\"");
            }
            i = j + 1;
        }
    }
    if (m.source.empty() || m.source[0] != '/') {
        bad("--volume", value, "the source must be an absolute host path");
    }
    if (m.target.empty() || m.target[0] != '/') {
        bad("--volume", value, "the destination must be an absolute path");
    }
    return m;
}

Mount parse_tmpfs(std::string_view value) {
    Mount m;
    m.type = Mount::Type::tmpfs;
    auto colon = value.find(':');
    m.target = std::string(value.substr(0, colon));
    if (m.target.empty() || m.target[0] != '/') {
        bad("--tmpfs", value, "the destination must be an absolute path");
    }
    if (colon != std::string_view::npos) {
        std::string opts;
        std::string_view all = value.substr(colon + 1);
        std::size_t i = 0;
        while (i <= all.size()) {
            std::size_t j = all.find(',', i);
            if (j == std::string_view::npos) {
                j = all.size();
            }
            std::string_view o = all.substr(i, j - i);
            if (o == "ro") {
                m.read_only = true;
            } else if (o == "rw") {
                m.read_only = false;
            } else if (!o.empty()) {
                if (!opts.empty()) {
                    opts += ',';
                }
                opts += o;
            }
            i = j + 1;
        }
        m.options = opts;
    }
    return m;
}

namespace {

rlim_t parse_limit(std::string_view option, std::string_view whole, std::string_view v) {
    if (v == "-1" || v == "unlimited") {
        return RLIM_INFINITY;
    }
    unsigned long long n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec != std::errc{} || p != v.data() + v.size()) {
        bad(option, whole, "\"" + std::string(v) + "\" is not a number");
    }
    return static_cast<rlim_t>(n);
}

} // namespace

Rlimit parse_ulimit(std::string_view value) {
    static const std::pair<const char*, int> names[] = {
        {"core", RLIMIT_CORE},         {"cpu", RLIMIT_CPU},
        {"data", RLIMIT_DATA},         {"fsize", RLIMIT_FSIZE},
        {"locks", RLIMIT_LOCKS},       {"memlock", RLIMIT_MEMLOCK},
        {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},
        {"nofile", RLIMIT_NOFILE},     {"nproc", RLIMIT_NPROC},
        {"rss", RLIMIT_RSS},           {"rtprio", RLIMIT_RTPRIO},
        {"rttime", RLIMIT_RTTIME},     {"sigpending", RLIMIT_SIGPENDING},
        {"stack", RLIMIT_STACK},       {"as", RLIMIT_AS}};
    auto eq = value.find('=');
    if (eq == std::string_view::npos) {
        bad("--ulimit", value, "expected NAME=SOFT[:HARD]");
    }
    std::string_view name = value.substr(0, eq);
    Rlimit l;
    bool found = false;
    for (const auto& [n, r] : names) {
        if (name == n) {
            l.resource = r;
            found = true;
        }
    }
    if (!found) {
        bad("--ulimit", value, "unknown limit \"" + std::string(name) + "\"");
    }
    std::string_view limits = value.substr(eq + 1);
    auto colon = limits.find(':');
    l.soft = parse_limit("--ulimit", value, limits.substr(0, colon));
    l.hard = colon == std::string_view::npos
                 ? l.soft
                 : parse_limit("--ulimit", value, limits.substr(colon + 1));
    if (l.hard != RLIM_INFINITY && (l.soft == RLIM_INFINITY || l.soft > l.hard)) {
        bad("--ulimit", value, "the soft limit is above the hard limit");
    }
    return l;
}

Network parse_network(std::string_view value) {
    if (value == "none") {
        return Network::none;
    }
    if (value == "host") {
        return Network::host;
    }
    bad("--network", value, "strata supports none and host");
}

} // namespace strata::runner

namespace strata::runner {

Device parse_device(std::string_view value) {
    auto is_perms = [](std::string_view s) {
        return !s.empty() && s.size() <= 3 && s.find_first_not_of("rwm") == std::string_view::npos;
    };
    std::vector<std::string> parts;
    std::size_t i = 0;
    while (i <= value.size()) {
        std::size_t j = value.find(':', i);
        if (j == std::string_view::npos) {
            j = value.size();
        }
        parts.emplace_back(value.substr(i, j - i));
        i = j + 1;
    }
    Device d;
    if (parts.size() > 3) {
        bad("--device", value, "expected HOST[:CONTAINER[:PERMS]]");
    }
    d.host_path = parts[0];
    if (parts.size() == 2) {
        if (is_perms(parts[1])) {
            d.permissions = parts[1];
        } else {
            d.container_path = parts[1];
        }
    } else if (parts.size() == 3) {
        d.container_path = parts[1];
        if (!is_perms(parts[2])) {
            throw UsageError("invalid device mode: " + parts[2]);
        }
        d.permissions = parts[2];
    }
    if (d.host_path.empty() || d.host_path[0] != '/') {
        bad("--device", value, "the host path must be absolute");
    }
    if (!d.container_path.empty() && d.container_path[0] != '/') {
        bad("--device", value, "the container path must be absolute");
    }
    return d;
}

} // namespace strata::runner
