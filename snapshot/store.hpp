// The store (DESIGN.md "The store"): one directory that is a valid OCI image
// layout (oci-layout, index.json, blobs/sha256/<hex>) plus unpacked layer
// snapshots keyed by chain ID, build cache records, a tmp/ work area on the
// same filesystem and a lock file.
//
// - A blob is written under tmp/, fsync'd, its digest checked, then renamed
//   into place: a blob visible under a digest always has that digest.
// - index.json is rewritten (temp + rename) only under the exclusive flock.
// - Image names are `org.opencontainers.image.ref.name` annotations holding
//   the full normalised reference ("docker.io/library/busybox:latest").
#pragma once

#include "formats/digest.hpp"
#include "formats/layout.hpp"
#include "formats/oci.hpp"
#include "snapshot/reference.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::snapshot {

inline constexpr std::string_view k_ref_name_annotation = "org.opencontainers.image.ref.name";

// A layer blob that does not hold what its digest or diff ID says.
class CorruptLayer : public Error {
public:
    using Error::Error;
};

// Store::resolve found nothing by that name, ID or digest ("no such image: X";
// `strata serve` answers 404 with dockerd's message).
class NoSuchImage : public Error {
public:
    explicit NoSuchImage(std::string_view text)
        : Error("no such image: " + std::string(text)), m_text(text) {}
    const std::string& text() const noexcept { return m_text; }

private:
    std::string m_text;
};

// An exclusive flock on the store's lock file, held for the object's life.
class StoreLock {
public:
    explicit StoreLock(const std::string& path);
    StoreLock(StoreLock&&) noexcept = default;
    StoreLock& operator=(StoreLock&&) noexcept = default;

private:
    UniqueFd m_fd;
};

// Blobs are written through the OCI layout's verified writer: bytes go to
// tmp/, are hashed, fsync'd, checked and renamed into blobs/sha256.
using BlobWriter = formats::BlobWriter;

struct ImageRecord {
    std::optional<Reference> name; // nullopt for an untagged (dangling) image
    formats::Descriptor manifest;
};

// A manifest with its config, as read (and digest-checked) from the store.
struct Image {
    formats::Descriptor descriptor; // of the manifest
    formats::Manifest manifest;
    formats::ImageConfig config;
    formats::Digest id() const { return manifest.config.digest; } // Docker's image ID
    std::vector<formats::Digest> chain_ids() const;
};

struct GcResult {
    std::uint64_t blobs_removed = 0;
    std::uint64_t bytes_removed = 0;
    std::uint64_t snapshots_removed = 0;
};

struct VerifyProblem {
    std::string what; // "blob sha256:...: content hashes to sha256:..."
    // Set when the problem is a damaged snapshot (removing it repairs it:
    // it is unpacked again from its layer on next use).
    std::optional<formats::Digest> snapshot;
};

struct VerifyResult {
    std::vector<VerifyProblem> problems;
    std::uint64_t blobs = 0;
    std::uint64_t snapshots = 0;      // compared with their layer
    std::uint64_t snapshots_skipped = 0; // no image or cache record names their layer
};

class Store {
public:
    // Opens the store at root, creating an empty one when it does not exist.
    explicit Store(std::string root);
    // Blob writers refer to the store's layout: a store stays where it is made.
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;
    ~Store(); // ends this process's lease

    // --- leases (what gc honours). A Store that writes to the store (blobs,
    // snapshots) or keep()s something holds a lease from then on for its
    // life: a file in leases/ under a shared flock, so that a strata process
    // that dies drops it (a Store that only reads makes no file: `strata
    // run` writes nothing to the disk). gc keeps every blob and snapshot made
    // since the oldest live lease began (work not yet named: a build's
    // layers, a load's or pull's blobs, unpacked snapshots), what live
    // leases keep(), what pins name, and every snapshot ensure_snapshots()
    // returned to a live Store (a shared flock on its directory). Each user
    // of tmp/ locks its own entry (TempDir, AtomicFile); gc skips those.
    // Keeps a manifest or index (its config, layers and snapshots) for this
    // Store's life, even when its name is removed meanwhile.
    void keep(const formats::Descriptor& manifest) const;
    // The same until unpin(name), across processes (a `strata mount`).
    void pin(const std::string& name, const formats::Descriptor& manifest);
    void unpin(const std::string& name);

    const std::string& root() const noexcept { return m_root; }
    std::string tmp_dir() const { return m_root + "/tmp"; }
    std::string cache_dir() const { return m_root + "/cache"; }
    StoreLock lock() const;

    // --- blobs
    bool has_blob(const formats::Digest& d) const;
    // has_blob for a writer that will use the blob it finds instead of
    // writing it: the blob counts as new for gc (its ctime is refreshed under
    // this Store's lease), so gc cannot take it before it is referenced.
    bool reuse_blob(const formats::Digest& d) const;
    // reuse_blob for a blob that arrives from outside (a pull): true only
    // when the stored blob still hashes to d (it is read in full). A damaged
    // blob is then fetched again and the verified bytes replace it.
    bool reuse_intact_blob(const formats::Digest& d) const;
    std::string blob_path(const formats::Digest& d) const;
    // Opens a blob for reading; throws naming the digest when it is missing.
    UniqueFd open_blob(const formats::Digest& d) const;
    // Reads a small blob (a JSON document) and checks its digest.
    std::string read_blob(const formats::Digest& d,
                          std::size_t max_size = formats::k_max_document_size) const;
    formats::Digest put_blob(std::string_view data);
    BlobWriter new_blob() const;
    // Copies a blob from a stream (verifying it when expected is set).
    formats::Digest ingest(int fd, const std::optional<formats::Digest>& expected = std::nullopt);

