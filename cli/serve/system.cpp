// /_ping, /version and /info: what `docker version` and `docker info` ask,
// with the store's counts and the host's facts.
#include "cli/common.hpp"
#include "cli/serve/routes.hpp"
#include "containers/store.hpp"
#include "util/event_log.hpp"
#include "util/fs.hpp"

#include <fstream>
#include <sched.h>
#include <set>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

namespace strata::cli::serve {

namespace {

using nlohmann::ordered_json;

// Go's GOARCH for the machine uname reports (docker version's Arch).
std::string go_arch(const std::string& machine) {
    if (machine == "x86_64") {
        return "amd64";
    }
    if (machine == "aarch64") {
        return "arm64";
    }
    if (machine == "i386" || machine == "i686") {
        return "386";
    }
    if (machine.starts_with("armv")) {
        return "arm";
    }
    return machine;
}

struct utsname host_uname() {
    struct utsname u {};
    ::uname(&u);
    return u;
}

// A key of /etc/os-release, unquoted ("" when missing).
std::string os_release(const std::string& key) {
    std::ifstream in("/etc/os-release");
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with(key + "=")) {
            std::string v = line.substr(key.size() + 1);
            if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) {
                v = v.substr(1, v.size() - 2);
            }
            return v;
        }
    }
    return "";
}

std::string cgroup_version() {
    struct statfs st {};
    if (::statfs("/sys/fs/cgroup", &st) == 0 &&
        static_cast<unsigned long>(st.f_type) == 0x63677270UL) { // CGROUP2_SUPER_MAGIC
        return "2";
    }
    return "1";
}

int cpu_count() {
    // Go's runtime.NumCPU: the CPUs this process may run on.
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0) {
        return CPU_COUNT(&set);
    }
    return static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
}

std::int64_t mem_total() {
    return static_cast<std::int64_t>(::sysconf(_SC_PHYS_PAGES)) *
           static_cast<std::int64_t>(::sysconf(_SC_PAGE_SIZE));
}

std::string host_name() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0) {
        return "";
    }
    return buf;
}

ordered_json version_document() {
    struct utsname u = host_uname();
    std::string arch = go_arch(u.machine);
    ordered_json details = {{"ApiVersion", api::k_api_version},
                            {"Arch", arch},
                            {"Experimental", "false"},
                            {"KernelVersion", u.release},
                            {"MinAPIVersion", api::k_min_api_version},
                            {"Os", "linux"}};
    return {{"Platform", {{"Name", "strata"}}},
            {"Components",
             ordered_json::array(
                 {{{"Name", "Engine"}, {"Version", STRATA_VERSION}, {"Details", details}}})},
            {"Version", STRATA_VERSION},
            {"ApiVersion", api::k_api_version},
            {"MinAPIVersion", api::k_min_api_version},
            {"Os", "linux"},
            {"Arch", arch},
            {"KernelVersion", u.release}};
}

