// network create|ls|inspect|rm|prune|connect|disconnect: bridge networks in
// the store (network/store.hpp), with Docker's flags, output and messages.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/networks.hpp"
#include "cli/template.hpp"
#include "containers/monitor.hpp"
#include "containers/network.hpp"
#include "containers/store.hpp"
#include "network/sandbox.hpp"
#include "network/store.hpp"
#include "util/error.hpp"

#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

namespace strata::cli {

namespace {

using network::NetworkRecord;
using network::NetworkStore;

std::map<std::string, std::string> key_values(const std::vector<std::string>& items) {
    std::map<std::string, std::string> m;
    for (const auto& item : items) {
        auto eq = item.find('=');
        m[item.substr(0, eq)] = eq == std::string::npos ? "" : item.substr(eq + 1);
    }
    return m;
}

// `network inspect`'s document: the record and its live endpoints.
nlohmann::ordered_json inspect_document(const NetworkStore& store, const NetworkRecord& net) {
    nlohmann::ordered_json rec = net.to_json();
    nlohmann::ordered_json doc;
    nlohmann::ordered_json containers = nlohmann::ordered_json::object();
    for (const auto& e : store.endpoints(net.id)) {
        containers[e.container_id.empty() ? "ep-" + e.endpoint_id : e.container_id] = {
            {"Name", e.name},
            {"EndpointID", e.endpoint_id},
            {"MacAddress", e.mac},
            {"IPv4Address", e.address.str() + "/" + std::to_string(net.subnet->prefix)},
            {"IPv6Address", ""}};
    }
    for (const auto& [k, v] : rec.items()) {
        if (k == "Options") {
            doc["Containers"] = containers;
        }
        doc[k] = v;
    }
    return doc;
}

struct Filters {
    std::map<std::string, std::vector<std::string>> by_key;

    static Filters parse(const std::vector<std::string>& items, const std::set<std::string>& keys) {
        Filters f;
        for (const auto& item : items) {
            auto eq = item.find('=');
            if (eq == std::string::npos) {
                throw UsageError("bad format of filter (expected name=value)");
            }
            std::string key = item.substr(0, eq);
            if (keys.count(key) == 0) {
                throw UsageError("invalid filter '" + key + "'");
            }
            f.by_key[key].push_back(item.substr(eq + 1));
        }
        return f;
    }

