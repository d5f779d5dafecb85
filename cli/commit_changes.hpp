// docker commit --change (-c): Dockerfile instructions applied to the config
// of the image a container is committed to, as Docker's BuildFromConfig does
// it: the changes joined by newlines are parsed as a Dockerfile (the
// builder's parser), only CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL,
// ONBUILD, STOPSIGNAL, USER, VOLUME and WORKDIR are allowed (Docker's
// "run is not a valid change command" otherwise), variables are expanded
// with the config's Env, and each applies as its build step would
// (builder::apply_metadata).
#pragma once

#include "formats/oci.hpp"

#include <string>
#include <vector>

namespace strata::cli {

void apply_commit_changes(formats::ImageConfig& cfg, const std::vector<std::string>& changes);

} // namespace strata::cli
