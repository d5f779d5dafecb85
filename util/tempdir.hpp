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

    const std::string& path() const noexcept { return path_; }
    // Keeps the directory and returns its path.
    std::string keep() noexcept;
    // Deletes now, reporting errors.
    void remove();

private:
    std::string path_;
    bool keep_ = false;
    UniqueFd lock_; // the shared flock on path_
};

} // namespace strata
