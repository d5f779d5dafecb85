// /containers/...: create, start, stop, kill, restart, wait, ps, inspect,
// logs and rm, through what strata's container commands call
// (cli/run_options.hpp, cli/container_cli.hpp, containers/monitor.hpp).
#include "cli/common.hpp"
#include "cli/container_cli.hpp"
#include "cli/run_options.hpp"
#include "cli/serve/routes.hpp"
#include "containers/monitor.hpp"
#include "containers/names.hpp"
#include "containers/network.hpp"
#include "containers/signal.hpp"
#include "containers/store.hpp"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>
#include <thread>

namespace strata::cli::serve {

namespace {

using nlohmann::json;
using nlohmann::ordered_json;

std::vector<std::string> strings(const json& j, const std::string& what) {
    std::vector<std::string> out;
    if (j.is_null()) {
        return out;
    }
    if (j.is_string()) { // Docker accepts a string for Cmd/Entrypoint too
        out.push_back(j.get<std::string>());
        return out;
    }
    if (!j.is_array()) {
        throw api::HttpError(400, what + ": expected a list of strings");
    }
    for (const auto& v : j) {
        if (!v.is_string()) {
            throw api::HttpError(400, what + ": expected a list of strings");
        }
        out.push_back(v.get<std::string>());
    }
    return out;
}

bool set_or_default(const json& j, const char* key) {
    if (!j.is_object() || !j.contains(key)) {
        return false;
    }
    const json& v = j[key];
    return !(v.is_null() || (v.is_boolean() && !v.get<bool>()) ||
             (v.is_number() && v.get<double>() == 0) ||
             (v.is_string() && v.get<std::string>().empty()) || (v.is_array() && v.empty()) ||
             (v.is_object() && v.empty()));
}

// One of HostConfig.Mounts as the --mount value docker's CLI made it from.
std::string mount_flag(const json& m) {
    if (!m.is_object()) {
        throw api::HttpError(400, "HostConfig.Mounts: expected objects");
    }
    for (const auto& [k, v] : m.items()) {
        static const std::set<std::string> known = {"Type",         "Source",      "Target",
                                                    "ReadOnly",     "BindOptions", "VolumeOptions",
                                                    "TmpfsOptions", "Consistency"};
        if (known.count(k) == 0 && set_or_default(m, k.c_str())) {
            (void)v;
            throw api::HttpError(400, "HostConfig.Mounts." + k + " is not handled by strata serve");
        }
    }
    std::string type = m.value("Type", std::string("volume"));
    std::string out = "type=" + type;
    if (std::string src = m.value("Source", std::string()); !src.empty()) {
        out += ",source=" + src;
    }
    out += ",target=" + m.value("Target", std::string());
    if (m.value("ReadOnly", false)) {
        out += ",readonly";
    }
    if (std::string c = m.value("Consistency", std::string()); !c.empty() && c != "default") {
        out += ",consistency=" + c;
    }
    if (m.contains("BindOptions") && m["BindOptions"].is_object()) {
        for (const auto& [k, v] : m["BindOptions"].items()) {
            if (k == "Propagation" && v.is_string() && !v.get<std::string>().empty()) {
                out += ",bind-propagation=" + v.get<std::string>();
            } else if (set_or_default(m["BindOptions"], k.c_str())) {
                throw api::HttpError(400, "HostConfig.Mounts.BindOptions." + k +
                                              " is not handled by strata serve");
            }
        }
    }
    if (m.contains("VolumeOptions") && m["VolumeOptions"].is_object()) {
        const json& vo = m["VolumeOptions"];
        if (vo.value("NoCopy", false)) {
            out += ",volume-nocopy";
        }
        if (vo.contains("Labels") && vo["Labels"].is_object()) {
            for (const auto& [k, v] : vo["Labels"].items()) {
                out += ",volume-label=" + k + "=" + v.get<std::string>();
            }
        }
        if (vo.contains("DriverConfig") && vo["DriverConfig"].is_object()) {
            const json& dc = vo["DriverConfig"];
            if (std::string d = dc.value("Name", std::string()); !d.empty()) {
                out += ",volume-driver=" + d;
            }
            if (dc.contains("Options") && dc["Options"].is_object()) {
                for (const auto& [k, v] : dc["Options"].items()) {
                    out += ",volume-opt=" + k + "=" + v.get<std::string>();
                }
            }
        }
    }
    if (m.contains("TmpfsOptions") && m["TmpfsOptions"].is_object()) {
        const json& to = m["TmpfsOptions"];
        if (to.contains("SizeBytes") && to["SizeBytes"].is_number_integer() &&
            to["SizeBytes"].get<std::int64_t>() > 0) {
            out += ",tmpfs-size=" + std::to_string(to["SizeBytes"].get<std::int64_t>());
        }
        if (to.contains("Mode") && to["Mode"].is_number_integer() && to["Mode"].get<int>() != 0) {
            char mode[16];
            std::snprintf(mode, sizeof mode, "%o", to["Mode"].get<int>());
            out += std::string(",tmpfs-mode=") + mode;
        }
    }
    return out;
}

// Docker's create body as `strata create`'s options. Fields strata has no
// flag for are refused when set (400 naming them), never dropped.
RunOptions run_options(const json& body, const std::string& name) {
    if (!body.is_object()) {
        throw api::HttpError(400, "the container's configuration is not a JSON object");
    }
    const json& hc = body.contains("HostConfig") && body["HostConfig"].is_object()
                         ? body["HostConfig"]
                         : json::object();
    for (const char* key :
         {"Devices", "Links", "VolumesFrom", "Sysctls", "Tmpfs", "Ulimits", "DeviceRequests"}) {
        if (set_or_default(hc, key)) {
            throw api::HttpError(400, std::string("HostConfig.") + key +
                                          " is not handled by strata serve yet");
        }
    }
    for (const char* key : {"Healthcheck", "OnBuild", "Shell"}) {
        if (set_or_default(body, key)) {
            throw api::HttpError(400, std::string(key) + " is not handled by strata serve yet");
        }
    }
    RunOptions o;
    o.detach = true;
    o.name = name;
    o.image = body.value("Image", std::string());
    if (o.image.empty()) {
        throw api::HttpError(400, "No command specified"); // dockerd's words without an image
    }
    o.command = strings(body.value("Cmd", json()), "Cmd");
    if (body.contains("Entrypoint") && !body["Entrypoint"].is_null()) {
        auto ep = strings(body["Entrypoint"], "Entrypoint");
        o.entrypoint = ep.empty() ? std::string() : ep.front();
        if (ep.size() > 1) {
            o.command.insert(o.command.begin(), ep.begin() + 1, ep.end());
        }
    }
    o.env = strings(body.value("Env", json()), "Env");
    o.workdir = body.value("WorkingDir", std::string());
    o.user = body.value("User", std::string());
    o.hostname = body.value("Hostname", std::string());
    o.tty = body.value("Tty", false);
    o.interactive = body.value("OpenStdin", false);
    o.stop_signal = body.value("StopSignal", std::string());
    if (body.contains("StopTimeout") && body["StopTimeout"].is_number_integer()) {
        o.stop_timeout = body["StopTimeout"].get<int>();
    }
    if (body.contains("Labels") && body["Labels"].is_object()) {
        for (const auto& [k, v] : body["Labels"].items()) {
            o.labels.push_back(k + "=" + (v.is_string() ? v.get<std::string>() : v.dump()));
        }
    }
    o.rm = hc.value("AutoRemove", false);
    o.volumes = strings(hc.value("Binds", json()), "HostConfig.Binds");
    // -v /data: an anonymous volume, in Config.Volumes. Clients (docker-py,
    // compose) list there the destinations of their binds and mounts too:
    // those are not anonymous volumes (dockerd merges them).
    if (body.contains("Volumes") && body["Volumes"].is_object()) {
        std::set<std::string> taken;
        for (const auto& b : o.volumes) {
            auto first = b.find(':');
            if (first != std::string::npos) {
                taken.insert(b.substr(first + 1, b.find(':', first + 1) - first - 1));
            }
        }
        if (hc.contains("Mounts") && hc["Mounts"].is_array()) {
            for (const auto& m : hc["Mounts"]) {
                if (m.is_object()) {
                    taken.insert(m.value("Target", std::string()));
                }
            }
        }
        for (const auto& [dst, _] : body["Volumes"].items()) {
            if (taken.count(dst) == 0) {
                o.volumes.push_back(dst);
            }
        }
    }
    // -p as PortBindings {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}
    // back into -p values; -P is PublishAllPorts.
    if (hc.contains("PortBindings") && hc["PortBindings"].is_object()) {
        for (const auto& [port, bindings] : hc["PortBindings"].items()) {
            if (!bindings.is_array() || bindings.empty()) {
                o.publish.publish.push_back(port);
                continue;
            }
            for (const auto& b : bindings) {
                std::string ip = b.value("HostIp", std::string());
                std::string host_port = b.value("HostPort", std::string());
                std::string spec =
                    ip.empty() ? ""
                               : (ip.find(':') != std::string::npos ? "[" + ip + "]" : ip) + ":";
                spec += host_port.empty() && ip.empty() ? "" : host_port + ":";
                o.publish.publish.push_back(spec + port);
            }
        }
    }
    o.publish.publish_all = hc.value("PublishAllPorts", false);
    // --expose without -p: strata has no flag for it.
    if (body.contains("ExposedPorts") && body["ExposedPorts"].is_object()) {
        for (const auto& [port, _] : body["ExposedPorts"].items()) {
            bool bound = hc.contains("PortBindings") && hc["PortBindings"].is_object() &&
                         hc["PortBindings"].contains(port);
            if (!bound) {
                throw api::HttpError(400,
                                     "ExposedPorts " + port +
                                         " without a binding is not handled by strata serve yet");
            }
        }
    }
    std::string network = hc.value("NetworkMode", std::string());
    o.network = network == "default" ? "" : network;
    // docker run --network NET --network-alias A --ip IP: the endpoint of
    // NetworkMode's network in NetworkingConfig.
    if (body.contains("NetworkingConfig") && body["NetworkingConfig"].is_object() &&
        body["NetworkingConfig"].contains("EndpointsConfig") &&
        body["NetworkingConfig"]["EndpointsConfig"].is_object()) {
        for (const auto& [net, ec] : body["NetworkingConfig"]["EndpointsConfig"].items()) {
            if (net != o.network && !(o.network.empty() && net == "bridge")) {
                throw api::HttpError(400, "NetworkingConfig.EndpointsConfig: " + net +
                                              " is not the container's NetworkMode (strata "
                                              "connects other networks with network connect)");
            }
            if (!ec.is_object()) {
                continue;
            }
            for (const auto& [k, v] : ec.items()) {
                if (k != "Aliases" && k != "IPAMConfig" && k != "NetworkID" && k != "EndpointID" &&
                    set_or_default(ec, k.c_str())) {
                    (void)v;
                    throw api::HttpError(400, "NetworkingConfig.EndpointsConfig." + net + "." + k +
                                                  " is not handled by strata serve yet");
                }
            }
            o.network_aliases = strings(ec.value("Aliases", json()),
                                        "NetworkingConfig.EndpointsConfig." + net + ".Aliases");
            if (ec.contains("IPAMConfig") && ec["IPAMConfig"].is_object()) {
                for (const auto& [k, v] : ec["IPAMConfig"].items()) {
                    if (k != "IPv4Address" && set_or_default(ec["IPAMConfig"], k.c_str())) {
                        throw api::HttpError(400, "NetworkingConfig.EndpointsConfig." + net +
                                                      ".IPAMConfig." + k +
                                                      " is not handled by strata serve yet");
                    }
                }
                o.ip = ec["IPAMConfig"].value("IPv4Address", std::string());
            }
        }
    }
    // --mount as HostConfig.Mounts, back into --mount values.
    if (hc.contains("Mounts") && hc["Mounts"].is_array()) {
        for (const auto& m : hc["Mounts"]) {
            o.mount_flags.push_back(mount_flag(m));
        }
    }
    o.dns = strings(hc.value("Dns", json()), "HostConfig.Dns");
    o.dns_search = strings(hc.value("DnsSearch", json()), "HostConfig.DnsSearch");
    o.dns_options = strings(hc.value("DnsOptions", json()), "HostConfig.DnsOptions");
    o.add_hosts = strings(hc.value("ExtraHosts", json()), "HostConfig.ExtraHosts");
    o.cap_add = strings(hc.value("CapAdd", json()), "HostConfig.CapAdd");
    o.cap_drop = strings(hc.value("CapDrop", json()), "HostConfig.CapDrop");
    o.security_opts = strings(hc.value("SecurityOpt", json()), "HostConfig.SecurityOpt");
    o.privileged = hc.value("Privileged", false);
    o.read_only = hc.value("ReadonlyRootfs", false);
    o.init = hc.contains("Init") && hc["Init"].is_boolean() && hc["Init"].get<bool>();
    if (hc.contains("RestartPolicy") && hc["RestartPolicy"].is_object()) {
        std::string policy = hc["RestartPolicy"].value("Name", std::string());
        int retries = hc["RestartPolicy"].value("MaximumRetryCount", 0);
        if (!policy.empty()) {
            o.restart = policy == "on-failure" && retries > 0
                            ? policy + ":" + std::to_string(retries)
                            : policy;
        }
    }
    if (hc.contains("LogConfig") && hc["LogConfig"].is_object()) {
        std::string type = hc["LogConfig"].value("Type", std::string());
        if (!type.empty() && type != "json-file") {
            throw api::HttpError(400, "logging driver " + type + " is not handled by strata");
        }
        if (hc["LogConfig"].contains("Config") && hc["LogConfig"]["Config"].is_object()) {
            for (const auto& [k, v] : hc["LogConfig"]["Config"].items()) {
                o.log_opts.push_back(k + "=" + v.get<std::string>());
            }
        }
    }
    // --memory, --cpus ...: the same fields as runner::Resources; Docker's
    // checks and warnings are create_container's.
    auto int64 = [&](const char* key) -> std::int64_t {
        if (!hc.contains(key) || hc[key].is_null()) {
            return 0;
        }
        if (!hc[key].is_number_integer()) {
            throw api::HttpError(400, std::string("HostConfig.") + key + ": expected an integer");
        }
        return hc[key].get<std::int64_t>();
    };
    o.resources.memory = int64("Memory");
    o.resources.memory_swap = int64("MemorySwap");
    o.resources.memory_reservation = int64("MemoryReservation");
    o.resources.nano_cpus = int64("NanoCpus");
    o.resources.cpu_shares = int64("CpuShares");
    o.resources.pids_limit = int64("PidsLimit");
    o.resources.blkio_weight = static_cast<std::uint16_t>(int64("BlkioWeight"));
    o.resources.cpuset_cpus = hc.value("CpusetCpus", std::string());
    o.resources.cpuset_mems = hc.value("CpusetMems", std::string());
    o.resources.oom_kill_disable = hc.contains("OomKillDisable") &&
                                   hc["OomKillDisable"].is_boolean() &&
                                   hc["OomKillDisable"].get<bool>();
    for (const char* key : {"CpuQuota", "CpuPeriod", "CpuRealtimePeriod", "CpuRealtimeRuntime",
                            "KernelMemory", "MemorySwappiness", "BlkioWeightDevice",
                            "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "DeviceCgroupRules"}) {
        bool swappiness_default = std::string(key) == "MemorySwappiness" && hc.contains(key) &&
                                  hc[key].is_number_integer() && hc[key].get<int>() == -1;
        if (set_or_default(hc, key) && !swappiness_default) {
            throw api::HttpError(400, std::string("HostConfig.") + key +
                                          " is not handled by strata serve yet");
        }
    }
    return o;
}

void create(Context& ctx, api::Request& req, api::Exchange& ex) {
    json body;
    try {
        body = json::parse(ex.read_body(1 << 20));
    } catch (const json::exception& e) {
        throw api::HttpError(400, std::string("invalid JSON: ") + e.what());
    }
    RunOptions o = run_options(body, req.maybe_query("name").value_or(""));
    std::ostringstream warn;
    std::string id = create_container(ctx.store_root(), o, warn);
    // The attach flags of a foreground `docker run` (o.detach is set for
    // create): StdinOnce decides what the end of an attached stdin does.
    if (body.value("AttachStdin", false) || body.value("AttachStdout", false) ||
        body.value("AttachStderr", false) || body.value("StdinOnce", false)) {
        containers::Store cs(ctx.store_root());
        containers::Lock lock = cs.lock(id);
        auto config = cs.load_config(id);
        for (const char* key : {"AttachStdin", "AttachStdout", "AttachStderr", "StdinOnce"}) {
            config["Config"][key] = body.value(key, false);
        }
        cs.save_config(id, config);
    }
    ordered_json warnings = ordered_json::array();
    std::istringstream lines(warn.str());
    for (std::string line; std::getline(lines, line);) {
        if (line.starts_with("WARNING: ")) {
            line = line.substr(9);
        }
        if (!line.empty()) {
            warnings.push_back(line);
        }
    }
    ex.respond_json(201, ordered_json{{"Id", id}, {"Warnings", warnings}});
}

// The container a path names ({id}: an ID, a name or a unique prefix).
std::string resolve(const containers::Store& cs, api::Request& req) {
    return cs.resolve(req.param("id"));
}

void start(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    std::string id = resolve(cs, req);
    if (cs.load_state(id).running()) {
        ex.respond_empty(304); // dockerd: already started
        return;
    }
    start_container_attached(ctx, id);
    ex.respond_empty(204);
}

int stop_timeout(api::Request& req) {
    return static_cast<int>(req.query_int("t", -1));
}

void stop(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    std::string id = resolve(cs, req);
    if (!cs.load_state(id).running()) {
        ex.respond_empty(304); // dockerd: already stopped
        return;
    }
    containers::stop(cs, id, stop_timeout(req));
    ex.respond_empty(204);
}

void restart(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    std::string id = resolve(cs, req);
    containers::stop(cs, id, stop_timeout(req)); // as strata restart
    containers::start(cs, id);
    ex.respond_empty(204);
}

void kill(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    std::string id = resolve(cs, req);
    std::string signal = req.maybe_query("signal").value_or("");
    int sig = SIGKILL;
    if (!signal.empty()) {
        try {
            sig = containers::parse_signal(signal);
        } catch (const Error& e) {
            throw api::HttpError(400, e.what());
        }
    }
    if (!cs.load_state(id).running()) {
        throw api::HttpError(409, "Cannot kill container: " + req.param("id") + ": Container " +
                                      id + " is not running");
    }
    containers::kill(cs, id, sig);
    ex.respond_empty(204);
}

// POST /containers/{id}/wait?condition=not-running|next-exit|removed.
void wait(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    std::string id = resolve(cs, req);
    std::string condition = req.maybe_query("condition").value_or("not-running");
    if (condition.empty()) {
        condition = "not-running";
    }
    if (condition != "not-running" && condition != "next-exit" && condition != "removed") {
        throw api::HttpError(400, "invalid condition: \"" + condition + "\"");
    }
    // The status line now, the body when the condition is met, as dockerd:
    // the docker CLI starts a container only once its wait is answered.
    ex.begin_stream(200, "application/json");
    // containers::wait_not_running's condition, polled here every 50 ms
    // with a look at the client between polls: a wait the client gave up
    // on (docker run -d cancels its own) ends instead of polling for the
    // container's whole life.
    bool seen_run = condition == "not-running";
    containers::State s;
    for (;;) {
        if (ex.client_gone()) {
            return;
        }
        bool removed = false;
        try {
            s = cs.load_state(id);
        } catch (const containers::NoSuchContainer&) {
            removed = true; // an auto-removed container: it ended with its last state (in s)
            s.status = "exited";
            s.pid = 0;
        }
        bool not_running =
            removed || (!s.running() && !(s.status == "created" && cs.monitor_alive(id)));
        // next-exit and removed: a created container is waited for until it
        // has run (as strata wait does).
        seen_run = seen_run || (not_running && s.status != "created");
        if (not_running && seen_run && (condition != "removed" || removed)) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ordered_json error = nullptr;
    if (!s.error.empty()) {
        error = {{"Message", s.error}};
    }
    ex.write_json(ordered_json{{"Error", error}, {"StatusCode", s.exit_code}});
    ex.finish();
}

// dockerd's list of a running container's published ports, from its
// NetworkSettings.Ports ({"80/tcp": [{"HostIp", "HostPort"}]}).
ordered_json list_ports(const containers::Store& cs, const ContainerEntry& e) {
    ordered_json out = ordered_json::array();
    if (!e.state.running()) {
        return out;
    }
    ordered_json ns = containers::network_settings(cs, e.id, e.config);
    if (!ns.contains("Ports") || !ns["Ports"].is_object()) {
        return out;
    }
    for (const auto& [key, bindings] : ns["Ports"].items()) {
        std::size_t slash = key.find('/');
        int private_port = std::atoi(key.substr(0, slash).c_str());
        std::string type = slash == std::string::npos ? "tcp" : key.substr(slash + 1);
        if (!bindings.is_array() || bindings.empty()) {
            out.push_back({{"PrivatePort", private_port}, {"Type", type}});
            continue;
        }
        for (const auto& b : bindings) {
            out.push_back({{"IP", b.value("HostIp", std::string())},
                           {"PrivatePort", private_port},
                           {"PublicPort", std::atoi(b.value("HostPort", std::string()).c_str())},
                           {"Type", type}});
        }
    }
    return out;
}

// GET /containers/json?all=&limit=&filters=: ps's selection as dockerd's
// summaries.
void list(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    int limit = static_cast<int>(req.query_int("limit", -1));
    ordered_json out = ordered_json::array();
    for (const auto& e : list_containers(cs, req.query_bool("all"), limit, req.query_filters())) {
        const auto& c = e.config;
        ordered_json config = c.value("Config", ordered_json::object());
        std::string image = config.value("Image", std::string());
        ordered_json labels = ordered_json::object();
        if (config.contains("Labels") && config["Labels"].is_object()) {
            labels = config["Labels"];
        }
        ordered_json networks = ordered_json::object();
        std::string mode;
        if (c.contains("HostConfig")) {
            mode = c["HostConfig"].value("NetworkMode", std::string());
        }
        out.push_back({{"Id", e.id},
                       {"Names", {c.value("Name", std::string())}},
                       {"Image", image.empty() ? c.value("Image", std::string()) : image},
                       {"ImageID", c.value("Image", std::string())},
                       {"Command", docker_command(c)},
                       {"Created", parse_time(c.value("Created", std::string())).value_or(0)},
                       {"Ports", list_ports(cs, e)},
                       {"Labels", labels},
                       {"State", e.state.status},
                       {"Status", container_status_text(e.state)},
                       {"HostConfig", {{"NetworkMode", mode}}},
                       {"NetworkSettings", {{"Networks", networks}}},
                       {"Mounts", c.value("Mounts", ordered_json::array())}});
    }
    ex.respond_json(200, out);
}

void inspect(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    ex.respond_json(200, container_document(cs, resolve(cs, req)));
}

// GET /containers/{id}/logs: the json-file log as strata logs reads it;
// Docker's multiplexed framing unless the container has a TTY.
void logs(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    std::string id = resolve(cs, req);
    bool want_out = req.query_bool("stdout");
    bool want_err = req.query_bool("stderr");
    if (!want_out && !want_err) {
        throw api::HttpError(400, "Bad parameters: you must choose at least one stream");
    }
    LogOptions o;
    o.follow = req.query_bool("follow");
    o.timestamps = req.query_bool("timestamps");
    o.tail = req.maybe_query("tail").value_or("all");
    o.since = req.maybe_query("since").value_or("");
    o.until = req.maybe_query("until").value_or("");
    if (o.since == "0") {
        o.since.clear();
    }
    if (o.until == "0") {
        o.until.clear();
    }
    auto config = cs.load_config(id);
    bool tty = config["Config"].value("Tty", false);
    bool begun = false;
    read_logs(cs, id, o, [&](const containers::LogEntry& e, const std::string& text) {
        bool err = e.stream == "stderr";
        if (!begun) {
            ex.begin_stream(200, "application/vnd.docker.raw-stream");
            begun = true;
        }
        if ((err && !want_err) || (!err && !want_out)) {
            return true;
        }
        return ex.write(tty ? text : api::mux_frame(err ? 2 : 1, text));
    });
    if (!begun) {
        ex.begin_stream(200, "application/vnd.docker.raw-stream");
    }
    ex.finish();
}

void remove(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    std::string id = resolve(cs, req);
    remove_container(cs, id, req.query_bool("force"), req.query_bool("v"));
    ex.respond_empty(204);
}

} // namespace

void add_container_routes(api::Router& router, Context& ctx) {
    auto bind = [&ctx](ContextHandler f) { return with_context(ctx, f); };
    router.add("POST", "/containers/create", bind(create));
    router.add("GET", "/containers/json", bind(list));
    router.add("GET", "/containers/{id}/json", bind(inspect));
    router.add("GET", "/containers/{id}/logs", bind(logs));
    router.add("POST", "/containers/{id}/start", bind(start));
    router.add("POST", "/containers/{id}/stop", bind(stop));
    router.add("POST", "/containers/{id}/restart", bind(restart));
    router.add("POST", "/containers/{id}/kill", bind(kill));
    router.add("POST", "/containers/{id}/wait", bind(wait));
    router.add("DELETE", "/containers/{id}", bind(remove));
    add_container_op_routes(router, ctx);
    // The volumes and networks containers are made with.
    add_volume_routes(router, ctx);
    add_network_routes(router, ctx);
    add_attach_routes(router, ctx);
    add_exec_routes(router, ctx);
}

} // namespace strata::cli::serve
