#include "builder/output.hpp"

#include "formats/image_archive.hpp"
#include "snapshot/flatten.hpp"
#include "snapshot/reference.hpp"
#include "util/atomic_file.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <optional>
#include <unistd.h>

namespace strata::builder {

OutputSpec parse_output(const std::string& text) {
    OutputSpec spec;
    if (text == "-") {
        // docker build -o -: the root filesystem as a tar on stdout.
        spec.type = "tar";
        spec.dest = "-";
        return spec;
    }
    if (text.find('=') == std::string::npos) {
        spec.type = "local";
        spec.dest = text;
        return spec;
    }
    std::optional<bool> tar;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        std::size_t comma = text.find(',', pos);
        std::string field = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        pos = comma == std::string::npos ? text.size() + 1 : comma + 1;
        auto eq = field.find('=');
        if (eq == std::string::npos) {
            throw UsageError("--output " + text + ": \"" + field + "\" is not key=value");
        }
        std::string k = field.substr(0, eq);
        std::string v = field.substr(eq + 1);
        if (k == "type") {
            spec.type = v;
        } else if (k == "dest") {
            spec.dest = v;
        } else if (k == "tar") {
            if (v != "true" && v != "false") {
                throw UsageError("--output " + text + ": tar must be true or false");
            }
            tar = v == "true";
        } else {
            throw UsageError("--output " + text + ": unknown key \"" + k + "\" (type, dest, tar)");
        }
    }
    if (spec.type != "oci" && spec.type != "docker" && spec.type != "oci-archive" &&
        spec.type != "docker-archive" && spec.type != "tar" && spec.type != "local") {
        throw UsageError("--output " + text +
                         ": type must be oci, docker, oci-archive, "
                         "docker-archive, tar or local");
    }
    if (tar && spec.type != "oci" && spec.type != "docker") {
        throw UsageError("--output " + text + ": tar= applies to type=oci and type=docker");
    }
    // BuildKit's oci and docker exporters write a tar archive; tar=false
    // writes an OCI layout directory instead.
    if (spec.type == "oci" || spec.type == "docker") {
        bool as_tar = tar.value_or(true);
        if (!as_tar) {
            spec.type = "oci-dir";
        } else {
            spec.type = spec.type == "oci" ? "oci-archive" : "docker-archive";
        }
        if (spec.type == "docker-archive" && spec.dest.empty()) {
            // As docker buildx's type=docker loads into Docker's image
            // store: the image is in strata's store already.
            spec.type = "store";
            return spec;
        }
    }
    if (spec.dest.empty()) {
        throw UsageError("--output " + text + ": dest is required");
    }
    if (spec.dest == "-" && (spec.type == "oci-dir" || spec.type == "local")) {
        throw UsageError("--output " + text + ": this output needs a directory as dest");
    }
    return spec;
}

void write_output(snapshot::Store& store, const formats::Descriptor& manifest,
                  const std::vector<std::string>& names, const OutputSpec& spec) {
    snapshot::Image img = store.load(manifest);
    bool to_stdout = spec.dest == "-";
    if (spec.type == "store") {
        return;
    }
    if (spec.type == "local") {
        fs::mkdirs(spec.dest, 0755);
        snapshot::flatten_image(store, img, spec.dest);
        return;
    }
    if (spec.type == "tar") {
        if (to_stdout) {
            snapshot::write_rootfs_tar(store, img, STDOUT_FILENO);
            return;
        }
        AtomicFile out(spec.dest);
        snapshot::write_rootfs_tar(store, img, out.fd());
        out.commit();
        return;
    }
    formats::ArchiveWriteImage w;
    for (const auto& n : names) {
        w.names.push_back(snapshot::Reference::parse(n).familiar());
    }
    w.config = store.read_blob(img.manifest.config.digest);
    w.manifest = store.read_blob(img.descriptor.digest);
    for (std::size_t i = 0; i < img.manifest.layers.size(); ++i) {
        const auto& l = img.manifest.layers[i];
        w.layers.push_back(formats::ArchiveWriteLayer{store.blob_path(l.digest), l.media_type, l.digest,
                                                      l.size, img.config.diff_ids[i]});
    }
    std::vector<formats::ArchiveWriteImage> images = {w};
    if (spec.type == "oci-dir") {
        formats::write_oci_layout(images, spec.dest);
    } else if (spec.type == "oci-archive") {
        to_stdout ? formats::write_oci_archive(images, STDOUT_FILENO)
                  : formats::write_oci_archive(images, spec.dest);
    } else {
        to_stdout ? formats::write_docker_archive(images, STDOUT_FILENO)
                  : formats::write_docker_archive(images, spec.dest);
    }
}

} // namespace strata::builder
