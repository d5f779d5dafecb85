#include "util/root.hpp"

#include "util/error.hpp"
#include "util/sys/syscalls.hpp"

#include <cerrno>
#include <deque>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace strata {

namespace {

// Calls f(component) for each component of path that is neither empty nor ".".
template <typename F>
void for_each_component(std::string_view path, F&& f) {
    std::size_t i = 0;
    while (i <= path.size()) {
        std::size_t j = path.find('/', i);
        if (j == std::string_view::npos) {
            j = path.size();
        }
        std::string_view comp = path.substr(i, j - i);
        if (!comp.empty() && comp != ".") {
            f(comp);
        }
        i = j + 1;
    }
}

} // namespace

std::string clean_path(std::string_view path) {
    bool absolute = !path.empty() && path[0] == '/';
    std::vector<std::string_view> parts;
    for_each_component(path, [&](std::string_view comp) {
        if (comp == "..") {
            if (!parts.empty() && parts.back() != "..") {
                parts.pop_back();
            } else if (!absolute) {
                parts.push_back(comp);
            }
        } else {
            parts.push_back(comp);
        }
    });
    std::string out = absolute ? "/" : "";
    for (std::size_t k = 0; k < parts.size(); ++k) {
        if (k > 0) {
            out += '/';
        }
        out += parts[k];
    }
    if (out.empty()) {
        out = ".";
    }
    return out;
}

namespace {

constexpr int k_max_symlinks = 40;

std::deque<std::string> split(std::string_view path) {
    std::deque<std::string> out;
    for_each_component(path, [&](std::string_view comp) { out.emplace_back(comp); });
    return out;
}

std::string read_link_at(int dirfd, const std::string& name) {
    std::vector<char> buf(4096);
    ssize_t n = ::readlinkat(dirfd, name.c_str(), buf.data(), buf.size());
    if (n < 0) {
        throw_errno("readlink", name);
    }
    return std::string(buf.data(), static_cast<std::size_t>(n));
}

// Component-by-component resolution with RESOLVE_IN_ROOT semantics.
UniqueFd open_in_root_fallback(int rootfd, std::string_view path, int flags, mode_t mode) {
    std::vector<UniqueFd> stack; // directories below root; empty means "at root"
    auto cur = [&]() { return stack.empty() ? rootfd : stack.back().get(); };
    std::deque<std::string> rest = split(path);
    int links = 0;
    bool follow_last = (flags & O_NOFOLLOW) == 0;
    if (rest.empty()) {
        int fd = ::openat(rootfd, ".", (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)) | O_CLOEXEC,
                          mode);
        if (fd < 0) {
            throw_errno("open", std::string(path));
        }
        return UniqueFd(fd);
    }
    while (!rest.empty()) {
        std::string comp = std::move(rest.front());
        rest.pop_front();
        bool last = rest.empty();
        if (comp == "..") {
            if (!stack.empty()) {
                stack.pop_back();
            }
            if (last) {
                int fd = ::openat(cur(), ".", (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)) | O_CLOEXEC,
                                  mode);
                if (fd < 0) {
                    throw_errno("open", std::string(path));
                }
                return UniqueFd(fd);
            }
            continue;
        }
        struct stat st;
        bool present = ::fstatat(cur(), comp.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
        if (!present && errno != ENOENT) {
            throw_errno("stat", std::string(path));
        }
        if (present && S_ISLNK(st.st_mode) && (!last || follow_last)) {
            if (++links > k_max_symlinks) {
                throw SysError("open", std::string(path), ELOOP);
            }
            std::string target = read_link_at(cur(), comp);
            std::deque<std::string> parts = split(target);
            if (!target.empty() && target[0] == '/') {
                stack.clear();
            }
            for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
                rest.push_front(*it);
            }
            if (rest.empty()) {
                // The link pointed at "/" (or "."): open the current directory.
                int fd = ::openat(cur(), ".", (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)) | O_CLOEXEC,
                                  mode);
                if (fd < 0) {
                    throw_errno("open", std::string(path));
                }
                return UniqueFd(fd);
            }
            continue;
        }
        if (last) {
            int fd = ::openat(cur(), comp.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode);
            if (fd < 0) {
                throw_errno("open", std::string(path));
            }
            return UniqueFd(fd);
        }
        if (!present) {
            throw SysError("open", std::string(path), ENOENT);
        }
        if (!S_ISDIR(st.st_mode)) {
            throw SysError("open", std::string(path), ENOTDIR);
        }
        int fd = ::openat(cur(), comp.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            throw_errno("open", std::string(path));
        }
        stack.emplace_back(fd);
    }
    throw SysError("open", std::string(path), ENOENT);
}

} // namespace

