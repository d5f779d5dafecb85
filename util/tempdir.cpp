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
    m_path = buf.data();
    m_lock = UniqueFd(::open(m_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (m_lock) {
        ::flock(m_lock.get(), LOCK_SH);
    }
}

TempDir::TempDir(TempDir&& o) noexcept
    : m_path(std::exchange(o.m_path, {})), m_keep(std::exchange(o.m_keep, true)),
      m_lock(std::move(o.m_lock)) {}

TempDir& TempDir::operator=(TempDir&& o) noexcept {
    if (this != &o) {
        try {
            if (!m_keep && !m_path.empty()) {
                fs::remove_all(m_path);
            }
        } catch (...) {
        }
        m_path = std::exchange(o.m_path, {});
        m_keep = std::exchange(o.m_keep, true);
        m_lock = std::move(o.m_lock);
    }
    return *this;
}

TempDir::~TempDir() {
    if (m_keep || m_path.empty()) {
        return;
    }
    try {
        fs::remove_all(m_path);
    } catch (const std::exception& e) {
        STRATA_LOG_WARN("cannot remove temporary directory {}: {}", m_path, e.what());
    }
}

std::string TempDir::keep() noexcept {
    m_keep = true;
    return m_path;
}

void TempDir::remove() {
    if (!m_path.empty()) {
        fs::remove_all(m_path);
    }
    m_keep = true;
}

} // namespace strata
