#include "cli/run_flags.hpp"

#include "builder/dockerfile/instructions.hpp"
#include "containers/names.hpp"
#include "containers/store.hpp"
#include "runner/options.hpp"
#include "snapshot/stack_order.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/root.hpp"
#include "util/tempdir.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
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

MountFlag parse_mount(std::string_view value) {
    const std::string flag = "--mount " + std::string(value);
    std::string type = "volume"; // docker's default
    std::string source, target;
    std::optional<bool> read_only;
    std::optional<std::uint64_t> tmpfs_size;
    std::optional<unsigned long> tmpfs_mode;
    containers::VolumeRequest vol; // volume-* fields
    bool volume_fields = false;
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
            if (key == "volume-nocopy") {
                vol.nocopy = true;
                volume_fields = true;
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
        } else if (key == "volume-nocopy") {
            vol.nocopy = parse_bool(flag, key, v);
            volume_fields = true;
        } else if (key == "volume-opt" || key == "volume-label") {
            // K=V (the value's own '=' splits it); repeated for several.
            auto veq = v.find('=');
            auto& m = key == "volume-opt" ? vol.driver_options : vol.labels;
            if (!m) {
                m = containers::StringMap{};
            }
            (*m)[v.substr(0, veq)] = veq == std::string::npos ? "" : v.substr(veq + 1);
            volume_fields = true;
        } else if (key == "volume-driver") {
            vol.driver = v;
            volume_fields = true;
        } else if (key == "bind-propagation") {
            if (v != "rprivate") {
                throw UsageError(flag + ": bind-propagation=" + v +
                                 " is not supported (strata's binds are rprivate)");
            }
        } else {
            throw UsageError(flag + ": unknown option '" + key +
                             "' (strata takes type, source, target, readonly, tmpfs-size, "
                             "tmpfs-mode, volume-nocopy, volume-opt, volume-label, volume-driver)");
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
    if (volume_fields && type != "volume") {
        throw UsageError(flag + ": volume options are for type=volume");
    }
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
        if (tmpfs_size || tmpfs_mode) {
            throw UsageError(flag + ": tmpfs options are for type=tmpfs");
        }
        if (!source.empty()) {
            containers::check_volume_name(source);
        }
        vol.name = source; // empty: an anonymous volume
        vol.target = target;
        vol.read_only = m.read_only;
        return vol;
    }
    throw UsageError(flag + ": type=" + type + " is not supported (bind, volume or tmpfs)");
}

MountFlag parse_volume_flag(std::string_view value) {
    const std::string flag = "--volume " + std::string(value);
    std::vector<std::string> parts;
    std::size_t pos = 0;
    while (true) {
        std::size_t c = value.find(':', pos);
        parts.emplace_back(
            value.substr(pos, c == std::string_view::npos ? std::string_view::npos : c - pos));
        if (c == std::string_view::npos) {
            break;
        }
        pos = c + 1;
    }
    if (parts.size() > 3 || parts.front().empty()) {
        throw UsageError("invalid spec: " + std::string(value) + ": too many colons");
    }
    if (parts.size() == 1) {
        // DST alone: an anonymous volume.
        if (parts[0][0] != '/') {
            throw UsageError("invalid volume specification: '" + std::string(value) +
                             "': invalid mount config for type \"volume\": invalid mount path: '" +
                             parts[0] + "' mount path must be absolute");
        }
        containers::VolumeRequest r;
        r.target = parts[0];
        return r;
    }
    std::string source = parts[0];
    if (source == "." || source == ".." || source.rfind("./", 0) == 0 ||
        source.rfind("../", 0) == 0) {
        source = fs::absolute(source); // docker's CLI: a relative host path
    }
    if (source[0] == '/') {
        std::string rebuilt = source;
        for (std::size_t i = 1; i < parts.size(); ++i) {
            rebuilt += ":" + parts[i];
        }
        return runner::parse_volume(rebuilt);
    }
    containers::check_volume_name(source);
    containers::VolumeRequest r;
    r.name = source;
    r.target = parts[1];
    if (r.target.empty() || r.target[0] != '/') {
        throw UsageError("invalid volume specification: '" + std::string(value) +
                         "': invalid mount config for type \"volume\": invalid mount path: '" +
                         r.target + "' mount path must be absolute");
    }
    if (parts.size() == 3) {
        std::string_view opts = parts[2];
        std::size_t i = 0;
        while (i <= opts.size()) {
            std::size_t j = std::min(opts.find(',', i), opts.size());
            std::string o(opts.substr(i, j - i));
            if (o == "ro") {
                r.read_only = true;
            } else if (o == "rw") {
                r.read_only = false;
            } else if (o == "nocopy") {
                r.nocopy = true;
            } else if (o == "z" || o == "Z" || o.empty()) {
                // SELinux relabelling: strata applies no SELinux labels
            } else {
                throw UsageError("invalid mode: " + o);
            }
            i = j + 1;
        }
    }
    (void)flag;
    return r;
}

