// Subordinate id ranges through shadow's libsubid (Debian's libsubid4, which
// uidmap's newuidmap links as well), loaded on first use so that strata still
// runs without it. libsubid answers from /etc/subuid and /etc/subgid, or from
// another source that /etc/nsswitch.conf names on its "subid:" line (FreeIPA,
// SSSD), as podman and newuidmap see them. When the library cannot be loaded
// or reports an error, strata reads the files itself (subordinate_ranges).
#pragma once

#include "runner/idmap.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::runner {

enum class SubidKind { uid, gid };

// The ranges libsubid grants `owner` (a user name, or a uid in decimal), in
// its order; nullopt when libsubid is not installed or fails (an unreadable
// file, an nsswitch module that cannot be reached). Ranges whose start or
// count do not fit 32 bits are dropped, as the file parser drops them.
std::optional<std::vector<IdRange>> libsubid_ranges(SubidKind kind, const std::string& owner);

// Empty when libsubid is loaded (or not tried yet), else why it is not.
std::string libsubid_load_error();

// The ranges to use: the library's answer when there is one, else those the
// file content (the parser's input) grants to name or id.
std::vector<IdRange> choose_subordinate_ranges(const std::optional<std::vector<IdRange>>& library,
                                               std::string_view file_content, std::string_view name,
                                               std::uint32_t id);

// The ranges for the user through libsubid, falling back to the file
// (/etc/subuid or /etc/subgid).
std::vector<IdRange> user_subordinate_ranges(SubidKind kind, std::string_view name,
                                             std::uint32_t id);

} // namespace strata::runner
