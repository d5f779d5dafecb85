#include "containers/spec.hpp"

#include <cctype>

namespace strata::containers {

namespace {

const char* mount_type(runner::Mount::Type t) {
    switch (t) {
    case runner::Mount::Type::bind:
        return "bind";
    case runner::Mount::Type::tmpfs:
        return "tmpfs";
    case runner::Mount::Type::cache:
        return "cache";
    }
    return "bind";
}

runner::Mount::Type parse_mount_type(const std::string& s) {
    if (s == "bind") {
        return runner::Mount::Type::bind;
    }
    if (s == "tmpfs") {
        return runner::Mount::Type::tmpfs;
    }
    if (s == "cache") {
        return runner::Mount::Type::cache;
    }
    throw Error("StrataSpec.Mounts: unknown mount type \"" + s + "\"");
}

} // namespace

nlohmann::ordered_json spec_to_json(const runner::RunSpec& spec) {
    nlohmann::ordered_json j;
    j["Argv"] = spec.argv;
    j["Env"] = spec.env;
    j["Cwd"] = spec.cwd;
    j["User"] = spec.user;
    j["Hostname"] = spec.hostname;
    auto hosts = nlohmann::ordered_json::array();
    for (const auto& [n, a] : spec.extra_hosts) {
        hosts.push_back({n, a});
    }
    j["ExtraHosts"] = hosts;
    j["Network"] = spec.network == runner::Network::host ? "host" : "none";
    auto mounts = nlohmann::ordered_json::array();
    for (const auto& m : spec.mounts) {
        mounts.push_back({{"Type", mount_type(m.type)},
                          {"Source", m.source},
                          {"Target", m.target},
                          {"ReadOnly", m.read_only},
                          {"Options", m.options}});
    }
    j["Mounts"] = mounts;
    auto rl = nlohmann::ordered_json::array();
    for (const auto& r : spec.rlimits) {
        rl.push_back({{"Resource", r.resource},
                      {"Soft", static_cast<std::uint64_t>(r.soft)},
                      {"Hard", static_cast<std::uint64_t>(r.hard)}});
    }
    j["Rlimits"] = rl;
    j["Init"] = spec.init;
    j["ReadOnly"] = spec.read_only;
    j["Tty"] = spec.tty;
    const auto& s = spec.security;
    auto devices = nlohmann::ordered_json::array();
    for (const auto& d : s.devices) {
        devices.push_back({{"HostPath", d.host_path},
                           {"ContainerPath", d.container_path},
                           {"Permissions", d.permissions}});
    }
    j["Security"] = {{"Privileged", s.privileged},
                     {"CapAdd", s.cap_add},
                     {"CapDrop", s.cap_drop},
                     {"SeccompProfile", s.seccomp_profile},
                     {"SeccompProfileSource", s.seccomp_profile_source},
                     {"Devices", devices}};
    return j;
}

runner::RunSpec spec_from_json(const nlohmann::json& j) {
    runner::RunSpec spec;
    try {
        spec.argv = j.at("Argv").get<std::vector<std::string>>();
        spec.env = j.at("Env").get<std::vector<std::string>>();
        spec.cwd = j.value("Cwd", std::string("/"));
        spec.user = j.value("User", std::string());
        spec.hostname = j.value("Hostname", std::string());
        for (const auto& h : j.value("ExtraHosts", nlohmann::json::array())) {
            spec.extra_hosts.emplace_back(h.at(0).get<std::string>(), h.at(1).get<std::string>());
        }
        spec.network = j.value("Network", std::string("none")) == "host" ? runner::Network::host
                                                                         : runner::Network::none;
        for (const auto& m : j.value("Mounts", nlohmann::json::array())) {
            runner::Mount mount;
            mount.type = parse_mount_type(m.at("Type").get<std::string>());
            mount.source = m.value("Source", std::string());
            mount.target = m.at("Target").get<std::string>();
            mount.read_only = m.value("ReadOnly", false);
            mount.options = m.value("Options", std::string());
            spec.mounts.push_back(mount);
        }
        for (const auto& r : j.value("Rlimits", nlohmann::json::array())) {
            spec.rlimits.push_back({r.at("Resource").get<int>(),
                                    static_cast<rlim_t>(r.at("Soft").get<std::uint64_t>()),
                                    static_cast<rlim_t>(r.at("Hard").get<std::uint64_t>())});
        }
        spec.init = j.value("Init", false);
        spec.read_only = j.value("ReadOnly", false);
        spec.tty = j.value("Tty", false);
        if (j.contains("Security")) {
            const auto& s = j["Security"];
            spec.security.privileged = s.value("Privileged", false);
            spec.security.cap_add = s.value("CapAdd", std::vector<std::string>{});
            spec.security.cap_drop = s.value("CapDrop", std::vector<std::string>{});
            spec.security.seccomp_profile = s.value("SeccompProfile", std::string());
            spec.security.seccomp_profile_source = s.value("SeccompProfileSource", std::string());
            for (const auto& d : s.value("Devices", nlohmann::json::array())) {
                spec.security.devices.push_back({d.at("HostPath").get<std::string>(),
                                                 d.value("ContainerPath", std::string()),
                                                 d.value("Permissions", std::string("rwm"))});
            }
        }
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("config.json StrataSpec: ") + e.what());
    }
    return spec;
}

} // namespace strata::containers

