#include "util/mapped_file.hpp"

#include <cerrno>
#include <sys/mman.h>
#include <sys/stat.h>

namespace strata {

bool MappedFile::map(int fd, bool populate) {
    reset();
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        return false;
    }
    if (st.st_size <= 0) {
        errno = EINVAL;
        return false;
    }
    auto n = static_cast<std::size_t>(st.st_size);
    void* p = ::mmap(nullptr, n, PROT_READ, MAP_SHARED | (populate ? MAP_POPULATE : 0), fd, 0);
    if (p == MAP_FAILED) {
        return false;
    }
    m_p = static_cast<const char*>(p);
    m_n = n;
    return true;
}

void MappedFile::reset() noexcept {
    if (m_p != nullptr) {
        ::munmap(const_cast<char*>(m_p), m_n);
        m_p = nullptr;
        m_n = 0;
    }
}

} // namespace strata
