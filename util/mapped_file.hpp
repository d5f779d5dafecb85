// A read-only mapping of a whole file: a layer blob or a kept lazy index,
// files that are never changed in place (replaced by rename, removed by
// unlink), read without copying them.
#pragma once

#include <cstddef>
#include <string_view>

namespace strata {

class MappedFile {
public:
    MappedFile() = default;
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    ~MappedFile() { reset(); }

    // Maps the whole file at fd (populate: its pages mapped in one call,
    // not faulted in one by one); false, and nothing mapped, when the file
    // is empty or the kernel refuses (errno says why).
    bool map(int fd, bool populate = false);
    void reset() noexcept;
    // Done with [offset, offset + size) for good (rounded inward to whole
    // pages): its pages are unmapped from this process and, where clean,
    // dropped from the page cache of fd (the mapped file), so that the
    // memory is free for what is written next. A later read of the range
    // reads the file again: nothing but time is lost. Failures are of no
    // consequence (the range stays cached).
    void drop(int fd, std::size_t offset, std::size_t size) const noexcept;

    const char* data() const noexcept { return m_p; }
    std::size_t size() const noexcept { return m_n; }
    std::string_view bytes() const noexcept { return {m_p, m_n}; }

private:
    const char* m_p = nullptr;
    std::size_t m_n = 0;
};

} // namespace strata
