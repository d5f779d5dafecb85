// inspect: an image's manifest and config.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/container_cli.hpp"
#include "cli/images.hpp"
#include "cli/mount_state.hpp"
#include "cli/template.hpp"
#include "util/error.hpp"

#include <algorithm>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <unistd.h>

namespace strata::cli {

namespace {

std::string join(const std::vector<std::string>& v, std::string_view sep = " ") {
    std::string out;
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (i > 0) {
            out += sep;
        }
        out += v[i];
    }
    return out;
}

std::string json_list(const std::vector<std::string>& v) {
    return nlohmann::json(v).dump();
}

void print_human(const snapshot::Image& img, const std::vector<std::string>& names) {
    const auto& c = img.config;
    const auto& cc = c.config;
    std::cout << "ID:            " << img.id().str() << "\n";
    std::cout << "Names:         " << (names.empty() ? "<none>" : join(names, ", ")) << "\n";
    std::cout << "Manifest:      " << img.descriptor.digest.str() << " ("
              << img.descriptor.media_type << ")\n";
    std::cout << "Created:       " << (c.created.empty() ? "N/A" : c.created) << "\n";
    std::cout << "Platform:      " << c.os << "/" << c.architecture
              << (c.variant.empty() ? "" : "/" + c.variant) << "\n";
    if (!c.author.empty()) {
        std::cout << "Author:        " << c.author << "\n";
    }
    std::cout << "User:          " << cc.user << "\n";
    std::cout << "WorkingDir:    " << cc.working_dir << "\n";
    std::cout << "Entrypoint:    " << (cc.entrypoint ? json_list(*cc.entrypoint) : "null") << "\n";
    std::cout << "Cmd:           " << (cc.cmd ? json_list(*cc.cmd) : "null") << "\n";
    std::cout << "Env:\n";
    for (const auto& e : cc.env) {
        std::cout << "  " << e << "\n";
    }
    if (!cc.exposed_ports.empty()) {
        std::cout << "ExposedPorts:  " << join({cc.exposed_ports.begin(), cc.exposed_ports.end()})
                  << "\n";
    }
    if (!cc.volumes.empty()) {
        std::cout << "Volumes:       " << join({cc.volumes.begin(), cc.volumes.end()}) << "\n";
    }
    if (!cc.labels.empty()) {
        std::cout << "Labels:\n";
        for (const auto& [k, v] : cc.labels) {
            std::cout << "  " << k << "=" << v << "\n";
        }
    }
    if (!cc.stop_signal.empty()) {
        std::cout << "StopSignal:    " << cc.stop_signal << "\n";
    }
    if (cc.healthcheck) {
        std::cout << "Healthcheck:   " << json_list(cc.healthcheck->test) << "\n";
    }
    if (!cc.on_build.empty()) {
        std::cout << "OnBuild:\n";
        for (const auto& o : cc.on_build) {
            std::cout << "  " << o << "\n";
        }
    }
    if (!cc.shell.empty()) {
        std::cout << "Shell:         " << json_list(cc.shell) << "\n";
    }
    std::cout << "Layers:\n";
    for (std::size_t i = 0; i < img.manifest.layers.size(); ++i) {
        const auto& l = img.manifest.layers[i];
        std::cout << "  " << l.digest.str() << "  "
                  << human_size(static_cast<std::uint64_t>(l.size)) << "  " << l.media_type << "\n";
    }
}

} // namespace

