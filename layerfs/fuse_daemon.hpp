// What strata's two FUSE servers (the union filesystem, strata-overlay, and
// the lazy image filesystem, strata-lazy) share about their start-up:
// serving the first requests on the main thread, and becoming a daemon only
// once the kernel's INIT is answered.
#pragma once

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>

#include <functional>
#include <string>

namespace strata::layerfs {

// Serves requests one at a time on this thread until enough() says so.
// False when the session ended first (unmounted, a signal, a read error,
// which is logged naming `what`).
bool serve_inline(fuse_session* se, fuse_buf& buf, const std::function<bool()>& enough,
                  const char* what);

// Sends strata's log to syslog under ident, as a daemon without a terminal.
void log_to_syslog(const char* ident);

// Forks the daemon once the mount exists. The child detaches (new session,
// cwd /, stdio on /dev/null, logs to syslog under ident), serves requests
// until initialized() (the kernel's INIT answered) and only then lets the
// parent go: the parent exits 0 once the mount serves requests (what
// mount(8), `strata mount` and scripts that use the mount right away expect;
// libfuse's fuse_daemonize lets it go before, so the first request waited
// for the new daemon to be scheduled, answer INIT and start its threads).
// Returns in the child, true when INIT was answered. In the parent, throws
// naming target if the child ended before answering INIT.
bool daemonize_when_ready(fuse_session* se, fuse_buf& buf, const std::string& target,
                          const char* ident, const std::function<bool()>& initialized);

} // namespace strata::layerfs
