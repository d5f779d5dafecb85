// The directories a build step works in, all under the store's tmp/ (same
// filesystem as snapshots/, so an upper directory can be renamed into place):
//
//   Workspace: an overlay of the parent's snapshots (read-only lowers) with a
//   fresh upper and work directory, mounted on merged/ with index=off,
//   redirect_dir=off, metacopy=off, so that upper/ is a self-contained diff.
//   RootView: a read-only view of a stage's or an image's root filesystem
//   (COPY --from, RUN --mount from=): the single snapshot itself, an empty
//   directory, or a read-only overlay of the snapshots.
#pragma once

#include "formats/oci.hpp"
#include "layerfs/mount.hpp"
#include "snapshot/layer_diff.hpp"
#include "util/tempdir.hpp"

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace strata::builder {

class Workspace {
public:
    // lowers: snapshot directories, bottom first (may be empty: scratch).
    Workspace(const std::string& tmp_dir, const std::vector<std::string>& lowers);
    Workspace(const Workspace&) = delete;
    Workspace& operator=(const Workspace&) = delete;
    ~Workspace();

    const std::string& merged() const noexcept { return m_merged; }
    const std::string& upper() const noexcept { return m_upper; }
    // Unmounts merged/ (the upper directory is complete after this).
    void unmount();
    // Hands the upper directory over (for Store::adopt_snapshot); the rest of
    // the workspace is still removed with the object.
    std::string upper_path() const { return m_upper; }

    // Run by the step's owner after unmount(), with the upper directory
    // (e.g. to drop stub directories that are no change).
    std::vector<std::function<void(const std::string& upper)>> after_unmount;
    // The snapshot (fs directory) of this step's previous result on the same
    // parent, when the step missed only because files it reads changed: a
    // COPY hard-links its unchanged files from there. Empty: none.
    std::string previous_fs;
    // That result's layer (set with previous_fs).
    std::optional<formats::Descriptor> previous_layer;
    // Whether the layer writer can check file contents (not zstd:chunked).
    bool can_check_contents = false;
    // Content digests files of the upper directory must have in the layer
    // (snapshot::ContentChecks), set by after_unmount work.
    snapshot::ContentChecks content_checks;
    // Files of the upper directory that are the previous snapshot's inodes,
    // whose frames the previous layer gives (snapshot::LinkedFiles), set by
    // after_unmount work.
    snapshot::LinkedFiles linked_files;

private:
    TempDir m_dir;
    std::string m_upper;
    std::string m_merged;
    std::optional<layerfs::MountHandle> m_mount;
};

class RootView {
public:
    RootView(const std::string& tmp_dir, const std::vector<std::string>& lowers);
    RootView(const RootView&) = delete;
    RootView& operator=(const RootView&) = delete;
    ~RootView();

    const std::string& path() const noexcept { return m_path; }

private:
    std::optional<TempDir> m_dir;
    std::string m_path;
    std::optional<layerfs::MountHandle> m_mount;
};

} // namespace strata::builder
