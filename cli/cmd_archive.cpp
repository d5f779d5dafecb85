// load, save, export, unpack: moving images in and out of the store as
// files (docker-archive, oci-archive, OCI layout directories) and as root
// filesystems.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/container_fs.hpp"
#include "cli/images.hpp"
#include "formats/image_archive.hpp"
#include "formats/json.hpp"
#include "formats/media_types.hpp"
#include "snapshot/flatten.hpp"
#include "util/error.hpp"
#include "util/event_log.hpp"
#include "util/fs.hpp"
#include "util/atomic_file.hpp"
#include "util/log.hpp"
#include "util/tempdir.hpp"

#include <iostream>
#include <memory>
#include <set>
#include <unistd.h>

namespace strata::cli {

using formats::Descriptor;
using formats::Digest;

namespace {

// ------------------------------------------------------------------ load

// The media type of a layer in the manifest strata writes for an archive
// that had none (a classic docker-archive): OCI types, by compression.
std::string oci_layer_type(const formats::ArchiveLayer& l) {
    namespace m = formats::media;
    std::string_view t = l.media_type;
    if (t == m::docker_layer_gzip || t == m::oci_layer_gzip) {
        return std::string(m::oci_layer_gzip);
    }
    if (t == m::oci_layer_zstd) {
        return std::string(m::oci_layer_zstd);
    }
    return std::string(m::oci_layer);
}

struct LoadOptions {
    std::string input;
    std::string tag;
    bool quiet = false;
};

} // namespace

std::vector<std::string> load_images(Context& ctx, const std::string& input_arg,
                                     const std::string& tag_text, const std::string& source) {
    std::vector<std::string> report;
    std::optional<snapshot::Reference> tag;
    if (!tag_text.empty()) {
        tag = snapshot::Reference::parse(tag_text);
    }
    snapshot::Store store = open_store(ctx);
    TempDir work(store.tmp_dir(), "load-");
    std::string input = input_arg;
    if (input == "-") {
        // Archives are read by name; stage stdin in the store's tmp/.
        input = work.path() + "/stdin.tar";
        UniqueFd out = fs::open(input, O_WRONLY | O_CREAT | O_EXCL, 0600);
        fs::read_each(STDIN_FILENO, "stdin", 1 << 20,
                      [&](const char* p, std::size_t n) { fs::write_all(out.get(), input, p, n); });
    }
    std::string extract = work.path() + "/x";
    fs::mkdirs(extract, 0700);
    formats::ArchiveContents contents = formats::read_image_archive(input, extract);
    if (contents.images.empty()) {
        throw Error(source + ": the archive holds no image");
    }
    if (tag && contents.images.size() > 1) {
        throw UsageError(source + " holds " + std::to_string(contents.images.size()) +
                         " images; -t names one image only");
    }
    // docker load refuses an archive whose RepoTags hold an invalid name, a
    // name without a tag, or one tag twice: checked before anything is stored.
    if (contents.format == formats::ArchiveFormat::docker_archive) {
        std::set<std::string> seen;
        for (const auto& img : contents.images) {
            for (const auto& n : img.names) {
                auto ref = snapshot::Reference::try_parse(n, false);
                if (!ref || ref->tag().empty() || ref->digest()) {
                    throw Error(source + ": manifest.json: RepoTags: invalid tag " +
                                formats::quote_untrusted(n));
                }
                if (!seen.insert(ref->full()).second) {
                    throw Error(source + ": manifest.json: RepoTags: " +
                                formats::quote_untrusted(n) + " names more than one image");
                }
            }
        }
    }
    // First put every blob in (verified); names are set only at the end, so a
    // failure leaves no new reference.
    struct Loaded {
        Descriptor manifest;
        std::vector<std::string> names;
    };
    std::vector<Loaded> loaded;
    for (const auto& img : contents.images) {
        formats::ImageConfig config = formats::parse_image_config(img.config, source + ": config");
        if (config.diff_ids.size() != img.layers.size()) {
            throw Error(source + ": the config lists " + std::to_string(config.diff_ids.size()) +
                        " diff IDs but the image has " + std::to_string(img.layers.size()) + " layers");
        }
        std::vector<Descriptor> layers;
        for (const auto& l : img.layers) {
            UniqueFd fd = fs::open(l.path, O_RDONLY);
            std::optional<Digest> expected;
            if (l.descriptor) {
                expected = l.descriptor->digest;
            }
            Digest d = with_context(source + ": layer " + fs::basename(l.path),
                                    [&] { return store.ingest(fd.get(), expected); });
            Descriptor desc;
            desc.media_type = img.manifest ? l.media_type : oci_layer_type(l);
            desc.digest = d;
            desc.size = static_cast<std::int64_t>(fs::lstat(store.blob_path(d)).st_size);
            layers.push_back(std::move(desc));
        }
        Descriptor manifest;
        if (img.manifest) {
            // Keep the archive's manifest bytes, so the image keeps its digest.
            formats::Manifest m = formats::parse_manifest(*img.manifest, source + ": manifest");
            Digest config_digest = store.put_blob(img.config);
            if (config_digest != m.config.digest) {
                throw Error(source + ": manifest names config " + m.config.digest.str() +
                            " but the archive's config is " + config_digest.str());
            }
            manifest.media_type = m.media_type.empty() ? std::string(formats::media::oci_manifest)
                                                       : m.media_type;
            manifest.digest = store.put_blob(*img.manifest);
            manifest.size = static_cast<std::int64_t>(img.manifest->size());
        } else {
            // Keep the config bytes as they are: their digest is the image ID.
            manifest = store.put_image_raw(img.config, layers);
        }
        loaded.push_back(Loaded{manifest, img.names});
    }
    for (const auto& l : loaded) {
        Digest id = store.load(l.manifest).id();
        events::record_event(store.root(), "image", "load", id.str(), {{"name", id.str()}});
        bool named = false;
        if (tag) {
            store.set_name(*tag, l.manifest);
            report.push_back("Loaded image: " + tag->familiar());
            continue;
        }
        for (const auto& n : l.names) {
            auto ref = snapshot::Reference::try_parse(n);
            if (!ref) {
                STRATA_LOG_WARN("{}: ignoring image name \"{}\" (not a valid reference)", source, n);
                continue;
            }
            store.set_name(*ref, l.manifest);
            named = true;
            report.push_back("Loaded image: " + ref->familiar());
        }
        if (!named) {
            store.add_untagged(l.manifest);
            report.push_back("Loaded image ID: " + id.str());
        }
    }
    return report;
}

namespace {

// ------------------------------------------------------------------ save

struct SaveOptions {
    std::vector<std::string> images;
    std::string output;
    std::string format = "docker";
};

formats::ArchiveWriteImage archive_image(snapshot::Store& store, const std::string& text) {
    snapshot::ImageRecord rec = store.resolve(text);
    snapshot::Image img = store.load(rec.manifest);
    for (const auto& l : img.manifest.layers) {
        // A missing or lazily pulled layer is named before anything is written.
        store.open_blob(l.digest);
    }
    events::record_event(store.root(), "image", "save", img.id().str(), {{"name", img.id().str()}});
    formats::ArchiveWriteImage w;
    auto ref = snapshot::Reference::try_parse(text);
    if (ref && rec.name && *rec.name == *ref) {
        w.names.push_back(rec.name->familiar());
    } else {
        for (const auto& r : store.images()) {
            if (r.name && r.manifest.digest == rec.manifest.digest) {
                w.names.push_back(r.name->familiar());
            }
        }
    }
    w.config = store.read_blob(img.manifest.config.digest);
    w.manifest = store.read_blob(img.descriptor.digest);
    for (std::size_t i = 0; i < img.manifest.layers.size(); ++i) {
        const auto& l = img.manifest.layers[i];
        w.layers.push_back(formats::ArchiveWriteLayer{store.blob_path(l.digest), l.media_type, l.digest,
                                                      l.size, img.config.diff_ids[i]});
    }
    return w;
}

void save(Context& ctx, const SaveOptions& o) {
    snapshot::Store store = open_store(ctx);
    std::vector<formats::ArchiveWriteImage> images;
    for (const auto& text : o.images) {
        images.push_back(archive_image(store, text));
    }
    bool to_stdout = o.output.empty() || o.output == "-";
    if (to_stdout && o.format != "oci-dir" && ::isatty(1)) {
        throw UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    if (o.format == "docker") {
        to_stdout ? formats::write_docker_archive(images, 1) : formats::write_docker_archive(images, o.output);
    } else if (o.format == "oci") {
        to_stdout ? formats::write_oci_archive(images, 1) : formats::write_oci_archive(images, o.output);
    } else {
        if (to_stdout) {
            throw UsageError("--format oci-dir needs -o DIR");
        }
        formats::write_oci_layout(images, o.output);
    }
}

} // namespace

void save_docker_archive(Context& ctx, const std::vector<std::string>& names, int fd) {
    snapshot::Store store = open_store(ctx);
    std::vector<formats::ArchiveWriteImage> images;
    for (const auto& text : names) {
        images.push_back(archive_image(store, text));
    }
    formats::write_docker_archive(images, fd);
}

namespace {

// -------------------------------------------------------- unpack / export

void unpack(Context& ctx, const std::string& image, const std::string& dir) {
    snapshot::Store store = open_store(ctx);
    snapshot::Image img = store.load(image);
    fs::mkdirs(dir, 0755);
    snapshot::flatten_image(store, img, dir);
}

void export_image(Context& ctx, const std::string& image, const std::string& output) {
    snapshot::Store store = open_store(ctx);
    snapshot::Image img = store.load(image);
    bool to_stdout = output.empty() || output == "-";
    if (to_stdout && ::isatty(1)) {
        throw UsageError("cowardly refusing to export to a terminal. Use the -o flag or redirect");
    }
    if (to_stdout) {
        snapshot::write_rootfs_tar(store, img, STDOUT_FILENO);
        return;
    }
    AtomicFile out(output);
    snapshot::write_rootfs_tar(store, img, out.fd());
    out.commit();
}

} // namespace

void register_archive(CLI::App& app, Context& ctx) {
    auto lo = std::make_shared<LoadOptions>();
    auto* load_cmd = app.add_subcommand("load", "Load images from a docker-archive, an OCI archive or an OCI layout directory");
    load_cmd->add_option("-i,--input", lo->input, "Archive file or OCI layout directory (- for stdin)")->required();
    load_cmd->add_option("-t,--tag", lo->tag, "Name for the image (when the input holds one)");
    load_cmd->add_flag("-q,--quiet", lo->quiet, "Print nothing");
    load_cmd->callback([&ctx, lo] {
        for (const auto& line : load_images(ctx, lo->input, lo->tag, lo->input)) {
            if (!lo->quiet) {
                std::cout << line << "\n";
            }
        }
    });

    auto so = std::make_shared<SaveOptions>();
    auto* save_cmd = app.add_subcommand("save", "Save images to a docker-archive, an OCI archive or an OCI layout directory");
    save_cmd->add_option("IMAGE", so->images, "Image names or IDs")->required();
    save_cmd->add_option("-o,--output", so->output, "Output file (default: stdout) or directory for oci-dir");
    save_cmd->add_option("--format", so->format, "docker (docker save format), oci (OCI archive) or oci-dir")
        ->check(CLI::IsMember({"docker", "oci", "oci-dir"}))
        ->capture_default_str();
    save_cmd->callback([&ctx, so] { save(ctx, *so); });

    struct Pair {
        std::string image, path;
    };
    auto eo = std::make_shared<Pair>();
    auto* export_cmd = app.add_subcommand("export", "Write a container's or an image's root filesystem as a tar");
    export_cmd->add_option("CONTAINER", eo->image, "Container (or image) name or ID")->required();
    export_cmd->add_option("-o,--output", eo->path, "Output file (default: stdout)");
    export_cmd->callback([&ctx, eo] {
        if (find_container(ctx, eo->image)) {
            container_export(ctx, eo->image, eo->path);
        } else {
            export_image(ctx, eo->image, eo->path);
        }
    });

    auto uo = std::make_shared<Pair>();
    auto* unpack_cmd = app.add_subcommand("unpack", "Write an image's root filesystem into a directory");
    unpack_cmd->add_option("IMAGE", uo->image, "Image name or ID")->required();
    unpack_cmd->add_option("DIR", uo->path, "Target directory (created if missing)")->required();
    unpack_cmd->callback([&ctx, uo] { unpack(ctx, uo->image, uo->path); });
}

} // namespace strata::cli