UniqueFd open_in_root(int rootfd, std::string_view path, int flags, mode_t mode) {
    std::string rel(path);
    while (!rel.empty() && rel[0] == '/') {
        rel.erase(0, 1);
    }
    if (rel.empty()) {
        rel = ".";
    }
    int r = sys::openat2_raw(rootfd, rel.c_str(), static_cast<std::uint64_t>(flags), mode,
                             RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV);
    if (r >= 0) {
        return UniqueFd(r);
    }
    if (r != -ENOSYS && r != -EXDEV) {
        throw SysError("open", std::string(path), -r);
    }
    return open_in_root_fallback(rootfd, rel, flags, mode);
}

ParentRef open_parent_in_root(int rootfd, std::string_view path) {
    std::string cleaned = clean_path(std::string("/") + std::string(path));
    if (cleaned == "/") {
        throw SysError("open", std::string(path), EINVAL);
    }
    auto slash = cleaned.rfind('/');
    std::string parent = cleaned.substr(0, slash);
    std::string name = cleaned.substr(slash + 1);
    UniqueFd dir = open_in_root(rootfd, parent.empty() ? "/" : parent, O_PATH | O_DIRECTORY);
    return ParentRef{std::move(dir), std::move(name)};
}

namespace {

UniqueFd mkdirs_in_root_impl(int rootfd, const std::string& cleaned, mode_t mode, int depth) {
    if (depth > k_max_symlinks) {
        throw SysError("mkdir", cleaned, ELOOP);
    }
    UniqueFd cur = open_in_root(rootfd, "/", O_PATH | O_DIRECTORY);
    std::deque<std::string> comps = split(cleaned);
    std::string prefix;
    while (!comps.empty()) {
        std::string comp = std::move(comps.front());
        comps.pop_front();
        std::string parent = prefix.empty() ? "/" : prefix;
        prefix += '/';
        prefix += comp;
        UniqueFd next;
        try {
            next = open_in_root(rootfd, prefix, O_PATH | O_DIRECTORY);
        } catch (const SysError& e) {
            if (e.error_code() != ENOENT) {
                throw;
            }
        }
        if (next) {
            cur = std::move(next);
            continue;
        }
        // Missing, or a symlink whose target is missing: a dangling symlink is
        // followed inside the root, so its target gets created (as Docker's
        // MkdirAll in a container root does).
        struct stat st;
        if (::fstatat(cur.get(), comp.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
            std::string target = read_link_at(cur.get(), comp);
            std::string base = target.size() > 0 && target[0] == '/' ? target : parent + "/" + target;
            for (const auto& c : comps) {
                base += '/';
                base += c;
            }
            return mkdirs_in_root_impl(rootfd, clean_path("/" + base), mode, depth + 1);
        }
        if (::mkdirat(cur.get(), comp.c_str(), mode) != 0 && errno != EEXIST) {
            throw_errno("mkdir", prefix);
        }
        int sub = ::openat(cur.get(), comp.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
            throw_errno("open", prefix);
        }
        cur.reset(sub);
    }
    return cur;
}

} // namespace

UniqueFd mkdirs_in_root(int rootfd, std::string_view path, mode_t mode) {
    return mkdirs_in_root_impl(rootfd, clean_path(std::string("/") + std::string(path)), mode, 0);
}

} // namespace strata
