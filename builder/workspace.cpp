#include "builder/workspace.hpp"

#include "snapshot/stack_order.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"

namespace strata::builder {

Workspace::Workspace(const std::string& tmp_dir, const std::vector<std::string>& lowers)
    : m_dir(tmp_dir, "step-") {
    m_upper = m_dir.path() + "/upper";
    m_merged = m_dir.path() + "/merged";
    std::string work = m_dir.path() + "/work";
    fs::mkdirs(m_upper, 0755);
    fs::mkdirs(m_merged, 0755);
    fs::mkdirs(work, 0700);
    layerfs::MountSpec spec;
    if (lowers.empty()) {
        std::string empty = m_dir.path() + "/empty";
        fs::mkdirs(empty, 0755);
        spec.lowers = {empty};
    } else {
        spec.lowers = snapshot::top_first(lowers);
    }
    spec.upper = m_upper;
    spec.work = work;
    spec.driver = layerfs::Driver::overlay;
    // Each unmount would otherwise sync the whole filesystem (while a
    // layer's blob may be on its way to disk); a step's upper directory is
    // synced by the build before it becomes a snapshot
    // (Store::adopt_snapshot, Store::sync_dir), and thrown away otherwise.
    spec.volatile_upper = true;
    m_mount.emplace(layerfs::mount(spec, m_merged));
}

Workspace::~Workspace() {
    m_mount.reset(); // unmounts (lazily) before the TempDir goes
}

void Workspace::unmount() {
    if (m_mount) {
        m_mount->unmount();
        m_mount.reset();
    }
}

RootView::RootView(const std::string& tmp_dir, const std::vector<std::string>& lowers) {
    if (lowers.size() == 1) {
        m_path = lowers[0];
        return;
    }
    m_dir.emplace(tmp_dir, "view-");
    m_path = m_dir->path() + "/root";
    fs::mkdirs(m_path, 0755);
    if (lowers.empty()) {
        return;
    }
    layerfs::MountSpec spec;
    spec.lowers = snapshot::top_first(lowers);
    spec.driver = layerfs::Driver::overlay;
    m_mount.emplace(layerfs::mount(spec, m_path));
}

RootView::~RootView() {
    m_mount.reset();
}

} // namespace strata::builder
