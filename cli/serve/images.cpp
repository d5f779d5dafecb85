// /images/...: docker images, image inspect, history, tag, rmi, save and
// load, through the functions of strata's image commands (cli/images.hpp).
#include "cli/images.hpp"
#include "cli/build_cache.hpp"
#include "cli/common.hpp"
#include "cli/container_cli.hpp"
#include "cli/container_fs.hpp"
#include "cli/inspect_image.hpp"
#include "cli/serve/progress.hpp"
#include "cli/serve/routes.hpp"
#include "snapshot/image_browse.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <algorithm>
#include <fcntl.h>
#include <map>
#include <unistd.h>

namespace strata::cli::serve {

namespace {

using nlohmann::ordered_json;

// Every name of the image `rec` is one name of (same manifest).
std::vector<snapshot::Reference> names_of(const snapshot::Store& store,
                                          const snapshot::ImageRecord& rec) {
    std::vector<snapshot::Reference> out;
    for (const auto& r : store.images()) {
        if (r.name && r.manifest.digest == rec.manifest.digest) {
            out.push_back(*r.name);
        }
    }
    return out;
}

// GET /images/json: one entry per image ID with the names the filters keep
// (dockerd's reference filter lists only the matching tags), newest first.
void list_images(Context& ctx, api::Request& req, api::Exchange& ex) {
    snapshot::Store store = open_store(ctx);
    auto keep = image_filter(store, req.query_filters());
    struct Entry {
        std::int64_t created = 0;
        ordered_json doc;
    };
    std::map<std::string, Entry> by_id;
    std::vector<std::string> order;
    for (const auto& rec : store.images()) {
        snapshot::Image img;
        try {
            img = store.load(rec.manifest);
        } catch (const Error&) {
            continue; // a broken entry: `strata images` warns about it
        }
        if (!keep(rec, img)) {
            continue;
        }
        std::string id = img.id().str();
        auto [it, fresh] = by_id.try_emplace(id);
        Entry& e = it->second;
        if (fresh) {
            order.push_back(id);
            e.created = parse_time(img.config.created).value_or(0);
            auto size = static_cast<std::int64_t>(image_size(store, img));
            ordered_json labels = nullptr;
            if (!img.config.config.labels.empty()) {
                labels = ordered_json::object();
                for (const auto& [k, v] : img.config.config.labels) {
                    labels[k] = v;
                }
            }
            e.doc = {{"Containers", -1},
                     {"Created", e.created},
                     {"Id", id},
                     {"Labels", labels},
                     {"ParentId", ""},
                     {"RepoDigests", ordered_json::array()},
                     {"RepoTags", ordered_json::array()},
                     {"SharedSize", -1},
                     {"Size", size},
                     {"VirtualSize", size}};
        }
        if (rec.name) {
            e.doc["RepoTags"].push_back(rec.name->familiar());
            std::string rd = rec.name->familiar_repository() + "@" + rec.manifest.digest.str();
            auto& rds = e.doc["RepoDigests"];
            if (std::find(rds.begin(), rds.end(), rd) == rds.end()) {
                rds.push_back(rd);
            }
        }
    }
    std::vector<Entry*> entries;
    for (const auto& id : order) {
        Entry& e = by_id[id];
        if (e.doc["RepoTags"].empty()) { // dangling, as dockerd shows it
            e.doc["RepoTags"].push_back("<none>:<none>");
            e.doc["RepoDigests"].push_back("<none>@<none>");
        }
        entries.push_back(&e);
    }
    std::stable_sort(entries.begin(), entries.end(),
                     [](const Entry* a, const Entry* b) { return a->created > b->created; });
    ordered_json out = ordered_json::array();
    for (auto* e : entries) {
        out.push_back(std::move(e->doc));
    }
    ex.respond_json(200, out);
}

void inspect_image(Context& ctx, api::Request& req, api::Exchange& ex) {
    snapshot::Store store = open_store(ctx);
    auto rec = store.resolve(req.param("name"));
    snapshot::Image img = store.load(rec.manifest);
    ex.respond_json(200, image_document(store, img, names_of(store, rec)));
}

// GET /images/{name}/history: docker history's rows, newest first; the
// top one carries the image's ID and names, the others "<missing>".
void image_history(Context& ctx, api::Request& req, api::Exchange& ex) {
    snapshot::Store store = open_store(ctx);
    auto rec = store.resolve(req.param("name"));
    snapshot::Image image = store.load(rec.manifest);
    snapshot::LayerIndex index;
    snapshot::index_image_layers(store, image, index, image.manifest.layers.size());
    auto rows = history_rows(image);
    std::reverse(rows.begin(), rows.end());
    ordered_json tags = nullptr;
    for (const auto& n : names_of(store, rec)) {
        if (tags.is_null()) {
            tags = ordered_json::array();
        }
        tags.push_back(n.familiar());
    }
    ordered_json out = ordered_json::array();
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto& r = rows[i];
        out.push_back(
            {{"Comment", r.history ? r.history->comment : ""},
             {"Created", r.history ? parse_time(r.history->created).value_or(0) : 0},
             {"CreatedBy", r.history ? r.history->created_by : ""},
             {"Id", i == 0 ? image.id().str() : "<missing>"},
             {"Size", r.layer ? static_cast<std::int64_t>(index.layer(*r.layer).content_bytes) : 0},
             {"Tags", i == 0 ? tags : ordered_json(nullptr)}});
    }
    ex.respond_json(200, out);
}

// POST /images/{name}/tag?repo=R&tag=T: 201, as dockerd.
void tag(Context& ctx, api::Request& req, api::Exchange& ex) {
    std::string repo = req.maybe_query("repo").value_or("");
    std::string tag = req.maybe_query("tag").value_or("");
    if (repo.empty()) {
        throw api::HttpError(400, "repository name must have at least one component");
    }
    tag_image(ctx, req.param("name"), tag.empty() ? repo : repo + ":" + tag);
    ex.respond_empty(201);
}

// DELETE /images/{name}?force=: what docker rmi prints, as
// [{"Untagged": ...}, {"Deleted": ...}]; the store's gc follows a deletion
// as after strata rmi.
void remove(Context& ctx, api::Request& req, api::Exchange& ex) {
    snapshot::Store store = open_store(ctx);
    ImageRemoval r = remove_image(ctx, store, req.param("name"), req.query_bool("force"));
    if (r.deleted) {
        store.gc();
    }
    ordered_json out = ordered_json::array();
    for (const auto& [what, name] : r.items) {
        out.push_back({{what, name}});
    }
    ex.respond_json(200, out);
}

// Streams a file to the client as the response's chunks.
void stream_file(api::Exchange& ex, int fd, std::string_view content_type) {
    ex.begin_stream(200, content_type);
    if (::lseek(fd, 0, SEEK_SET) < 0) {
        throw_errno("lseek of the archive");
    }
    std::string buf(256 * 1024, '\0');
    for (;;) {
        ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw_errno("read of the archive");
        }
        if (n == 0) {
            break;
        }
        if (!ex.write(std::string_view(buf.data(), static_cast<std::size_t>(n)))) {
            return; // the client went away
        }
    }
    ex.finish();
}

