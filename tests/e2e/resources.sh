#!/usr/bin/env bash
# Resource limits (docker run --memory, --pids-limit, --cpus...): an OOM kill
# is exit 137, a fork beyond the pids limit fails inside and the container
# lives on, the limits are where docker puts them; Docker's checks and messages.
. "$(dirname "$0")/lib.sh"

[ -d /sys/fs/cgroup/memory ] || [ -f /sys/fs/cgroup/cgroup.controllers ] || skip "no cgroup hierarchy"
strata bootstrap busybox >/dev/null || fail "bootstrap"
v2=false
[ -f /sys/fs/cgroup/cgroup.controllers ] && v2=true

# Docker's validation, before anything runs.
out=$(strata run --rm -m 1m busybox true 2>&1) && fail "a 1m memory limit must be refused"
assert_contains "$out" "Minimum memory limit allowed is 6MB" "docker's minimum"
out=$(strata run --rm -m 64x busybox true 2>&1) && fail "a bad size must be refused"
assert_contains "$out" "invalid size: '64x'" "RAMInBytes' message"
out=$(strata run --rm -m 32m --memory-swap 16m busybox true 2>&1) && fail "swap below memory"
assert_contains "$out" "Minimum memoryswap limit should be larger than memory limit" "swap message"
out=$(strata run --rm --cpus abc busybox true 2>&1) && fail "--cpus abc"
assert_contains "$out" "failed to parse abc as a rational number" "--cpus message"
out=$(strata run --rm --cpus 999 busybox true 2>&1) && fail "--cpus beyond the host"
assert_contains "$out" "Range of CPUs is from 0.01 to" "--cpus range"

# A memory hog under 32m: killed by the kernel's OOM killer, exit 137, and
# nothing on stderr that pretends otherwise.
err=$(strata run --rm --memory 32m busybox dd if=/dev/zero of=/dev/null bs=64M count=1 2>&1 >/dev/null); rc=$?
assert_eq "$rc" "137" "an OOM-killed hog exits 137"
[[ "$err" == *error* ]] && fail "an OOM kill is not a strata error: $err"
# Under the limit it runs.
strata run --rm --memory 32m busybox dd if=/dev/zero of=/dev/null bs=4M count=1 2>/dev/null \
    || fail "4M under a 32m limit must run"

