// Containers that last (containers/store.hpp): ps and the lifecycle
// commands, with Docker's flags, output and messages. Each command reads
// the records and talks to a container's monitor (containers/monitor.hpp);
// there is no daemon.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/container_cli.hpp"
#include "containers/json_log.hpp"
#include "containers/monitor.hpp"
#include "containers/names.hpp"
#include "containers/network.hpp"
#include "containers/signal.hpp"
#include "containers/store.hpp"
#include "containers/volumes.hpp"
#include "runner/runner.hpp"
#include "runner/terminal.hpp"
#include "util/error.hpp"
#include "util/event_log.hpp"
#include "util/fs.hpp"

#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <thread>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <iostream>
#include <map>
#include <memory>
#include <regex>

namespace strata::cli {

namespace {

// Seconds since the epoch of Docker's RFC 3339 (nano) UTC times; 0 for the zero time.
std::int64_t parse_nano_time(const std::string& t) {
    std::tm tm{};
    if (t.size() < 19 || ::strptime(t.substr(0, 19).c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) {
        return 0;
    }
    std::int64_t s = ::timegm(&tm);
    return s < 0 ? 0 : s;
}

std::int64_t now_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

} // namespace

// Docker's STATUS column: "Up 3 seconds", "Exited (0) 2 minutes ago", "Created".
std::string container_status_text(const containers::State& s) {
    std::int64_t now = now_seconds();
    auto since = [&](const std::string& t) {
        return human_duration(std::max<std::int64_t>(0, now - parse_nano_time(t)));
    };
    if (s.status == "running" || s.status == "paused") {
        std::string text = "Up " + since(s.started_at);
        if (s.status == "paused") {
            text += " (Paused)";
        } else if (s.health.is_object() && s.health.contains("Status")) {
            std::string h = s.health["Status"].get<std::string>();
            text += h == "starting" ? " (health: starting)" : " (" + h + ")";
        }
        return text;
    }
    if (s.status == "restarting") {
        return "Restarting (" + std::to_string(s.exit_code) + ") " + since(s.finished_at) + " ago";
    }
    if (s.status == "exited") {
        return "Exited (" + std::to_string(s.exit_code) + ") " + since(s.finished_at) + " ago";
    }
    if (s.status == "dead") {
        return "Dead";
    }
    if (s.status == "removing") {
        return "Removal In Progress";
    }
    return "Created";
}

namespace {

struct PsOptions {
    bool all = false;
    bool quiet = false;
    int last = -1;
    bool latest = false;
    std::vector<std::string> filters;
    bool no_trunc = false;
    std::string format;
};

using PsEntry = ContainerEntry;

bool matches_filter(const PsEntry& e, const std::string& key, const std::string& value) {
    const auto& c = e.config;
    if (key == "id") {
        return e.id.compare(0, value.size(), value) == 0;
    }
    if (key == "name") {
        std::string name = c.value("Name", std::string());
        try {
            return std::regex_search(name, std::regex(value));
        } catch (const std::regex_error&) {
            return name.find(value) != std::string::npos;
        }
    }
    if (key == "label") {
        const auto& labels = c["Config"]["Labels"];
        std::size_t eq = value.find('=');
        std::string k = value.substr(0, eq);
        if (!labels.is_object() || !labels.contains(k)) {
            return false;
        }
        return eq == std::string::npos || labels[k].get<std::string>() == value.substr(eq + 1);
    }
    if (key == "status") {
        return e.state.status == value;
    }
    if (key == "exited") {
        return e.state.status == "exited" && std::to_string(e.state.exit_code) == value;
    }
    if (key == "ancestor") {
        std::string image = c["Config"].value("Image", std::string());
        std::string digest = c.value("Image", std::string());
        std::string hex = digest.substr(digest.find(':') + 1);
        auto norm = [](std::string s) {
            if (s.find(':') == std::string::npos || s.rfind(':') < s.rfind('/')) {
                s += ":latest";
            }
            return s;
        };
        return image == value || norm(image) == norm(value) || digest == value ||
               (value.size() >= 4 && hex.compare(0, value.size(), value) == 0);
    }
    throw UsageError("invalid filter '" + key + "'");
}

} // namespace

std::vector<ContainerEntry> list_containers(const containers::Store& cs, bool all_states, int last,
                                            const std::vector<std::string>& filter_args) {
    std::multimap<std::string, std::string> filters;
    for (const auto& f : filter_args) {
        std::size_t eq = f.find('=');
        if (eq == std::string::npos) {
            throw UsageError("bad format of filter (expected name=value)");
        }
        std::string key = f.substr(0, eq);
        if (key != "id" && key != "name" && key != "label" && key != "status" &&
            key != "ancestor" && key != "exited") {
            throw UsageError("invalid filter '" + key + "'");
        }
        filters.emplace(key, f.substr(eq + 1));
    }
    std::vector<PsEntry> entries;
    for (const auto& id : cs.list()) {
        try {
            PsEntry e{id, cs.load_config(id), cs.load_state(id)};
            entries.push_back(std::move(e));
        } catch (const containers::NoSuchContainer&) {
            // removed meanwhile
        }
    }
    std::sort(entries.begin(), entries.end(), [](const PsEntry& a, const PsEntry& b) {
        return a.config.value("Created", std::string()) > b.config.value("Created", std::string());
    });
    bool all = all_states || last > 0 || filters.count("status") > 0 || filters.count("exited") > 0;
    std::vector<ContainerEntry> out;
    int n = 0;
    for (auto& e : entries) {
        if (last > 0 && n >= last) {
            break;
        }
        ++n;
        if (!all && !e.state.running()) {
            continue;
        }
        // Docker: values of one key are ORed, keys are ANDed; every label
        // must match (MatchKVList).
        bool ok = true;
        for (auto it = filters.begin(); it != filters.end() && ok;) {
            auto range = filters.equal_range(it->first);
            bool label = it->first == "label";
            bool any = label;
            for (auto f = range.first; f != range.second; ++f) {
                bool m = matches_filter(e, f->first, f->second);
                any = label ? any && m : any || m;
            }
            ok = any;
            it = range.second;
        }
        if (ok) {
            out.push_back(std::move(e));
        }
    }
    return out;
}

std::string docker_command(const nlohmann::ordered_json& c) {
    std::string cmd = c.value("Path", std::string());
    for (const auto& a : c.value("Args", std::vector<std::string>{})) {
        // dockerd's list: an argument with a space in single quotes.
        cmd += " " + (a.find(' ') != std::string::npos ? "'" + a + "'" : a);
    }
    return cmd;
}

namespace {

void ps(Context& ctx, const PsOptions& o) {
    containers::Store cs(ctx.store_root());
    std::vector<TemplateValue> rows;
    for (const auto& e : list_containers(cs, o.all, o.latest ? 1 : o.last, o.filters)) {
        const auto& c = e.config;
        TemplateValue v;
        v["ID"] = o.no_trunc ? e.id : containers::short_id(e.id);
        std::string image = c["Config"].value("Image", std::string());
        if (image.empty()) {
            image = c.value("Image", std::string());
        }
        v["Image"] = image;
        std::string cmd = docker_command(c);
        v["Command"] = nlohmann::ordered_json(o.no_trunc ? cmd : ellipsis(cmd, 20)).dump();
        std::int64_t created = parse_nano_time(c.value("Created", std::string()));
        v["CreatedAt"] = go_time_string(created);
        v["RunningFor"] =
            human_duration(std::max<std::int64_t>(0, now_seconds() - created)) + " ago";
        v["Ports"] = "";
        v["State"] = e.state.status;
        v["Status"] = container_status_text(e.state);
        v["Size"] = "0B";
        std::string name = c.value("Name", std::string());
        v["Names"] = name.empty() ? name : name.substr(1);
        std::string labels;
        if (c["Config"].contains("Labels") && c["Config"]["Labels"].is_object()) {
            for (const auto& [k, val] : c["Config"]["Labels"].items()) {
                labels += (labels.empty() ? "" : ",") + k + "=" + val.get<std::string>();
            }
        }
        v["Labels"] = labels;
        std::string mounts;
        for (const auto& m : c.value("Mounts", nlohmann::ordered_json::array())) {
            mounts += (mounts.empty() ? "" : ",") + m.value("Source", std::string());
        }
        v["Mounts"] = mounts;
        v["Networks"] = c["HostConfig"].value("NetworkMode", std::string());
        v["LocalVolumes"] = "0";
        rows.push_back(std::move(v));
    }
    TableFormat table;
    table.default_table =
        "table {{.ID}}\\t{{.Image}}\\t{{.Command}}\\t{{.RunningFor}}\\t{{.Status}}"
        "\\t{{.Ports}}\\t{{.Names}}";
    table.headers = {{"ID", "CONTAINER ID"},    {"Image", "IMAGE"},
                     {"Command", "COMMAND"},    {"CreatedAt", "CREATED AT"},
                     {"RunningFor", "CREATED"}, {"Ports", "PORTS"},
                     {"State", "STATE"},        {"Status", "STATUS"},
                     {"Size", "SIZE"},          {"Names", "NAMES"},
                     {"Labels", "LABELS"},      {"Mounts", "MOUNTS"},
                     {"Networks", "NETWORKS"},  {"LocalVolumes", "LOCAL VOLUMES"}};
    std::string format = o.format;
    if (o.quiet && (format.empty() || format == "table")) {
        format = "{{.ID}}";
    }
    std::cout << format_rows(format, table, rows);
}

void add_ps(CLI::App* cmd, Context& ctx) {
    auto o = std::make_shared<PsOptions>();
    cmd->add_flag("-a,--all", o->all, "Show all containers (default shows just running)");
    cmd->add_flag("-q,--quiet", o->quiet, "Only display container IDs");
    cmd->add_option("-n,--last", o->last, "Show n last created containers (includes all states)");
    cmd->add_flag("-l,--latest", o->latest,
                  "Show the latest created container (includes all states)");
    cmd->add_option("-f,--filter", o->filters,
                    "Filter output based on conditions provided (id, name, label, status, "
                    "ancestor, exited)")
        ->allow_extra_args(false);
    cmd->add_flag("--no-trunc", o->no_trunc, "Don't truncate output");
    cmd->add_option("--format", o->format,
                    "Format output using a custom template ('table', "
                    "'table TEMPLATE', 'json', or a Go template)");
    cmd->callback([&ctx, o] { ps(ctx, *o); });
}

} // namespace

namespace {

int g_signal_pipe = -1;

void forward_signal(int sig) {
    unsigned char b = static_cast<unsigned char>(sig);
    (void)!::write(g_signal_pipe, &b, 1);
}

// Copies an attached container's streams until it ends; returns its exit
// code, or -1 when the monitor went away without one.
int attach_streams(const containers::Store& cs, const std::string& id, int conn, bool interactive,
                   bool tty) {
    int sp[2];
    if (::pipe2(sp, O_CLOEXEC | O_NONBLOCK) != 0) {
        throw_errno("pipe2");
    }
    UniqueFd sig_read(sp[0]), sig_write(sp[1]);
    g_signal_pipe = sig_write.get();
    // Docker's --sig-proxy: signals to the CLI go to the container (not with a tty,
    // where the terminal sends them through the pty).
    struct sigaction sa {};
    sa.sa_handler = forward_signal;
    sigemptyset(&sa.sa_mask);
    struct sigaction old_int {
    }, old_term{};
    if (!tty) {
        ::sigaction(SIGINT, &sa, &old_int);
        ::sigaction(SIGTERM, &sa, &old_term);
    }
    std::optional<runner::RawTerminal> raw;
    if (tty && interactive && ::isatty(0)) {
        raw.emplace(0);
    }
    if (tty) {
        struct winsize ws {};
        if (::ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0) {
            containers::write_frame(conn, 2,
                                    std::to_string(ws.ws_row) + " " + std::to_string(ws.ws_col));
        }
    }
    bool in_open = interactive;
    int code = -1;
    std::string buf;
    while (true) {
        struct pollfd fds[3] = {
            {conn, POLLIN, 0}, {sig_read.get(), POLLIN, 0}, {in_open ? 0 : -1, POLLIN, 0}};
        int r = ::poll(fds, 3, -1);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (fds[1].revents & POLLIN) {
            unsigned char b;
            while (::read(sig_read.get(), &b, 1) == 1) {
                containers::monitor_request(cs, id, "kill " + std::to_string(b));
            }
        }
        if (in_open && fds[2].revents != 0) {
            char data[8192];
            ssize_t n = ::read(0, data, sizeof data);
            if (n > 0) {
                containers::write_frame(conn, 0,
                                        std::string_view(data, static_cast<std::size_t>(n)));
            } else {
                containers::write_frame(conn, 1, "");
                in_open = false;
            }
        }
        if (fds[0].revents != 0) {
            unsigned char stream;
            std::string payload;
            if (!containers::read_frame(conn, stream, payload)) {
                break;
            }
            if (stream == 1 || stream == 2) {
                try {
                    fs::write_all(stream, stream == 1 ? "stdout" : "stderr", payload);
                } catch (const std::exception&) {
                    // our output is gone: keep the container going
                }
            } else if (stream == 3) {
                code = std::atoi(payload.c_str());
                break;
            }
        }
    }
    if (!tty) {
        ::sigaction(SIGINT, &old_int, nullptr);
        ::sigaction(SIGTERM, &old_term, nullptr);
    }
    g_signal_pipe = -1;
    return code;
}

} // namespace

void daemon_error(const std::string& message) {
    std::cerr << "Error response from daemon: " << message << "\n";
}

int start_container(Context& ctx, const std::string& id, bool attach, bool interactive) {
    (void)ctx;
    containers::Store cs(ctx.store_root());
    auto config = cs.load_config(id);
    bool tty = config["Config"].value("Tty", false);
    interactive = interactive && config["Config"].value("OpenStdin", false);
    if (!attach) {
        containers::start(cs, id);
        return 0;
    }
    containers::StartHandle h = containers::begin_start(cs, id, true);
    UniqueFd conn = containers::connect_monitor(cs, id);
    if (!conn) {
        throw Error("cannot attach to container " + id + ": its monitor does not answer");
    }
    fs::write_all(conn.get(), "the container's monitor socket", std::string_view("attach\n"));
    containers::finish_start(h);
    int code = attach_streams(cs, id, conn.get(), interactive, tty);
    if (code < 0) {
        code = containers::wait_not_running(cs, id).exit_code;
    }
    return code;
}

TemplateValue container_document(const containers::Store& cs, const std::string& id) {
    auto c = cs.load_config(id);
    containers::State s = cs.load_state(id);
    TemplateValue d;
    for (const char* k : {"Id", "Created", "Path", "Args"}) {
        d[k] = c[k];
    }
    auto state = s.to_json();
    state.erase("RestartCount");
    state.erase("MonitorPid");
    state.erase("ManuallyStopped");
    d["State"] = state;
    for (const char* k : {"Image", "ResolvConfPath", "HostnamePath", "HostsPath"}) {
        d[k] = c.value(k, TemplateValue(""));
    }
    d["LogPath"] = cs.log_path(id);
    d["Name"] = c["Name"];
    d["RestartCount"] = s.restart_count;
    d["Driver"] = c.value("Driver", TemplateValue("overlay"));
    d["Platform"] = "linux";
    d["MountLabel"] = "";
    d["ProcessLabel"] = "";
    d["AppArmorProfile"] = "";
    d["ExecIDs"] = nullptr;
    d["HostConfig"] = c["HostConfig"];
    std::string dir = cs.path(id);
    d["GraphDriver"] = {{"Data",
                         {{"MergedDir", dir + "/rootfs"},
                          {"UpperDir", dir + "/upper"},
                          {"WorkDir", dir + "/work"}}},
                        {"Name", "overlay"}};
    d["Mounts"] = c.value("Mounts", TemplateValue::array());
    d["Config"] = c["Config"];
    // The running sandbox's addresses, else the configured networks (containers/network.hpp).
    d["NetworkSettings"] = containers::network_settings(cs, id, c);
    return d;
}

namespace {

// Runs f for each container the user named, printing Docker's errors; the
// exit code is 1 when any failed.
template <typename F>
void for_each_container(Context& ctx, const std::vector<std::string>& names, F f) {
    containers::Store cs(ctx.store_root());
    for (const auto& n : names) {
        try {
            std::string id = cs.resolve(n);
            f(cs, id, n);
        } catch (const UsageError&) {
            throw;
        } catch (const runner::StartError& e) {
            daemon_error(e.what());
            ctx.exit_code = 1;
        } catch (const Error& e) {
            daemon_error(e.what());
            ctx.exit_code = 1;
        }
    }
}

void add_start(CLI::App* cmd, Context& ctx) {
    struct O {
        std::vector<std::string> names;
        bool attach = false, interactive = false;
    };
    auto o = std::make_shared<O>();
    cmd->add_option("CONTAINER", o->names, "Containers")->required();
    cmd->add_flag("-a,--attach", o->attach, "Attach STDOUT/STDERR and forward signals");
    cmd->add_flag("-i,--interactive", o->interactive, "Attach container's STDIN");
    cmd->callback([&ctx, o] {
        bool attach = o->attach || o->interactive;
        if (attach && o->names.size() > 1) {
            throw UsageError("you cannot start and attach multiple containers at once");
        }
        for_each_container(ctx, o->names,
                           [&](containers::Store&, const std::string& id, const std::string& n) {
                               if (attach) {
                                   ctx.exit_code = start_container(ctx, id, true, o->interactive);
                               } else {
                                   start_container(ctx, id, false, false);
                                   std::cout << n << "\n";
                               }
                           });
    });
}

void add_stop(CLI::App* cmd, Context& ctx, bool restart) {
    struct O {
        std::vector<std::string> names;
        std::optional<int> time;
        std::string signal;
    };
    auto o = std::make_shared<O>();
    cmd->add_option("CONTAINER", o->names, "Containers")->required();
    cmd->add_option("-t,--time", o->time, "Seconds to wait before killing the container");
    cmd->add_option("-s,--signal", o->signal, "Signal to send to the container");
    cmd->callback([&ctx, o, restart] {
        int sig = o->signal.empty() ? 0 : containers::parse_signal(o->signal);
        for_each_container(ctx, o->names,
                           [&](containers::Store& cs, const std::string& id, const std::string& n) {
                               containers::stop(cs, id, o->time.value_or(-1), sig);
                               if (restart) {
                                   containers::start(cs, id);
                               }
                               std::cout << n << "\n";
                           });
    });
}

void add_kill(CLI::App* cmd, Context& ctx) {
    struct O {
        std::vector<std::string> names;
        std::string signal = "KILL";
    };
    auto o = std::make_shared<O>();
    cmd->add_option("CONTAINER", o->names, "Containers")->required();
    cmd->add_option("-s,--signal", o->signal, "Signal to send to the container")
        ->capture_default_str();
    cmd->callback([&ctx, o] {
        int sig = containers::parse_signal(o->signal);
        for_each_container(ctx, o->names,
                           [&](containers::Store& cs, const std::string& id, const std::string& n) {
                               containers::kill(cs, id, sig);
                               std::cout << n << "\n";
                           });
    });
}

void add_wait(CLI::App* cmd, Context& ctx) {
    auto names = std::make_shared<std::vector<std::string>>();
    cmd->add_option("CONTAINER", *names, "Containers")->required();
    cmd->callback([&ctx, names] {
        for_each_container(ctx, *names,
                           [&](containers::Store& cs, const std::string& id, const std::string&) {
                               while (true) {
                                   containers::State s = containers::wait_not_running(cs, id);
                                   if (s.status != "created") {
                                       std::cout << s.exit_code << "\n";
                                       return;
                                   }
                                   std::this_thread::sleep_for(std::chrono::milliseconds(50));
                               }
                           });
    });
}

} // namespace

void remove_container(containers::Store& cs, const std::string& id, bool force, bool volumes) {
    containers::State s = cs.load_state(id);
    if (s.running()) {
        if (!force) {
            throw ContainerConflict(
                "You cannot remove a " + s.status + " container " + id +
                ". Stop the container before attempting removal or force remove");
        }
        containers::stop(cs, id, 0, SIGKILL);
    }
    containers::wait_monitor_exit(cs, id);
    containers::Lock l = cs.lock(id);
    if (cs.monitor_alive(id)) {
        throw ContainerConflict("You cannot remove a running container " + id +
                                ". Stop the container before attempting removal or force remove");
    }
    nlohmann::ordered_json config = volumes ? cs.load_config(id) : nlohmann::ordered_json();
    cs.remove(id);
    if (volumes) { // rm -v: its anonymous volumes go too, once the record no longer uses them
        snapshot::Store store(cs.store_root());
        containers::remove_anonymous_volumes(store, config);
    }
}

namespace {

void add_rm(CLI::App* cmd, Context& ctx) {
    struct O {
        std::vector<std::string> names;
        bool force = false, volumes = false;
    };
    auto o = std::make_shared<O>();
    cmd->add_option("CONTAINER", o->names, "Containers")->required();
    cmd->add_flag("-f,--force", o->force,
                  "Force the removal of a running container (uses SIGKILL)");
    cmd->add_flag("-v,--volumes", o->volumes,
                  "Remove anonymous volumes associated with the container");
    cmd->callback([&ctx, o] {
        for_each_container(ctx, o->names,
                           [&](containers::Store& cs, const std::string& id, const std::string& n) {
                               remove_container(cs, id, o->force, o->volumes);
                               std::cout << n << "\n";
                           });
    });
}

void add_prune(CLI::App* cmd, Context& ctx) {
    struct O {
        bool force = false;
        std::vector<std::string> filters;
    };
    auto o = std::make_shared<O>();
    cmd->add_flag("-f,--force", o->force, "Do not prompt for confirmation");
    cmd->add_option("--filter", o->filters, "Provide filter values (e.g. 'until=<timestamp>')")
        ->allow_extra_args(false);
    cmd->callback([&ctx, o] {
        if (!o->force && !confirmed("This will remove all stopped containers.")) {
            return;
        }
        containers::Store cs(ctx.store_root());
        ContainerPrune r = prune_containers(cs, o->filters);
        std::cout << "Deleted Containers:\n";
        for (const auto& id : r.removed) {
            std::cout << id << "\n";
        }
        std::cout << "\nTotal reclaimed space: " << human_size(r.bytes, 4) << "\n";
    });
}

void add_rename(CLI::App* cmd, Context& ctx) {
    struct O {
        std::string from, to;
    };
    auto o = std::make_shared<O>();
    cmd->add_option("CONTAINER", o->from, "Container")->required();
    cmd->add_option("NEW_NAME", o->to, "New name")->required();
    cmd->callback([&ctx, o] {
        for_each_container(ctx, {o->from},
                           [&](containers::Store& cs, const std::string& id, const std::string&) {
                               cs.rename(id, o->to);
                           });
    });
}

// Docker's --since/--until: RFC 3339, Unix seconds, or a duration ago ("10m").
// --since/--until of logs, as the docker CLI reads them (durations, RFC 3339,
// dates, seconds since the epoch), in nanoseconds as the log's times; 0: none.
std::int64_t parse_log_time(const std::string& text) {
    if (text.empty()) {
        return 0;
    }
    return events::parse_time_argument(text, now_seconds() * 1000000000LL);
}

} // namespace

ContainerPrune prune_containers(containers::Store& cs, const std::vector<std::string>& filters) {
    std::vector<std::string> labels, not_labels;
    std::optional<std::int64_t> until;
    for (const auto& f : filters) {
        auto eq = f.find('=');
        if (eq == std::string::npos) {
            throw UsageError("bad format of filter (expected name=value)");
        }
        std::string key = f.substr(0, eq);
        std::string value = f.substr(eq + 1);
        if (key == "until") {
            until = parse_log_time(value);
        } else if (key == "label" || key == "label!") {
            (key == "label" ? labels : not_labels).push_back(value);
        } else {
            throw UsageError("Invalid filter '" + key + "'");
        }
    }
    auto has_label = [](const nlohmann::ordered_json& config, const std::string& filter) {
        auto eq = filter.find('=');
        std::string k = filter.substr(0, eq);
        const auto* cfg = config.contains("Config") ? &config["Config"] : nullptr;
        if (cfg == nullptr || !cfg->contains("Labels") || !(*cfg)["Labels"].is_object() ||
            !(*cfg)["Labels"].contains(k)) {
            return false;
        }
        const auto& v = (*cfg)["Labels"][k];
        return eq == std::string::npos ||
               (v.is_string() && v.get<std::string>() == filter.substr(eq + 1));
    };
    ContainerPrune out;
    for (const auto& id : cs.list()) {
        try {
            if (containers::State s = cs.load_state(id); !s.running() && s.status != "created") {
                // an exited container whose monitor is still finishing (it
                // wrote the exit, now it unmounts): docker prunes it, so wait
                containers::wait_monitor_exit(cs, id);
            }
            containers::Lock l = cs.lock(id);
            containers::State s = cs.load_state(id);
            if (s.running() || cs.monitor_alive(id)) {
                continue;
            }
            auto config = cs.load_config(id);
            bool keep = false;
            for (const auto& f : labels) {
                keep = keep || !has_label(config, f);
            }
            for (const auto& f : not_labels) {
                keep = keep || has_label(config, f);
            }
            if (until && parse_time(config.value("Created", std::string())).value_or(0) >= *until) {
                keep = true;
            }
            if (keep) {
                continue;
            }
            // dockerd's SpaceReclaimed: the bytes of the writable layer's files.
            std::uint64_t bytes = 0;
            if (fs::is_dir(cs.path(id) + "/upper")) {
                bytes = fs::disk_usage(cs.path(id) + "/upper").bytes;
            }
            cs.remove(id);
            out.removed.push_back(id);
            out.bytes += bytes;
        } catch (const containers::NoSuchContainer&) {
            // removed meanwhile
        }
    }
    return out;
}

void read_logs(const containers::Store& cs, const std::string& id, const LogOptions& o,
               const std::function<bool(const containers::LogEntry&, const std::string&)>& sink) {
    std::int64_t since = parse_log_time(o.since);
    std::int64_t until = parse_log_time(o.until);
    std::size_t tail = SIZE_MAX;
    if (o.tail != "all" && !o.tail.empty()) {
        if (o.tail.find_first_not_of("0123456789") != std::string::npos) {
            throw UsageError("invalid value for \"tail\": " + o.tail);
        }
        tail = std::stoul(o.tail);
    }
    // false: the reader went away.
    auto print = [&](const containers::LogEntry& e) {
        std::int64_t t = 0;
        try {
            t = events::parse_event_time(e.time); // nanoseconds, as since and until
        } catch (const UsageError&) {
        }
        if ((since != 0 && t < since) || (until != 0 && t > until)) {
            return true;
        }
        return sink(e, o.timestamps ? e.time + " " + e.text : e.text);
    };
    std::vector<containers::LogEntry> entries;
    std::string path = cs.log_path(id);
    for (const auto& f : containers::log_files(path)) {
        std::string text;
        try {
            text = fs::read_file(f);
        } catch (const SysError&) {
            continue; // rotated away meanwhile
        }
        std::size_t start = 0;
        while (start < text.size()) {
            std::size_t nl = text.find('\n', start);
            if (nl == std::string::npos) {
                break;
            }
            if (auto e =
                    containers::parse_log_line(std::string_view(text).substr(start, nl - start))) {
                entries.push_back(std::move(*e));
            }
            start = nl + 1;
        }
    }
    std::size_t first = entries.size() > tail ? entries.size() - tail : 0;
    for (std::size_t i = first; i < entries.size(); ++i) {
        if (!print(entries[i])) {
            return;
        }
    }
    if (!o.follow) {
        return;
    }
    // Follow the current file from its end until the container stops.
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    off_t offset = fd ? static_cast<off_t>(fs::fstat(fd.get()).st_size) : 0;
    ino_t ino = fd ? fs::fstat(fd.get()).st_ino : 0;
    std::string partial;
    while (true) {
        bool running = false;
        try {
            running = cs.load_state(id).running() || cs.monitor_alive(id);
        } catch (const containers::NoSuchContainer&) {
            // Removed while followed (docker-py's run(remove=True) reads the
            // stream it opened after the remove): what the open log still
            // holds is read, then the stream ends, as dockerd's does.
        }
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0 && st.st_ino != ino) {
            fd = UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)); // rotated
            ino = st.st_ino;
            offset = 0;
        }
        if (fd) {
            char buf[65536];
            ssize_t n;
            while ((n = ::pread(fd.get(), buf, sizeof buf, offset)) > 0) {
                offset += n;
                partial.append(buf, static_cast<std::size_t>(n));
            }
            std::size_t nl;
            while ((nl = partial.find('\n')) != std::string::npos) {
                if (auto e = containers::parse_log_line(partial.substr(0, nl))) {
                    if (!print(*e)) {
                        return;
                    }
                }
                partial.erase(0, nl + 1);
            }
        }
        if (!running) {
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

namespace {

void add_logs(CLI::App* cmd, Context& ctx) {
    auto o = std::make_shared<LogOptions>();
    auto name = std::make_shared<std::string>();
    cmd->add_option("CONTAINER", *name, "Container")->required();
    cmd->add_flag("-f,--follow", o->follow, "Follow log output");
    cmd->add_flag("-t,--timestamps", o->timestamps, "Show timestamps");
    cmd->add_option("-n,--tail", o->tail, "Number of lines to show from the end of the logs")
        ->capture_default_str();
    cmd->add_option("--since", o->since, "Show logs since timestamp or relative (e.g. 42m)");
    cmd->add_option("--until", o->until, "Show logs before a timestamp or relative (e.g. 42m)");
    cmd->callback([&ctx, o, name] {
        for_each_container(
            ctx, {*name}, [&](containers::Store& cs, const std::string& id, const std::string&) {
                read_logs(cs, id, *o, [](const containers::LogEntry& e, const std::string& text) {
                    fs::write_all(e.stream == "stderr" ? 2 : 1, e.stream, text);
                    return true;
                });
            });
    });
}

void add_attach(CLI::App* cmd, Context& ctx) {
    struct O {
        std::string name;
        bool no_stdin = false;
    };
    auto o = std::make_shared<O>();
    cmd->add_option("CONTAINER", o->name, "Container")->required();
    cmd->add_flag("--no-stdin", o->no_stdin, "Do not attach STDIN");
    cmd->callback([&ctx, o] {
        for_each_container(
            ctx, {o->name}, [&](containers::Store& cs, const std::string& id, const std::string&) {
                if (!cs.load_state(id).running()) {
                    throw Error("You cannot attach to a stopped container, start it first");
                }
                auto config = cs.load_config(id);
                UniqueFd conn = containers::connect_monitor(cs, id);
                if (!conn) {
                    throw Error("You cannot attach to a stopped container, start it first");
                }
                fs::write_all(conn.get(), "the container's monitor socket",
                              std::string_view("attach\n"));
                int code = attach_streams(
                    cs, id, conn.get(), !o->no_stdin && config["Config"].value("OpenStdin", false),
                    config["Config"].value("Tty", false));
                ctx.exit_code = code < 0 ? containers::wait_not_running(cs, id).exit_code : code;
            });
    });
}

void add_inspect(CLI::App* cmd, Context& ctx) {
    struct O {
        std::vector<std::string> names;
        std::string format;
    };
    auto o = std::make_shared<O>();
    cmd->add_option("CONTAINER", o->names, "Containers")->required();
    cmd->add_option("-f,--format", o->format, "Format output using a Go template or 'json'");
    cmd->callback([&ctx, o] {
        std::optional<Template> tmpl;
        if (!o->format.empty() && o->format != "json") {
            tmpl = Template::parse(o->format);
        }
        TemplateValue all = TemplateValue::array();
        for_each_container(ctx, o->names,
                           [&](containers::Store& cs, const std::string& id, const std::string&) {
                               TemplateValue d = container_document(cs, id);
                               if (tmpl) {
                                   std::cout << tmpl->execute(d) << "\n";
                               } else {
                                   all.push_back(std::move(d));
                               }
                           });
        if (!tmpl) {
            std::cout << all.dump(4) << "\n";
        }
    });
}

} // namespace

void register_containers(CLI::App& app, Context& ctx) {
    auto* container = app.add_subcommand("container", "Manage containers");
    container->require_subcommand(1);
    add_ps(app.add_subcommand("ps", "List containers"), ctx);
    for (const char* alias : {"ls", "ps", "list"}) {
        add_ps(container->add_subcommand(alias, "List containers"), ctx);
    }
    // Each command at the top level and under `container`, as docker has them.
    for (CLI::App* parent : {&app, container}) {
        add_start(parent->add_subcommand("start", "Start one or more stopped containers"), ctx);
        add_stop(parent->add_subcommand("stop", "Stop one or more running containers"), ctx, false);
        add_stop(parent->add_subcommand("restart", "Restart one or more containers"), ctx, true);
        add_kill(parent->add_subcommand("kill", "Kill one or more running containers"), ctx);
        add_wait(
            parent->add_subcommand(
                "wait", "Block until one or more containers stop, then print their exit codes"),
            ctx);
        add_rm(parent->add_subcommand("rm", "Remove one or more containers"), ctx);
        add_logs(parent->add_subcommand("logs", "Fetch the logs of a container"), ctx);
        add_attach(
            parent->add_subcommand(
                "attach",
                "Attach local standard input, output, and error streams to a running container"),
            ctx);
        add_rename(parent->add_subcommand("rename", "Rename a container"), ctx);
    }
    add_prune(container->add_subcommand("prune", "Remove all stopped containers"), ctx);
    add_inspect(container->add_subcommand("inspect",
                                          "Display detailed information on one or more containers"),
                ctx);
}

} // namespace strata::cli
