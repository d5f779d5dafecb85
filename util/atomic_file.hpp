// AtomicFile: writes go to a temporary file beside the destination; commit()
// fsyncs and renames it into place. Without commit() the destructor removes
// the temporary, so a destination is either absent/old or complete.
// AtomicFile::in_dir makes one whose destination is only known at the end
// (content-addressed files: the name is the digest of what was written).
#pragma once

#include "util/fd.hpp"

#include <string>
#include <string_view>
#include <sys/types.h>

namespace strata {

class AtomicFile {
public:
    explicit AtomicFile(std::string path, mode_t mode = 0644);
    // A temporary file named PREFIX-XXXXXX in dir (which must be on the
    // destination's filesystem); commit_as() names the destination.
    static AtomicFile in_dir(const std::string& dir, std::string_view prefix, mode_t mode = 0644);
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;
    ~AtomicFile();

    int fd() const noexcept { return m_fd.get(); }
    const std::string& path() const noexcept { return m_path; }
    const std::string& temp_path() const noexcept { return m_tmp; }
    void write(std::string_view data);
    // fsync + rename. With no_replace, an existing destination is left alone
    // and commit returns false.
    bool commit(bool no_replace = false);
    // fsync + rename to path.
    bool commit_as(const std::string& path, bool no_replace = false);

private:
    AtomicFile(std::string path, const std::string& templ, mode_t mode);
    std::string m_path;
    std::string m_tmp;
    UniqueFd m_fd;
    bool m_committed = false;
};

} // namespace strata