# A fork bomb under --pids-limit 20: forks beyond it fail (EAGAIN) inside,
# and only the bomb (a shell whose fork fails gives up, as busybox sh does)
# ends; the container keeps running (only shell builtins once it is full).
out=$(strata run --rm --pids-limit 20 busybox sh -c '
  sh -c "while :; do sleep 60 & done"; echo "bomb=$?"
  set -- /proc/[0-9]*; echo "procs=$#"
  for p in /proc/[0-9]*; do p=${p#/proc/}; [ "$p" = 1 ] || kill "$p"; done
  echo alive' 2>&1); rc=$?
assert_eq "$rc" "0" "the container survives its fork bomb: $out"
assert_contains "$out" "can't fork: Resource temporarily unavailable" "fork fails with EAGAIN"
assert_contains "$out" "bomb=2" "the bomb's shell ends on the failed fork"
# this shell + 18 sleeps: the bomb's own shell made the twentieth.
assert_contains "$out" "procs=19" "no more than 20 processes"
assert_contains "$out" "alive" "the shell goes on"

# --cpus 1.5 is a CFS quota of 150000 over a 100000 period.
"$STRATA" run --rm --cpus 1.5 --pids-limit 33 busybox sleep 5 & pid=$!
found=false
for _ in $(seq 1 50); do
    if $v2; then
        f=$(grep -l '^150000 100000$' /sys/fs/cgroup/strata/*/cpu.max 2>/dev/null | head -1)
    else
        f=$(grep -l '^150000$' /sys/fs/cgroup/cpu/strata/*/cpu.cfs_quota_us 2>/dev/null | head -1)
    fi
    [ -n "$f" ] && { found=true; break; }
    sleep 0.1
done
$found || fail "--cpus 1.5 should show as a CFS quota of 150000"
wait $pid || fail "run --cpus 1.5"
[ -e "$f" ] && fail "the container's cgroup should be gone after it ended: $f"

# What this host cannot do is dropped with Docker's warning.
if ! $v2 && [ ! -e /sys/fs/cgroup/blkio/blkio.weight ]; then
    err=$(strata run --rm --blkio-weight 300 busybox true 2>&1 >/dev/null) || fail "--blkio-weight without the controller still runs"
    assert_contains "$err" "WARNING: Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded." "blkio warning"
fi
# Containers that last (create / run -d, with the container record): the
# limits in HostConfig, the cgroup named after the id, stats, pause/unpause,
# OOMKilled in inspect.
out=$(strata create --name res-created -m 32m --cpus 1.5 --pids-limit 33 busybox true) || fail "create with limits: $out"
assert_eq "$(strata inspect --format '{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}' res-created)" \
    "33554432 67108864 1500000000 33" "HostConfig's resources as docker's"
out=$(strata pause res-created 2>&1) && fail "pause of a created container must fail"
assert_contains "$out" "Error response from daemon: Container $(strata inspect --format '{{.Id}}' res-created) is not running" "docker's pause error"
strata rm res-created >/dev/null || fail "rm res-created"

id=$(strata run -d --name res-svc -m 64m --cpus 1.5 --pids-limit 33 busybox sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.05; done') || fail "run -d with limits"
on_exit "\"$STRATA\" rm -f res-svc >/dev/null 2>&1"
pid=$(strata inspect --format '{{.State.Pid}}' res-svc)
[ "$pid" -gt 0 ] || fail "a running container's pid: $pid"
if $v2; then
    assert_eq "$(cat /sys/fs/cgroup/strata/$id/cpu.max)" "150000 100000" "cpu.max of the container's cgroup"
    assert_eq "$(cat /sys/fs/cgroup/strata/$id/memory.max)" "67108864" "memory.max"
else
    assert_eq "$(cat /sys/fs/cgroup/cpu/strata/$id/cpu.cfs_quota_us)" "150000" "cpu.cfs_quota_us of strata/<id>"
    assert_eq "$(cat /sys/fs/cgroup/memory/strata/$id/memory.limit_in_bytes)" "67108864" "memory.limit_in_bytes of strata/<id>"
    assert_eq "$(cat /sys/fs/cgroup/pids/strata/$id/pids.max)" "33" "pids.max of strata/<id>"
fi
sleep 0.5
out=$(strata stats --no-stream res-svc) || fail "stats --no-stream: $out"
assert_contains "$out" "CONTAINER ID   NAME" "stats' header"
assert_contains "$out" "MEM USAGE / LIMIT" "stats' header"
assert_contains "$out" "${id:0:12}   res-svc" "stats' row"
assert_contains "$out" " / 64MiB" "the memory limit in stats"
assert_eq "$(strata stats --no-stream --format '{{.Name}} {{.PIDs}}' res-svc | cut -d' ' -f1)" "res-svc" "stats --format"
strata stats --no-stream | grep -q "res-svc" || fail "stats without arguments lists the running container"

# The counter is replaced by a rename, never seen half written (a pause can
# freeze the shell between a truncation and its write).
count() { cat "/proc/$pid/root/tmp/count"; }
assert_eq "$(strata pause res-svc)" "res-svc" "pause prints the name"
assert_eq "$(strata inspect --format '{{.State.Status}} {{.State.Paused}}' res-svc)" "paused true" "paused in the state"
a=$(count); sleep 0.5; b=$(count)
assert_eq "$a" "$b" "a paused counter does not move"
out=$(strata pause res-svc 2>&1) && fail "pause of a paused container must fail"
assert_contains "$out" "Container $id is already paused" "docker's already-paused error"
assert_eq "$(strata unpause res-svc)" "res-svc" "unpause prints the name"
sleep 0.5; c=$(count)
[ "$c" -gt "$b" ] || fail "an unpaused counter moves again: $b then $c"
assert_eq "$(strata inspect --format '{{.State.Status}}' res-svc)" "running" "running again"
out=$(strata unpause res-svc 2>&1) && fail "unpause of a running container must fail"
assert_contains "$out" "Container $id is not paused" "docker's not-paused error"
strata pause res-svc >/dev/null || fail "pause again"
strata rm -f res-svc >/dev/null || fail "rm -f of a paused container"
if $v2; then [ -e "/sys/fs/cgroup/strata/$id" ]; else [ -e "/sys/fs/cgroup/memory/strata/$id" ]; fi && fail "the cgroup should be gone with the container"

# An OOM kill of a kept container: exit 137 and OOMKilled true.
strata run --name res-oom -m 32m busybox dd if=/dev/zero of=/dev/null bs=64M count=1 >/dev/null 2>&1; rc=$?
assert_eq "$rc" "137" "run (kept) of a hog exits 137"
assert_eq "$(strata inspect --format '{{.State.OOMKilled}} {{.State.ExitCode}}' res-oom)" "true 137" "OOMKilled in inspect"
strata rm res-oom >/dev/null || fail "rm res-oom"
echo "resources: ok"
