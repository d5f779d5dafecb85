// Fixtures for the runner tests: a tiny busybox root directory with the
// static probe, and a helper that runs a spec with captured output.
#pragma once

#include "runner/runner.hpp"
#include "util/tempdir.hpp"

#include <map>
#include <string>
#include <vector>

namespace strata::test {

// A root directory: /bin/busybox and its applets, /bin/probe, /etc/passwd
// (root, user 1000, nobody), /etc/group (user is in "extra" 2000 and
// root in "wheel" 10), /etc/hosts saying "original hosts", /tmp (1777),
// and the standard mount points already present (so that a run does not
// change the tree).
struct Rootfs {
    TempDir dir;
    std::string path; // dir.path() + "/rootfs"
    Rootfs();
};

struct Output {
    ExitStatus status{0};
    std::string out;
    std::string err;
    // The value of the first "key=" line of out; "" when missing.
    std::string get(const std::string& key) const;
    std::vector<std::string> all(const std::string& key) const;
};

// Runs spec (stdout and stderr captured in memfds unless set).
Output run_captured(runner::RunSpec spec);

runner::RunSpec probe_spec(const Rootfs& root, std::vector<std::string> args);

std::string probe_binary();
std::string host_mountinfo();
// The host's mounts (mountinfo lines) at or below dir.
std::vector<std::string> host_mounts_under(const std::string& dir);

} // namespace strata::test
