#include "builder/workspace.hpp"

#include "snapshot/stack_order.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"

namespace strata::builder {

Workspace::Workspace(const std::string& tmp_dir, const std::vector<std::string>& lowers)
    : dir_(tmp_dir, "step-") {
    upper_ = dir_.path() + "/upper";
    merged_ = dir_.path() + "/merged";
    std::string work = dir_.path() + "/work";
    fs::mkdirs(upper_, 0755);
    fs::mkdirs(merged_, 0755);
    fs::mkdirs(work, 0700);
    layerfs::MountSpec spec;
    if (lowers.empty()) {
        std::string empty = dir_.path() + "/empty";
        fs::mkdirs(empty, 0755);
        spec.lowers = {empty};
    } else {
        spec.lowers = snapshot::top_first(lowers);
    }
    spec.upper = upper_;
    spec.work = work;
    spec.driver = layerfs::Driver::overlay;
    mount_.emplace(layerfs::mount(spec, merged_));
}

Workspace::~Workspace() {
    mount_.reset(); // unmounts (lazily) before the TempDir goes
}

void Workspace::unmount() {
    if (mount_) {
        mount_->unmount();
        mount_.reset();
    }
}

RootView::RootView(const std::string& tmp_dir, const std::vector<std::string>& lowers) {
    if (lowers.size() == 1) {
        path_ = lowers[0];
        return;
    }
    dir_.emplace(tmp_dir, "view-");
    path_ = dir_->path() + "/root";
    fs::mkdirs(path_, 0755);
    if (lowers.empty()) {
        return;
    }
    layerfs::MountSpec spec;
    spec.lowers = snapshot::top_first(lowers);
    spec.driver = layerfs::Driver::overlay;
    mount_.emplace(layerfs::mount(spec, path_));
}

RootView::~RootView() {
    mount_.reset();
}

} // namespace strata::builder