ordered_json info_document(const Context& ctx) {
    std::string root = ctx.store_root();
    int running = 0, paused = 0, stopped = 0, total = 0;
    containers::Store cs(root);
    for (const auto& id : cs.list()) {
        containers::State s;
        try {
            s = cs.load_state(id);
        } catch (const std::exception&) {
            continue; // removed meanwhile
        }
        ++total;
        if (s.status == "paused") {
            ++paused;
        } else if (s.running()) {
            ++running;
        } else {
            ++stopped;
        }
    }
    // Images counted once per ID, as dockerd counts them.
    std::set<std::string> ids;
    snapshot::Store store = open_store(ctx);
    for (const auto& rec : store.images()) {
        try {
            ids.insert(store.load(rec.manifest).id().str());
        } catch (const std::exception&) {
            // A broken entry `strata images` warns about.
        }
    }
    struct utsname u = host_uname();
    bool root_user = ::geteuid() == 0;
    ordered_json security = ordered_json::array({"name=seccomp,profile=default"});
    if (!root_user) {
        security.push_back("name=rootless");
    }
    char exe[4096] = {};
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    std::string self = n > 0 ? std::string(exe, static_cast<std::size_t>(n)) : "strata";
    ordered_json none_commit = {{"ID", ""}, {"Expected", ""}};
    return {{"ID", ""},
            {"Containers", total},
            {"ContainersRunning", running},
            {"ContainersPaused", paused},
            {"ContainersStopped", stopped},
            {"Images", ids.size()},
            // Kernel overlayfs as root; strata-overlay (FUSE) or overlayfs in a
            // user namespace without root (README "Rootless").
            {"Driver", root_user ? "overlay" : "strata-overlay"},
            {"DriverStatus", ordered_json::array()},
            {"Plugins",
             {{"Volume", {"local"}},
              {"Network", {"bridge", "host", "none"}},
              {"Authorization", nullptr},
              {"Log", {"json-file"}}}},
            {"MemoryLimit", true},
            {"SwapLimit", true},
            {"KernelMemory", false},
            {"CpuCfsPeriod", true},
            {"CpuCfsQuota", true},
            {"CPUShares", true},
            {"CPUSet", true},
            {"PidsLimit", true},
            {"IPv4Forwarding", fs::exists("/proc/sys/net/ipv4/ip_forward") &&
                                   fs::read_file("/proc/sys/net/ipv4/ip_forward").starts_with("1")},
            {"Debug", ctx.debug},
            {"OomKillDisable", false},
            {"SystemTime", now_rfc3339()},
            {"LoggingDriver", "json-file"},
            {"CgroupDriver", "cgroupfs"},
            {"CgroupVersion", cgroup_version()},
            {"KernelVersion", u.release},
            {"OperatingSystem", os_release("PRETTY_NAME")},
            {"OSVersion", os_release("VERSION_ID")},
            {"OSType", "linux"},
            {"Architecture", u.machine},
            {"IndexServerAddress", "https://index.docker.io/v1/"},
            {"RegistryConfig",
             {{"AllowNondistributableArtifactsCIDRs", ordered_json::array()},
              {"AllowNondistributableArtifactsHostnames", ordered_json::array()},
              {"InsecureRegistryCIDRs", ordered_json::array()},
              {"IndexConfigs", ordered_json::object()},
              {"Mirrors", ordered_json::array()}}},
            {"NCPU", cpu_count()},
            {"MemTotal", mem_total()},
            {"DockerRootDir", root},
            {"Name", host_name()},
            {"Labels", ordered_json::array()},
            {"ExperimentalBuild", false},
            {"ServerVersion", STRATA_VERSION},
            {"Runtimes", {{"strata", {{"path", self}}}}},
            {"DefaultRuntime", "strata"},
            {"Swarm",
             {{"NodeID", ""},
              {"NodeAddr", ""},
              {"LocalNodeState", "inactive"},
              {"ControlAvailable", false},
              {"Error", ""},
              {"RemoteManagers", nullptr}}},
            {"LiveRestoreEnabled", true}, // containers outlive the server: their monitors own them
            {"Isolation", ""},
            {"InitBinary", "docker-init"},
            {"ContainerdCommit", none_commit},
            {"RuncCommit", none_commit},
            {"InitCommit", none_commit},
            {"SecurityOptions", security},
            {"Warnings", ordered_json::array()}};
}

void ping(api::Request& req, api::Exchange& ex) {
    (void)req;
    ex.respond(200, "text/plain; charset=utf-8", "OK");
}

} // namespace

// GET /events: the store's journal (util/event_log.hpp) as dockerd streams
// its events: one JSON message a line; past ones with `since`, then new
// ones until `until` or the client leaves.
void events_stream(Context& ctx, api::Request& req, api::Exchange& ex) {
    events::EventQuery q;
    std::string since = req.maybe_query("since").value_or("");
    std::string until = req.maybe_query("until").value_or("");
    if (!since.empty()) {
        q.since = events::parse_event_time(since);
    }
    if (!until.empty()) {
        q.until = events::parse_event_time(until);
        if (q.until < std::max<std::int64_t>(q.since, 0)) {
            throw api::HttpError(400, "`since` time (" + since +
                                          ") cannot be after `until` time (" + until + ")");
        }
    }
    q.filter = events::EventFilter(req.query_filters());
    std::string root = ctx.store_root();
    ex.begin_stream(200, "application/json");
    events::read_events(
        root, q, [&](const events::Event& e) { return ex.write_json(e.to_json()); },
        [&] { return ex.client_gone(); });
    ex.finish();
}

void add_system_routes(api::Router& router, Context& ctx) {
    // The API headers every response carries come from api/server.cpp.
    router.add("GET", "/_ping", ping);
    router.add("GET", "/version",
               [](api::Request&, api::Exchange& ex) { ex.respond_json(200, version_document()); });
    router.add("GET", "/info", [&ctx](api::Request&, api::Exchange& ex) {
        ex.respond_json(200, info_document(ctx));
    });
    router.add("GET", "/events",
               [&ctx](api::Request& req, api::Exchange& ex) { events_stream(ctx, req, ex); });
}

} // namespace strata::cli::serve