    // --- images (index.json)
    std::vector<ImageRecord> images() const;
    // Resolves what a user typed: a name ("busybox", "busybox:1", full
    // "docker.io/library/busybox:latest"), an image ID or a unique prefix of
    // it ("sha256:abc..." or "abc1234"), or a manifest digest. Throws
    // NoSuchImage.
    ImageRecord resolve(std::string_view text) const;
    std::optional<ImageRecord> find(const Reference& name) const;
    // Reads and checks the manifest and config the descriptor points at.
    Image load(const formats::Descriptor& manifest) const;
    Image load(std::string_view text) const { return load(resolve(text).manifest); }
    // Adds or replaces a name (under the lock). The manifest must be in the store.
    void set_name(const Reference& name, const formats::Descriptor& manifest);
    // Records a manifest without a name, so that gc keeps it.
    void add_untagged(const formats::Descriptor& manifest);
    // Removes a name; returns false when there was no such name.
    bool remove_name(const Reference& name);
    // Removes the unnamed entries of a manifest.
    void remove_untagged(const formats::Digest& manifest);
    // Writes manifest + config blobs for an image and returns the manifest
    // descriptor (the layers must already be in the store).
    formats::Descriptor put_image(const formats::ImageConfig& config,
                                  const std::vector<formats::Descriptor>& layers,
                                  const std::map<std::string, std::string>& annotations = {});
    // The same with the config given as bytes (kept as they are).
    formats::Descriptor put_image_raw(std::string_view config_json,
                                      const std::vector<formats::Descriptor>& layers,
                                      const std::map<std::string, std::string>& annotations = {});

    // --- snapshots (snapshots/<chain-id hex>/fs)
    std::string snapshot_dir(const formats::Digest& chain_id) const;
    bool has_snapshot(const formats::Digest& chain_id) const;
    // Unpacks every missing snapshot of the image (in overlay form) and returns
    // the snapshot directories, bottom layer first; gc leaves them alone for
    // this Store's life.
    std::vector<std::string> ensure_snapshots(const Image& image);
    // Unpacks one layer blob (in overlay form) as the snapshot chain_id over
    // lowers, the snapshot directories below it (bottom first), unless that
    // snapshot exists. The one way a snapshot is made from a blob: images
    // (ensure_snapshots) and build cache hits use it. Throws CorruptLayer,
    // publishing nothing, when the blob does not hash to layer.digest or its
    // content not to diff_id; SysError when the blob is missing.
    void ensure_snapshot(const formats::Descriptor& layer, const formats::Digest& diff_id,
                         const formats::Digest& chain_id, const std::vector<std::string>& lowers);
    // Publishes an already-populated directory (e.g. a build step's upper dir)
    // as the snapshot for chain_id; the directory is moved, not copied. The
    // filesystem is synced (syncfs) first, so that a snapshot visible under
    // its name survives a power cut whole; synced: the caller did that
    // (sync_dir) after the directory's last change.
    void adopt_snapshot(const formats::Digest& chain_id, const std::string& dir,
                        bool synced = false);
    // The syncfs of adopt_snapshot, on its own (sync_tree's fallback).
    static void sync_dir(const std::string& dir);
    // Makes the tree at dir durable without flushing the rest of the
    // filesystem, as syncfs would (every process's dirty data: a build
    // beside other builds waited for theirs): every directory is fsynced,
    // and every regular file but those on_disk says are already there (rel:
    // "a/b"; hard links to a snapshot's files). More than a few hundred files
    // to write: sync_dir (a journal commit per file costs more). A build
    // syncs a step's upper directory so while it packs the layer, before the
    // blob's own writes are there to be flushed with it.
    static void sync_tree(const std::string& dir,
                          const std::function<bool(const std::string& rel)>& on_disk);

    // --- maintenance
    GcResult gc();
    // Re-hashes every blob, loads every image, and compares every snapshot
    // with the layer it was unpacked from (snapshot_verify.hpp).
    std::vector<VerifyProblem> verify(const std::function<void(std::string_view)>& progress = {}) const;
    VerifyResult verify_all(const std::function<void(std::string_view)>& progress = {}) const;
    // Removes a snapshot (under the lock); returns false when there was none.
    bool remove_snapshot(const formats::Digest& chain_id);

private:
    void write_index(const formats::Index& index);
    formats::Index read_index() const;
    void update_index(const std::function<void(formats::Index&)>& change);

    std::string m_root;
    formats::OciLayout m_layout;
    // Starts this Store's lease when it has none yet.
    void ensure_lease() const;

    // The lease (made on first need; the builder writes from several threads).
    mutable std::mutex m_lease_mutex;
    mutable std::string m_lease_path;     // leases/lease-<pid>-<random>; empty without one
    mutable UniqueFd m_lease_fd;          // holds the shared flock
    mutable std::vector<UniqueFd> m_held; // snapshot directories under a shared flock
};

} // namespace strata::snapshot
