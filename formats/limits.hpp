// Bounds on what a layer may make, set once by the command line.
#pragma once

#include <cstdint>

namespace strata::formats {

// The largest file a layer may create, as its logical size (a sparse entry
// costs nothing to send however large it claims to be). 64 GiB by default:
// above any single file real images carry, far below what fills a disk by
// surprise. `strata --max-file-size` (STRATA_MAX_FILE_SIZE) raises it.
// TarReader refuses a larger entry, naming it.
constexpr std::uint64_t k_default_max_file_size = std::uint64_t{64} << 30;
void set_max_file_size(std::uint64_t bytes);
std::uint64_t max_file_size();

} // namespace strata::formats
