// RUN --mount=type=ssh: the build's side of an ssh agent forwarded into a
// step, as BuildKit does it. `strata build --ssh default[=SOCKET]` names an
// agent socket on the host ($SSH_AUTH_SOCK when no path is given); for the
// step, AgentProxy listens on a fresh socket of its own (with the mount's
// mode, uid and gid: 0600 root by default, like BuildKit) that is bound at the
// mount target, and relays every connection to the host agent. The host
// socket itself is never exposed to the step, and its permissions stay as
// they are.
#pragma once

#include "util/fd.hpp"

#include <memory>
#include <string>
#include <sys/types.h>

namespace strata::builder {

class AgentProxy {
public:
    // Listens on listen_path (created; its parent must exist) and relays to
    // the agent socket at agent_path. Throws naming the path that failed.
    AgentProxy(const std::string& listen_path, const std::string& agent_path, mode_t mode,
               uid_t uid, gid_t gid);
    ~AgentProxy(); // stops relaying, closes every connection, joins its threads
    AgentProxy(const AgentProxy&) = delete;
    AgentProxy& operator=(const AgentProxy&) = delete;

    const std::string& path() const noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

// True when path is a unix socket (following symlinks).
bool is_socket(const std::string& path);

} // namespace strata::builder
