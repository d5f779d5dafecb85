#include "util/mapped_file.hpp"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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

void MappedFile::drop(int fd, std::size_t offset, std::size_t size) const noexcept {
    static const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    if (m_p == nullptr || offset >= m_n) {
        return;
    }
    std::size_t end = std::min(m_n, offset + size);
    std::size_t from = (offset + page - 1) / page * page;
    std::size_t to = end == m_n ? end : end / page * page;
    if (from >= to) {
        return;
    }
    ::madvise(const_cast<char*>(m_p) + from, to - from, MADV_DONTNEED);
    ::posix_fadvise(fd, static_cast<off_t>(from), static_cast<off_t>(to - from),
                    POSIX_FADV_DONTNEED);
}

void MappedFile::reset() noexcept {
    if (m_p != nullptr) {
        ::munmap(const_cast<char*>(m_p), m_n);
        m_p = nullptr;
        m_n = 0;
    }
}

} // namespace strata
