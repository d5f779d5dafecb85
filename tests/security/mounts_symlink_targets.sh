#!/usr/bin/env bash
# issue 13, item 1: /proc, /sys and /dev in a hostile image are symlinks (or
# not directories). runc's rule since CVE-2019-19921: a mount target on the
# way to which there is a symlink is refused, for `strata run` and for a
# build's RUN step. Before the fix, /proc -> /dev/x/../../etc/p got procfs at
# /etc/p with no masks (core_pattern writable from the container).
. "$(dirname "$0")/secure_lib.sh"
need busybox

# /proc climbs through /dev, which the runner covers with its tmpfs later.
R=$WORK/proc-link; rootfs "$R"
mkdir -p "$R/dev/x" "$R/etc/p" "$R/sys"
ln -s /dev/x/../../etc/p "$R/proc"
image evil-proc "$R"
out=$(strata run --rm evil-proc sh -c 'echo x > /etc/p/sys/kernel/core_pattern; cat /etc/p/timer_list' 2>&1); rc=$?
assert_eq "$rc" 125 "a symlinked /proc must stop the container (exit 125); output: $out"
assert_contains "$out" '"/proc" in the image is a symlink ("/dev/x/../../etc/p"): refusing to mount procfs through it'
build_expect_fail 'refusing to mount procfs through it' 'FROM evil-proc
RUN echo x > /etc/p/sys/kernel/core_pattern'

# /sys the same way.
R=$WORK/sys-link; rootfs "$R"
mkdir -p "$R/dev/y" "$R/etc/s" "$R/proc"
ln -s /dev/y/../../etc/s "$R/sys"
image evil-sys "$R"
expect_fail '"/sys" in the image is a symlink ("/dev/y/../../etc/s"): refusing to mount sysfs through it' \
  strata run --rm evil-sys true
build_expect_fail 'refusing to mount sysfs through it' 'FROM evil-sys
RUN true'

# /dev a symlink (to a directory inside the root): its tmpfs, nodes and the
# staging of /etc files would land elsewhere.
R=$WORK/dev-link; rootfs "$R"
mkdir -p "$R/proc" "$R/sys" "$R/var/d"
ln -s var/d "$R/dev"
image evil-dev "$R"
expect_fail '"/dev" in the image is a symlink ("var/d"): refusing to mount a tmpfs through it' \
  strata run --rm evil-dev true
build_expect_fail '"/dev" in the image is a symlink' 'FROM evil-dev
RUN true'

# /proc a regular file: not a directory, refused by name.
R=$WORK/proc-file; rootfs "$R"
mkdir -p "$R/sys"; echo no > "$R/proc"
image evil-proc-file "$R"
out=$(strata run --rm evil-proc-file true 2>&1); rc=$?
assert_eq "$rc" 125 "a /proc that is a file must stop the container; output: $out"
assert_contains "$out" '"/proc" in the image is not a directory: refusing to mount procfs on "/proc"'

# A generated /etc file whose target is a directory in the image.
R=$WORK/hostname-dir; rootfs "$R"
mkdir -p "$R/etc/hostname"
image evil-hostname "$R"
expect_fail '"/etc/hostname" in the image is a directory: refusing to mount the generated /etc/hostname on "/etc/hostname"' \
  strata run --rm evil-hostname true

# An ordinary image still runs, with Docker's masks and read-only paths.
R=$WORK/plain; rootfs "$R"
image plain "$R"
out=$(strata run --rm plain sh -c '
  (wc -c < /proc/kcore) 2>/dev/null || echo 0; wc -c < /proc/timer_list
  (echo x > /proc/sys/kernel/core_pattern) 2>/dev/null || echo core-pattern-ro
  (echo x > /proc/sysrq-trigger) 2>/dev/null || echo sysrq-ro
  ls -A /sys/firmware | wc -l
  grep -c " /proc/keys " /proc/self/mountinfo
  (echo x > /sys/kernel/profiling) 2>/dev/null || echo sys-ro
  grep " /dev " /proc/self/mountinfo | grep nosuid | grep -q noexec && echo dev-nosuid-noexec
' 2>&1) || fail "a plain image must run: $out"
assert_eq "$out" "0
0
core-pattern-ro
sysrq-ro
0
1
sys-ro
dev-nosuid-noexec" "masks, read-only paths and the /dev flags"
build_ok 'FROM plain
RUN test "$(wc -c < /proc/timer_list)" = 0 && ! (echo x > /proc/sys/kernel/core_pattern) 2>/dev/null'
# A -v target of the wrong type, named.
mkdir -p "$WORK/vol"
expect_fail '"/etc/passwd" in the image is not a directory: refusing to mount a bind mount of' \
  strata run --rm -v "$WORK/vol:/etc/passwd" plain true

echo ok
