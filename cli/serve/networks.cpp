// /networks/...: list, inspect, create, remove, prune, connect and
// disconnect, through what strata's network commands call
// (network/store.hpp, network/sandbox.hpp, cli/networks.hpp).
#include "cli/networks.hpp"
#include "cli/common.hpp"
#include "cli/serve/routes.hpp"
#include "containers/store.hpp"
#include "network/sandbox.hpp"
#include "network/store.hpp"

namespace strata::cli::serve {

namespace {

using nlohmann::json;
using nlohmann::ordered_json;

json read_json(api::Exchange& ex) {
    json body;
    try {
        body = json::parse(ex.read_body(1 << 20));
    } catch (const json::exception& e) {
        throw api::HttpError(400, std::string("invalid JSON: ") + e.what());
    }
    if (!body.is_object()) {
        throw api::HttpError(400, "the request body is not a JSON object");
    }
    return body;
}

bool is_set(const json& v) {
    return !(v.is_null() || (v.is_boolean() && !v.get<bool>()) ||
             (v.is_number() && v.get<double>() == 0) ||
             (v.is_string() && v.get<std::string>().empty()) || (v.is_object() && v.empty()) ||
             (v.is_array() && v.empty()));
}

std::map<std::string, std::string> string_map(const json& body, const std::string& key) {
    std::map<std::string, std::string> out;
    if (!body.contains(key) || body[key].is_null()) {
        return out;
    }
    if (!body[key].is_object()) {
        throw api::HttpError(400, key + ": expected an object of strings");
    }
    for (const auto& [k, v] : body[key].items()) {
        if (!v.is_string()) {
            throw api::HttpError(400, key + "." + k + ": expected a string");
        }
        out[k] = v.get<std::string>();
    }
    return out;
}

network::NetworkRecord load(Context& ctx, const std::string& ref) {
    network::NetworkStore store(ctx.store_root());
    auto n = store.find(ref);
    if (!n) {
        throw api::HttpError(404, "network " + ref + " not found");
    }
    return *n;
}

// The errors of network commands: dockerd's statuses for its messages.
template <class F> void as_dockerd(F&& f) {
    try {
        f();
    } catch (const network::NetworkNotFound& e) {
        throw api::HttpError(404, e.what());
    } catch (const containers::NoSuchContainer&) {
        throw;
    } catch (const UsageError& e) {
        std::string m = e.what();
        throw api::HttpError(m.find("already exists") != std::string::npos ? 409 : 400, m);
    } catch (const api::HttpError&) {
        throw;
    } catch (const Error& e) {
        std::string m = e.what();
        // dockerd: conflicts (in use, already attached) are 403 / 409; an
        // overlapping pool is 403 as well.
        if (m.find("has active endpoints") != std::string::npos ||
            m.find("already exists") != std::string::npos) {
            throw api::HttpError(m.find("already exists") != std::string::npos ? 409 : 403, m);
        }
        if (m.find("is not connected") != std::string::npos) {
            throw api::HttpError(404, m);
        }
        if (m.find("overlaps") != std::string::npos) {
            throw api::HttpError(403, m);
        }
        throw api::HttpError(400, m);
    }
}

// GET /networks?filters=: network ls's selection as inspect documents.
void list(Context& ctx, api::Request& req, api::Exchange& ex) {
    ordered_json out = ordered_json::array();
    std::vector<network::NetworkRecord> nets;
    as_dockerd([&] { nets = list_networks(ctx.store_root(), req.query_filters()); });
    network::NetworkStore store(ctx.store_root());
    for (const auto& n : nets) {
        out.push_back(network_document(store, n));
    }
    ex.respond_json(200, out);
}

// GET /networks/{id}: network inspect's document.
void inspect(Context& ctx, api::Request& req, api::Exchange& ex) {
    network::NetworkRecord n = load(ctx, req.param("id"));
    network::NetworkStore store(ctx.store_root());
    ex.respond_json(200, network_document(store, n));
}

// POST /networks/create: network create's options; a field strata has no
// flag for is refused (400 naming it).
void create(Context& ctx, api::Request&, api::Exchange& ex) {
    json body = read_json(ex);
    for (const auto& [k, v] : body.items()) {
        static const std::set<std::string> known = {"Name",     "CheckDuplicate", "Driver",
                                                    "Internal", "Labels",         "Options",
                                                    "IPAM",     "Attachable"};
        if (known.count(k) == 0 && is_set(v)) {
            throw api::HttpError(400, k + " is not handled by strata serve's network create");
        }
    }
    network::CreateOptions c;
    c.name = body.value("Name", std::string());
    if (c.name.empty()) {
        throw api::HttpError(400, "network name cannot be empty");
    }
    c.driver = body.value("Driver", std::string());
    if (c.driver.empty()) {
        c.driver = "bridge";
    }
    c.internal = body.value("Internal", false);
    c.attachable = body.value("Attachable", false);
    c.labels = string_map(body, "Labels");
    c.options = string_map(body, "Options");
    if (body.contains("IPAM") && body["IPAM"].is_object()) {
        const json& ipam = body["IPAM"];
        std::string driver = ipam.value("Driver", std::string());
        if (!driver.empty() && driver != "default") {
            throw api::HttpError(400, "IPAM.Driver " + driver + " is not handled by strata");
        }
        if (!string_map(ipam, "Options").empty()) {
            throw api::HttpError(400, "IPAM.Options is not handled by strata");
        }
        if (ipam.contains("Config") && ipam["Config"].is_array()) {
            if (ipam["Config"].size() > 1) {
                throw api::HttpError(400, "IPAM.Config: strata takes one subnet per network");
            }
            for (const auto& pool : ipam["Config"]) {
                for (const auto& [k, v] : pool.items()) {
                    if (k != "Subnet" && k != "Gateway" && is_set(v)) {
                        throw api::HttpError(400, "IPAM.Config." + k + " is not handled by strata");
                    }
                }
                c.subnet = pool.value("Subnet", std::string());
                c.gateway = pool.value("Gateway", std::string());
            }
        }
    }
    network::NetworkStore store(ctx.store_root());
    std::string id;
    as_dockerd([&] { id = store.create(c).id; });
    ex.respond_json(201, ordered_json{{"Id", id}, {"Warning", ""}});
}

// DELETE /networks/{id}: network rm.
void remove(Context& ctx, api::Request& req, api::Exchange& ex) {
    network::NetworkRecord n = load(ctx, req.param("id"));
    as_dockerd([&] { network::remove_network(ctx.store_root(), n); });
    ex.respond_empty(204);
}

// POST /networks/prune?filters=: network prune.
void prune(Context& ctx, api::Request& req, api::Exchange& ex) {
    std::vector<std::string> removed;
    as_dockerd([&] { removed = prune_networks(ctx.store_root(), req.query_filters()); });
    ex.respond_json(200,
                    ordered_json{{"NetworksDeleted", removed.empty() ? ordered_json(nullptr)
                                                                     : ordered_json(removed)}});
}

// POST /networks/{id}/connect {Container, EndpointConfig: {IPAMConfig:
// {IPv4Address}, Aliases}}: network connect --ip --alias.
void connect(Context& ctx, api::Request& req, api::Exchange& ex) {
    json body = read_json(ex);
    std::string container = body.value("Container", std::string());
    std::string ip;
    std::vector<std::string> aliases;
    if (body.contains("EndpointConfig") && body["EndpointConfig"].is_object()) {
        const json& ec = body["EndpointConfig"];
        for (const auto& [k, v] : ec.items()) {
            if (k != "IPAMConfig" && k != "Aliases" && k != "NetworkID" && k != "EndpointID" &&
                is_set(v)) {
                throw api::HttpError(400, "EndpointConfig." + k + " is not handled by strata");
            }
        }
        if (ec.contains("IPAMConfig") && ec["IPAMConfig"].is_object()) {
            for (const auto& [k, v] : ec["IPAMConfig"].items()) {
                if (k != "IPv4Address" && is_set(v)) {
                    throw api::HttpError(400, "EndpointConfig.IPAMConfig." + k +
                                                  " is not handled by strata");
                }
            }
            ip = ec["IPAMConfig"].value("IPv4Address", std::string());
        }
        if (ec.contains("Aliases") && ec["Aliases"].is_array()) {
            for (const auto& a : ec["Aliases"]) {
                aliases.push_back(a.get<std::string>());
            }
        }
    }
    load(ctx, req.param("id"));
    as_dockerd(
        [&] { connect_container(ctx.store_root(), req.param("id"), container, ip, aliases); });
    ex.respond_empty(200);
}

// POST /networks/{id}/disconnect {Container, Force}.
void disconnect(Context& ctx, api::Request& req, api::Exchange& ex) {
    json body = read_json(ex);
    load(ctx, req.param("id"));
    as_dockerd([&] {
        disconnect_container(ctx.store_root(), req.param("id"),
                             body.value("Container", std::string()), body.value("Force", false));
    });
    ex.respond_empty(200);
}

} // namespace

void add_network_routes(api::Router& router, Context& ctx) {
    auto bind = [&ctx](ContextHandler f) { return with_context(ctx, f); };
    router.add("GET", "/networks", bind(list));
    router.add("POST", "/networks/create", bind(create));
    router.add("POST", "/networks/prune", bind(prune));
    router.add("GET", "/networks/{id}", bind(inspect));
    router.add("DELETE", "/networks/{id}", bind(remove));
    router.add("POST", "/networks/{id}/connect", bind(connect));
    router.add("POST", "/networks/{id}/disconnect", bind(disconnect));
}

} // namespace strata::cli::serve
