#include "util/tempdir.hpp"

#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"

#include <cstdlib>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace strata {

TempDir::TempDir(const std::string& parent, const std::string& prefix) {
    std::string base = parent;
    if (base.empty()) {
        const char* t = std::getenv("TMPDIR");
        base = t != nullptr && *t != '\0' ? t : "/tmp";
    }
    std::string templ = fs::join(base, prefix + "XXXXXX");
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) {
        throw_errno("mkdtemp", templ);
    }
    path_ = buf.data();
    lock_ = UniqueFd(::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (lock_) {
        ::flock(lock_.get(), LOCK_SH);
    }
}

TempDir::TempDir(TempDir&& o) noexcept
    : path_(std::exchange(o.path_, {})), keep_(std::exchange(o.keep_, true)),
      lock_(std::move(o.lock_)) {}

TempDir& TempDir::operator=(TempDir&& o) noexcept {
    if (this != &o) {
        try {
            if (!keep_ && !path_.empty()) {
                fs::remove_all(path_);
            }
        } catch (...) {
        }
        path_ = std::exchange(o.path_, {});
        keep_ = std::exchange(o.keep_, true);
        lock_ = std::move(o.lock_);
    }
    return *this;
}

TempDir::~TempDir() {
    if (keep_ || path_.empty()) {
        return;
    }
    try {
        fs::remove_all(path_);
    } catch (const std::exception& e) {
        STRATA_LOG_WARN("cannot remove temporary directory {}: {}", path_, e.what());
    }
}

std::string TempDir::keep() noexcept {
    keep_ = true;
    return path_;
}

void TempDir::remove() {
    if (!path_.empty()) {
        fs::remove_all(path_);
    }
    keep_ = true;
}

} // namespace strata
