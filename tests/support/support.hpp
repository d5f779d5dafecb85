// Shared test fixtures: writing small trees, dumping trees as one line per
// entry for comparison, and locating the built strata binary.
#pragma once

#include <string>
#include <sys/types.h>

namespace strata::test {

// Writes content to path (parents created), with mode.
void write_file(const std::string& path, const std::string& content, mode_t mode = 0644);
std::string read_file(const std::string& path);

// One line per entry below root, sorted by path:
//   <path> <type> <mode octal> <uid>:<gid> <size> <sha256|-> [-> target] [xattrs]
// type is one of f d l c b p s; with_times adds the mtime.
std::string dump_tree(const std::string& root, bool with_times = false);

// The strata binary built alongside the tests.
std::string strata_binary();
std::string source_dir();

} // namespace strata::test