namespace strata::containers {

RestartPolicy parse_restart_policy(std::string_view text) {
    RestartPolicy p;
    std::string s(text);
    std::size_t colon = s.find(':');
    p.name = s.substr(0, colon);
    if (p.name.empty()) {
        p.name = "no";
    }
    if (p.name != "no" && p.name != "always" && p.name != "unless-stopped" &&
        p.name != "on-failure") {
        throw UsageError("invalid restart policy format: unknown policy '" + p.name +
                         "'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'");
    }
    if (colon != std::string::npos) {
        std::string n = s.substr(colon + 1);
        if (p.name != "on-failure") {
            throw UsageError("invalid restart policy format: maximum retry count can only be "
                             "used with 'on-failure'");
        }
        if (n.empty() || n.size() > 9 || n.find_first_not_of("0123456789") != std::string::npos) {
            throw UsageError("invalid restart policy format: maximum retry count must be an "
                             "integer");
        }
        p.max_retries = std::stoi(n);
    }
    return p;
}

namespace {

// go-units RAMInBytes: "10m", "1.5g", "512k", "100" (binary multiples).
std::uint64_t ram_in_bytes(const std::string& text) {
    std::size_t i = 0;
    while (i < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
        ++i;
    }
    if (i == 0) {
        throw UsageError("invalid size: '" + text + "'");
    }
    double n = std::stod(text.substr(0, i));
    std::string unit = text.substr(i);
    for (auto& c : unit) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (!unit.empty() && unit.back() == 'b') {
        unit.pop_back();
    }
    if (!unit.empty() && unit.back() == 'i') {
        unit.pop_back();
    }
    double mult = 1;
    if (unit == "k") {
        mult = 1024.0;
    } else if (unit == "m") {
        mult = 1024.0 * 1024;
    } else if (unit == "g") {
        mult = 1024.0 * 1024 * 1024;
    } else if (unit == "t") {
        mult = 1024.0 * 1024 * 1024 * 1024;
    } else if (!unit.empty()) {
        throw UsageError("invalid size: '" + text + "'");
    }
    return static_cast<std::uint64_t>(n * mult);
}

} // namespace

nlohmann::ordered_json parse_log_opts(const std::vector<std::string>& items) {
    nlohmann::ordered_json config = nlohmann::ordered_json::object();
    for (const auto& item : items) {
        std::size_t eq = item.find('=');
        if (eq == std::string::npos) {
            throw UsageError("invalid key-value pair format in log options: " + item);
        }
        std::string key = item.substr(0, eq);
        if (key != "max-size" && key != "max-file" && key != "compress" && key != "labels" &&
            key != "env" && key != "tag") {
            throw UsageError("unknown log opt '" + key + "' for json-file log driver");
        }
        config[key] = item.substr(eq + 1);
    }
    log_options(config); // checks the values
    return config;
}

LogOptions log_options(const nlohmann::json& c) {
    LogOptions o;
    if (c.contains("max-size")) {
        std::string v = c["max-size"].get<std::string>();
        o.max_size = v == "-1" ? 0 : ram_in_bytes(v);
    }
    if (c.contains("max-file")) {
        std::string v = c["max-file"].get<std::string>();
        if (v.empty() || v.size() > 6 || v.find_first_not_of("0123456789") != std::string::npos) {
            throw UsageError("strconv.Atoi: parsing \"" + v + "\": invalid syntax");
        }
        o.max_file = std::stoi(v);
        if (o.max_file < 1) {
            throw UsageError("max-file cannot be less than 1");
        }
        if (o.max_file > 1 && o.max_size == 0) {
            throw UsageError("max-file cannot be set when max-size is not set");
        }
    }
    return o;
}

} // namespace strata::containers