// GET /images/get?names=A&names=B and /images/{name}/get: docker save's
// docker-archive. Written to a file in the store's tmp/ first, so that a
// missing image is a 404 before any byte is sent.
void save(Context& ctx, const std::vector<std::string>& names, api::Exchange& ex) {
    if (names.empty()) {
        throw api::HttpError(400, "no images to save");
    }
    snapshot::Store store = open_store(ctx);
    for (const auto& n : names) {
        store.resolve(n); // NoSuchImage before anything is written
    }
    TempDir work(store.tmp_dir(), "serve-save-");
    UniqueFd fd =
        fs::open(work.path() + "/archive.tar", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    save_docker_archive(ctx, names, fd.get());
    stream_file(ex, fd.get(), "application/x-tar");
}

// POST /images/load: docker load (with quiet or without: the same lines). The body is staged in the
// store's tmp/, then loaded as `strata load -i` does; the lines it reports come back as dockerd's
// JSON messages ({"stream": "Loaded image: ...\n"}).
void load(Context& ctx, api::Exchange& ex) {
    snapshot::Store store = open_store(ctx);
    TempDir work(store.tmp_dir(), "serve-load-");
    std::string path = work.path() + "/body.tar";
    {
        UniqueFd fd = fs::open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ex.read_body_to(fd.get());
    }
    auto lines = load_images(ctx, path, "", "the request's archive");
    ex.begin_stream(200, "application/json");
    for (const auto& line : lines) {
        if (!ex.write_json(ordered_json{{"stream", line + "\n"}})) {
            return;
        }
    }
    ex.finish();
}

// POST /commit: docker commit, as `strata commit` makes it; 201
// {"Id": "sha256:..."} as dockerd. The body's Config goes in as changes
// before the changes parameter.
void commit(Context& ctx, api::Request& req, api::Exchange& ex) {
    std::string container = req.maybe_query("container").value_or("");
    if (container.empty()) {
        throw api::HttpError(404, "No such container: ");
    }
    CommitSettings s;
    std::string repo = req.maybe_query("repo").value_or("");
    std::string tag = req.maybe_query("tag").value_or("");
    if (!repo.empty()) {
        s.reference = tag.empty() ? repo : repo + ":" + tag;
        if (!snapshot::Reference::try_parse(s.reference)) {
            throw api::HttpError(400, "invalid reference format");
        }
    } else if (!tag.empty()) {
        throw api::HttpError(400, "invalid reference format: a tag needs a repository");
    }
    s.message = req.maybe_query("comment").value_or("");
    s.author = req.maybe_query("author").value_or("");
    s.pause =
        !req.maybe_query("pause") || req.maybe_query("pause")->empty() || req.query_bool("pause");
    std::string body = ex.read_body(1 << 20);
    if (!body.empty()) {
        nlohmann::json config = nlohmann::json::parse(body, nullptr, false);
        if (config.is_discarded()) {
            throw api::HttpError(400, "invalid JSON in the commit's config");
        }
        s.changes = config_changes(config);
    }
    auto [b, e] = req.query.equal_range("changes");
    for (auto it = b; it != e; ++it) {
        s.changes.push_back(it->second);
    }
    formats::Digest id = commit_container(ctx, container, s);
    ex.respond_json(201, ordered_json{{"Id", id.str()}});
}

// POST /images/prune: docker image prune [-a] [--filter], as `strata image
// prune`: {"ImagesDeleted": [{"Untagged": ...}, {"Deleted": ...}] (null when
// none), "SpaceReclaimed": bytes}.
void prune(Context& ctx, api::Request& req, api::Exchange& ex) {
    std::vector<std::string> filters = req.query_filters();
    bool dangling_given = std::any_of(filters.begin(), filters.end(), [](const std::string& f) {
        return f.starts_with("dangling=");
    });
    if (!dangling_given) {
        filters.push_back("dangling=true");
    }
    snapshot::Store store = open_store(ctx);
    ImagePrune r = prune_images(ctx, store, filters);
    ordered_json deleted = nullptr;
    for (const auto& [what, name] : r.items) {
        if (deleted.is_null()) {
            deleted = ordered_json::array();
        }
        deleted.push_back({{what, name}});
    }
    ex.respond_json(200, ordered_json{{"ImagesDeleted", deleted},
                                      {"SpaceReclaimed", static_cast<std::int64_t>(r.reclaimed)}});
}

// POST /build/prune?all=&keep-storage=&filters=: docker builder prune (and
// the last step of docker system prune), as `strata builder prune`:
// {"CachesDeleted": [keys] (null when none), "SpaceReclaimed": bytes}.
void build_prune(Context& ctx, api::Request& req, api::Exchange& ex) {
    builder::CachePruneOptions opts =
        build_cache_prune_options(req.query_filters(), req.query_bool("all"));
    if (std::int64_t keep = req.query_int("keep-storage", 0); keep > 0) {
        opts.keep_storage = static_cast<std::uint64_t>(keep);
    }
    snapshot::Store store = open_store(ctx);
    builder::CachePruneResult r = builder::prune_build_cache(store, opts);
    ordered_json deleted = nullptr;
    if (!r.removed.empty()) {
        deleted = r.removed;
    }
    ex.respond_json(200, ordered_json{{"CachesDeleted", deleted},
                                      {"SpaceReclaimed", static_cast<std::int64_t>(r.reclaimed)}});
}

// GET /system/df: docker system df [-v], from `strata system df`'s figures.
// BuildCache is null and BuilderSize 0, as dockerd's classic builder
// answers: strata's build cache records are not listed here.
void system_df(Context& ctx, api::Exchange& ex) {
    DiskUsage u = disk_usage(ctx);
    ordered_json images = ordered_json::array();
    for (const auto& i : u.images) {
        ordered_json tags = ordered_json::array();
        ordered_json digests = ordered_json::array();
        for (const auto& n : i.names) {
            tags.push_back(n.familiar());
            std::string rd = n.familiar_repository() + "@" + i.manifest;
            if (std::find(digests.begin(), digests.end(), rd) == digests.end()) {
                digests.push_back(rd);
            }
        }
        if (tags.empty()) {
            tags.push_back("<none>:<none>");
            digests.push_back("<none>@<none>");
        }
        ordered_json labels = nullptr;
        if (!i.labels.empty()) {
            labels = ordered_json::object();
            for (const auto& [k, v] : i.labels) {
                labels[k] = v;
            }
        }
        images.push_back({{"Containers", i.containers},
                          {"Created", i.created},
                          {"Id", i.id},
                          {"Labels", labels},
                          {"ParentId", ""},
                          {"RepoDigests", digests},
                          {"RepoTags", tags},
                          {"SharedSize", static_cast<std::int64_t>(i.shared)},
                          {"Size", static_cast<std::int64_t>(i.size)},
                          {"VirtualSize", static_cast<std::int64_t>(i.size)}});
    }
    ordered_json containers = ordered_json::array();
    for (const auto& row : u.containers) {
        const auto& c = row.entry.config;
        ordered_json config = c.value("Config", ordered_json::object());
        std::string image = config.value("Image", std::string());
        ordered_json labels = ordered_json::object();
        if (config.contains("Labels") && config["Labels"].is_object()) {
            labels = config["Labels"];
        }
        containers.push_back(
            {{"Id", row.entry.id},
             {"Names", {c.value("Name", std::string())}},
             {"Image", image.empty() ? c.value("Image", std::string()) : image},
             {"ImageID", c.value("Image", std::string())},
             {"Command", docker_command(c)},
             {"Created", parse_time(c.value("Created", std::string())).value_or(0)},
             {"SizeRw", static_cast<std::int64_t>(row.size_rw)},
             {"SizeRootFs", static_cast<std::int64_t>(row.size_root_fs)},
             {"Labels", labels},
             {"State", row.entry.state.status},
             {"Status", container_status_text(row.entry.state)},
             {"Mounts", c.value("Mounts", ordered_json::array())}});
    }
    ordered_json volumes = ordered_json::array();
    for (const auto& v : u.volumes) {
        ordered_json j = v.volume.to_json();
        j["UsageData"] = {{"RefCount", v.refs}, {"Size", static_cast<std::int64_t>(v.size)}};
        volumes.push_back(std::move(j));
    }
    ex.respond_json(200, ordered_json{{"LayersSize", static_cast<std::int64_t>(u.layers_size)},
                                      {"Images", images},
                                      {"Containers", containers},
                                      {"Volumes", volumes},
                                      {"BuildCache", nullptr},
                                      {"BuilderSize", 0}});
}

} // namespace

