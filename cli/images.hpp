// The image commands' work as plain functions, for `strata images`/`tag`/
// `rmi`/`load`/`save`/`inspect` and the API server's endpoints alike
// (cmd_images.cpp, cmd_archive.cpp, cmd_inspect.cpp).
#pragma once

#include "cli/cli.hpp"
#include "cli/template.hpp"
#include "snapshot/store.hpp"

#include <functional>
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

} // namespace strata::cli