    // Docker's network filters: values of one key are alternatives.
    bool match(const NetworkRecord& n) const {
        for (const auto& [key, values] : by_key) {
            bool any = false;
            for (const auto& v : values) {
                if (key == "name") {
                    any = any || n.name.find(v) != std::string::npos;
                } else if (key == "id") {
                    any = any || n.id.rfind(v, 0) == 0;
                } else if (key == "driver") {
                    any = any || n.driver == v;
                } else if (key == "scope") {
                    any = any || v == "local";
                } else if (key == "type") {
                    if (v != "custom" && v != "builtin") {
                        throw UsageError("invalid filter: 'type'='" + v + "'");
                    }
                    any = any || (v == "builtin") == n.predefined();
                } else if (key == "label") {
                    auto eq = v.find('=');
                    auto it = n.labels.find(v.substr(0, eq));
                    any = any || (it != n.labels.end() &&
                                  (eq == std::string::npos || it->second == v.substr(eq + 1)));
                }
            }
            if (!any) {
                return false;
            }
        }
        return true;
    }
};

void register_create(CLI::App* parent, Context& ctx) {
    struct Options {
        std::string driver = "bridge";
        std::string subnet, gateway;
        bool internal = false;
        bool attachable = false;
        std::vector<std::string> labels, opts;
        std::string name;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = parent->add_subcommand("create", "Create a network");
    cmd->add_option("-d,--driver", o->driver, "Driver to manage the Network (bridge)")
        ->capture_default_str();
    cmd->add_option("--subnet", o->subnet,
                    "Subnet in CIDR format that represents a network segment");
    cmd->add_option("--gateway", o->gateway, "IPv4 Gateway for the master subnet");
    cmd->add_flag("--internal", o->internal, "Restrict external access to the network");
    cmd->add_flag("--attachable", o->attachable, "Enable manual container attachment");
    cmd->add_option("--label", o->labels, "Set metadata on a network")->allow_extra_args(false);
    cmd->add_option("-o,--opt", o->opts, "Set driver specific options")->allow_extra_args(false);
    cmd->add_option("NETWORK", o->name, "Network name")->required();
    cmd->callback([&ctx, o] {
        NetworkStore store(ctx.store_root());
        network::CreateOptions c;
        c.name = o->name;
        c.driver = o->driver;
        c.subnet = o->subnet;
        c.gateway = o->gateway;
        c.internal = o->internal;
        c.attachable = o->attachable;
        c.labels = key_values(o->labels);
        c.options = key_values(o->opts);
        std::cout << store.create(c).id << "\n";
    });
}

void register_ls(CLI::App* parent, Context& ctx) {
    struct Options {
        bool quiet = false;
        bool no_trunc = false;
        std::vector<std::string> filters;
        std::string format;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = parent->add_subcommand("ls", "List networks");
    cmd->alias("list");
    cmd->add_flag("-q,--quiet", o->quiet, "Only display network IDs");
    cmd->add_flag("--no-trunc", o->no_trunc, "Do not truncate the output");
    cmd->add_option("-f,--filter", o->filters,
                    "Provide filter values (driver=, id=, label=K[=V], name=, scope=, "
                    "type=custom|builtin)")
        ->allow_extra_args(false);
    cmd->add_option("--format", o->format,
                    "Format output: table, table TEMPLATE, json or a Go template");
    cmd->callback([&ctx, o] {
        std::vector<TemplateValue> rows;
        for (const auto& n : list_networks(ctx.store_root(), o->filters)) {
            std::string labels;
            for (const auto& [k, v] : n.labels) {
                labels += (labels.empty() ? "" : ",") + k + "=" + v;
            }
            TemplateValue r;
            r["ID"] = o->no_trunc ? n.id : n.id.substr(0, 12);
            r["Name"] = n.name;
            r["Driver"] = n.driver;
            r["Scope"] = "local";
            r["IPv6"] = "false";
            r["Internal"] = n.internal ? "true" : "false";
            r["Labels"] = labels;
            r["CreatedAt"] = n.created;
            rows.push_back(std::move(r));
        }
        if (o->quiet && o->format.empty()) {
            for (const auto& r : rows) {
                std::cout << r["ID"].get<std::string>() << "\n";
            }
            return;
        }
        TableFormat table;
        table.default_table = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";
        table.headers = {{"ID", "NETWORK ID"}, {"Name", "NAME"},           {"Driver", "DRIVER"},
                         {"Scope", "SCOPE"},   {"IPv6", "IPV6"},           {"Internal", "INTERNAL"},
                         {"Labels", "LABELS"}, {"CreatedAt", "CREATED AT"}};
        std::cout << format_rows(o->format, table, rows);
    });
}

void register_inspect(CLI::App* parent, Context& ctx) {
    struct Options {
        std::string format;
        std::vector<std::string> names;
    };
    auto o = std::make_shared<Options>();
    auto* cmd =
        parent->add_subcommand("inspect", "Display detailed information on one or more networks");
    cmd->add_option("-f,--format", o->format, "Format output using a Go template, or json");
    cmd->add_option("NETWORK", o->names, "Network names or ids")->required();
    cmd->callback([&ctx, o] {
        NetworkStore store(ctx.store_root());
        bool found =
            print_inspected(o->format, o->names, "network",
                            [&](const std::string& name) -> std::optional<nlohmann::ordered_json> {
                                auto n = store.find(name);
                                if (!n) {
                                    return std::nullopt;
                                }
                                return inspect_document(store, *n);
                            });
        if (!found) {
            ctx.exit_code = 1;
        }
    });
}

void register_rm(CLI::App* parent, Context& ctx) {
    struct Options {
        bool force = false;
        std::vector<std::string> names;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = parent->add_subcommand("rm", "Remove one or more networks");
    cmd->alias("remove");
    cmd->add_flag("-f,--force", o->force, "Do not error if the network does not exist");
    cmd->add_option("NETWORK", o->names, "Network names or ids")->required();
    cmd->callback([&ctx, o] {
        NetworkStore store(ctx.store_root());
        int failures = each_reporting_errors(o->names, [&](const std::string& name) {
            auto n = store.find(name);
            if (!n) {
                if (o->force) {
                    return;
                }
                throw network::NetworkNotFound("network " + name + " not found");
            }
            network::remove_network(ctx.store_root(), *n);
            std::cout << name << "\n";
        });
        if (failures > 0) {
            ctx.exit_code = 1;
        }
    });
}

void register_prune(CLI::App* parent, Context& ctx) {
    struct Options {
        bool force = false;
        std::vector<std::string> filters;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = parent->add_subcommand("prune", "Remove all unused networks");
    cmd->add_flag("-f,--force", o->force, "Do not prompt for confirmation");
    cmd->add_option("--filter", o->filters, "Provide filter values (until=TIME, label=K[=V])")
        ->allow_extra_args(false);
    cmd->callback([&ctx, o] {
        Filters::parse(o->filters, {"label"}); // before the question
        if (!o->force &&
            !confirmed(
                "This will remove all custom networks not used by at least one container.")) {
            return;
        }
        std::vector<std::string> removed = prune_networks(ctx.store_root(), o->filters);
        if (!removed.empty()) {
            std::cout << "Deleted Networks:\n";
            for (const auto& name : removed) {
                std::cout << name << "\n";
            }
        }
    });
}

// Docker's runconfig errors for connect/disconnect.
const char* const conflict_shared = "container sharing network namespace with another container "
                                    "or host cannot be connected to any other network";
const char* const conflict_host =
    "container cannot be disconnected from host network or connected to host network";
const char* const conflict_none = "container cannot be connected to multiple networks with one of "
                                  "the networks in private (none) mode";

// Asks the container's monitor to join or leave a network now (it owns the
// sandbox: containers/monitor.hpp) and at its later starts; false when no
// monitor answers (a stopped container: the configuration alone changes).
bool ask_monitor(const containers::Store& cs, const std::string& id, const std::string& verb,
                 const nlohmann::json& req) {
    auto answer = containers::monitor_request(cs, id, verb + " " + req.dump());
    if (!answer) {
        return false;
    }
    if (answer->rfind("error ", 0) == 0) {
        throw Error(answer->substr(6));
    }
    if (*answer != "ok") {
        throw Error("the monitor of container " + id + " answered: " + *answer);
    }
    return true;
}

// connect/disconnect change what a container is configured for (its next
// starts) and, while it runs, its sandbox: as Docker's, live.
void register_connect(CLI::App* parent, Context& ctx) {
    struct Options {
        std::string ip;
        std::vector<std::string> aliases;
        std::string network, container;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = parent->add_subcommand("connect", "Connect a container to a network");
    cmd->add_option("--ip", o->ip, "IPv4 address (e.g. 172.30.100.104)");
    cmd->add_option("--alias", o->aliases, "Add network-scoped alias for the container")
        ->allow_extra_args(false);
    cmd->add_option("NETWORK", o->network, "Network")->required();
    cmd->add_option("CONTAINER", o->container, "Container")->required();
    cmd->callback([&ctx, o] {
        connect_container(ctx.store_root(), o->network, o->container, o->ip, o->aliases);
    });
}

void register_disconnect(CLI::App* parent, Context& ctx) {
    struct Options {
        bool force = false;
        std::string network, container;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = parent->add_subcommand("disconnect", "Disconnect a container from a network");
    cmd->add_flag("-f,--force", o->force, "Force the container to disconnect from a network");
    cmd->add_option("NETWORK", o->network, "Network")->required();
    cmd->add_option("CONTAINER", o->container, "Container")->required();
    cmd->callback(
        [&ctx, o] { disconnect_container(ctx.store_root(), o->network, o->container, o->force); });
}

} // namespace

nlohmann::ordered_json network_document(const network::NetworkStore& store,
                                        const network::NetworkRecord& net) {
    return inspect_document(store, net);
}

std::vector<NetworkRecord> list_networks(const std::string& store_root,
                                         const std::vector<std::string>& filters) {
    Filters f = Filters::parse(filters, {"driver", "id", "label", "name", "scope", "type"});
    NetworkStore store(store_root);
    if (::geteuid() == 0) {
        // What containers killed with their monitor left (no daemon does it).
        network::recover(store_root);
    }
    std::vector<NetworkRecord> out;
    for (const auto& n : store.list()) {
        if (f.match(n)) {
            out.push_back(n);
        }
    }
    return out;
}

std::vector<std::string> prune_networks(const std::string& store_root,
                                        const std::vector<std::string>& filters) {
    // until=TIME: made before it (docker's network prune filter).
    std::optional<std::int64_t> until;
    std::vector<std::string> rest;
    for (const auto& item : filters) {
        if (item.starts_with("until=")) {
            until = until_seconds(item.substr(6));
        } else {
            rest.push_back(item);
        }
    }
    Filters f = Filters::parse(rest, {"label"});
    NetworkStore store(store_root);
    network::recover(store_root);
    // Docker: a network a container is configured for is in use, even stopped.
    std::set<std::string> used;
    containers::Store cs(store_root);
    for (const auto& id : cs.list()) {
        try {
            auto cfg = containers::NetworkConfig::from_container(cs.load_config(id));
            for (const auto& e : cfg.endpoints) {
                if (auto n = store.find(e.network)) {
                    used.insert(n->id);
                }
            }
        } catch (const std::exception&) {
            // a container being removed
        }
    }
    std::vector<std::string> removed;
    for (const auto& n : store.list()) {
        if (n.predefined() || used.count(n.id) != 0 || !f.match(n) ||
            (until && parse_time(n.created).value_or(0) >= *until) ||
            !store.endpoints(n.id).empty()) {
            continue;
        }
        try {
            network::remove_network(store_root, n);
            removed.push_back(n.name);
        } catch (const Error&) {
            // attached meanwhile
        }
    }
    return removed;
}

void connect_container(const std::string& store_root, const std::string& network,
                       const std::string& container, const std::string& ip,
                       const std::vector<std::string>& aliases) {
    NetworkStore store(store_root);
    NetworkRecord net = store.load(network);
    containers::Store cs(store_root);
    std::string id = cs.resolve(container);
    auto lock = cs.lock(id);
    auto config = cs.load_config(id);
    auto cfg = containers::NetworkConfig::from_container(config);
    // Docker's checks (daemon's updateNetworkSettings), in its order.
    if (cfg.mode.rfind("container:", 0) == 0) {
        throw Error(conflict_shared);
    }
    if (cfg.mode != "host" && net.driver == "host") {
        throw Error(conflict_host);
    }
    std::string name = cs.name(id);
    if (cfg.mode == net.name && !net.is_bridge()) {
        throw Error("endpoint with name " + name + " already exists in network " + net.name);
    }
    for (const auto& e : cfg.endpoints) {
        auto n = store.find(e.network);
        if (e.network == net.name || (n && n->id == net.id)) {
            throw Error("endpoint with name " + name + " already exists in network " + net.name);
        }
    }
    if (cfg.mode == "host" || net.driver == "host") {
        throw Error(conflict_shared);
    }
    if (cfg.mode == "none" || net.driver == "null") {
        throw Error(conflict_none);
    }
    auto checked =
        containers::NetworkConfig::from_flags(store_root, net.name, ip, aliases, {}, {}, {});
    if (!ip.empty() && !net.configured_subnet) {
        throw UsageError("user specified IP address is supported only when connecting to "
                         "networks with user configured subnets");
    }
    network::EndpointRequest e = checked.endpoints.front();
    // A live monitor (running, or waiting to restart it) joins now and
    // at its next starts; without one the configuration alone changes.
    ask_monitor(cs, id, "network-connect",
                {{"Network", e.network}, {"IPv4Address", e.ipv4}, {"Aliases", e.aliases}});
    cfg.connect(e);
    cfg.to_container(config);
    cs.save_config(id, config);
}

void disconnect_container(const std::string& store_root, const std::string& network,
                          const std::string& container, bool force) {
    NetworkStore store(store_root);
    NetworkRecord net = store.load(network);
    containers::Store cs(store_root);
    std::string id;
    try {
        id = cs.resolve(container);
    } catch (const containers::NoSuchContainer&) {
        // Docker's -f: the endpoints a removed container left on the network.
        if (!force || network::remove_endpoints(store_root, net, container) == 0) {
            throw;
        }
        return;
    }
    auto lock = cs.lock(id);
    auto config = cs.load_config(id);
    auto cfg = containers::NetworkConfig::from_container(config);
    if (cfg.mode == "host" && net.driver == "host") {
        throw Error(conflict_host);
    }
    if (ask_monitor(cs, id, "network-disconnect", {{"Network", net.name}})) {
        try {
            cfg.disconnect(store_root, id, net.name);
        } catch (const Error&) {
            // connected by a start before the configuration said so: gone now
        }
    } else {
        cfg.disconnect(store_root, id, net.name);
    }
    cfg.to_container(config);
    cs.save_config(id, config);
}

void register_network(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand("network", "Manage networks");
    cmd->require_subcommand(1);
    register_create(cmd, ctx);
    register_ls(cmd, ctx);
    register_inspect(cmd, ctx);
    register_rm(cmd, ctx);
    register_prune(cmd, ctx);
    register_connect(cmd, ctx);
    register_disconnect(cmd, ctx);
}

} // namespace strata::cli
