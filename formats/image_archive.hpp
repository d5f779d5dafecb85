// Image archives: moving images in and out of strata as files.
//
//   docker-archive  what `docker save` writes and `docker load` / `podman
//                   load` read: manifest.json [{Config, RepoTags, Layers}]
//                   plus the files it names. Two forms exist: the classic one
//                   (<id>.json configs, <id>/layer.tar layers, symlinks for
//                   repeated layers) and Docker 25's, which is also an OCI
//                   layout (oci-layout, index.json, blobs/sha256/..) whose
//                   manifest.json points into blobs/.
//   oci-archive     a tar of an OCI image layout (skopeo's oci-archive:).
//   oci layout dir  the same, unpacked (skopeo's oci:, umoci).
//
// Reading extracts the regular files of the archive into a work directory
// the caller provides (and deletes), never following or creating links on
// disk: entry names that are absolute or contain "..", and symlinks or hard
// links whose targets leave the archive, are rejected naming the entry.
// Paths that manifest.json or an index name are checked the same way.
// Config and manifest bytes are checked against their digests; layer blobs
// are not hashed here (the store verifies them while ingesting) but their
// sizes are checked against the manifest when there is one.
//
// Writing is deterministic (sorted, mtime 0, uid/gid 0) and atomic (the
// output appears complete or not at all). A docker-archive is written the
// way Docker 25 does, with manifest.json and the OCI layout pieces, and with
// uncompressed layers named by their diff IDs, so that docker load, podman
// load and OCI tools all read it; compressed layers are decompressed on the
// way (gzip, zstd, anything libarchive reads) and checked against their diff
// IDs. An oci-archive keeps blobs as they are.
#pragma once

#include "formats/digest.hpp"
#include "formats/oci.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace strata::formats {

enum class ArchiveFormat { docker_archive, oci_archive, oci_layout };
std::string_view to_string(ArchiveFormat f);

struct ArchiveLayer {
    std::string path;                     // the layer file: in the work dir, or in the layout dir
    std::string media_type;               // from the manifest; for classic docker-archives guessed
                                          // from the file's magic bytes (tar, tar.gzip, tar+zstd)
    std::optional<Descriptor> descriptor; // digest and size, when a manifest gave them
};

struct ArchiveImage {
    // Docker: RepoTags as written ("busybox:latest"). OCI: the
    // io.containerd.image.name annotation if present, else
    // org.opencontainers.image.ref.name (skopeo writes "name:tag" there, the
    // OCI spec allows a bare tag "latest"). Not normalised here.
    std::vector<std::string> names;
    std::string config;                  // config bytes, as stored
    std::optional<std::string> manifest; // manifest bytes when the archive had one
    std::vector<ArchiveLayer> layers;    // base layer first
};

struct ArchiveContents {
    ArchiveFormat format;
    std::vector<ArchiveImage> images;
};

// Reads a docker-archive or oci-archive file (tar, possibly compressed as a
// whole), or an OCI layout directory, detecting which. Archive files are
// extracted below work_dir (an existing, preferably empty, directory on a
// filesystem with room for the layers); layer paths point there. From a
// multi-platform index, the manifest for `platform` (default: the host) is
// taken. Throws FormatError naming the entry, path or digest at fault,
// DigestMismatch for a config or manifest that does not match its digest.
ArchiveContents read_image_archive(const std::string& input, const std::string& work_dir,
                                   const std::optional<Platform>& platform = std::nullopt);

// Which format input holds, looking only at names (for `load` messages).
ArchiveFormat detect_archive_format(const std::string& input);

struct ArchiveWriteLayer {
    std::string path;       // the blob as stored (any compression)
    std::string media_type; // as in the manifest
    Digest digest;          // of the file at path
    std::int64_t size = 0;  // of the file at path
    Digest diff_id;         // of the uncompressed tar
    // Size of the uncompressed tar, when known (TarWriter reports it). It
    // saves the docker-archive writer a decompression pass: the tar header
    // needs the size before the content. Still verified.
    std::optional<std::int64_t> diff_size;
};

struct ArchiveWriteImage {
    std::vector<std::string> names; // "busybox:latest"; may be empty
    std::string config;             // config bytes
    // Manifest bytes to write into an oci-archive. When absent one is made
    // (OCI media types). A docker-archive always gets a fresh manifest for
    // its uncompressed layers, as Docker's does.
    std::optional<std::string> manifest;
    std::vector<ArchiveWriteLayer> layers;
};

// Writes the images as a docker-archive / oci-archive at out_path (replaced
// atomically) or to out_fd (not owned; a pipe is fine). Throws naming the
// layer whose bytes do not match its digest or diff ID.
void write_docker_archive(const std::vector<ArchiveWriteImage>& images,
                          const std::string& out_path);
void write_docker_archive(const std::vector<ArchiveWriteImage>& images, int out_fd);
void write_oci_archive(const std::vector<ArchiveWriteImage>& images, const std::string& out_path);
void write_oci_archive(const std::vector<ArchiveWriteImage>& images, int out_fd);
// Writes the images into an OCI layout directory (created if missing; blobs
// verified while copied; index.json gains one entry per name, replacing an
// entry with the same org.opencontainers.image.ref.name).
void write_oci_layout(const std::vector<ArchiveWriteImage>& images, const std::string& dir);

} // namespace strata::formats
