#include "layerfs/overlay.hpp"

#include "util/child.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/sys/mount.hpp"
#include "util/sys/syscalls.hpp"

#include <cerrno>
#include <fcntl.h>
#include <linux/mount.h>
#include <mutex>
#include <sys/mount.h>
#include <unistd.h>

namespace strata::layerfs {

namespace {

// The classic API copies mount data into one page; the kernel rejects longer strings.
constexpr std::size_t k_mount_data_max = 4095;

std::mutex g_method_mutex;
std::string g_last_method; // guarded by g_method_mutex

void set_method(const char* m) {
    std::lock_guard lock(g_method_mutex);
    g_last_method = m;
}

void validate(const OverlaySpec& spec, const std::string& target) {
    if (spec.lowers.empty()) {
        throw UsageError("overlay mount of \"" + target + "\": no lower layers given");
    }
    if (spec.upper.empty() != spec.work.empty()) {
        throw UsageError("overlay mount of \"" + target +
                         "\": upper and work directories must be given together");
    }
    for (const auto& l : spec.lowers) {
        if (!fs::is_dir(l)) {
            throw SysError("overlay lower layer", l, ENOTDIR);
        }
    }
}

// Messages the kernel queued on an fs context ("e overlay: ...").
std::string context_messages(int fsfd) {
    std::string out;
    char buf[512];
    for (;;) {
        ssize_t n = ::read(fsfd, buf, sizeof buf);
        if (n <= 0) {
            break;
        }
        if (!out.empty()) {
            out += "; ";
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

// Returns false when the new API is unusable on this kernel (then the caller
// falls back); throws for real mount errors.
bool try_new_api(const OverlaySpec& spec, const std::string& target) {
    UniqueFd fsfd;
    try {
        fsfd = sys::fsopen("overlay");
    } catch (const SysError& e) {
        if (e.error_code() == ENOSYS) {
            STRATA_LOG_DEBUG("overlay: new mount API unavailable ({}), using mount(2)", e.what());
            return false;
        }
        throw;
    }
    auto fail = [&](const SysError& e) -> void {
        std::string msg = context_messages(fsfd.get());
        if (msg.empty()) {
            throw e;
        }
        throw Error(std::string(e.what()) + " (kernel: " + msg + ") while mounting overlay on \"" +
                    target + "\"");
    };
    try {
        sys::fsconfig_string(fsfd.get(), "source", "strata");
        bool first = true;
        for (const auto& l : spec.lowers) {
            try {
                sys::fsconfig_string(fsfd.get(), "lowerdir+", l);
            } catch (const SysError& e) {
                if (first && e.error_code() == EINVAL) {
                    // Kernels before 6.8 know no "lowerdir+": the classic
                    // string handles stacks that fit in a page.
                    STRATA_LOG_DEBUG("overlay: kernel rejects lowerdir+ ({}), using mount(2)",
                                     context_messages(fsfd.get()));
                    return false;
                }
                throw;
            }
            first = false;
        }
        if (!spec.upper.empty()) {
            sys::fsconfig_string(fsfd.get(), "upperdir", spec.upper);
            sys::fsconfig_string(fsfd.get(), "workdir", spec.work);
            if (spec.volatile_upper) {
                sys::fsconfig_flag(fsfd.get(), "volatile");
            }
        }
        sys::fsconfig_string(fsfd.get(), "index", "off");
        if (spec.userxattr) {
            // userxattr implies redirect_dir=nofollow and metacopy=off (the
            // same self-contained upper), and refuses redirect_dir=off,
            // which means "follow" under ovl.redirect_always_follow.
            sys::fsconfig_flag(fsfd.get(), "userxattr");
        } else {
            sys::fsconfig_string(fsfd.get(), "redirect_dir", "off");
            sys::fsconfig_string(fsfd.get(), "metacopy", "off");
        }
        sys::fsconfig_create(fsfd.get());
    } catch (const SysError& e) {
        fail(e);
    }
    unsigned attrs = (spec.upper.empty() ? MOUNT_ATTR_RDONLY : 0) |
                     (spec.nosuid_nodev ? MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV : 0);
    UniqueFd mnt = sys::fsmount(fsfd.get(), attrs);
    sys::move_mount(mnt.get(), "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH);
    set_method("fsconfig lowerdir+");
    return true;
}

std::string option_string(const std::vector<std::string>& lowers, const std::string& upper,
                          const std::string& work, bool volatile_upper, bool userxattr) {
    std::string data = layer_dirs_option(lowers, upper, work);
    if (!upper.empty() && volatile_upper) {
        data += ",volatile";
    }
    data += userxattr ? ",userxattr,index=off" : ",index=off,redirect_dir=off,metacopy=off";
    return data;
}

std::string common_parent(const std::vector<std::string>& paths) {
    std::string prefix = fs::dirname(paths.front());
    for (const auto& p : paths) {
        while (prefix != "/" && !(p.compare(0, prefix.size(), prefix) == 0 &&
                                  p.size() > prefix.size() && p[prefix.size()] == '/')) {
            prefix = fs::dirname(prefix);
        }
    }
    return prefix;
}

void mount_classic(const OverlaySpec& spec, const std::string& target) {
    unsigned long flags =
        (spec.upper.empty() ? MS_RDONLY : 0) | (spec.nosuid_nodev ? MS_NOSUID | MS_NODEV : 0);
    std::string data =
        option_string(spec.lowers, spec.upper, spec.work, spec.volatile_upper, spec.userxattr);
    if (data.size() <= k_mount_data_max) {
        sys::mount("overlay", target, "overlay", flags, data);
        set_method("mount(2)");
        return;
    }
    // Too long for one page: relative paths from the common parent, mounted
    // by a child so that our own cwd stays put.
    std::vector<std::string> all;
    for (const auto& l : spec.lowers) {
        all.push_back(fs::absolute(l));
    }
    std::string upper = spec.upper.empty() ? "" : fs::absolute(spec.upper);
    std::string work = spec.work.empty() ? "" : fs::absolute(spec.work);
    if (!upper.empty()) {
        all.push_back(upper);
        all.push_back(work);
    }
    std::string parent = common_parent(all);
    auto rel = [&](const std::string& p) {
        return parent == "/" ? p.substr(1) : p.substr(parent.size() + 1);
    };
    std::vector<std::string> lowers;
    for (const auto& l : spec.lowers) {
        lowers.push_back(rel(fs::absolute(l)));
    }
    std::string short_data =
        option_string(lowers, upper.empty() ? "" : rel(upper), work.empty() ? "" : rel(work),
                      spec.volatile_upper, spec.userxattr);
    if (short_data.size() > k_mount_data_max) {
        throw SysError("mount overlay (" + std::to_string(spec.lowers.size()) +
                           " layers: option string of " + std::to_string(short_data.size()) +
                           " bytes exceeds one page even with relative paths)",
                       target, E2BIG);
    }
    std::string abs_target = fs::absolute(target);
    // After fork: only async-signal-safe calls, everything prepared above.
    Child child = Child::fork_fn(
        [&]() noexcept -> int {
            if (::chdir(parent.c_str()) < 0) {
                return 200;
            }
            int r = sys::mount_raw("overlay", abs_target.c_str(), "overlay", flags,
                                   short_data.c_str());
            return r < 0 ? -r : 0;
        },
        false);
    ExitStatus st = child.wait();
    if (!st.exited() || st.code() == 200) {
        throw SysError("chdir (for a relative overlay mount)", parent,
                       st.exited() ? ENOENT : EINTR);
    }
    if (st.code() != 0) {
        throw SysError("mount overlay (relative paths from \"" + parent + "\")", target,
                       st.code());
    }
    set_method("mount(2) relative");
}

// Overlayfs refuses a single lower layer without an upper one ("at least 2
// lowerdir are needed"). One layer has nothing to merge, so it is bind
// mounted read-only instead (as containers/storage does for a base layer).
void bind_read_only(const std::string& layer, const std::string& target, bool nosuid_nodev) {
    if (!sys::force_fallback()) {
        try {
            UniqueFd tree = sys::open_tree(AT_FDCWD, layer, OPEN_TREE_CLONE);
            sys::mount_setattr(
                tree.get(), "", AT_EMPTY_PATH,
                MOUNT_ATTR_RDONLY | (nosuid_nodev ? MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV : 0), 0);
            sys::move_mount(tree.get(), "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH);
            set_method("bind");
            return;
        } catch (const SysError& e) {
            if (e.error_code() != ENOSYS) {
                throw;
            }
        }
    }
    sys::mount(layer, target, "", MS_BIND, "");
    try {
        sys::mount("", target, "",
                   MS_BIND | MS_REMOUNT | MS_RDONLY | (nosuid_nodev ? MS_NOSUID | MS_NODEV : 0),
                   "");
    } catch (...) {
        sys::umount_raw(target.c_str(), MNT_DETACH);
        throw;
    }
    set_method("bind");
}

} // namespace

void mount_overlay(const OverlaySpec& spec, const std::string& target) {
    validate(spec, target);
    if (spec.upper.empty() && spec.lowers.size() == 1) {
        bind_read_only(spec.lowers.front(), target, spec.nosuid_nodev);
        STRATA_LOG_DEBUG("overlay: one read-only layer, bind mounted on \"{}\"", target);
        return;
    }
    if (!sys::force_fallback() && try_new_api(spec, target)) {
        STRATA_LOG_DEBUG("overlay: mounted {} layers on \"{}\" with fsconfig lowerdir+",
                         spec.lowers.size(), target);
        return;
    }
    mount_classic(spec, target);
    STRATA_LOG_DEBUG("overlay: mounted {} layers on \"{}\" with {}", spec.lowers.size(), target,
                     last_overlay_method());
}

std::string last_overlay_method() {
    std::lock_guard lock(g_method_mutex);
    return g_last_method;
}

std::string layer_dirs_option(const std::vector<std::string>& lowers, const std::string& upper,
                              const std::string& work) {
    auto escape = [](const std::string& p) {
        std::string out;
        for (char c : p) {
            if (c == ':' || c == ',' || c == '\\') {
                out += '\\';
            }
            out += c;
        }
        return out;
    };
    std::string data = "lowerdir=";
    for (std::size_t i = 0; i < lowers.size(); ++i) {
        if (i > 0) {
            data += ':';
        }
        data += escape(lowers[i]);
    }
    if (!upper.empty()) {
        data += ",upperdir=" + escape(upper) + ",workdir=" + escape(work);
    }
    return data;
}

} // namespace strata::layerfs
