#include "cli/run_flags.hpp"

#include "builder/dockerfile/instructions.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <CLI/CLI.hpp>

#include <arpa/inet.h>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <limits.h>
#include <ostream>
#include <sys/stat.h>
#include <unistd.h>

namespace strata::cli {

namespace {

bool valid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        std::size_t n = c < 0x80           ? 0
                        : (c >> 5) == 0x6  ? 1
                        : (c >> 4) == 0xE  ? 2
                        : (c >> 3) == 0x1E ? 3
                                           : 4;
        if (n == 4 || i + n >= s.size() + (n == 0 ? 1 : 0)) {
            if (n != 0) {
                return false;
            }
        }
        for (std::size_t k = 1; k <= n; ++k) {
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) {
                return false;
            }
        }
        i += n + 1;
    }
    return true;
}

bool is_white(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

bool parse_bool(const std::string& flag, const std::string& key, const std::string& v) {
    if (v == "1" || v == "true" || v == "True" || v == "TRUE" || v == "t" || v == "T")
        return true;
    if (v == "0" || v == "false" || v == "False" || v == "FALSE" || v == "f" || v == "F")
        return false;
    throw UsageError(flag + ": invalid value for " + key + ": " + v);
}

// go-units RAMInBytes: "64m" = 64 MiB; b, k, m, g, t, p with optional "b"/"ib".
std::uint64_t ram_in_bytes(const std::string& flag, const std::string& text) {
    std::size_t i = 0;
    while (i < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
        ++i;
    }
    std::string num = text.substr(0, i);
    std::string unit = text.substr(i);
    for (auto& c : unit) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    char* end = nullptr;
    double v = num.empty() ? -1 : std::strtod(num.c_str(), &end);
    if (num.empty() || end != num.c_str() + num.size() || v < 0) {
        throw UsageError(flag + ": invalid size: '" + text + "'");
    }
    if (unit.size() > 1 && (unit.substr(1) == "b" || unit.substr(1) == "ib")) {
        unit = unit.substr(0, 1);
    }
    static const std::string units = "bkmgtp";
    std::size_t u = unit.empty() ? 0 : units.find(unit);
    if (unit.size() > 1 || u == std::string::npos) {
        throw UsageError(flag + ": invalid size: '" + text + "'");
    }
    for (std::size_t k = 0; k < u; ++k) {
        v *= 1024;
    }
    return static_cast<std::uint64_t>(v);
}

} // namespace

std::vector<std::string>
parse_env_text(std::string_view text, const std::string& path,
               const std::function<std::optional<std::string>(const std::string&)>& lookup) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    int line_no = 0;
    while (pos < text.size()) {
        std::size_t nl = text.find('\n', pos);
        std::string line(
            text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos));
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        ++line_no;
        if (!line.empty() && line.back() == '\r') {
            line.pop_back(); // bufio.ScanLines drops a trailing \r
        }
        if (line_no == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) {
            line.erase(0, 3);
        }
        if (!valid_utf8(line)) {
            throw UsageError("--env-file " + path + ": invalid UTF-8 bytes at line " +
                             std::to_string(line_no));
        }
        std::size_t k = 0;
        while (k < line.size() && is_white(line[k])) {
            ++k;
        }
        line.erase(0, k);
        if (line.empty() || line[0] == '#') {
            continue;
        }
        auto eq = line.find('=');
        std::string name = line.substr(0, eq);
        if (name.empty()) {
            throw UsageError("--env-file " + path + ":" + std::to_string(line_no) +
                             ": no variable name on line '" + line + "'");
        }
        for (char c : name) {
            if (is_white(c)) {
                throw UsageError("--env-file " + path + ":" + std::to_string(line_no) +
                                 ": variable '" + name + "' contains whitespaces");
            }
        }
        if (eq != std::string::npos) {
            out.push_back(line);
        } else if (auto v = lookup(name)) {
            out.push_back(name + "=" + *v);
        }
    }
    return out;
}

std::vector<std::string>
parse_env_file(const std::string& path,
               const std::function<std::optional<std::string>(const std::string&)>& lookup) {
    std::string text;
    try {
        text = fs::read_file(path, 64 << 20);
    } catch (const Error& e) {
        throw UsageError(std::string("--env-file: ") + e.what());
    }
    return parse_env_text(text, path, lookup);
}

