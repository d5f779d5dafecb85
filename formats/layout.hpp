// OCI image layout directories (image-spec image-layout.md):
//
//   <root>/oci-layout          {"imageLayoutVersion":"1.0.0"}
//   <root>/index.json          an image index naming the images
//   <root>/blobs/sha256/<hex>  content, named by its digest
//
// OciLayout works on any such directory: strata's store, a directory written
// for `save --format oci-dir`, one skopeo or umoci wrote. Blobs are published
// only complete and verified: bytes go to a temporary file (in a directory on
// the same filesystem), are hashed while written, fsync'd, checked against
// the expected digest and size, then renamed into blobs/sha256. On any error
// the temporary file is removed and nothing appears under blobs/. index.json
// is replaced atomically (write temp, fsync, rename). Locking between writers
// is the caller's job (the store holds a flock).
#pragma once

#include "formats/digest.hpp"
#include "formats/oci.hpp"
#include "util/atomic_file.hpp"
#include "util/fd.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::formats {

// Content whose digest or size is not what was expected. The message names
// the blob, the expected and the actual digest/size.
class DigestMismatch : public BadDigest {
public:
    using BadDigest::BadDigest;
};

class OciLayout;

// Writes one blob. Use write() for bytes that should be hashed here, then
// commit(); or write to fd() directly when the producer already hashed
// exactly those bytes (TarWriter's blob digest) and commit_trusted(). The
// destructor of an uncommitted writer removes the temporary file.
class BlobWriter {
public:
    // Creates the temporary file in tmp_dir (empty: the layout root), which
    // must be on the same filesystem as the layout (rename(2) cannot cross
    // filesystems).
    BlobWriter(const OciLayout& layout, const std::string& tmp_dir);
    BlobWriter(const BlobWriter&) = delete;
    BlobWriter& operator=(const BlobWriter&) = delete;

    void write(const void* data, std::size_t size);
    void write(std::string_view s) { write(s.data(), s.size()); }
    std::uint64_t size() const noexcept { return m_size; }
    int fd() const noexcept { return m_file.fd(); }

    // Verifies (when given) digest and size, fsyncs and renames into
    // blobs/sha256/<hex>. Throws DigestMismatch naming both digests, leaving
    // nothing published. Returns the digest.
    Digest commit(const std::optional<Digest>& expected = std::nullopt,
                  std::optional<std::int64_t> expected_size = std::nullopt);
    // For bytes written straight to fd() by a producer that hashed them.
    void commit_trusted(const Digest& digest);

private:
    void publish(const Digest& digest);

    std::string m_root; // the layout's root (a copy: the writer may outlive the OciLayout)
    AtomicFile m_file;  // removed by its destructor unless published
    DigestHasher m_hasher;
    std::uint64_t m_size = 0;
};

class OciLayout {
public:
    // Opens an existing layout: root must be a directory holding a valid
    // oci-layout file. Throws FormatError naming the path otherwise.
    static OciLayout open(const std::string& root);
    // Creates root, blobs/sha256, oci-layout and an empty index.json where
    // they are missing (existing ones are kept and checked), then opens it.
    static OciLayout create(const std::string& root);

    const std::string& root() const noexcept { return m_root; }
    std::string index_path() const { return m_root + "/index.json"; }
    // "<root>/blobs/sha256/<hex>".
    std::string blob_path(const Digest& d) const { return m_root + "/" + d.blob_path(); }
    bool has_blob(const Digest& d) const;
    // Opens a blob for reading; nullopt when it is absent.
    std::optional<UniqueFd> maybe_open_blob(const Digest& d) const;
    // Opens a blob; throws SysError naming the path when it is absent.
    UniqueFd open_blob(const Digest& d) const;
    // Reads a whole blob (at most max_size bytes) and checks its digest;
    // throws DigestMismatch when the stored bytes do not hash to d.
    std::string read_blob(const Digest& d, std::size_t max_size = k_max_document_size) const;
    // All digests under blobs/sha256 (names that are not 64 lowercase hex
    // digits are skipped), sorted.
    std::vector<Digest> list_blobs() const;

    // index.json; a missing file is an error naming it.
    Index read_index() const;
    // Replaces index.json atomically.
    void write_index(const Index& index) const;

    // Ingests everything readable from in_fd (until EOF) as a blob; see
    // BlobWriter::commit. Reading stops early, with DigestMismatch, once the
    // input is longer than expected_size. tmp_dir empty means the layout root.
    Digest ingest(int in_fd, const std::optional<Digest>& expected,
                  std::optional<std::int64_t> expected_size = std::nullopt,
                  const std::string& tmp_dir = {}) const;
    Digest ingest_bytes(std::string_view data, const std::optional<Digest>& expected = std::nullopt,
                        const std::string& tmp_dir = {}) const;
    // Copies the file at path in as a blob (same rules as ingest).
    Digest ingest_file(const std::string& path, const std::optional<Digest>& expected,
                       std::optional<std::int64_t> expected_size = std::nullopt,
                       const std::string& tmp_dir = {}) const;

private:
    explicit OciLayout(std::string root) : m_root(std::move(root)) {}
    std::string m_root;
};

} // namespace strata::formats
