// Resolving a Docker USER string ("name", "uid", "name:group", "uid:gid")
// against a root directory's own /etc/passwd and /etc/group, the way runc's
// user.GetExecUser does: a numeric uid that is not in passwd is used as is
// (gid 0, home "/", also for uid 0); a name that is not there is an error; the supplementary
// groups are the primary group plus every group that lists the user.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace strata::runner {

struct ExecUser {
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups; // supplementary groups, primary first, no duplicates
    std::string home = "/";
    std::string name; // empty when the uid is not in passwd
};

// rootfd: an fd of the root directory. Files are opened inside it (a
// symlinked /etc cannot lead out of it); a missing passwd or group file is
// treated as empty. Throws Error naming the user and the file.
ExecUser resolve_user(int rootfd, std::string_view user);

// The same over file contents (for tests and callers that already have them).
ExecUser resolve_user_from(std::string_view user, std::string_view passwd, std::string_view group);

} // namespace strata::runner