void add_image_routes(api::Router& router, Context& ctx) {
    add_build_routes(router, ctx);
    add_registry_routes(router, ctx);
    router.add("POST", "/images/prune",
               [&ctx](api::Request& req, api::Exchange& ex) { prune(ctx, req, ex); });
    router.add("POST", "/build/prune",
               [&ctx](api::Request& req, api::Exchange& ex) { build_prune(ctx, req, ex); });
    router.add("GET", "/system/df",
               [&ctx](api::Request&, api::Exchange& ex) { system_df(ctx, ex); });
    router.add("POST", "/commit",
               [&ctx](api::Request& req, api::Exchange& ex) { commit(ctx, req, ex); });
    router.add("GET", "/images/json",
               [&ctx](api::Request& req, api::Exchange& ex) { list_images(ctx, req, ex); });
    router.add("GET", "/images/get", [&ctx](api::Request& req, api::Exchange& ex) {
        std::vector<std::string> names;
        auto [b, e] = req.query.equal_range("names");
        for (auto it = b; it != e; ++it) {
            names.push_back(it->second);
        }
        save(ctx, names, ex);
    });
    router.add("POST", "/images/load", [&ctx](api::Request&, api::Exchange& ex) { load(ctx, ex); });
    router.add("GET", "/images/{name*}/json",
               [&ctx](api::Request& req, api::Exchange& ex) { inspect_image(ctx, req, ex); });
    router.add("GET", "/images/{name*}/history",
               [&ctx](api::Request& req, api::Exchange& ex) { image_history(ctx, req, ex); });
    router.add("GET", "/images/{name*}/get", [&ctx](api::Request& req, api::Exchange& ex) {
        save(ctx, {req.param("name")}, ex);
    });
    router.add("POST", "/images/{name*}/tag",
               [&ctx](api::Request& req, api::Exchange& ex) { tag(ctx, req, ex); });
    router.add("DELETE", "/images/{name*}",
               [&ctx](api::Request& req, api::Exchange& ex) { remove(ctx, req, ex); });
}

} // namespace strata::cli::serve
