// The whiteout vocabulary, in both of its encodings, in one place:
//
// - OCI image layers (image-spec layer.md): an entry ".wh.NAME" deletes NAME
//   (and its subtree) from the layers below; ".wh..wh..opq" in a directory
//   hides every entry the layers below have there (the directory is opaque).
//   Other ".wh..wh." names are AUFS metadata (".wh..wh.plnk"), not content.
// - overlayfs directories (kernel overlayfs, fuse-overlayfs, strata-overlay):
//   a whiteout is a 0:0 character device NAME (or, since Linux 6.7, a file
//   carrying the overlay.whiteout xattr); an opaque directory carries
//   overlay.opaque=y. overlayfs's own xattrs live in the trusted. namespace,
//   or in user. when mounted with -o userxattr (rootless).
//
// Converting between the two is snapshot's job (layer_apply, layer_diff);
// layerfs reads both forms. Header-only: layerfs uses it without linking
// formats.
#pragma once

#include <string>
#include <string_view>
#include <sys/stat.h>
#include <sys/sysmacros.h>

namespace strata::formats::whiteout {

// ---- OCI ----

// ".wh.NAME" deletes NAME.
constexpr std::string_view k_prefix = ".wh.";
// In a directory: the layers below show nothing of it.
constexpr std::string_view k_opaque_marker = ".wh..wh..opq";
// ".wh..wh.*": AUFS bookkeeping (the opaque marker is the one that counts).
constexpr std::string_view k_aufs_meta_prefix = ".wh..wh.";

// Any name in the whiteout namespace (a whiteout, the opaque marker or AUFS
// metadata): never a visible entry.
constexpr bool is_reserved(std::string_view name) {
    return name.starts_with(k_prefix);
}
constexpr bool is_opaque_marker(std::string_view name) {
    return name == k_opaque_marker;
}
constexpr bool is_aufs_meta(std::string_view name) {
    return name.starts_with(k_aufs_meta_prefix);
}
// The name a ".wh.NAME" entry deletes ("" for a name without the prefix).
constexpr std::string_view deleted_name(std::string_view name) {
    return is_reserved(name) ? name.substr(k_prefix.size()) : std::string_view();
}
// ".wh." + name.
inline std::string oci_name(std::string_view name) {
    std::string out(k_prefix);
    out += name;
    return out;
}

// ---- overlayfs ----

// The 0:0 character device overlayfs uses as a whiteout.
constexpr mode_t k_device_mode = S_IFCHR | 0000;
inline dev_t device() {
    return makedev(0, 0);
}
inline bool is_device(const struct stat& st) {
    return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

// overlayfs's xattr namespaces: trusted.overlay.* by default, user.overlay.*
// with -o userxattr.
constexpr std::string_view k_trusted_prefix = "trusted.overlay.";
constexpr std::string_view k_user_prefix = "user.overlay.";
constexpr const char* k_trusted_opaque = "trusted.overlay.opaque";
constexpr const char* k_user_opaque = "user.overlay.opaque";
constexpr const char* k_trusted_whiteout = "trusted.overlay.whiteout";
constexpr const char* k_user_whiteout = "user.overlay.whiteout";
constexpr const char* k_trusted_redirect = "trusted.overlay.redirect";
constexpr const char* k_user_redirect = "user.overlay.redirect";
constexpr const char* k_trusted_metacopy = "trusted.overlay.metacopy";
constexpr const char* k_user_metacopy = "user.overlay.metacopy";
// The opaque xattr's value.
constexpr std::string_view k_opaque_value = "y";

// The opaque xattr in the namespace a mount uses.
constexpr const char* opaque_xattr(bool userxattr) {
    return userxattr ? k_user_opaque : k_trusted_opaque;
}
// Whether a directory's xattrs (a map from name to value) make it opaque.
template <typename Xattrs> bool has_opaque_xattr(const Xattrs& xattrs) {
    for (const char* k : {k_trusted_opaque, k_user_opaque}) {
        auto it = xattrs.find(k);
        if (it != xattrs.end() && it->second == k_opaque_value) {
            return true;
        }
    }
    return false;
}
// Whether an entry of an overlayfs directory is a whiteout: the 0:0 device,
// or (Linux 6.7+, userxattr and nesting) an empty file with overlay.whiteout.
template <typename Xattrs> bool is_overlay_whiteout(const struct stat& st, const Xattrs& xattrs) {
    if (is_device(st)) {
        return true;
    }
    return S_ISREG(st.st_mode) && st.st_size == 0 &&
           (xattrs.contains(k_trusted_whiteout) || xattrs.contains(k_user_whiteout));
}
// overlayfs's own xattrs (trusted.overlay.*, user.overlay.*): bookkeeping of
// the union, not content of the files.
constexpr bool is_overlay_xattr(std::string_view name) {
    return name.starts_with(k_trusted_prefix) || name.starts_with(k_user_prefix);
}

} // namespace strata::formats::whiteout
