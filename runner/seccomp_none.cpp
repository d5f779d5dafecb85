// No precompiled seccomp program: what strata_seccomp_gen itself links
// (it is the program that makes one; runner/seccomp_gen.cpp).
#include <cstddef>
#include <cstdint>
#include <linux/filter.h>

namespace strata::runner::detail {
extern const std::uint64_t kPrecompiledCaps;
extern const sock_filter kPrecompiledFilter[];
extern const std::size_t kPrecompiledFilterLen;
const std::uint64_t kPrecompiledCaps = 0;
const sock_filter kPrecompiledFilter[] = {{0, 0, 0, 0}};
const std::size_t kPrecompiledFilterLen = 0;
} // namespace strata::runner::detail
