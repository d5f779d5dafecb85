// `strata build --output`: writing the built image somewhere besides the store.
//
//   type=oci,dest=DIR            an OCI image layout directory
//   type=oci-archive,dest=FILE   the same as a tar (skopeo's oci-archive:)
//   type=docker-archive,dest=FILE  `docker load` / `podman load` input
//   type=tar,dest=FILE           the flattened root filesystem as a tar
//   type=local,dest=DIR          the flattened root filesystem as files
//
// "dest=-" writes the archive types to stdout. The output is written in
// addition to the store (the image is also stored, named by -t).
#pragma once

#include "formats/oci.hpp"
#include "snapshot/store.hpp"

#include <string>
#include <vector>

namespace strata::builder {

struct OutputSpec {
    std::string type; // oci, oci-archive, docker-archive, tar, local
    std::string dest;
};

// Parses "type=oci,dest=out" (also the short form "DIR", meaning type=local,
// as docker buildx -o does). Throws UsageError.
OutputSpec parse_output(const std::string& text);

void write_output(snapshot::Store& store, const formats::Descriptor& manifest,
                  const std::vector<std::string>& names, const OutputSpec& spec);

} // namespace strata::builder