runner::Mount parse_mount(std::string_view value) {
    const std::string flag = "--mount " + std::string(value);
    std::string type = "volume"; // docker's default
    std::string source, target;
    std::optional<bool> read_only;
    std::optional<std::uint64_t> tmpfs_size;
    std::optional<unsigned long> tmpfs_mode;
    std::size_t pos = 0;
    while (pos <= value.size()) {
        std::size_t comma = value.find(',', pos);
        std::string field(value.substr(pos, comma == std::string_view::npos ? std::string_view::npos
                                                                            : comma - pos));
        pos = comma == std::string_view::npos ? value.size() + 1 : comma + 1;
        if (field.empty()) {
            continue;
        }
        auto eq = field.find('=');
        std::string key = field.substr(0, eq);
        for (auto& c : key) {
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        if (eq == std::string::npos) {
            if (key == "readonly" || key == "ro") {
                read_only = true;
                continue;
            }
            throw UsageError(flag + ": invalid field '" + field + "' must be a key=value pair");
        }
        std::string v = field.substr(eq + 1);
        if (key == "type") {
            type = v;
        } else if (key == "source" || key == "src") {
            source = v;
        } else if (key == "target" || key == "dst" || key == "destination") {
            target = v;
        } else if (key == "readonly" || key == "ro") {
            read_only = parse_bool(flag, key, v);
        } else if (key == "tmpfs-size") {
            tmpfs_size = ram_in_bytes(flag, v);
        } else if (key == "tmpfs-mode") {
            char* end = nullptr;
            errno = 0;
            unsigned long m = std::strtoul(v.c_str(), &end, 8);
            if (v.empty() || *end != '\0' || errno != 0 || m > 07777) {
                throw UsageError(flag + ": invalid value for tmpfs-mode: " + v +
                                 " (an octal mode)");
            }
            tmpfs_mode = m;
        } else if (key == "bind-propagation") {
            if (v != "rprivate") {
                throw UsageError(flag + ": bind-propagation=" + v +
                                 " is not supported (strata's binds are rprivate)");
            }
        } else {
            throw UsageError(flag + ": unknown option '" + key +
                             "' (strata takes type, source, target, "
                             "readonly, tmpfs-size, tmpfs-mode)");
        }
    }
    if (target.empty()) {
        throw UsageError(flag + ": target is required");
    }
    if (target[0] != '/') {
        throw UsageError(flag + ": target must be an absolute path, not \"" + target + "\"");
    }
    runner::Mount m;
    m.target = target;
    m.read_only = read_only.value_or(false);
    if (type == "bind") {
        if (tmpfs_size || tmpfs_mode) {
            throw UsageError(flag + ": tmpfs options are for type=tmpfs");
        }
        if (source.empty()) {
            throw UsageError(flag + ": type=bind needs a source");
        }
        if (source[0] != '/') {
            char cwd[PATH_MAX];
            if (::getcwd(cwd, sizeof cwd) == nullptr) {
                throw_errno("getcwd");
            }
            source = std::string(cwd) + "/" + source;
        }
        struct stat st {};
        if (::stat(source.c_str(), &st) != 0) {
            throw UsageError(flag + ": bind source path does not exist: " + source);
        }
        m.type = runner::Mount::Type::bind;
        m.source = source;
        return m;
    }
    if (type == "tmpfs") {
        if (!source.empty()) {
            throw UsageError(flag + ": type=tmpfs takes no source");
        }
        m.type = runner::Mount::Type::tmpfs;
        std::string opts;
        if (tmpfs_size) {
            opts += "size=" + std::to_string(*tmpfs_size);
        }
        if (tmpfs_mode) {
            char b[16];
            std::snprintf(b, sizeof b, "%lo", *tmpfs_mode);
            opts += std::string(opts.empty() ? "" : ",") + "mode=" + b;
        }
        m.options = opts;
        return m;
    }
    if (type == "volume") {
        throw UsageError(flag + ": type=volume (docker's default type): strata has no volumes yet; "
                                "use type=bind with a host directory, or type=tmpfs");
    }
    throw UsageError(flag + ": type=" + type + " is not supported (bind or tmpfs)");
}

std::pair<std::string, std::string> parse_add_host(std::string_view value) {
    const std::string flag = "--add-host " + std::string(value);
    std::string v(value);
    auto sep = v.find('=');
    if (sep == std::string::npos) {
        sep = v.find(':');
    }
    if (sep == std::string::npos) {
        throw UsageError(flag + ": expected NAME:IP");
    }
    std::string name = v.substr(0, sep);
    std::string ip = v.substr(sep + 1);
    if (name.empty()) {
        throw UsageError(flag + ": the host name is empty");
    }
    if (ip == "host-gateway") {
        throw UsageError(flag +
                         ": host-gateway needs a container network with a gateway to the host; "
                         "strata run's network is none or host (with --network host, the host "
                         "is 127.0.0.1)");
    }
    if (ip.size() > 2 && ip.front() == '[' && ip.back() == ']') {
        ip = ip.substr(1, ip.size() - 2);
    }
    unsigned char buf[16];
    if (::inet_pton(AF_INET, ip.c_str(), buf) != 1 && ::inet_pton(AF_INET6, ip.c_str(), buf) != 1) {
        throw UsageError(flag + ": invalid IP address \"" + ip + "\"");
    }
    return {name, ip};
}

std::int64_t parse_memory_bytes(const std::string& flag, const std::string& text) {
    std::uint64_t v = ram_in_bytes(flag, text);
    if (v > static_cast<std::uint64_t>(INT64_MAX)) {
        throw UsageError(flag + ": invalid size: '" + text + "'");
    }
    return static_cast<std::int64_t>(v);
}

std::int64_t parse_memory_swap(const std::string& flag, const std::string& text) {
    if (text == "-1") {
        return -1;
    }
    return parse_memory_bytes(flag, text);
}

std::int64_t parse_nano_cpus(const std::string& flag, const std::string& text) {
    // docker's NanoCPUs: a rational number times 1e9 that must be whole.
    std::size_t i = 0;
    bool neg = !text.empty() && (text[0] == '-' || text[0] == '+');
    if (neg) {
        neg = text[0] == '-';
        ++i;
    }
    std::string whole, frac;
    bool dot = false;
    for (; i < text.size(); ++i) {
        char c = text[i];
        if (c == '.' && !dot) {
            dot = true;
        } else if (std::isdigit(static_cast<unsigned char>(c))) {
            (dot ? frac : whole) += c;
        } else {
            whole.clear();
            frac.clear();
            break;
        }
    }
    if (i != text.size() || (whole.empty() && frac.empty())) {
        throw UsageError("invalid argument \"" + text + "\" for \"" + flag +
                         "\" flag: failed to parse " + text + " as a rational number");
    }
    while (frac.size() > 9 && frac.back() == '0') {
        frac.pop_back();
    }
    if (frac.size() > 9) {
        throw UsageError("invalid argument \"" + text + "\" for \"" + flag +
                         "\" flag: value is too precise");
    }
    whole.erase(0, whole.find_first_not_of('0'));
    if (whole.size() > 9) {
        throw UsageError("invalid argument \"" + text + "\" for \"" + flag +
                         "\" flag: value is too large");
    }
    frac.resize(9, '0');
    std::int64_t nano = (whole.empty() ? 0 : std::stoll(whole)) * 1000000000LL + std::stoll(frac);
    return neg ? -nano : nano;
}

void add_resource_flags(CLI::App* cmd, runner::Resources& r) {
    auto bytes = [cmd](const char* names, const char* flag, std::int64_t& out, const char* help) {
        cmd->add_option_function<std::string>(
            names, [flag, &out](const std::string& v) { out = parse_memory_bytes(flag, v); }, help);
    };
    bytes("-m,--memory", "--memory", r.memory, "Memory limit (e.g. 64m, 1g)");
    cmd->add_option_function<std::string>(
        "--memory-swap",
        [&r](const std::string& v) { r.memory_swap = parse_memory_swap("--memory-swap", v); },
        "Swap limit equal to memory plus swap: '-1' to enable unlimited swap");
    bytes("--memory-reservation", "--memory-reservation", r.memory_reservation,
          "Memory soft limit");
    cmd->add_option_function<std::string>(
        "--cpus", [&r](const std::string& v) { r.nano_cpus = parse_nano_cpus("--cpus", v); },
        "Number of CPUs (e.g. 1.5)");
    cmd->add_option("-c,--cpu-shares", r.cpu_shares, "CPU shares (relative weight)");
    cmd->add_option("--cpuset-cpus", r.cpuset_cpus, "CPUs in which to allow execution (0-3, 0,1)");
    cmd->add_option("--cpuset-mems", r.cpuset_mems, "MEMs in which to allow execution (0-3, 0,1)");
    cmd->add_option_function<std::int64_t>(
        "--pids-limit", [&r](std::int64_t v) { r.pids_limit = v > 0 ? v : 0; },
        "Tune container pids limit (set -1 for unlimited)");
    cmd->add_option("--blkio-weight", r.blkio_weight,
                    "Block IO (relative weight), between 10 and 1000, or 0 to disable");
    cmd->add_flag("--oom-kill-disable", r.oom_kill_disable, "Disable OOM Killer");
}

runner::Resources checked_resources(const runner::Resources& r, std::ostream& warn) {
    runner::Resources out = r;
    if (!out.any()) {
        return out;
    }
    for (const auto& w : runner::verify_resources(out, runner::host_support())) {
        warn << "WARNING: " << w << "\n";
    }
    return out;
}

void resources_host_config(const runner::Resources& r, nlohmann::ordered_json& host) {
    host["CpuShares"] = r.cpu_shares;
    host["Memory"] = r.memory;
    host["NanoCpus"] = r.nano_cpus;
    host["BlkioWeight"] = r.blkio_weight;
    host["CpuPeriod"] = 0;
    host["CpuQuota"] = 0;
    host["CpusetCpus"] = r.cpuset_cpus;
    host["CpusetMems"] = r.cpuset_mems;
    host["MemoryReservation"] = r.memory_reservation;
    host["MemorySwap"] = r.memory_swap;
    host["OomKillDisable"] = r.oom_kill_disable;
    host["PidsLimit"] =
        r.pids_limit > 0 ? nlohmann::ordered_json(r.pids_limit) : nlohmann::ordered_json(nullptr);
}

void add_health_flags(CLI::App* cmd, HealthFlags& f) {
    cmd->add_option("--health-cmd", f.cmd, "Command to run to check health");
    cmd->add_option("--health-interval", f.interval,
                    "Time between running the check (ms|s|m|h) (default 0s)");
    cmd->add_option("--health-timeout", f.timeout,
                    "Maximum time to allow one check to run (ms|s|m|h) (default 0s)");
    cmd->add_option("--health-start-period", f.start_period,
                    "Start period for the container to initialize before starting health-retries "
                    "countdown (ms|s|m|h) (default 0s)");
    cmd->add_option(
        "--health-start-interval", f.start_interval,
        "Time between running the check during the start period (ms|s|m|h) (default 0s)");
    cmd->add_option("--health-retries", f.retries,
                    "Consecutive failures needed to report unhealthy");
    cmd->add_flag("--no-healthcheck", f.none, "Disable any container-specified HEALTHCHECK");
}

std::optional<formats::Healthcheck> HealthFlags::healthcheck() const {
    auto duration = [](const std::string& flag, const std::string& text) -> std::int64_t {
        if (text.empty()) {
            return 0;
        }
        std::int64_t ns = 0;
        try {
            ns = dockerfile::parse_go_duration(text);
        } catch (const Error& e) {
            throw UsageError("invalid argument \"" + text + "\" for \"" + flag +
                             "\" flag: " + e.what());
        }
        if (ns < 0) {
            throw UsageError(flag + " cannot be negative");
        }
        return ns;
    };
    formats::Healthcheck h;
    h.interval = duration("--health-interval", interval);
    h.timeout = duration("--health-timeout", timeout);
    h.start_period = duration("--health-start-period", start_period);
    h.start_interval = duration("--health-start-interval", start_interval);
    if (retries < 0) {
        throw UsageError("--health-retries cannot be negative");
    }
    h.retries = retries;
    const bool settings = !cmd.empty() || h.interval != 0 || h.timeout != 0 ||
                          h.start_period != 0 || h.start_interval != 0 || h.retries != 0;
    if (none) {
        if (settings) {
            throw UsageError("--no-healthcheck conflicts with --health-* options");
        }
        return formats::Healthcheck{{"NONE"}};
    }
    if (!settings) {
        return std::nullopt;
    }
    if (!cmd.empty()) {
        h.test = {"CMD-SHELL", cmd};
    }
    return h;
}

} // namespace strata::cli
