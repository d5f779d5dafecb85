// Containers that last (containers/store.hpp): ps and the lifecycle
// commands, with Docker's flags, output and messages. Each command reads
// the records and talks to a container's monitor (containers/monitor.hpp);
// there is no daemon.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "containers/names.hpp"
#include "containers/store.hpp"
#include "util/error.hpp"

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

struct PsEntry {
    std::string id;
    nlohmann::ordered_json config;
    containers::State state;
};

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

std::string docker_command(const nlohmann::ordered_json& c) {
    std::string cmd = c.value("Path", std::string());
    for (const auto& a : c.value("Args", std::vector<std::string>{})) {
        cmd += " " + a;
    }
    return cmd;
}

void ps(Context& ctx, const PsOptions& o) {
    containers::Store cs(ctx.store_root());
    std::multimap<std::string, std::string> filters;
    for (const auto& f : o.filters) {
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
    int last = o.latest ? 1 : o.last;
    bool all = o.all || last > 0 || filters.count("status") > 0 || filters.count("exited") > 0;
    std::vector<TemplateValue> rows;
    int n = 0;
    for (const auto& e : entries) {
        if (last > 0 && n >= last) {
            break;
        }
        ++n;
        if (!all && !e.state.running()) {
            continue;
        }
        // Docker: values of one key are ORed, keys are ANDed.
        bool ok = true;
        for (auto it = filters.begin(); it != filters.end() && ok;) {
            auto range = filters.equal_range(it->first);
            bool any = false;
            for (auto f = range.first; f != range.second; ++f) {
                any = any || matches_filter(e, f->first, f->second);
            }
            ok = any;
            it = range.second;
        }
        if (!ok) {
            continue;
        }
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

void register_containers(CLI::App& app, Context& ctx) {
    auto* container = app.add_subcommand("container", "Manage containers");
    container->require_subcommand(1);
    add_ps(app.add_subcommand("ps", "List containers"), ctx);
    for (const char* alias : {"ls", "ps", "list"}) {
        add_ps(container->add_subcommand(alias, "List containers"), ctx);
    }
}

} // namespace strata::cli
