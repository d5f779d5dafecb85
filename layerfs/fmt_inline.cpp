// strata-overlay is started for every FUSE mount, so its start-up counts
// (the mount latency of `strata mount --driver fuse`, of `mount -t
// fuse.strata-overlay` and of containers-storage's mount_program). Loading
// libstdc++, libgcc_s, libm and libfmt costs more than everything else it
// does before it serves (~0.8 ms of CPU, twice fuse-overlayfs' start): the
// program links the C++ runtime statically, and this file compiles the one
// fmt entry point strata's logging calls (fmt::vformat) from fmt's
// header-only form, so that libfmt.so is not needed either.
#define FMT_HEADER_ONLY 1
#include <fmt/format.h>

#include <string>

namespace strata::layerfs {

// Taking its address makes the compiler emit fmt::vformat (an inline
// function in header-only mode) here, where the linker finds it first.
extern std::string (*const g_fmt_vformat)(fmt::string_view, fmt::format_args);
std::string (*const g_fmt_vformat)(fmt::string_view, fmt::format_args) = &fmt::vformat;

} // namespace strata::layerfs