// The document --format templates see: docker's image inspect shape (Id,
// RepoTags, RepoDigests, Created, Author, Config with the image's
// User/Env/Cmd/Entrypoint/..., Architecture, Os, RootFS), plus strata's
// Digest, MediaType and Manifest.
TemplateValue image_document(const snapshot::Store& store, const snapshot::Image& img,
                             const std::vector<snapshot::Reference>& names) {
    TemplateValue oci = TemplateValue::parse(formats::to_json(img.config));
    TemplateValue d = TemplateValue::object();
    d["Id"] = img.id().str();
    d["RepoTags"] = TemplateValue::array();
    d["RepoDigests"] = TemplateValue::array();
    for (const auto& n : names) {
        d["RepoTags"].push_back(n.familiar());
        std::string rd = n.familiar_repository() + "@" + img.descriptor.digest.str();
        if (std::find(d["RepoDigests"].begin(), d["RepoDigests"].end(), rd) ==
            d["RepoDigests"].end()) {
            d["RepoDigests"].push_back(rd);
        }
    }
    // Docker's own config keys that OCI's ImageConfig does not keep: read
    // from the config blob (empty for images strata made, as dockerd shows
    // an imported image's).
    nlohmann::json raw =
        nlohmann::json::parse(store.read_blob(img.manifest.config.digest), nullptr, false);
    auto raw_string = [&](const char* key) {
        return raw.is_object() && raw.contains(key) && raw[key].is_string()
                   ? raw[key].get<std::string>()
                   : std::string();
    };
    d["Parent"] = "";
    d["Comment"] = img.config.history.empty() ? "" : img.config.history.back().comment;
    d["Created"] = img.config.created;
    d["Container"] = raw_string("container");
    if (raw.is_object() && raw.contains("container_config") &&
        raw["container_config"].is_object()) {
        d["ContainerConfig"] = TemplateValue::parse(raw["container_config"].dump());
    } else {
        d["ContainerConfig"] = TemplateValue::parse(
            R"({"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,)"
            R"("AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,)"
            R"("Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,)"
            R"("OnBuild":null,"Labels":null})");
    }
    d["DockerVersion"] = raw_string("docker_version");
    d["Author"] = img.config.author;
    d["Config"] = oci.contains("config") ? oci["config"] : TemplateValue::object();
    d["Architecture"] = img.config.architecture;
    if (!img.config.variant.empty()) {
        d["Variant"] = img.config.variant;
    }
    d["Os"] = img.config.os;
    if (!img.config.os_version.empty()) {
        d["OsVersion"] = img.config.os_version;
    }
    // Bytes, as docker's image inspect has them.
    d["Size"] = static_cast<std::int64_t>(image_size(store, img));
    d["VirtualSize"] = d["Size"];
    // The layers' snapshot directories (unpacked on first use), top first
    // as overlayfs takes lowerdir; strata's own storage, not a graph driver.
    TemplateValue data = TemplateValue::object();
    std::vector<std::string> dirs;
    for (std::size_t i = 1; i <= img.config.diff_ids.size(); ++i) {
        std::vector<formats::Digest> chain(img.config.diff_ids.begin(),
                                           img.config.diff_ids.begin() +
                                               static_cast<std::ptrdiff_t>(i));
        dirs.insert(dirs.begin(), store.snapshot_dir(formats::chain_id(chain)));
    }
    if (!dirs.empty()) {
        data["UpperDir"] = dirs.front();
        std::string lower;
        for (std::size_t i = 1; i < dirs.size(); ++i) {
            lower += (lower.empty() ? "" : ":") + dirs[i];
        }
        if (!lower.empty()) {
            data["LowerDir"] = lower;
        }
    }
    d["GraphDriver"] = {{"Data", data}, {"Name", "strata"}};
    d["RootFS"] = {{"Type", "layers"}, {"Layers", TemplateValue::array()}};
    for (const auto& id : img.config.diff_ids) {
        d["RootFS"]["Layers"].push_back(id.str());
    }
    // strata keeps no time of tagging: Go's zero time, as dockerd has for an
    // image it never tagged.
    d["Metadata"] = {{"LastTagTime", "0001-01-01T00:00:00Z"}};
    d["Digest"] = img.descriptor.digest.str();
    d["MediaType"] = img.descriptor.media_type;
    d["Manifest"] = TemplateValue::parse(formats::to_json(img.manifest));
    return d;
}

