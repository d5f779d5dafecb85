#include "util/atomic_file.hpp"

#include "util/error.hpp"
#include "util/fs.hpp"

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <vector>

namespace strata {

AtomicFile::AtomicFile(std::string path, mode_t mode)
    : AtomicFile(path, path + ".tmp.XXXXXX", mode) {}

AtomicFile AtomicFile::in_dir(const std::string& dir, std::string_view prefix, mode_t mode) {
    return AtomicFile(std::string(), dir + "/" + std::string(prefix) + "-XXXXXX", mode);
}

AtomicFile::AtomicFile(std::string path, const std::string& templ, mode_t mode)
    : m_path(std::move(path)) {
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    int fd = ::mkostemp(buf.data(), O_CLOEXEC);
    if (fd < 0) {
        throw_errno("mkostemp", templ);
    }
    m_fd.reset(fd);
    m_tmp = buf.data();
    if (::fchmod(fd, mode) != 0) {
        int err = errno;
        ::unlink(m_tmp.c_str());
        throw SysError("fchmod", m_tmp, err);
    }
    // In use while open: a store's gc skips temporaries it cannot lock.
    ::flock(fd, LOCK_SH);
}

AtomicFile::~AtomicFile() {
    if (!m_committed) {
        m_fd.reset();
        ::unlink(m_tmp.c_str());
    }
}

void AtomicFile::write(std::string_view data) {
    fs::write_all(m_fd.get(), m_tmp, data);
}

bool AtomicFile::commit(bool no_replace) {
    return commit_as(m_path, no_replace);
}

bool AtomicFile::commit_as(const std::string& path, bool no_replace) {
    if (m_committed) {
        throw Error("AtomicFile " + m_tmp + ": committed twice");
    }
    if (path.empty()) {
        throw Error("AtomicFile " + m_tmp + ": no destination");
    }
    if (::fsync(m_fd.get()) != 0) {
        throw_errno("fsync", m_tmp);
    }
    m_fd.close();
    if (no_replace) {
        if (::renameat2(AT_FDCWD, m_tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) {
            if (errno == EEXIST) {
                return false;
            }
            throw_errno("rename", path);
        }
    } else if (::rename(m_tmp.c_str(), path.c_str()) != 0) {
        throw_errno("rename", path);
    }
    m_committed = true;
    m_path = path;
    return true;
}

} // namespace strata