namespace {

// Docker's order of mounts: by the number of components of the target, so
// that a mount below another comes after it.
std::size_t depth(const std::string& target) {
    std::string c = clean_path(target);
    return c == "/" ? 0 : static_cast<std::size_t>(std::count(c.begin(), c.end(), '/'));
}

} // namespace

RunVolumes::RunVolumes(const snapshot::Store& store, const formats::ImageConfig& image,
                       const std::vector<std::string>& volume_flags,
                       const std::vector<std::string>& mount_flags, bool remove_anonymous,
                       runner::RunSpec& spec, const std::string& container_id)
    : m_store(store),
      m_volumes(m_store, container_id.empty() ? containers::new_id() : container_id),
      m_image_volumes(image.config.volumes), m_remove_anonymous(remove_anonymous) {
    std::vector<containers::VolumeRequest> requests;
    std::set<std::string> targets;
    auto add = [&](const MountFlag& f) {
        std::string target = std::visit([](const auto& m) { return m.target; }, f);
        if (!targets.insert(clean_path(target)).second) {
            throw UsageError("Duplicate mount point: " + clean_path(target));
        }
        if (const auto* m = std::get_if<runner::Mount>(&f)) {
            spec.mounts.push_back(*m);
        } else {
            requests.push_back(std::get<containers::VolumeRequest>(f));
        }
    };
    for (const auto& v : volume_flags) {
        add(parse_volume_flag(v));
    }
    for (const auto& m : mount_flags) {
        add(parse_mount(m));
    }
    m_volumes.attach(requests);
}

RunVolumes::~RunVolumes() {
    if (m_remove_anonymous) {
        m_volumes.remove_anonymous();
    }
}

std::vector<containers::VolumeRequest>
RunVolumes::image_requests(const runner::RunSpec& spec) const {
    // The image's VOLUME entries that no mount covers get anonymous volumes.
    std::set<std::string> covered;
    for (const auto& m : spec.mounts) {
        covered.insert(clean_path(m.target));
    }
    for (const auto& a : m_volumes.attached()) {
        covered.insert(clean_path(a.request.target));
    }
    std::vector<containers::VolumeRequest> requests;
    for (const auto& target : m_image_volumes) {
        std::string t = clean_path(target[0] == '/' ? target : "/" + target);
        if (covered.insert(t).second) {
            containers::VolumeRequest r;
            r.target = t;
            requests.push_back(r);
        }
    }
    return requests;
}

void RunVolumes::sort_mounts(runner::RunSpec& spec) {
    std::stable_sort(spec.mounts.begin(), spec.mounts.end(),
                     [](const runner::Mount& a, const runner::Mount& b) {
                         return depth(a.target) < depth(b.target);
                     });
}

void RunVolumes::prepare(runner::RunSpec& spec) {
    m_volumes.attach(image_requests(spec));
    m_volumes.mount_driver_options();
    m_volumes.copy_up(spec.rootfs);
    for (auto& m : m_volumes.mounts()) {
        spec.mounts.push_back(std::move(m));
    }
    sort_mounts(spec);
}

void RunVolumes::prepare_record(runner::RunSpec& spec, snapshot::Store& store,
                                const snapshot::Image& img, snapshot::LazyMode lazy) {
    m_volumes.attach(image_requests(spec));
    std::vector<runner::Mount> mounts = m_volumes.record_mounts(); // refuses what it cannot keep
    // The image's files are needed only when a volume may be filled from
    // them; then they are read as the monitor will give them to the
    // container: served lazily from the compressed layers (nothing
    // unpacked) when the image would start so, else from its snapshots.
    const auto& attached = m_volumes.attached();
    bool copy = std::any_of(attached.begin(), attached.end(),
                            [](const auto& a) { return !a.request.nocopy; });
    TempDir scratch(store.tmp_dir(), "volume-copy-");
    if (copy && snapshot::choose_lazy(store, img, lazy)) {
        m_volumes.copy_up_from_lazy(
            layerfs::LazyImage{store.root(), img.descriptor.digest.str(), false}, scratch.path());
    } else {
        std::vector<std::string> lowers =
            copy ? snapshot::top_first(store.ensure_snapshots(img)) : std::vector<std::string>{};
        m_volumes.copy_up_from_layers(lowers, scratch.path());
    }
    for (auto& m : mounts) {
        spec.mounts.push_back(std::move(m));
    }
    sort_mounts(spec);
}

