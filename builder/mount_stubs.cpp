#include "builder/mount_stubs.hpp"

#include "util/error.hpp"
#include "util/root.hpp"

#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

namespace strata::builder {

MountStubs::MountStubs(int rootfd, const runner::CreatedMountPoints& created) : m_rootfd(rootfd) {
    for (const auto& [path, st] : created.parents) {
        m_parents.emplace(path, st);
    }
}

void MountStubs::restore_times() const {
    for (const auto& [path, st] : m_parents) {
        try {
            ParentRef ref = open_parent_in_root(m_rootfd, path);
            struct timespec ts[2] = {st.st_atim, st.st_mtim};
            ::utimensat(ref.dir.get(), ref.name.c_str(), ts, AT_SYMLINK_NOFOLLOW);
        } catch (const Error&) {
        }
    }
}

void MountStubs::prune_upper(const std::string& upper) const {
    for (auto it = m_parents.rbegin(); it != m_parents.rend(); ++it) {
        std::string p = upper + it->first;
        struct stat st;
        if (::lstat(p.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
            continue;
        }
        const struct stat& was = it->second;
        if (st.st_mode != was.st_mode || st.st_uid != was.st_uid || st.st_gid != was.st_gid ||
            st.st_mtim.tv_sec != was.st_mtim.tv_sec || st.st_mtim.tv_nsec != was.st_mtim.tv_nsec) {
            continue;
        }
        char v[8];
        if (::lgetxattr(p.c_str(), "trusted.overlay.opaque", v, sizeof v) > 0) {
            continue;
        }
        ::rmdir(p.c_str()); // fails (and keeps it) when it is not empty
    }
}

} // namespace strata::builder
