// The image commands' work as plain functions, for `strata images`/`tag`/
// `rmi`/`load`/`save`/`inspect` and the API server's endpoints alike
// (cmd_images.cpp, cmd_archive.cpp, cmd_inspect.cpp).
#pragma once

#include "cli/cli.hpp"
#include "cli/container_cli.hpp"
#include "cli/template.hpp"
#include "containers/volumes.hpp"
#include "snapshot/store.hpp"

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace strata::cli {

// Docker's conflict when removing an image (a container or a mount uses it,
// or an ID names several repositories); dockerd answers 409.
class ImageConflict : public Error {
public:
    using Error::Error;
};

// docker images' filters given as "key=value" (dangling, label, reference,
// before, since). Throws UsageError for an unknown or malformed filter,
// NoSuchImage for a before/since image that is not there.
std::function<bool(const snapshot::ImageRecord&, const snapshot::Image&)>
image_filter(snapshot::Store& store, const std::vector<std::string>& filters);

// strata tag SOURCE TARGET. Throws NoSuchImage, UsageError for a bad name.
void tag_image(Context& ctx, const std::string& source, const std::string& target);

// What removing one image name or ID did, in the order docker rmi prints it:
// ("Untagged", "busybox:latest"), ("Deleted", "sha256:...").
struct ImageRemoval {
    std::vector<std::pair<std::string, std::string>> items;
    std::vector<std::string> warnings; // kept as <none> for a mount or container (force)
    bool deleted = false;              // the image itself went: gc is due
};
// strata rmi of one name or ID (without the gc that follows). Throws
// NoSuchImage, ImageConflict.
ImageRemoval remove_image(const Context& ctx, snapshot::Store& store, const std::string& text,
                          bool force);

// docker image prune's work (strata image prune, POST /images/prune): the
// images without a name (dangling=true, the default) or every image
// (dangling=false) that no container or mount uses, narrowed by until=TIME
// and label=/label!= filters; then the store's gc. UsageError for another
// filter ("Invalid filter 'x'", dockerd's words).
struct ImagePrune {
    std::vector<std::pair<std::string, std::string>> items; // ("Untagged"|"Deleted", name or ID)
    std::uint64_t reclaimed = 0;                            // bytes the gc freed
};
// "untagged: NAME" / "deleted: ID" lines, as docker image prune lists them.
std::vector<std::string> pruned_image_lines(const ImagePrune& r);
ImagePrune prune_images(Context& ctx, snapshot::Store& store,
                        const std::vector<std::string>& filters);

// docker system df's figures (strata system df, GET /system/df): each
// image's layer bytes (Size), the part in layers other images share
// (SharedSize) and the containers made from it; the distinct layers' bytes
// (LayersSize); each container's writable layer (SizeRw) and volume's
// content.
struct DiskUsage {
    struct ImageRow {
        std::string id;
        std::string manifest;
        std::vector<snapshot::Reference> names;
        std::int64_t created = 0;
        std::map<std::string, std::string> labels;
        std::uint64_t size = 0;
        std::uint64_t shared = 0;
        int containers = 0;
    };
    struct ContainerRow {
        ContainerEntry entry;
        std::uint64_t size_rw = 0;
        std::uint64_t size_root_fs = 0;
    };
    struct VolumeRow {
        containers::Volume volume;
        std::uint64_t size = 0;
        int refs = 0;
    };
    std::uint64_t layers_size = 0;
    std::vector<ImageRow> images; // newest first
    std::vector<ContainerRow> containers;
    std::vector<VolumeRow> volumes;
};
DiskUsage disk_usage(Context& ctx);

// docker image inspect's document of an image (cmd_inspect.cpp).
TemplateValue image_document(const snapshot::Store& store, const snapshot::Image& img,
                             const std::vector<snapshot::Reference>& names);

// strata load -i INPUT [-t TAG]: stores every image of a docker-archive, OCI
// archive or OCI layout and returns docker load's lines ("Loaded image:
// busybox:latest", "Loaded image ID: sha256:..."). `source` names the input
// in errors.
std::vector<std::string> load_images(Context& ctx, const std::string& input, const std::string& tag,
                                     const std::string& source);

// strata save IMAGE... as a docker-archive written to fd (a pipe is fine).
void save_docker_archive(Context& ctx, const std::vector<std::string>& images, int fd);

// strata import: a root filesystem tar (plain or compressed) read from fd
// becomes a one-layer image; `input` names it in errors and in the default
// comment ("Imported from -"). Entries with ".." or absolute names are
// refused before anything is named. Returns the image ID.
struct ImportSettings {
    std::string tag;
    std::string compression = "gzip";
    std::vector<std::string> changes; // docker import --change
    std::string message;
};
formats::Digest import_rootfs(Context& ctx, int fd, const std::string& input,
                              const ImportSettings& s);

} // namespace strata::cli
