// Network namespaces as file descriptors: a new one for a container's
// sandbox, and code run inside one.
//
//   UniqueFd ns = network::new_netns();       // loopback only, down
//   network::with_netns(ns.get(), [&] { ... }); // on a thread inside it
#pragma once

#include "util/fd.hpp"

#include <functional>

namespace strata::network {

// A new network namespace: unshare(CLONE_NEWNET) on the calling thread,
// /proc/thread-self/ns/net opened, then the thread goes back to the
// namespace it was in. inside, when given, runs in the new namespace before
// the thread goes back (e.g. to open a netlink socket there without a
// thread of its own). Throws SysError (needs CAP_SYS_ADMIN).
UniqueFd new_netns(const std::function<void()>& inside = {});

// The calling thread's network namespace.
UniqueFd current_netns();

// Runs fn on a new thread that first joins the namespace netns_fd; waits for
// it and rethrows what fn threw. The caller's threads never change namespace.
void with_netns(int netns_fd, const std::function<void()>& fn);

// Whether net.ipv4.ip_forward is 1 in the calling thread's namespace.
bool ipv4_forwarding_enabled();

} // namespace strata::network
