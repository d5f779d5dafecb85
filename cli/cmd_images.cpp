// images, tag, rmi: the names in the store's index.json.
#include "builder/cache.hpp"
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/images.hpp"
#include "cli/mount_state.hpp"
#include "containers/store.hpp"
#include "formats/tar.hpp"
#include "snapshot/lazy_toc.hpp"
#include "snapshot/partial_blob.hpp"
#include "util/error.hpp"
#include "util/event_log.hpp"
#include "util/fs.hpp"

#include "cli/template.hpp"

#include <algorithm>
#include <ctime>
#include <fnmatch.h>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

namespace strata::cli {

namespace {

// The containers (running or not) made from the image whose ID (config
// digest, "sha256:...") is image_id.
std::vector<std::string> containers_using(const Context& ctx, const std::string& image_id) {
    std::vector<std::string> out;
    std::string dir = ctx.store_root() + "/containers";
    if (!fs::exists(dir)) {
        return out;
    }
    containers::Store cs(ctx.store_root());
    for (const auto& cid : cs.list()) {
        try {
            if (cs.load_config(cid).value("Image", std::string()) == image_id) {
                out.push_back(cid);
            }
        } catch (const std::exception&) {
            // A record being removed meanwhile.
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

} // namespace

using snapshot::Reference;

namespace {

// Docker's size of a layer: the bytes of regular-file content it holds
// (hard links counted once, as link entries), which is also what `strata
// history` shows. Remembered per diff ID (builder::known_layer_size; a
// build records it as it writes the layer), else counted by streaming the
// layer blob once: the same value in every store, and later listings read
// one small file per layer.
std::uint64_t layer_content_size(const snapshot::Store& store, const snapshot::Image& img,
                                 std::size_t i) {
    const formats::Digest& diff_id = img.config.diff_ids.at(i);
    if (auto known = builder::known_layer_size(store, diff_id)) {
        return *known;
    }
    const auto& layer = img.manifest.layers.at(i);
    if (!store.has_blob(layer.digest) && snapshot::PartialBlob::exists(store, layer.digest)) {
        // Lazily pulled: its TOC's sizes (not remembered: the diff ID is not
        // checked until the pull completes).
        std::uint64_t total = 0;
        for (const auto& ie : snapshot::load_lazy_index(store, layer).entries) {
            if (ie.entry.type == formats::EntryType::file) {
                total += ie.entry.size;
            }
        }
        return total;
    }
    UniqueFd blob = store.open_blob(layer.digest);
    formats::TarReader reader(blob.get(), layer.digest.str());
    std::uint64_t total = 0;
    while (auto e = reader.next()) {
        if (e->type == formats::EntryType::file) {
            total += e->size;
        }
    }
    formats::LayerDigests d = reader.finish();
    if (d.diff_id == diff_id) {
        builder::remember_layer_size(store, diff_id, total);
    }
    return total;
}

} // namespace

std::uint64_t image_size(const snapshot::Store& store, const snapshot::Image& img) {
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < img.manifest.layers.size() && i < img.config.diff_ids.size(); ++i) {
        total += layer_content_size(store, img, i);
    }
    return total;
}

namespace {

struct ImagesOpts {
    bool quiet = false;
    bool digests = false;
    bool no_trunc = false;
    std::string format;
    std::string repository; // [REPOSITORY[:TAG]]
    std::vector<std::string> filters;
};

// path.Match over the familiar name as moby's reference filter does
// (reference.FamiliarMatch): "busybox:latest", then "busybox".
bool reference_matches(const std::string& pattern, const snapshot::Reference& name) {
    return ::fnmatch(pattern.c_str(), name.familiar().c_str(), FNM_PATHNAME) == 0 ||
           ::fnmatch(pattern.c_str(), name.familiar_repository().c_str(), FNM_PATHNAME) == 0;
}

struct ImageFilters {
    std::optional<bool> dangling;
    std::vector<std::string> references;
    std::vector<std::pair<std::string, std::optional<std::string>>> labels; // all must match
    std::optional<std::int64_t> before, since;                              // created times
};

ImageFilters parse_image_filters(snapshot::Store& store, const ImagesOpts& o) {
    ImageFilters f;
    if (!o.repository.empty()) {
        f.references.push_back(o.repository);
    }
    auto created_of = [&](const std::string& key, const std::string& text) {
        snapshot::Image img = store.load(store.resolve(text).manifest);
        auto t = parse_time(img.config.created);
        if (!t) {
            throw UsageError("--filter " + key + "=" + text + ": the image has no creation time");
        }
        return *t;
    };
    for (const auto& text : o.filters) {
        auto eq = text.find('=');
        if (eq == std::string::npos) {
            throw UsageError("bad format of filter (expected name=value): " + text);
        }
        std::string key = text.substr(0, eq);
        std::string value = text.substr(eq + 1);
        if (key == "dangling") {
            if (value == "true" || value == "1") {
                f.dangling = true;
            } else if (value == "false" || value == "0") {
                f.dangling = false;
            } else {
                throw UsageError("invalid filter 'dangling=" + value + "' (true or false)");
            }
        } else if (key == "reference") {
            f.references.push_back(value);
        } else if (key == "label") {
            auto e2 = value.find('=');
            if (e2 == std::string::npos) {
                f.labels.emplace_back(value, std::nullopt);
            } else {
                f.labels.emplace_back(value.substr(0, e2), value.substr(e2 + 1));
            }
        } else if (key == "before") {
            f.before = created_of(key, value);
        } else if (key == "since") {
            f.since = created_of(key, value);
        } else {
            throw UsageError("invalid filter '" + key +
                             "' (images filters: dangling, label, reference, before, since)");
        }
    }
    return f;
}

bool keep_image(const ImageFilters& f, const snapshot::ImageRecord& rec,
                const snapshot::Image& img) {
    if (f.dangling && *f.dangling != !rec.name.has_value()) {
        return false;
    }
    if (!f.references.empty()) {
        if (!rec.name) {
            return false;
        }
        bool any = false;
        for (const auto& p : f.references) {
            any = any || reference_matches(p, *rec.name);
        }
        if (!any) {
            return false;
        }
    }
    for (const auto& [k, v] : f.labels) {
        auto it = img.config.config.labels.find(k);
        if (it == img.config.config.labels.end() || (v && it->second != *v)) {
            return false;
        }
    }
    if (f.before || f.since) {
        auto t = parse_time(img.config.created);
        if (!t || (f.before && !(*t < *f.before)) || (f.since && !(*t > *f.since))) {
            return false;
        }
    }
    return true;
}

void list_images(Context& ctx, const ImagesOpts& o) {
    snapshot::Store store = open_store(ctx);
    ImageFilters filters = parse_image_filters(store, o);
    struct Row {
        std::int64_t created;
        TemplateValue value;
    };
    std::vector<Row> rows;
    for (const auto& rec : store.images()) {
        snapshot::Image img;
        try {
            img = store.load(rec.manifest);
        } catch (const Error& e) {
            std::cerr << "strata: warning: " << e.what() << "\n";
            continue;
        }
        if (!keep_image(filters, rec, img)) {
            continue;
        }
        std::string repo = rec.name ? rec.name->familiar_repository() : "<none>";
        std::string tag = rec.name && !rec.name->tag().empty() ? rec.name->tag() : "<none>";
        std::optional<std::int64_t> created = parse_time(img.config.created);
        std::string size = human_size(image_size(store, img));
        // The fields of docker's image context, in the order its JSON has them.
        TemplateValue v = TemplateValue::object();
        v["Containers"] = "N/A";
        v["CreatedAt"] = created ? go_time_string(*created) : "N/A";
        v["CreatedSince"] = human_age(img.config.created);
        v["Digest"] = rec.manifest.digest.str();
        v["ID"] = o.no_trunc ? img.id().str() : img.id().short_id();
        v["Repository"] = repo;
        v["SharedSize"] = "N/A";
        v["Size"] = size;
        v["Tag"] = tag;
        v["UniqueSize"] = "N/A";
        v["VirtualSize"] = size;
        rows.push_back({created.value_or(0), std::move(v)});
    }
    // Newest first, as docker lists them.
    std::stable_sort(rows.begin(), rows.end(),
                     [](const Row& a, const Row& b) { return a.created > b.created; });
    std::vector<TemplateValue> values;
    for (auto& r : rows) {
        values.push_back(std::move(r.value));
    }
    TableFormat table;
    table.default_table =
        o.digests
            ? "table "
              "{{.Repository}}\\t{{.Tag}}\\t{{.Digest}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}"
            : "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}";
    table.headers = {{"Containers", "CONTAINERS"},
                     {"CreatedAt", "CREATED AT"},
                     {"CreatedSince", "CREATED"},
                     {"Digest", "DIGEST"},
                     {"ID", "IMAGE ID"},
                     {"Repository", "REPOSITORY"},
                     {"SharedSize", "SHARED SIZE"},
                     {"Size", "SIZE"},
                     {"Tag", "TAG"},
                     {"UniqueSize", "UNIQUE SIZE"},
                     {"VirtualSize", "VIRTUAL SIZE"}};
    std::string format = o.format;
    if (o.quiet && (format.empty() || format == "table")) {
        format = "{{.ID}}"; // docker: -q is the IDs unless a custom format is given
    }
    std::cout << format_rows(format, table, values);
}

} // namespace

std::function<bool(const snapshot::ImageRecord&, const snapshot::Image&)>
image_filter(snapshot::Store& store, const std::vector<std::string>& filters) {
    ImagesOpts o;
    o.filters = filters;
    return [f = parse_image_filters(store, o)](const snapshot::ImageRecord& rec,
                                               const snapshot::Image& img) {
        return keep_image(f, rec, img);
    };
}

void tag_image(Context& ctx, const std::string& source, const std::string& target) {
    snapshot::Store store = open_store(ctx);
    auto rec = store.resolve(source);
    Reference name = Reference::parse(target);
    if (name.digest()) {
        throw UsageError("refusing to create a tag with a digest reference: " + target);
    }
    store.set_name(name, rec.manifest);
    events::record_event(store.root(), "image", "tag", store.load(rec.manifest).id().str(),
                         {{"name", name.familiar()}});
}

namespace {

// dockerd's events for an image removal: "untag" per name removed, "delete"
// for the image, both naming the image ID.
void record_removal_events(const snapshot::Store& store, const std::string& id,
                           const ImageRemoval& r) {
    for (const auto& [what, name] : r.items) {
        events::record_event(store.root(), "image", what == "Deleted" ? "delete" : "untag", id,
                             {{"name", id}});
    }
}

} // namespace

ImageRemoval remove_image(const Context& ctx, snapshot::Store& store, const std::string& text,
                          bool force) {
    ImageRemoval out;
    auto rec = store.resolve(text);
    auto all = store.images();
    std::vector<Reference> names;
    for (const auto& r : all) {
        if (r.manifest.digest == rec.manifest.digest && r.name) {
            names.push_back(*r.name);
        }
    }
    auto ref = Reference::try_parse(text);
    bool by_name = ref && rec.name && *rec.name == *ref;
    std::string id = store.load(rec.manifest).id().str();
    // An image a `strata mount` uses is not deleted (as Docker
    // keeps an image a container uses): refused, or with -f
    // untagged and kept as <none> until it is unmounted.
    std::vector<std::string> mounted;
    if (!(by_name && names.size() > 1)) {
        mounted = mounts_of_image(store, rec.manifest.digest);
    }
    // An image a container was made from (running or not):
    // Docker's conflict; with -f, untagged and kept as <none>
    // for the container (its pin keeps it from gc), as Docker.
    if (!(by_name && names.size() > 1)) {
        for (const auto& cid : containers_using(ctx, id)) {
            if (!force) {
                throw ImageConflict("conflict: unable to remove repository reference \"" + text +
                                    "\" (must force) - container " + cid.substr(0, 12) +
                                    " is using its referenced image " + id.substr(7, 12));
            }
            mounted.push_back("container " + cid.substr(0, 12));
        }
    }
    if (!mounted.empty()) {
        std::string short_id = id.substr(7, 12);
        if (!force) {
            throw ImageConflict("conflict: unable to remove repository reference \"" + text +
                                "\" (must force) - mount " + mounted.front() +
                                " is using its referenced image " + short_id +
                                " (strata umount it first)");
        }
        bool container = mounted.back().starts_with("container ");
        out.warnings.push_back(text + (container ? " is used by " : " is mounted on ") +
                               mounted.back() + ": its name is removed, the image " + short_id +
                               (container ? " stays (<none>) until strata rm of the container"
                                          : " stays (<none>) until strata umount"));
        if (by_name) {
            store.remove_name(*ref);
            out.items.emplace_back("Untagged", ref->familiar());
        } else {
            for (const auto& n : names) {
                store.remove_name(n);
                out.items.emplace_back("Untagged", n.familiar());
            }
        }
        // After the names go (an image with a name counts as
        // recorded already).
        store.add_untagged(rec.manifest);
        record_removal_events(store, id, out);
        return out;
    }
    if (by_name) {
        store.remove_name(*ref);
        out.items.emplace_back("Untagged", ref->familiar());
        if (names.size() > 1) {
            record_removal_events(store, id, out);
            return out;
        }
    } else {
        if (names.size() > 1 && !force) {
            throw ImageConflict("conflict: unable to delete " + text +
                                " (must be forced) - image is referenced in multiple repositories");
        }
        for (const auto& n : names) {
            store.remove_name(n);
            out.items.emplace_back("Untagged", n.familiar());
        }
    }
    // Drop an untagged entry of the same manifest too.
    store.remove_untagged(rec.manifest.digest);
    out.items.emplace_back("Deleted", id);
    out.deleted = true;
    record_removal_events(store, id, out);
    return out;
}

namespace {

// "until": a Unix time (seconds, maybe with a fraction), an RFC 3339 time,
// or a Go duration before now ("24h", "90m", "1h30m").
std::int64_t until_time(const std::string& v) {
    if (!v.empty() && v.find_first_not_of("0123456789.") == std::string::npos) {
        return std::stoll(v.substr(0, v.find('.')));
    }
    if (auto t = parse_time(v)) {
        return *t;
    }
    std::int64_t total = 0;
    std::size_t i = 0;
    while (i < v.size()) {
        std::size_t j = i;
        while (j < v.size() && (std::isdigit(static_cast<unsigned char>(v[j])) != 0)) {
            ++j;
        }
        if (j == i || j == v.size()) {
            throw UsageError("invalid filter 'until=" + v + "'");
        }
        std::int64_t n = std::stoll(v.substr(i, j - i));
        char unit = v[j];
        if (unit == 'h') {
            total += n * 3600;
        } else if (unit == 'm') {
            total += n * 60;
        } else if (unit == 's') {
            total += n;
        } else {
            throw UsageError("invalid filter 'until=" + v + "'");
        }
        i = j + 1;
    }
    return static_cast<std::int64_t>(std::time(nullptr)) - total;
}

} // namespace

std::vector<std::string> pruned_image_lines(const ImagePrune& r) {
    std::vector<std::string> lines;
    for (const auto& [what, name] : r.items) {
        lines.push_back((what == "Untagged" ? "untagged: " : "deleted: ") + name);
    }
    return lines;
}

ImagePrune prune_images(Context& ctx, snapshot::Store& store,
                        const std::vector<std::string>& filters) {
    bool dangling_only = true;
    std::optional<std::int64_t> until;
    std::vector<std::pair<std::string, std::optional<std::string>>> with, without;
    for (const auto& f : filters) {
        auto eq = f.find('=');
        std::string key = f.substr(0, eq);
        std::string value = eq == std::string::npos ? "" : f.substr(eq + 1);
        if (key == "dangling") {
            if (value == "true" || value == "1") {
                dangling_only = true;
            } else if (value == "false" || value == "0") {
                dangling_only = false;
            } else {
                throw UsageError("Invalid filter 'dangling=" + value + "'");
            }
        } else if (key == "until") {
            until = until_time(value);
        } else if (key == "label" || key == "label!") {
            auto e2 = value.find('=');
            auto& list = key == "label" ? with : without;
            list.emplace_back(value.substr(0, e2), e2 == std::string::npos
                                                       ? std::nullopt
                                                       : std::optional(value.substr(e2 + 1)));
        } else {
            throw UsageError("Invalid filter '" + key + "'");
        }
    }
    ImagePrune out;
    std::set<std::string> seen;
    for (const auto& rec : store.images()) {
        if (!seen.insert(rec.manifest.digest.str()).second) {
            continue;
        }
        snapshot::Image img;
        try {
            img = store.load(rec.manifest);
        } catch (const Error&) {
            continue;
        }
        std::vector<Reference> names;
        for (const auto& r : store.images()) {
            if (r.name && r.manifest.digest == rec.manifest.digest) {
                names.push_back(*r.name);
            }
        }
        if (dangling_only && !names.empty()) {
            continue;
        }
        if (until && parse_time(img.config.created).value_or(0) >= *until) {
            continue;
        }
        const auto& labels = img.config.config.labels;
        auto has = [&](const std::pair<std::string, std::optional<std::string>>& l) {
            auto it = labels.find(l.first);
            return it != labels.end() && (!l.second || it->second == *l.second);
        };
        if (!std::all_of(with.begin(), with.end(), has) ||
            std::any_of(without.begin(), without.end(), has)) {
            continue;
        }
        std::string id = img.id().str();
        // What a container or a mount uses stays, as dockerd keeps it.
        if (!containers_using(ctx, id).empty() ||
            !mounts_of_image(store, rec.manifest.digest).empty()) {
            continue;
        }
        for (const auto& n : names) {
            store.remove_name(n);
            out.items.emplace_back("Untagged", n.familiar());
        }
        store.remove_untagged(rec.manifest.digest);
        out.items.emplace_back("Deleted", id);
    }
    if (!out.items.empty()) {
        out.reclaimed = store.gc().bytes_removed;
    }
    return out;
}

DiskUsage disk_usage(Context& ctx) {
    DiskUsage out;
    snapshot::Store store = open_store(ctx);
    // Distinct images, and how many images each layer (diff ID) is in.
    std::vector<std::pair<snapshot::ImageRecord, snapshot::Image>> images;
    std::set<std::string> seen;
    std::map<std::string, int> layer_users;
    std::map<std::string, std::uint64_t> layer_size;
    for (const auto& rec : store.images()) {
        if (!seen.insert(rec.manifest.digest.str()).second) {
            continue;
        }
        try {
            snapshot::Image img = store.load(rec.manifest);
            for (std::size_t i = 0;
                 i < img.manifest.layers.size() && i < img.config.diff_ids.size(); ++i) {
                std::string d = img.config.diff_ids[i].str();
                if (layer_users[d]++ == 0) {
                    layer_size[d] = layer_content_size(store, img, i);
                }
            }
            images.emplace_back(rec, std::move(img));
        } catch (const Error&) {
            continue; // a broken entry: `strata images` warns about it
        }
    }
    for (const auto& [d, size] : layer_size) {
        out.layers_size += size;
    }
    std::map<std::string, int> users_of_image;
    std::vector<ContainerEntry> entries;
    if (fs::exists(ctx.store_root() + "/containers")) {
        containers::Store cs(ctx.store_root());
        entries = list_containers(cs, true, 0, {});
        for (auto& e : entries) {
            std::string image_id = e.config.value("Image", std::string());
            ++users_of_image[image_id];
            std::uint64_t rw = 0;
            try {
                rw = fs::disk_usage(cs.path(e.id) + "/upper").bytes;
            } catch (const SysError&) {
                // removed meanwhile
            }
            std::uint64_t image_bytes = 0;
            for (const auto& [rec, img] : images) {
                if (img.id().str() == image_id) {
                    image_bytes = image_size(store, img);
                }
            }
            out.containers.push_back({std::move(e), rw, rw + image_bytes});
        }
    }
    for (const auto& [rec, img] : images) {
        DiskUsage::ImageRow row;
        row.id = img.id().str();
        for (const auto& r : store.images()) {
            if (r.name && r.manifest.digest == rec.manifest.digest) {
                row.names.push_back(*r.name);
            }
        }
        row.manifest = rec.manifest.digest.str();
        row.created = parse_time(img.config.created).value_or(0);
        row.labels = img.config.config.labels;
        for (std::size_t i = 0; i < img.manifest.layers.size() && i < img.config.diff_ids.size();
             ++i) {
            std::string d = img.config.diff_ids[i].str();
            row.size += layer_size[d];
            if (layer_users[d] > 1) {
                row.shared += layer_size[d];
            }
        }
        row.containers = users_of_image[row.id];
        out.images.push_back(std::move(row));
    }
    std::sort(out.images.begin(), out.images.end(),
              [](const auto& a, const auto& b) { return a.created > b.created; });
    containers::VolumeStore vs(store);
    if (fs::exists(vs.dir())) {
        for (auto& v : vs.list()) {
            std::uint64_t size = vs.size(v);
            int refs = static_cast<int>(vs.users(v.name).size());
            out.volumes.push_back({std::move(v), size, refs});
        }
    }
    return out;
}

void register_images(CLI::App& app, Context& ctx) {
    auto io = std::make_shared<ImagesOpts>();
    auto* images = app.add_subcommand("images", "List the images in the store");
    images->add_option(
        "REPOSITORY", io->repository,
        "Only images whose name matches REPOSITORY[:TAG] (a pattern, as docker images)");
    images->add_flag("-q,--quiet", io->quiet, "Only show image IDs");
    images->add_flag("--digests", io->digests, "Show manifest digests");
    images->add_flag("--no-trunc", io->no_trunc, "Show full image IDs");
    images
        ->add_option(
            "-f,--filter", io->filters,
            "Filter: dangling=true|false, label=KEY[=VALUE], reference=PATTERN, before=IMAGE, "
            "since=IMAGE")
        ->type_name("FILTER")
        ->allow_extra_args(false);
    images->add_option("--format", io->format,
                       "table, table TEMPLATE, json (a JSON object per line) or a Go template "
                       "(fields: .ID .Repository .Tag .Digest .CreatedSince .CreatedAt .Size)");
    images->callback([&ctx, io] { list_images(ctx, *io); });

    struct TagOpts {
        std::string source, target;
    };
    auto to = std::make_shared<TagOpts>();
    auto* tag = app.add_subcommand("tag", "Give an image another name");
    tag->add_option("SOURCE", to->source, "Image name or ID")->required();
    tag->add_option("TARGET", to->target, "New name[:tag]")->required();
    tag->callback([&ctx, to] { tag_image(ctx, to->source, to->target); });

    struct RmiOpts {
        std::vector<std::string> refs;
        bool force = false;
    };
    auto ro = std::make_shared<RmiOpts>();
    auto* rmi =
        app.add_subcommand("rmi", "Remove one or more image names (and the images no name keeps)");
    rmi->add_option("IMAGE", ro->refs, "Image names or IDs")->required();
    rmi->add_flag("-f,--force", ro->force, "Remove every name of an image given by ID");
    rmi->callback([&ctx, ro] {
        enter_store_user_namespace(ctx); // rmi collects garbage
        snapshot::Store store = open_store(ctx);
        bool removed_any = false;
        int failures = each_reporting_errors(ro->refs, [&](const std::string& text) {
            ImageRemoval r = remove_image(ctx, store, text, ro->force);
            for (const auto& w : r.warnings) {
                std::cerr << "strata: warning: " << w << "\n";
            }
            for (const auto& [what, name] : r.items) {
                std::cout << what << ": " << name << "\n";
            }
            removed_any = removed_any || r.deleted;
        });
        if (removed_any) {
            store.gc();
        }
        if (failures > 0) {
            ctx.exit_code = 1;
        }
    });

    struct PruneOpts {
        bool all = false;
        bool force = false;
        std::vector<std::string> filters;
    };
    auto po = std::make_shared<PruneOpts>();
    auto* image = app.add_subcommand("image", "Image commands docker has under `docker image`");
    image->require_subcommand(1);
    auto* prune = image->add_subcommand(
        "prune", "Remove images without a name (with -a: every image no container uses)");
    prune->add_flag("-a,--all", po->all, "Remove every image no container or mount uses");
    prune->add_option("--filter", po->filters, "until=TIME, label=KEY[=VALUE], label!=KEY[=VALUE]")
        ->allow_extra_args(false);
    prune->add_flag("-f,--force", po->force, "Do not prompt for confirmation");
    prune->callback([&ctx, po] {
        if (!po->force &&
            !confirmed(po->all ? "This will remove all images without at least one container "
                                 "associated to them."
                               : "This will remove all dangling images.")) {
            return;
        }
        enter_store_user_namespace(ctx); // prune collects garbage
        snapshot::Store store = open_store(ctx);
        std::vector<std::string> filters = po->filters;
        filters.push_back(po->all ? "dangling=false" : "dangling=true");
        ImagePrune r = prune_images(ctx, store, filters);
        print_pruned("Deleted Images", pruned_image_lines(r));
        std::cout << "Total reclaimed space: " << human_size(r.reclaimed) << "\n";
    });

    auto* system = app.add_subcommand("system", "Docker's `docker system` commands on the store");
    system->require_subcommand(1);
    auto* df = system->add_subcommand("df", "Show the space images, containers and volumes use");
    df->callback([&ctx] {
        DiskUsage u = disk_usage(ctx);
        std::uint64_t images_size = u.layers_size, images_reclaimable = 0;
        int images_active = 0;
        for (const auto& i : u.images) {
            if (i.containers > 0) {
                ++images_active;
            } else {
                images_reclaimable += i.size - i.shared;
            }
        }
        std::uint64_t rw = 0, rw_reclaimable = 0;
        int running = 0;
        for (const auto& c : u.containers) {
            rw += c.size_rw;
            if (c.entry.state.running()) {
                ++running;
            } else {
                rw_reclaimable += c.size_rw;
            }
        }
        std::uint64_t vol = 0, vol_reclaimable = 0;
        int vol_active = 0;
        for (const auto& v : u.volumes) {
            vol += v.size;
            if (v.refs > 0) {
                ++vol_active;
            } else {
                vol_reclaimable += v.size;
            }
        }
        print_table({{"TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"},
                     {"Images", std::to_string(u.images.size()), std::to_string(images_active),
                      human_size(images_size), human_size(images_reclaimable)},
                     {"Containers", std::to_string(u.containers.size()), std::to_string(running),
                      human_size(rw), human_size(rw_reclaimable)},
                     {"Local Volumes", std::to_string(u.volumes.size()), std::to_string(vol_active),
                      human_size(vol), human_size(vol_reclaimable)}});
    });
}

} // namespace strata::cli
