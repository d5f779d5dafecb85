// /volumes/...: list, create, inspect, remove and prune, through what
// strata's volume commands call (containers/volumes.hpp, cli/volumes.hpp).
#include "cli/volumes.hpp"
#include "cli/common.hpp"
#include "cli/serve/routes.hpp"
#include "containers/names.hpp"
#include "containers/volumes.hpp"
#include "snapshot/store.hpp"

namespace strata::cli::serve {

namespace {

using containers::VolumeStore;
using nlohmann::json;
using nlohmann::ordered_json;

containers::StringMap string_map(const json& body, const char* key) {
    containers::StringMap out;
    if (!body.contains(key) || body[key].is_null()) {
        return out;
    }
    if (!body[key].is_object()) {
        throw api::HttpError(400, std::string(key) + ": expected an object of strings");
    }
    for (const auto& [k, v] : body[key].items()) {
        if (!v.is_string()) {
            throw api::HttpError(400, std::string(key) + "." + k + ": expected a string");
        }
        out[k] = v.get<std::string>();
    }
    return out;
}

// GET /volumes?filters=: volume ls's selection.
void list(Context& ctx, api::Request& req, api::Exchange& ex) {
    snapshot::Store store = open_store(ctx);
    VolumeStore volumes(store);
    ordered_json out = ordered_json::array();
    for (const auto& v : list_volumes(volumes, req.query_filters())) {
        out.push_back(v.to_json());
    }
    ex.respond_json(200, ordered_json{{"Volumes", out}, {"Warnings", nullptr}});
}

// POST /volumes/create {Name, Driver, DriverOpts, Labels}: volume create
// (an existing volume of that name is returned as it is, as dockerd).
void create(Context& ctx, api::Request&, api::Exchange& ex) {
    json body;
    try {
        body = json::parse(ex.read_body(1 << 20));
    } catch (const json::exception& e) {
        throw api::HttpError(400, std::string("invalid JSON: ") + e.what());
    }
    if (!body.is_object()) {
        throw api::HttpError(400, "the volume's configuration is not a JSON object");
    }
    for (const auto& [k, v] : body.items()) {
        if (k != "Name" && k != "Driver" && k != "DriverOpts" && k != "Labels" && !v.is_null() &&
            !(v.is_object() && v.empty())) {
            throw api::HttpError(400, k + " is not handled by strata serve's volume create");
        }
    }
    snapshot::Store store = open_store(ctx);
    VolumeStore volumes(store);
    containers::VolumeCreate c;
    c.name = body.value("Name", std::string());
    c.driver = body.value("Driver", std::string());
    if (c.driver.empty()) {
        c.driver = "local";
    }
    c.labels = string_map(body, "Labels");
    c.options = string_map(body, "DriverOpts");
    if (c.name.empty()) {
        c.name = containers::new_id(); // as volume create without a name: not anonymous
    }
    auto [v, created] = volumes.create(c);
    (void)created;
    ex.respond_json(201, v.to_json());
}

std::string volume_name(api::Request& req) {
    return req.param("name");
}

void inspect(Context& ctx, api::Request& req, api::Exchange& ex) {
    snapshot::Store store = open_store(ctx);
    VolumeStore volumes(store);
    auto v = volumes.maybe_get(volume_name(req));
    if (!v) {
        throw api::HttpError(404, "get " + volume_name(req) + ": no such volume");
    }
    ex.respond_json(200, v->to_json());
}

// DELETE /volumes/{name}?force=: volume rm (force: no error when missing;
// a volume in use is still refused, 409, as dockerd).
void remove(Context& ctx, api::Request& req, api::Exchange& ex) {
    snapshot::Store store = open_store(ctx);
    VolumeStore volumes(store);
    std::string name = volume_name(req);
    bool force = req.query_bool("force");
    if (!volumes.maybe_get(name)) {
        if (force) {
            ex.respond_empty(204);
            return;
        }
        throw api::HttpError(404, "get " + name + ": no such volume");
    }
    if (!volumes.users(name).empty()) {
        try {
            volumes.remove(name, force);
        } catch (const Error& e) {
            throw api::HttpError(409, e.what()); // "remove NAME: volume is in use - [ID]"
        }
    } else {
        volumes.remove(name, force);
    }
    ex.respond_empty(204);
}

// POST /volumes/prune?filters=: volume prune. API 1.41 prunes every unused
// volume (named ones too), as dockerd does for every client below 1.42.
void prune(Context& ctx, api::Request& req, api::Exchange& ex) {
    std::vector<std::string> filters = req.query_filters();
    prune_all_filter(filters); // checks the filters' keys
    const bool all = true;     // every version served is below 1.42
    snapshot::Store store = open_store(ctx);
    VolumeStore volumes(store);
    auto r = prune_volumes(volumes, filters, all);
    ordered_json removed = r.removed.empty() ? ordered_json(nullptr) : ordered_json(r.removed);
    ex.respond_json(200, ordered_json{{"VolumesDeleted", removed}, {"SpaceReclaimed", r.bytes}});
}

} // namespace

void add_volume_routes(api::Router& router, Context& ctx) {
    auto bind = [&ctx](ContextHandler f) { return with_context(ctx, f); };
    router.add("GET", "/volumes", bind(list));
    router.add("POST", "/volumes/create", bind(create));
    router.add("POST", "/volumes/prune", bind(prune));
    router.add("GET", "/volumes/{name}", bind(inspect));
    router.add("DELETE", "/volumes/{name}", bind(remove));
}

} // namespace strata::cli::serve
