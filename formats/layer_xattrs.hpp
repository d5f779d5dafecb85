// Which extended attributes a layer written from a directory carries.
//
// A directory on disk holds attributes that belong to the host, not to the
// image: security.selinux labels given by the host's policy, overlayfs's own
// bookkeeping, trusted.* and system.* attributes of the host's tools. Docker
// writes only security.capability into the layers it makes; buildah
// (containers/storage) also writes security.ima and user.*. strata writes
// their union: security.capability, security.ima, and user.* except
// overlayfs's user.overlay.* and the rootless stat override.
//
// Applying a layer is the other direction and keeps every attribute the
// layer carries (Docker's and containerd's appliers set them all), except
// overlayfs's own.
#pragma once

#include <string>
#include <string_view>

namespace strata::formats::layer_xattrs {

// Whether a directory's attribute `name` goes into a layer made from it.
bool kept(std::string_view name);

// The value the layer carries for a kept attribute. A namespaced file
// capability (VFS_CAP_REVISION_3, written inside a user namespace, carrying
// the host id of that namespace's root) becomes the plain revision 2 that
// every reader accepts, as moby does: the root id means nothing outside the
// namespace the layer was built in. Other values are returned unchanged.
std::string value(std::string_view name, std::string value);

} // namespace strata::formats::layer_xattrs
