#include "util/sys/mount.hpp"

#include "util/error.hpp"
#include "util/fs.hpp"

#include <cerrno>
#include <sstream>
#include <sys/mount.h>

namespace strata::sys {

int mount_raw(const char* source, const char* target, const char* fstype, unsigned long flags,
              const char* data) noexcept {
    int r;
    do {
        r = ::mount(source, target, fstype, flags, data);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : 0;
}

void mount(const std::string& source, const std::string& target, const std::string& fstype,
           unsigned long flags, const std::string& data) {
    int r = mount_raw(source.c_str(), target.c_str(), fstype.empty() ? nullptr : fstype.c_str(),
                      flags, data.empty() ? nullptr : data.c_str());
    if (r < 0) {
        throw SysError("mount", target, -r);
    }
}

int umount_raw(const char* target, int flags) noexcept {
    int r;
    do {
        r = ::umount2(target, flags);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : 0;
}

void umount(const std::string& target, int flags) {
    int r = umount_raw(target.c_str(), flags);
    if (r < 0) {
        throw SysError("umount2", target, -r);
    }
}

namespace {
// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size()) {
            int v = 0;
            bool ok = true;
            for (std::size_t k = 1; k <= 3; ++k) {
                char c = s[i + k];
                if (c < '0' || c > '7') {
                    ok = false;
                    break;
                }
                v = v * 8 + (c - '0');
            }
            if (ok) {
                out += static_cast<char>(v);
                i += 3;
                continue;
            }
        }
        out += s[i];
    }
    return out;
}
} // namespace

bool is_mount_point(const std::string& path) {
    std::string want = fs::absolute(path);
    while (want.size() > 1 && want.back() == '/') {
        want.pop_back();
    }
    std::istringstream in(fs::read_file("/proc/self/mountinfo"));
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string id, parent, devno, root, point;
        fields >> id >> parent >> devno >> root >> point;
        if (unescape_mountinfo(point) == want) {
            return true;
        }
    }
    return false;
}

} // namespace strata::sys
