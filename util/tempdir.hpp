// TempDir: a directory that deletes itself (recursively, never following
// symlinks) unless keep() is called. It holds a shared flock on itself while
// it lives, so that a store's gc knows the directory is in use.
#pragma once

#include "util/fd.hpp"

#include <string>

namespace strata {

class TempDir {
public:
    // Creates "<parent>/<prefix>XXXXXX". parent defaults to $TMPDIR or /tmp.
    explicit TempDir(const std::string& parent = {}, const std::string& prefix = "strata-");
    TempDir(TempDir&& o) noexcept;
    TempDir& operator=(TempDir&& o) noexcept;
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir();

    const std::string& path() const noexcept { return m_path; }
    // Keeps the directory and returns its path.
    std::string keep() noexcept;
    // Deletes now, reporting errors.
    void remove();

private:
    std::string m_path;
    bool m_keep = false;
    UniqueFd m_lock; // the shared flock on m_path
};

} // namespace strata
