// `strata build --output`: writing the built image somewhere besides the store.
//
//   type=oci,dest=FILE           an OCI archive (tar), as BuildKit's oci exporter
//   type=oci,dest=DIR,tar=false  an OCI image layout directory
//   type=docker,dest=FILE        `docker load` / `podman load` input (no dest:
//                                the image stays in the store only)
//   type=oci-archive / type=docker-archive, dest=FILE  the same tars
//   type=tar,dest=FILE           the flattened root filesystem as a tar
//   type=local,dest=DIR          the flattened root filesystem as files
//   -                            type=tar,dest=- (as docker build -o -)
//   DIR                          type=local,dest=DIR (as docker build -o DIR)
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
    // After parsing: oci-archive, oci-dir, docker-archive, tar, local, or
    // store (type=docker without dest: nothing besides the store).
    std::string type;
    std::string dest;
};

// Parses "type=oci,dest=out" and the short forms "-" and "DIR". Throws
// UsageError.
OutputSpec parse_output(const std::string& text);

void write_output(snapshot::Store& store, const formats::Descriptor& manifest,
                  const std::vector<std::string>& names, const OutputSpec& spec);

} // namespace strata::builder
