// images, tag, rmi: the names in the store's index.json.
#include "builder/cache.hpp"
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/mount_state.hpp"
#include "formats/tar.hpp"
#include "util/error.hpp"

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

namespace strata::cli {

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

// The image's size as `docker images` shows it: the sum of its layers'
// uncompressed content, not the compressed blobs' sizes.
std::uint64_t image_size(const snapshot::Store& store, const snapshot::Image& img) {
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < img.manifest.layers.size() && i < img.config.diff_ids.size(); ++i) {
        total += layer_content_size(store, img, i);
    }
    return total;
}

void list_images(Context& ctx, bool quiet, bool digests, const std::string& format) {
    snapshot::Store store = open_store(ctx);
    std::vector<std::vector<std::string>> rows;
    nlohmann::json out = nlohmann::json::array();
    if (!quiet && format.empty()) {
        rows.push_back(digests ? std::vector<std::string>{"REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"}
                               : std::vector<std::string>{"REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"});
    }
    for (const auto& rec : store.images()) {
        snapshot::Image img;
        try {
            img = store.load(rec.manifest);
        } catch (const Error& e) {
            std::cerr << "strata: warning: " << e.what() << "\n";
            continue;
        }
        std::string repo = rec.name ? rec.name->familiar_repository() : "<none>";
        std::string tag = rec.name && !rec.name->tag().empty() ? rec.name->tag() : "<none>";
        if (quiet) {
            std::cout << img.id().short_id() << "\n";
            continue;
        }
        if (format == "json") {
            out.push_back({{"Repository", repo},
                           {"Tag", tag},
                           {"ID", img.id().str()},
                           {"Digest", rec.manifest.digest.str()},
                           {"Created", img.config.created},
                           {"Size", image_size(store, img)}});
            continue;
        }
        std::vector<std::string> row{repo, tag};
        if (digests) {
            row.push_back(rec.manifest.digest.str());
        }
        row.push_back(img.id().short_id());
        row.push_back(human_age(img.config.created));
        row.push_back(human_size(image_size(store, img)));
        rows.push_back(std::move(row));
    }
    if (format == "json") {
        std::cout << out.dump(2) << "\n";
    } else if (!quiet) {
        print_table(rows);
    }
}

} // namespace

void register_images(CLI::App& app, Context& ctx) {
    struct ImagesOpts {
        bool quiet = false;
        bool digests = false;
        std::string format;
    };
    auto io = std::make_shared<ImagesOpts>();
    auto* images = app.add_subcommand("images", "List the images in the store");
    images->add_flag("-q,--quiet", io->quiet, "Only show image IDs");
    images->add_flag("--digests", io->digests, "Show manifest digests");
    images->add_option("--format", io->format, "Output format: json")->check(CLI::IsMember({"json"}));
    images->callback([&ctx, io] { list_images(ctx, io->quiet, io->digests, io->format); });

    struct TagOpts {
        std::string source, target;
    };
    auto to = std::make_shared<TagOpts>();
    auto* tag = app.add_subcommand("tag", "Give an image another name");
    tag->add_option("SOURCE", to->source, "Image name or ID")->required();
    tag->add_option("TARGET", to->target, "New name[:tag]")->required();
    tag->callback([&ctx, to] {
        snapshot::Store store = open_store(ctx);
        auto rec = store.resolve(to->source);
        Reference name = Reference::parse(to->target);
        if (name.digest()) {
            throw UsageError("refusing to create a tag with a digest reference: " + to->target);
        }
        store.set_name(name, rec.manifest);
    });

    struct RmiOpts {
        std::vector<std::string> refs;
        bool force = false;
    };
    auto ro = std::make_shared<RmiOpts>();
    auto* rmi = app.add_subcommand("rmi", "Remove one or more image names (and the images no name keeps)");
    rmi->add_option("IMAGE", ro->refs, "Image names or IDs")->required();
    rmi->add_flag("-f,--force", ro->force, "Remove every name of an image given by ID");
    rmi->callback([&ctx, ro] {
        enter_store_user_namespace(ctx); // rmi collects garbage
        snapshot::Store store = open_store(ctx);
        bool removed_any = false;
        int failures = 0;
        for (const auto& text : ro->refs) {
            try {
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
                if (!mounted.empty()) {
                    std::string short_id = id.substr(7, 12);
                    if (!ro->force) {
                        throw Error("conflict: unable to remove repository reference \"" + text +
                                    "\" (must force) - mount " + mounted.front() +
                                    " is using its referenced image " + short_id +
                                    " (strata umount it first)");
                    }
                    std::cerr << "strata: warning: " << text << " is mounted on " << mounted.front()
                              << ": its name is removed, the image " << short_id
                              << " stays (<none>) until strata umount\n";
                    if (by_name) {
                        store.remove_name(*ref);
                        std::cout << "Untagged: " << ref->familiar() << "\n";
                    } else {
                        for (const auto& n : names) {
                            store.remove_name(n);
                            std::cout << "Untagged: " << n.familiar() << "\n";
                        }
                    }
                    // After the names go (an image with a name counts as
                    // recorded already).
                    store.add_untagged(rec.manifest);
                    continue;
                }
                if (by_name) {
                    store.remove_name(*ref);
                    std::cout << "Untagged: " << ref->familiar() << "\n";
                    if (names.size() > 1) {
                        continue;
                    }
                } else {
                    if (names.size() > 1 && !ro->force) {
                        throw Error("conflict: unable to delete " + text +
                                    " (must be forced) - image is referenced in multiple repositories");
                    }
                    for (const auto& n : names) {
                        store.remove_name(n);
                        std::cout << "Untagged: " << n.familiar() << "\n";
                    }
                }
                // Drop an untagged entry of the same manifest too.
                store.remove_untagged(rec.manifest.digest);
                std::cout << "Deleted: " << id << "\n";
                removed_any = true;
            } catch (const Error& e) {
                std::cerr << "strata: error: " << e.what() << "\n";
                ++failures;
            }
        }
        if (removed_any) {
            store.gc();
        }
        if (failures > 0) {
            ctx.exit_code = 1;
        }
    });
}

} // namespace strata::cli
