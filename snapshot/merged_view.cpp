#include "snapshot/merged_view.hpp"

#include "formats/whiteout.hpp"
#include "util/error.hpp"
#include "util/root.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

namespace strata::snapshot {

namespace {

std::vector<std::string> components(const std::string& path) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i <= path.size()) {
        std::size_t j = path.find('/', i);
        if (j == std::string::npos) {
            j = path.size();
        }
        if (j > i && path.compare(i, j - i, ".") != 0) {
            out.push_back(path.substr(i, j - i));
        }
        i = j + 1;
    }
    return out;
}

std::string join(const std::string& dir, const std::string& name) {
    return dir.empty() ? name : dir + "/" + name;
}

std::string parent_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

bool is_whiteout(const struct stat& st) {
    return S_ISCHR(st.st_mode) && st.st_rdev == formats::whiteout::device();
}

bool opaque(const std::string& host) {
    for (bool userxattr : {false, true}) {
        char v = 0;
        if (::lgetxattr(host.c_str(), formats::whiteout::opaque_xattr(userxattr), &v, 1) == 1 &&
            v == 'y') {
            return true;
        }
    }
    return false;
}

} // namespace

MergedView::MergedView(int target, std::vector<std::string> lowers)
    : m_target(target), m_lowers(std::move(lowers)) {}

std::string MergedView::lower_path(int layer, const std::string& real) const {
    const std::string& base = m_lowers.at(static_cast<std::size_t>(layer));
    return real.empty() ? base : base + "/" + real;
}

// The layers (-1: the target, then lowers by index) whose directory at dir
// shows in the merged directory, topmost first. Every component of dir was
// checked to be a directory in each layer kept, so the paths below never go
// through a symlink.
std::vector<int> MergedView::lower_stack(const std::string& dir) const {
    std::vector<int> stack;
    stack.push_back(-1);
    bool lowers_hidden = m_hidden && m_hidden("");
    if (!lowers_hidden) {
        for (int i = 0; i < static_cast<int>(m_lowers.size()); ++i) {
            stack.push_back(i);
        }
    }
    std::string q;
    for (const auto& comp : components(dir)) {
        q = join(q, comp);
        bool hide = m_hidden && m_hidden(q);
        std::vector<int> next;
        for (int layer : stack) {
            if (layer >= 0 && hide) {
                break;
            }
            struct stat st {};
            std::string host = layer < 0 ? "/proc/self/fd/" + std::to_string(m_target) + "/" + q
                                         : lower_path(layer, q);
            if (::lstat(host.c_str(), &st) != 0) {
                if (errno == ENOENT) {
                    continue;
                }
                throw_errno("stat", host);
            }
            if (!S_ISDIR(st.st_mode)) {
                break; // a file, link or whiteout hides this path below it
            }
            next.push_back(layer);
            if (opaque(host)) {
                break;
            }
        }
        stack = std::move(next);
        if (stack.empty()) {
            break;
        }
    }
    return stack;
}

MergedView::Node MergedView::lookup(const std::string& real) const {
    Node node;
    if (real.empty()) {
        node.kind = Node::Kind::dir;
        return node;
    }
    std::string name = real.substr(real.rfind('/') == std::string::npos ? 0 : real.rfind('/') + 1);
    for (int layer : lower_stack(parent_of(real))) {
        std::string host = layer < 0 ? "/proc/self/fd/" + std::to_string(m_target) + "/" + real
                                     : lower_path(layer, real);
        struct stat st {};
        if (::lstat(host.c_str(), &st) != 0) {
            if (errno == ENOENT || errno == ENOTDIR) {
                continue;
            }
            throw_errno("stat", host);
        }
        if (is_whiteout(st)) {
            return node; // missing
        }
        node.layer = layer;
        node.st = st;
        if (S_ISDIR(st.st_mode)) {
            node.kind = Node::Kind::dir;
        } else if (S_ISLNK(st.st_mode)) {
            node.kind = Node::Kind::symlink;
            std::string buf(4096, '\0');
            ssize_t n = ::readlink(host.c_str(), buf.data(), buf.size());
            if (n < 0) {
                throw_errno("readlink", host);
            }
            buf.resize(static_cast<std::size_t>(n));
            node.target = std::move(buf);
        } else {
            node.kind = Node::Kind::other;
        }
        return node;
    }
    return node;
}

std::optional<std::string> MergedView::resolve(const std::string& path, bool create) const {
    return resolve_at(path, create, 0, true);
}

std::optional<std::string> MergedView::resolve_at(const std::string& path, bool create, int depth,
                                                  bool follow_last) const {
    std::string real;
    auto comps = components(path);
    for (std::size_t i = 0; i < comps.size(); ++i) {
        std::string cand = join(real, comps[i]);
        bool last = i + 1 == comps.size();
        Node n = lookup(cand);
        switch (n.kind) {
        case Node::Kind::dir:
            real = std::move(cand);
            break;
        case Node::Kind::missing:
            if (!create) {
                return std::nullopt;
            }
            real = std::move(cand);
            for (++i; i < comps.size(); ++i) {
                real += "/" + comps[i];
            }
            return real;
        case Node::Kind::symlink: {
            if (last && !follow_last) {
                return cand;
            }
            if (depth >= 40) {
                throw SysError("open", cand, ELOOP);
            }
            // Inside the root: an absolute target starts at it, ".." stops there.
            std::string from = n.target.starts_with("/") ? n.target : "/" + join(real, n.target);
            std::string clean = clean_path(from);
            clean = clean == "/" ? std::string() : clean.substr(1);
            auto to = resolve_at(clean, false, depth + 1, true);
            if (!to) {
                if (!create) {
                    return std::nullopt;
                }
                throw Error("path goes through symlink \"" + cand + "\" -> \"" + n.target +
                            "\", whose target does not exist");
            }
            if (!last && lookup(*to).kind != Node::Kind::dir) {
                throw SysError("open", cand, ENOTDIR);
            }
            real = std::move(*to);
            break;
        }
        case Node::Kind::other:
            if (last) {
                return cand;
            }
            throw SysError("open", cand, ENOTDIR);
        }
    }
    return real;
}

} // namespace strata::snapshot
