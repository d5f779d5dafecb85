// POST /build: docker build with the classic builder's JSON stream, through
// strata build's own functions (cli/build.hpp) and builder::build.
#include "cli/build.hpp"
#include "cli/common.hpp"
#include "cli/serve/build_stream.hpp"
#include "cli/serve/routes.hpp"
#include "snapshot/reference.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace strata::cli::serve {

namespace {

using nlohmann::ordered_json;

// A JSON object parameter ({"K": "V"}; null values skipped, as dockerd's
// build args without a value); HttpError 400 when it does not parse.
std::map<std::string, std::string> json_map(const api::Request& req, const std::string& key) {
    std::map<std::string, std::string> out;
    auto text = req.maybe_query(key);
    if (!text || text->empty()) {
        return out;
    }
    nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
    if (j.is_discarded() || (!j.is_object() && !j.is_null())) {
        throw api::HttpError(400, "invalid " + key + " parameter: " + *text);
    }
    if (j.is_null()) {
        return out;
    }
    for (const auto& [k, v] : j.items()) {
        if (v.is_string()) {
            out[k] = v.get<std::string>();
        } else if (!v.is_null()) {
            throw api::HttpError(400, "invalid " + key + " parameter: " + k + " is not a string");
        }
    }
    return out;
}

} // namespace

BuildQuery parse_build_query(const api::Request& req) {
    BuildQuery q;
    auto [b, e] = req.query.equal_range("t");
    for (auto it = b; it != e; ++it) {
        if (!it->second.empty()) {
            q.settings.tags.push_back(it->second);
        }
    }
    q.dockerfile = req.maybe_query("dockerfile").value_or("");
    q.settings.target = req.maybe_query("target").value_or("");
    q.settings.no_cache = req.query_bool("nocache");
    q.settings.pull = req.query_bool("pull") ? "always" : "missing";
    q.quiet = req.query_bool("q");
    q.settings.platform = req.maybe_query("platform").value_or("");
    for (const auto& [k, v] : json_map(req, "buildargs")) {
        q.settings.build_args.push_back(k + "=" + v);
    }
    for (const auto& [k, v] : json_map(req, "labels")) {
        q.settings.labels.push_back(k + "=" + v);
        q.labels[k] = v;
    }
    std::string net = req.maybe_query("networkmode").value_or("");
    if (net.empty() || net == "default" || net == "none") {
        q.settings.network = "none";
    } else if (net == "host") {
        q.settings.network = "host";
    } else {
        throw api::HttpError(400, "networkmode=" + net +
                                      ": strata builds with RUN on no network (default, none) "
                                      "or the host's (host)");
    }
    // What strata build cannot honour is refused by name rather than
    // ignored; the docker CLI sends most of these with their zero value.
    auto refuse = [&](const std::string& key, const std::string& why) {
        throw api::HttpError(400, key + "=" + req.maybe_query(key).value_or("") +
                                      ": not supported by strata's builder (" + why + ")");
    };
    auto zero = [&](const std::string& key) {
        std::string v = req.maybe_query(key).value_or("");
        return v.empty() || v == "0";
    };
    for (const char* key : {"memory", "memswap", "cpushares", "cpuquota", "cpuperiod", "shmsize"}) {
        if (!zero(key)) {
            refuse(key, "RUN steps take no resource limits");
        }
    }
    for (const char* key : {"cpusetcpus", "cpusetmems", "cgroupparent"}) {
        if (!zero(key)) {
            refuse(key, "RUN steps take no cgroup settings");
        }
    }
    auto empty_json = [&](const std::string& key) {
        std::string v = req.maybe_query(key).value_or("");
        return v.empty() || v == "null" || v == "[]" || v == "{}";
    };
    if (!empty_json("ulimits")) {
        refuse("ulimits", "RUN steps take no ulimits");
    }
    if (!empty_json("cachefrom")) {
        refuse("cachefrom", "strata build --cache-from takes a registry cache, not images");
    }
    if (!empty_json("outputs")) {
        refuse("outputs", "the image goes to the store; strata build -o writes other outputs");
    }
    for (const char* key : {"extrahosts", "securityopt"}) {
        auto [eb, ee] = req.query.equal_range(key);
        for (auto it = eb; it != ee; ++it) {
            if (!it->second.empty()) {
                refuse(key, "RUN steps get the builder's /etc/hosts and security settings");
            }
        }
    }
    if (req.query_bool("squash")) {
        refuse("squash", "strata keeps one layer per step");
    }
    if (!zero("remote")) {
        refuse("remote", "the context must be the request's body");
    }
    std::string isolation = req.maybe_query("isolation").value_or("");
    if (!isolation.empty() && isolation != "default") {
        refuse("isolation", "Linux containers only");
    }
    std::string version = req.maybe_query("version").value_or("");
    if (!version.empty() && version != "1") {
        throw api::HttpError(400,
                             "version=" + version +
                                 ": strata serve answers the classic builder's stream (version "
                                 "1); BuildKit's session API is not served");
    }
    return q;
}

namespace {

void build(Context& ctx, api::Request& req, api::Exchange& ex) {
    BuildQuery q = parse_build_query(req);
    snapshot::Store store = open_store(ctx);
    builder::BuildOptions o;
    apply_build_settings(q.settings, o);
    TempDir context(store.tmp_dir(), "serve-build-");
    {
        // The body, any compression, staged in the store's tmp/ and then
        // read as `strata build -` reads its context.
        UniqueFd body(::open(store.tmp_dir().c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
        if (!body) {
            throw_errno("open O_TMPFILE", store.tmp_dir());
        }
        ex.read_body_to(body.get());
        if (::lseek(body.get(), 0, SEEK_SET) != 0) {
            throw_errno("lseek", "the build context");
        }
        std::string dir = context.path() + "/context";
        fs::mkdirs(dir, 0755);
        context_from_stream(store, body.get(), q.dockerfile, dir, "the request's body", o);
    }
    o.context_label = "-";
    // A client that goes away cancels the build, as Ctrl-C does strata build.
    builder::Cancellation cancellation;
    o.cancellation = &cancellation;
    bool begun = false;
    ClassicBuildStream stream(
        [&](const ordered_json& j) {
            if (!begun) {
                ex.begin_stream(200, "application/json");
                begun = true;
            }
            if (!ex.write_json(j)) {
                cancellation.cancel();
            }
        },
        q.quiet);
    stream.prepare(o, q.labels);
    BaseImageFetcher fetcher(store, pull_policy(q.settings.pull), true,
                             [&stream](const std::string& m) { stream.message(m); });
    fetcher.install(o);
    o.events = &stream;
    builder::BuildResult r;
    try {
        r = builder::build(store, o);
    } catch (const builder::Cancelled&) {
        if (!begun) {
            throw;
        }
        ex.finish();
        return;
    } catch (const std::exception& e) {
        if (!stream.started()) {
            throw;
        }
        stream.fail(e);
        ex.finish();
        return;
    }
    std::vector<std::string> tags;
    for (const auto& t : q.settings.tags) {
        tags.push_back(snapshot::Reference::parse(t).familiar());
    }
    stream.succeed(r, tags);
    ex.finish();
}

} // namespace

void add_build_routes(api::Router& router, Context& ctx) {
    router.add("POST", "/build",
               [&ctx](api::Request& req, api::Exchange& ex) { build(ctx, req, ex); });
}

} // namespace strata::cli::serve
