// docker diff, commit and export of containers (containers/filesystem.hpp
// does the work; this is the command-line side). `strata diff` with one
// argument and `strata export` of a name that is a container come here.
#pragma once

#include "cli/cli.hpp"
#include "formats/digest.hpp"

#include <optional>
#include <string>
#include <vector>

namespace strata::cli {

// The container's id when text names one (a name, a full id or a unique id
// prefix); nullopt when no container has that name or id.
std::optional<std::string> find_container(const Context& ctx, const std::string& text);

// docker diff CONTAINER: "C /etc", "A /etc/new", "D /tmp/gone" lines.
void container_diff(Context& ctx, const std::string& container);
// docker export [-o FILE] CONTAINER (stdout when output is empty or "-").
void container_export(Context& ctx, const std::string& container, const std::string& output);

// docker cp with a container on one side (CONTAINER:PATH, "-" for a tar on
// stdin or stdout); false when neither side names a container (the caller
// then copies out of an image).
bool container_cp(Context& ctx, const std::string& source, const std::string& dest, bool follow,
                  bool archive);

// docker commit CONTAINER [REPOSITORY[:TAG]]: the container's changes as a
// new layer on its image, the changes (-c, Dockerfile instructions) applied
// to its config; pause freezes a running container meanwhile. Returns the
// image ID.
struct CommitSettings {
    std::string author;
    std::string message;
    std::vector<std::string> changes;
    bool pause = true;
    std::string reference; // empty: an untagged image
};
formats::Digest commit_container(Context& ctx, const std::string& container,
                                 const CommitSettings& s);

} // namespace strata::cli
