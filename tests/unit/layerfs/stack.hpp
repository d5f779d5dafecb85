// Layer stacks in overlayfs form for the layerfs tests, and small helpers to
// mount them with either driver.
#pragma once

#include "layerfs/mount.hpp"
#include "util/tempdir.hpp"

#include <string>
#include <sys/types.h>
#include <vector>

namespace strata::test {

// How whiteouts are written: overlayfs's 0:0 character devices (needs root)
// or OCI ".wh.NAME" files.
enum class Whiteouts { device, oci };
// What the caller can write: devices as root, OCI files otherwise.
Whiteouts native_whiteouts();

void make_whiteout(const std::string& path, Whiteouts form = native_whiteouts());
// trusted.overlay.opaque=y (root) or user.overlay.opaque=y.
void make_opaque(const std::string& dir);

// Three layers under root/l1 (bottom), l2, l3 (top), covering whiteouts,
// opaque directories, hard links, symlinks, devices (root only), a directory
// replaced by a file and back, and a 40-level deep tree. Returns the lowers
// top-most first.
std::vector<std::string> build_stack(const std::string& root,
                                     Whiteouts form = native_whiteouts());

// The tree build_stack's layers must merge into, built as plain files.
void build_expected(const std::string& dir);

layerfs::MountSpec spec_for(const std::vector<std::string>& lowers, layerfs::Driver driver,
                            const std::string& upper = {}, const std::string& work = {});

// errno of lstat(path), 0 when it exists.
int lstat_errno(const std::string& path);

// The pid of the strata-overlay process serving target, or -1.
pid_t overlay_daemon_pid(const std::string& target);

bool is_root();

} // namespace strata::test