void RunVolumes::add_volumes_from(const std::vector<std::string>& from, runner::RunSpec& spec) {
    std::set<std::string> covered;
    for (const auto& m : spec.mounts) {
        covered.insert(clean_path(m.target));
    }
    for (const auto& a : m_volumes.attached()) {
        covered.insert(clean_path(a.request.target));
    }
    std::vector<containers::VolumeRequest> requests;
    for (const auto& item : from) {
        std::string name = item;
        std::optional<bool> read_only;
        if (auto colon = item.rfind(':'); colon != std::string::npos) {
            std::string mode = item.substr(colon + 1);
            if (mode != "ro" && mode != "rw") {
                throw UsageError("invalid mode for volumes-from: " + mode);
            }
            read_only = mode == "ro";
            name = item.substr(0, colon);
        }
        std::string root = m_store.dir().substr(0, m_store.dir().rfind('/'));
        containers::Store cs(root);
        std::string id = cs.resolve(name);
        nlohmann::ordered_json config = cs.load_config(id);
        if (!config.contains("Mounts") || !config["Mounts"].is_array()) {
            continue;
        }
        for (const auto& m : config["Mounts"]) {
            std::string dest = m.value("Destination", "");
            std::string type = m.value("Type", "");
            if (dest.empty() || !covered.insert(clean_path(dest)).second) {
                continue;
            }
            bool ro = read_only.value_or(!m.value("RW", true));
            if (type == "volume") {
                containers::VolumeRequest r;
                r.name = m.value("Name", "");
                r.target = dest;
                r.read_only = ro;
                r.nocopy = true; // the volume is the other container's: no copy-up into it
                requests.push_back(r);
            } else if (type == "bind") {
                runner::Mount b;
                b.type = runner::Mount::Type::bind;
                b.source = m.value("Source", "");
                b.target = dest;
                b.read_only = ro;
                spec.mounts.push_back(b);
            }
        }
        m_volumes_from.push_back(item);
    }
    m_volumes.attach(requests);
}

void RunVolumes::record(nlohmann::ordered_json& config) const {
    // Mounts: the volumes as Docker lists them, in place of the bind
    // entries of their _data (or of their driver's own mounts).
    nlohmann::ordered_json points = m_volumes.mount_points();
    std::set<std::string> targets;
    for (const auto& p : points) {
        targets.insert(clean_path(p["Destination"].get<std::string>()));
    }
    nlohmann::ordered_json mounts = nlohmann::ordered_json::array();
    if (config.contains("Mounts") && config["Mounts"].is_array()) {
        for (const auto& m : config["Mounts"]) {
            if (!m.contains("Destination") ||
                targets.count(clean_path(m["Destination"].get<std::string>())) == 0) {
                mounts.push_back(m);
            }
        }
    }
    for (const auto& p : points) {
        mounts.push_back(p);
    }
    config["Mounts"] = mounts;
    if (!m_volumes_from.empty() && config.contains("HostConfig")) {
        config["HostConfig"]["VolumesFrom"] = m_volumes_from;
    }
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
        return {name, ip}; // the gateway of the container's network, at start
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

std::vector<network::PortBinding> PublishFlags::bindings() const {
    std::vector<network::PortBinding> out;
    for (const auto& p : publish) {
        for (const auto& b : network::ports::parse_publish(p)) {
            out.push_back(b);
        }
    }
    return out;
}

std::vector<network::PortBinding>
PublishFlags::for_start(const std::set<std::string>& exposed) const {
    return network::ports::bindings_for_start(network::ports::port_bindings_json(bindings()),
                                              publish_all, {exposed.begin(), exposed.end()});
}

void PublishFlags::record(nlohmann::ordered_json& config) const {
    auto b = bindings();
    auto& host = config["HostConfig"];
    host["PortBindings"] = network::ports::port_bindings_json(b);
    host["PublishAllPorts"] = publish_all;
    auto& cfg = config["Config"];
    std::vector<std::string> exposed;
    if (cfg.contains("ExposedPorts") && cfg["ExposedPorts"].is_object()) {
        for (const auto& [key, value] : cfg["ExposedPorts"].items()) {
            exposed.push_back(key);
        }
    }
    exposed = network::ports::exposed_with(exposed, b);
    if (!exposed.empty()) {
        nlohmann::ordered_json ports = nlohmann::ordered_json::object();
        for (const auto& key : exposed) {
            ports[key] = nlohmann::ordered_json::object();
        }
        cfg["ExposedPorts"] = ports;
    }
}

void add_publish_flags(CLI::App* cmd, PublishFlags& flags) {
    cmd->add_option("-p,--publish", flags.publish,
                    "Publish a container's port(s) to the host [IP:][HOSTPORT:]PORT[/PROTO]")
        ->allow_extra_args(false);
    cmd->add_flag("-P,--publish-all", flags.publish_all,
                  "Publish all exposed ports to free host ports");
}

} // namespace strata::cli
