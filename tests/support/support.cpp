#include "tests/support/support.hpp"

#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/sha256.hpp"

#include <algorithm>
#include <cstdio>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <vector>

namespace strata::test {

void write_file(const std::string& path, const std::string& content, mode_t mode) {
    fs::mkdirs(fs::dirname(path));
    UniqueFd fd = fs::open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    fs::write_all(fd.get(), content);
    if (::fchmod(fd.get(), mode) != 0) {
        throw_errno("fchmod", path);
    }
}

std::string read_file(const std::string& path) { return fs::read_file(path); }

namespace {

char type_char(mode_t m) {
    if (S_ISREG(m)) return 'f';
    if (S_ISDIR(m)) return 'd';
    if (S_ISLNK(m)) return 'l';
    if (S_ISCHR(m)) return 'c';
    if (S_ISBLK(m)) return 'b';
    if (S_ISFIFO(m)) return 'p';
    return 's';
}

std::string xattrs_of(const std::string& path) {
    std::vector<char> names(65536);
    ssize_t n = ::llistxattr(path.c_str(), names.data(), names.size());
    if (n <= 0) {
        return {};
    }
    std::vector<std::string> list;
    for (ssize_t i = 0; i < n;) {
        std::string name(names.data() + i);
        i += static_cast<ssize_t>(name.size()) + 1;
        std::vector<char> value(65536);
        ssize_t v = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
        // Values are often binary (overlay's origin file handles): escape
        // what is not printable so that one entry stays on one line.
        std::string shown;
        for (ssize_t k = 0; k < v; ++k) {
            auto c = static_cast<unsigned char>(value[static_cast<std::size_t>(k)]);
            if (c < 0x20 || c >= 0x7f || c == '\\') {
                char hex[8];
                std::snprintf(hex, sizeof hex, "\\x%02x", c);
                shown += hex;
            } else {
                shown += static_cast<char>(c);
            }
        }
        list.push_back(name + "=" + shown);
    }
    std::sort(list.begin(), list.end());
    std::string out;
    for (const auto& x : list) {
        out += " x:" + x;
    }
    return out;
}

void walk(const std::string& root, const std::string& rel, bool with_times,
          std::vector<std::string>& lines) {
    std::string dir = rel.empty() ? root : root + "/" + rel;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
        throw_errno("opendir", dir);
    }
    std::vector<std::string> names;
    while (auto* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") {
            names.push_back(n);
        }
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
        std::string r = rel.empty() ? n : rel + "/" + n;
        std::string p = root + "/" + r;
        struct stat st = fs::lstat(p);
        std::string line = "/" + r + " " + type_char(st.st_mode) + " ";
        char mode[16];
        std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
        line += mode;
        line += " " + std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid);
        if (S_ISREG(st.st_mode)) {
            line += " " + std::to_string(st.st_size) + " " + Sha256::hex_of(fs::read_file(p));
        } else if (S_ISLNK(st.st_mode)) {
            std::vector<char> buf(4096);
            ssize_t k = ::readlink(p.c_str(), buf.data(), buf.size());
            line += " -> " + std::string(buf.data(), k > 0 ? static_cast<std::size_t>(k) : 0);
        } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
            line += " " + std::to_string(major(st.st_rdev)) + "," + std::to_string(minor(st.st_rdev));
        }
        if (with_times) {
            line += " t:" + std::to_string(st.st_mtim.tv_sec);
        }
        line += xattrs_of(p);
        lines.push_back(line);
        if (S_ISDIR(st.st_mode)) {
            walk(root, r, with_times, lines);
        }
    }
}

} // namespace

std::string dump_tree(const std::string& root, bool with_times) {
    std::vector<std::string> lines;
    walk(root, "", with_times, lines);
    std::string out;
    for (const auto& l : lines) {
        out += l;
        out += '\n';
    }
    return out;
}

std::string strata_binary() { return std::string(STRATA_BINARY_DIR) + "/cli/strata"; }
std::string source_dir() { return STRATA_SOURCE_DIR; }

} // namespace strata::test