void register_inspect(CLI::App& app, Context& ctx) {
    struct Opts {
        std::vector<std::string> refs;
        std::string format;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("inspect", "Show a container's or an image's details");
    cmd->add_option("NAME", o->refs, "Container or image names or IDs")->required();
    cmd->add_option(
        "-f,--format", o->format,
        "json (strata's document: Id, RepoTags, Digest, MediaType, Manifest, Config) or a Go "
        "template over docker's inspect document ({{.Config.Env}}, {{json .RootFS}}, ...)");
    cmd->callback([&ctx, o] {
        std::optional<Template> tmpl;
        if (!o->format.empty() && o->format != "json") {
            tmpl = Template::parse(o->format);
        }
        snapshot::Store store = open_store(ctx);
        nlohmann::json all = nlohmann::json::array();
        TemplateValue all_containers = TemplateValue::array();
        bool first = true;
        for (const auto& text : o->refs) {
            // A container first, as docker inspect looks them up.
            if (::geteuid() == 0) {
                containers::Store cs(ctx.store_root());
                std::optional<std::string> id;
                try {
                    id = cs.resolve(text);
                } catch (const containers::NoSuchContainer&) {
                }
                if (id) {
                    TemplateValue d = container_document(cs, *id);
                    if (tmpl) {
                        std::cout << tmpl->execute(d) << "\n";
                    } else {
                        all_containers.push_back(std::move(d));
                    }
                    continue;
                }
            }
            auto rec = store.resolve(text);
            snapshot::Image img = store.load(rec.manifest);
            std::vector<std::string> names;
            std::vector<snapshot::Reference> refs;
            for (const auto& r : store.images()) {
                if (r.name && r.manifest.digest == rec.manifest.digest) {
                    names.push_back(r.name->familiar());
                    refs.push_back(*r.name);
                }
            }
            if (tmpl) {
                // docker inspect --format: the template per image, then a newline.
                std::cout << tmpl->execute(image_document(store, img, refs)) << "\n";
            } else if (o->format == "json") {
                all.push_back({{"Id", img.id().str()},
                               {"RepoTags", names},
                               {"Digest", img.descriptor.digest.str()},
                               {"MediaType", img.descriptor.media_type},
                               {"Manifest", nlohmann::json::parse(formats::to_json(img.manifest))},
                               {"Config", nlohmann::json::parse(formats::to_json(img.config))}});
            } else {
                if (!first) {
                    std::cout << "\n";
                }
                print_human(img, names);
            }
            first = false;
        }
        if (o->format == "json") {
            std::cout << all.dump(2) << "\n";
        }
        if (!tmpl && !all_containers.empty()) {
            std::cout << all_containers.dump(4) << "\n";
        }
    });
}

void register_maintenance(CLI::App& app, Context& ctx) {
    auto* verify = app.add_subcommand(
        "verify",
        "Re-hash every blob, check every image and compare every unpacked snapshot with its layer");
    auto repair = std::make_shared<bool>(false);
    verify->add_flag(
        "--repair", *repair,
        "Remove damaged snapshots (they are unpacked again from their layer when next used)");
    verify->callback([&ctx, repair] {
        snapshot::Store store = open_store(ctx);
        auto r = store.verify_all();
        std::set<formats::Digest> damaged;
        std::size_t unrepaired = 0;
        for (const auto& p : r.problems) {
            std::cout << "error: " << p.what << "\n";
            if (p.snapshot) {
                damaged.insert(*p.snapshot);
            } else {
                ++unrepaired;
            }
        }
        if (*repair) {
            for (const auto& d : damaged) {
                store.remove_snapshot(d);
                std::cout << "removed snapshot " << d.str()
                          << " (unpacked again from its layer when next used)\n";
            }
        }
        std::string counts =
            std::to_string(r.blobs) + " blob(s), " + std::to_string(r.snapshots) + " snapshot(s)";
        if (r.snapshots_skipped > 0) {
            counts += " (" + std::to_string(r.snapshots_skipped) +
                      " snapshot(s) that no image or cache record uses not checked)";
        }
        if (!r.problems.empty() && (!*repair || unrepaired > 0)) {
            throw Error("store " + store.root() + ": " + std::to_string(r.problems.size()) +
                        " problem(s) found in " + counts +
                        (*repair && !damaged.empty()
                             ? "; damaged snapshots removed, the other problems remain"
                             : ""));
        }
        if (!r.problems.empty()) {
            std::cout << "store " << store.root() << ": " << damaged.size()
                      << " damaged snapshot(s) removed; " << counts << " checked\n";
            return;
        }
        std::cout << "store " << store.root() << ": all blobs, images and snapshots verified ("
                  << counts << ")\n";
    });
    auto* gc =
        app.add_subcommand("gc", "Remove blobs and snapshots that no image or cache record uses");
    gc->callback([&ctx] {
        enter_store_user_namespace(ctx);
        snapshot::Store store = open_store(ctx);
        for (const auto& d : remove_orphaned_uppers(store)) {
            std::cout << "removed orphaned mount upper " << d << "\n";
        }
        auto r = store.gc();
        std::cout << "removed " << r.blobs_removed << " blob(s) (" << human_size(r.bytes_removed)
                  << ") and " << r.snapshots_removed << " snapshot(s)\n";
    });
}

} // namespace strata::cli
