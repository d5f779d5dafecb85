#!/usr/bin/env bash
# Containers that last (issue #15): a detached service started, listed,
# logged, stopped, restarted with its files still there, removed; names,
# id prefixes and Docker's messages; restart policy; SIGKILL of the CLI and
# of a monitor; logs rotation; run without --rm keeps the container.
. "$(dirname "$0")/lib.sh"

# Every container of this store goes at the end, whatever happened.
cleanup() {
  for id in $("$STRATA" ps -aq --no-trunc 2>/dev/null); do "$STRATA" rm -f "$id" >/dev/null 2>&1; done
}
on_exit cleanup

strata bootstrap busybox >/dev/null || fail "bootstrap"

# --- a detached service
id=$(strata run -d --name svc --label app=demo busybox sh -c 'while true; do date >> /data; echo tick; sleep 1; done') || fail "run -d"
[[ "$id" =~ ^[0-9a-f]{64}$ ]] || fail "run -d prints the full id: $id"
short=${id:0:12}
out=$(strata ps)
assert_contains "$out" "CONTAINER ID   IMAGE     COMMAND" "ps header"
assert_contains "$out" "$short" "ps lists the running container"
assert_contains "$out" "svc" "ps shows the name"
assert_contains "$(strata ps --format '{{.Status}}')" "Up " "status Up"
assert_eq "$(strata ps -q)" "$short" "ps -q"
assert_eq "$(strata ps -q --filter label=app=demo)" "$short" "ps --filter label"
assert_eq "$(strata ps -q --filter name=nomatch)" "" "ps --filter name"
assert_eq "$(strata inspect --format '{{.State.Status}} {{.State.Running}} {{.Name}}' svc)" "running true /svc" "inspect State"
pid=$(strata inspect --format '{{.State.Pid}}' svc)
[ "$pid" -gt 0 ] && kill -0 "$pid" || fail "State.Pid is the container's live PID 1: $pid"
assert_eq "$(strata container inspect --format '{{.Config.Labels.app}}' "$short")" "demo" "container inspect by id prefix"
sleep 2.5
assert_contains "$(strata logs svc)" "tick" "logs"
line=$(head -1 "$STRATA_ROOT/containers/$id/$id-json.log")
[[ "$line" =~ ^\{\"log\":\"tick\\n\",\"stream\":\"stdout\",\"time\":\"[0-9T:.-]+Z\"\}$ ]] || fail "json-file line: $line"
assert_eq "$(strata logs --tail 1 svc)" "tick" "logs --tail 1"
strata logs -t --tail 1 svc | grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z tick$' || fail "logs -t"
# The container's mounts stay in the monitor's namespace.
grep -q "$STRATA_ROOT/containers" /proc/self/mountinfo && fail "the container's overlay leaks onto the host"

# --- stop (the shell as PID 1 ignores SIGTERM: SIGKILL after -t), restart keeps the files
t0=$(date +%s)
assert_eq "$(strata stop -t 1 svc)" "svc" "stop prints the name"
[ $(( $(date +%s) - t0 )) -le 5 ] || fail "stop -t 1 took too long"
assert_eq "$(strata inspect --format '{{.State.Status}} {{.State.ExitCode}}' svc)" "exited 137" "stopped by SIGKILL"
assert_contains "$(strata ps -a --format '{{.Names}} {{.Status}}')" "svc Exited (137)" "ps -a status"
assert_eq "$(strata ps -q)" "" "ps without -a hides stopped containers"
n1=$(wc -l < "$STRATA_ROOT/containers/$id/upper/data")
[ "$n1" -ge 2 ] || fail "the writable layer keeps /data ($n1 lines)"
assert_eq "$(strata start svc)" "svc" "start prints the name"
sleep 1.5
assert_eq "$(strata inspect --format '{{.State.Status}}' svc)" "running" "restarted"
strata stop -t 0 svc >/dev/null
n2=$(wc -l < "$STRATA_ROOT/containers/$id/upper/data")
[ "$n2" -gt "$n1" ] || fail "the files are still there after a restart ($n1 -> $n2)"
assert_eq "$(strata restart -t 0 svc)" "svc" "restart"
assert_eq "$(strata inspect --format '{{.State.Status}}' svc)" "running" "restart runs it"

# --- Docker's messages
expect_fail "You cannot remove a running container $id. Stop the container before attempting removal or force remove" strata rm svc
expect_fail 'Conflict. The container name "/svc" is already in use by container "'"$id"'"' strata create --name svc busybox true
expect_fail "No such container: nosuch" strata stop nosuch
assert_eq "$(strata rm -f svc)" "svc" "rm -f a running container"
[ -e "$STRATA_ROOT/containers/$id" ] && fail "rm leaves the container's directory"
[ -e "$STRATA_ROOT/leases/pin-container-$id" ] && fail "rm leaves the image pinned"

# --- create, start -a, wait, run without --rm keeps the container, rename
cid=$(strata create --name once busybox sh -c 'echo out; echo err >&2; exit 3')
assert_eq "$(strata ps -a --filter status=created -q)" "${cid:0:12}" "created"
assert_eq "$(strata ps -a --format '{{.Status}}' --filter name=once)" "Created" "Created status"
out=$(strata start -a once 2>"$WORK/err"); rc=$?
assert_eq "$out" "out" "start -a stdout"
assert_eq "$(cat "$WORK/err")" "err" "start -a stderr"
assert_eq "$rc" "3" "start -a exit code"
assert_eq "$(strata wait once)" "3" "wait prints the exit code"
assert_eq "$(strata ps -a -q --filter exited=3)" "${cid:0:12}" "filter exited="
strata rename once twice || fail "rename"
assert_eq "$(strata inspect --format '{{.Name}}' twice)" "/twice" "renamed"
expect_fail "No such container: once" strata logs once
assert_eq "$(strata run --name kept busybox echo hi)" "hi" "run in the foreground"
assert_eq "$(strata inspect --format '{{.State.Status}} {{.State.ExitCode}}' kept)" "exited 0" "run without --rm keeps the container"
assert_eq "$(echo piped | strata run -i --name withstdin busybox cat)" "piped" "run -i passes stdin through the monitor"
strata run --name failing busybox sh -c 'exit 9'; assert_eq "$?" "9" "run's exit code"
strata run --rm busybox true || fail "run --rm"
[ "$(strata ps -aq | wc -l)" -eq 4 ] || fail "run --rm keeps nothing: $(strata ps -a)"
prefix=${cid:0:4}
assert_eq "$(strata inspect --format '{{.Id}}' "$prefix")" "$cid" "a unique id prefix"

# --- restart policy on-failure:2: three runs in all
rid=$(strata run -d --restart on-failure:2 busybox sh -c 'echo run; exit 1')
for _ in $(seq 100); do
  [ "$(strata inspect --format '{{.State.Status}}' "$rid")" = exited ] && break; sleep 0.1
done
assert_eq "$(strata inspect --format '{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}' "$rid")" "exited 1 2" "on-failure:2"
assert_eq "$(strata logs "$rid" | wc -l)" "3" "three runs logged"
expect_fail "invalid restart policy" strata run -d --restart sometimes busybox true

# --- SIGKILL of the monitor: the container dies with it; ps and inspect say so
kid=$(strata run -d busybox sleep 1000)
mpid=$(cat "$STRATA_ROOT/containers/$kid/monitor.pid")
cpid=$(strata inspect --format '{{.State.Pid}}' "$kid")
kill -KILL "$mpid"
for _ in $(seq 50); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$cpid" 2>/dev/null && fail "the container outlived its monitor"
assert_eq "$(strata inspect --format '{{.State.Status}} {{.State.Running}} {{.State.ExitCode}}' "$kid")" "exited false 137" "a dead monitor reads as exited"
assert_contains "$(strata ps -a --filter id="$kid" --format '{{.Status}}')" "Exited (137)" "ps after a monitor's SIGKILL"
strata start "$kid" >/dev/null || fail "start after a monitor's death"
strata rm -f "$kid" >/dev/null

# --- SIGKILL of the CLI mid-run: the detached container goes on
"$STRATA" run --name bg busybox sh -c 'sleep 1000' >/dev/null & cli=$!
for _ in $(seq 50); do [ "$(strata inspect --format '{{.State.Status}}' bg 2>/dev/null)" = running ] && break; sleep 0.1; done
kill -KILL $cli; wait $cli 2>/dev/null
assert_eq "$(strata inspect --format '{{.State.Status}}' bg)" "running" "the container outlives its CLI"
strata kill bg >/dev/null || fail "kill"
assert_eq "$(strata wait bg)" "137" "kill's SIGKILL"
expect_fail "is not running" strata kill bg

# --- log rotation
lid=$(strata run -d --log-opt max-size=1k --log-opt max-file=2 busybox sh -c 'i=0; while [ $i -lt 200 ]; do echo line$i; i=$((i+1)); done')
strata wait "$lid" >/dev/null
[ -e "$STRATA_ROOT/containers/$lid/$lid-json.log.1" ] || fail "max-size rotates the log"
[ -e "$STRATA_ROOT/containers/$lid/$lid-json.log.2" ] && fail "max-file=2 keeps two files"
[ "$(stat -c %s "$STRATA_ROOT/containers/$lid/$lid-json.log")" -le 1024 ] || fail "the log exceeds max-size"
assert_eq "$(strata logs --tail 1 "$lid")" "line199" "the newest line survives rotation"

# --- rmi refuses an image a container uses (Docker's conflict); -f untags it
# and gc keeps the image of a container
expect_fail "conflict: unable to remove repository reference \"busybox\" (must force) - container " strata rmi busybox
strata images --format '{{.Repository}}' | grep -qx busybox || fail "a refused rmi keeps the name"
strata rmi -f busybox >/dev/null 2>&1 || fail "rmi -f of an image a container uses"
strata images --format '{{.Repository}}' | grep -qx busybox && fail "rmi -f removes the name"
strata gc >/dev/null || fail "gc"
strata start -a twice >/dev/null 2>&1; assert_eq "$?" "3" "a container's image survives rmi + gc"

# --- prune
strata container prune -f >/dev/null || fail "prune"
assert_eq "$(strata ps -aq)" "" "prune removes stopped containers"

# --- an argument that is not UTF-8: kept as dockerd keeps it (U+FFFD for the
# bad byte, as encoding/json writes it), never a failed create
strata bootstrap busybox >/dev/null || fail "bootstrap again (rmi -f above untagged it)"
bad=$(strata create --label "l=a$(printf '\377')" busybox echo "a$(printf '\377')b") || fail "create with an argument that is not UTF-8"
grep -q "\"ID\":\"$bad\",\"Attributes\":{\"image\":\"busybox\",\"l\":\"a$(printf '\357\277\275')\"" "$STRATA_ROOT/events.jsonl" ||
  fail "the create event of a container with a label that is not UTF-8: $(tail -2 "$STRATA_ROOT/events.jsonl")"
assert_eq "$(strata inspect --format '{{json .Config.Cmd}}' "$bad")" "[\"echo\",\"a$(printf '\357\277\275')b\"]" "the argument as stored"
assert_eq "$(strata start -a "$bad")" "a$(printf '\357\277\275')b" "the container runs what docker would"
strata rm "$bad" >/dev/null || fail "rm"
echo "PASS"
