#include "formats/layer_xattrs.hpp"

#include "formats/whiteout.hpp"

namespace strata::formats::layer_xattrs {

namespace {

constexpr std::string_view k_capability = "security.capability";
// The rootless storage drivers' record of the real owner and mode
// (fuse-overlayfs, containers/storage): bookkeeping, as overlay's own.
constexpr std::string_view k_override_stat = "user.containers.override_stat";

// linux/capability.h: the revision sits in the top byte of the first
// little-endian 32-bit word; a revision 2 value is 20 bytes (magic_etc and
// two permitted/inheritable pairs), revision 3 adds a 4-byte root id.
constexpr std::size_t k_caps_v2_size = 20;
constexpr std::size_t k_caps_v3_size = 24;
constexpr std::size_t k_revision_byte = 3;
constexpr unsigned char k_revision_2 = 0x02;
constexpr unsigned char k_revision_3 = 0x03;

} // namespace

bool kept(std::string_view name) {
    if (whiteout::is_overlay_xattr(name) || name == k_override_stat) {
        return false;
    }
    return name == k_capability || name == "security.ima" || name.starts_with("user.");
}

std::string value(std::string_view name, std::string v) {
    if (name == k_capability && v.size() == k_caps_v3_size &&
        static_cast<unsigned char>(v[k_revision_byte]) == k_revision_3) {
        v[k_revision_byte] = static_cast<char>(k_revision_2);
        v.resize(k_caps_v2_size);
    }
    return v;
}

} // namespace strata::formats::layer_xattrs
