#!/usr/bin/env bash
# Docker CLI parity that needs root and overlayfs: run's --env-file, --mount
# and --add-host; images --filter label= on a built image; the tty build
# progress (escape sequences and carriage returns of RUN output stripped,
# NO_COLOR, each frame in one write).
. "$(dirname "$0")/lib.sh"

strata bootstrap busybox >/dev/null || fail "bootstrap"

# --env-file: docker's format, then -e on top.
printf '# comment\nA=from file\n  B=two words  \nPASSED\nUNSET_VAR\nC=file\n' >"$WORK/env"
out=$(PASSED=from-caller strata run --rm --env-file "$WORK/env" -e C=flag busybox \
  sh -c 'echo "$A|$B|$PASSED|${UNSET_VAR-unset}|$C"')
assert_eq "$out" "from file|two words  |from-caller|unset|flag" "--env-file"
printf 'BAD NAME=1\n' >"$WORK/bad.env"
expect_fail "contains whitespaces" strata run --rm --env-file "$WORK/bad.env" busybox true

# --mount bind and tmpfs; volume refused.
mkdir -p "$WORK/data" && echo data >"$WORK/data/f"
assert_eq "$(strata run --rm --mount "type=bind,source=$WORK/data,target=/mnt,readonly" busybox cat /mnt/f)" "data" \
  "--mount type=bind"
strata run --rm --mount "type=bind,src=$WORK/data,dst=/mnt,ro" busybox sh -c 'echo x >/mnt/g' 2>/dev/null &&
  fail "--mount readonly must refuse writes"
out=$(strata run --rm --mount type=tmpfs,target=/scratch,tmpfs-size=1m,tmpfs-mode=1770 busybox \
  sh -c 'stat -c %a /scratch; grep " /scratch " /proc/mounts')
assert_contains "$out" "1770" "tmpfs-mode"
assert_contains "$out" "size=1024k" "tmpfs-size"
expect_fail "volume name is too short" strata run --rm --mount source=v,target=/v busybox true

# --add-host
out=$(strata run --rm --add-host db.local:10.1.2.3 --add-host v6:::1 busybox cat /etc/hosts)
echo "$out" | grep -qE '^10\.1\.2\.3[[:space:]]+db\.local$' || fail "--add-host in /etc/hosts: $out"
echo "$out" | grep -qE '^::1[[:space:]]+v6$' || fail "--add-host IPv6: $out"
expect_fail "invalid IP address" strata run --rm --add-host db:nope busybox true
# host-gateway: the gateway of the container's network (the default bridge's without one).
out=$(strata run --rm --network none --add-host gw:host-gateway busybox cat /etc/hosts)
echo "$out" | grep -qE '^172\.17\.0\.1[[:space:]]+gw$' || fail "--add-host host-gateway: $out"

# images --filter label= on a built image
mkdir -p "$WORK/ctx"
cat >"$WORK/ctx/Dockerfile" <<'DF'
FROM busybox
LABEL team=infra tier=db
RUN printf 'plain\r50%%\r100%% done\n\ttabbed \033[31mred\033[0m\n'
DF
NO_COLOR=1 strata build --progress tty -t labelled:1 "$WORK/ctx" 2>"$WORK/progress" >/dev/null || fail "build"
assert_eq "$(strata images --format '{{.Repository}}' --filter label=team)" "labelled" "label=KEY"
assert_eq "$(strata images --format '{{.Repository}}' --filter label=team=infra --filter label=tier=db)" "labelled" \
  "label=KEY=VALUE (all must match)"
assert_eq "$(strata images -q --filter label=team=other)" "" "label value mismatch"

# The tty display: RUN output redrawn without its carriage returns, tabs and
# escape sequences; no colour under NO_COLOR.
grep -q '100% done' "$WORK/progress" || fail "RUN output shown: $(cat -v "$WORK/progress")"
grep -q $'\r' "$WORK/progress" && fail "carriage return passed through: $(cat -v "$WORK/progress")"
grep -q $'\t' "$WORK/progress" && fail "tab passed through"
grep -q $'\e\\[31m' "$WORK/progress" && fail "RUN output's escape sequence passed through"
grep -q $'\e\\[34m' "$WORK/progress" && fail "colour despite NO_COLOR"
grep -q $'\e\\[1A' "$WORK/progress" || fail "no redraw in tty mode: $(cat -v "$WORK/progress")"
# Each redraw is one write: every write that moves the cursor up also draws
# the status line.
if command -v strace >/dev/null; then
  strace -f -qq -e trace=write -e signal=none -s 100000 -o "$WORK/strace" \
    "$STRATA" build --no-cache --progress tty -t labelled:2 "$WORK/ctx" 2>/dev/null >/dev/null || fail "build under strace"
  grep 'write(2, ' "$WORK/strace" | grep -F '\33[1A' >"$WORK/redraws" || fail "no redraw seen by strace"
  # (the last one only clears the live area before the summary)
  bad=$(head -n -1 "$WORK/redraws" | grep -vcF '[+] Building' || true)
  [ "$bad" = 0 ] || fail "$bad redraw write(s) without the whole frame: $(grep -vF '[+] Building' "$WORK/redraws" | head -3)"
  grep -qF '\33[34m' "$WORK/strace" || fail "colour without NO_COLOR"
fi
echo "cli_run: ok"
