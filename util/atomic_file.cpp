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
    : path_(std::move(path)) {
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    int fd = ::mkostemp(buf.data(), O_CLOEXEC);
    if (fd < 0) {
        throw_errno("mkostemp", templ);
    }
    fd_.reset(fd);
    tmp_ = buf.data();
    if (::fchmod(fd, mode) != 0) {
        int err = errno;
        ::unlink(tmp_.c_str());
        throw SysError("fchmod", tmp_, err);
    }
    // In use while open: a store's gc skips temporaries it cannot lock.
    ::flock(fd, LOCK_SH);
}

AtomicFile::~AtomicFile() {
    if (!committed_) {
        fd_.reset();
        ::unlink(tmp_.c_str());
    }
}

void AtomicFile::write(std::string_view data) {
    fs::write_all(fd_.get(), tmp_, data);
}

bool AtomicFile::commit(bool no_replace) {
    return commit_as(path_, no_replace);
}

bool AtomicFile::commit_as(const std::string& path, bool no_replace) {
    if (committed_) {
        throw Error("AtomicFile " + tmp_ + ": committed twice");
    }
    if (path.empty()) {
        throw Error("AtomicFile " + tmp_ + ": no destination");
    }
    if (::fsync(fd_.get()) != 0) {
        throw_errno("fsync", tmp_);
    }
    fd_.close();
    if (no_replace) {
        if (::renameat2(AT_FDCWD, tmp_.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) {
            if (errno == EEXIST) {
                return false;
            }
            throw_errno("rename", path);
        }
    } else if (::rename(tmp_.c_str(), path.c_str()) != 0) {
        throw_errno("rename", path);
    }
    committed_ = true;
    path_ = path;
    return true;
}

} // namespace strata
