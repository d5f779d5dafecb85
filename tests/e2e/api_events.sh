#!/usr/bin/env bash
# Events (issue #17): the store's journal through GET /events and `strata
# events`. One script of docker commands runs against a dockerd of the
# test's own and against strata serve; `docker events --since --until` must
# tell the same story on both (container create/start/die/kill/stop/destroy
# with their attributes, rename, exec_create/exec_start/exec_die, image
# tag/untag), and take the same bad filters
# and times. Then, against strata only: `docker events` following
# live (a container started after it began is seen; the filter holds),
# docker-py's events(decode=True), and `strata events` reading the same
# journal the server writes. Runs in a network namespace of its own.
. "$(dirname "$0")/own_netns.sh"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../support/api_pair.sh"
api_pair_start

# Times are whole seconds (what the docker CLI sends); a second of margin
# on each side keeps the window to this script's own events.
events_script() {
  sleep 1
  local t0 t1
  t0=$(date +%s)
  d run -d --name ev1 --network none --label tier=web busybox sh -c 'exit 3' >/dev/null
  d wait ev1 >/dev/null
  d run -d --name ev2 --network none busybox sleep 100 >/dev/null
  d exec ev2 sh -c 'exit 4'
  d stop -t 1 ev2 >/dev/null
  d rename ev2 ev3
  d kill ev3 >/dev/null 2>&1
  d rm ev1 >/dev/null
  d rm ev3 >/dev/null
  d tag busybox evtag:1
  d rmi evtag:1 >/dev/null
  sleep 1
  t1=$(date +%s)
  events_queries "$t0" "$t1" | sed "s/$t0/<T0>/g; s/$t1/<T1>/g"
}
events_queries() {
  local t0=$1 t1=$2
  run events --since "$t0" --until "$t1" --filter type=container \
    --format '{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}} {{.Actor.Attributes.signal}} {{.Actor.Attributes.oldName}} {{.Actor.Attributes.tier}} {{.Status}} {{.From}}' | sed -E 's/^(container exec_[a-z]+.*) [0-9a-f]{64}/\1 <EXECID>/'
  run events --since "$t0" --until "$t1" --filter type=image --format '{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.ID}}'
  run events --since "$t0" --until "$t1" --filter container=ev1 --filter event=die --format '{{.Action}} {{.Actor.Attributes.exitCode}}'
  run events --since "$t0" --until "$t1" --filter label=tier=web --filter event=start --format '{{.Action}} {{.Actor.Attributes.name}}'
  run events --since "$t0" --until "$t1" --filter image=busybox --filter event=destroy --format '{{.Action}} {{.Actor.Attributes.name}}'
  run events --since 2 --until 1
  run events --since 1 --until 2 --filter nosuch=1
}
api_pair_compare events_script

# --- strata only: following live
export DOCKER_HOST=unix://$S_SOCK
timeout 60 "$DOCKER" events --filter type=container --filter event=start --format '{{.Action}} {{.Actor.Attributes.name}}' >"$WORK/live.out" 2>&1 &
EV_PID=$!
sleep 1
d run -d --name live1 --network none busybox true >/dev/null || fail "run -d live1"
d run -d --name live2 --network none busybox true >/dev/null || fail "run -d live2"
for _ in $(seq 1 100); do [ "$(wc -l <"$WORK/live.out")" -ge 2 ] && break; sleep 0.1; done
kill "$EV_PID" 2>/dev/null
wait "$EV_PID" 2>/dev/null
assert_eq "$(cat "$WORK/live.out")" "start live1
start live2" "docker events follows new events, filtered"

out=$(timeout 60 python3 - "$S_SOCK" <<'PY' 2>&1
import sys, time, docker
c = docker.DockerClient(base_url="unix://" + sys.argv[1])
since = int(time.time()) - 1
c.containers.run("busybox", "true", name="py1", network_mode="none", remove=True)
time.sleep(1)
for e in c.events(since=since, until=int(time.time()) + 1, decode=True,
                  filters={"container": "py1"}):
    print(e["Type"], e["Action"], e["Actor"]["Attributes"]["name"])
PY
)
assert_eq "$(grep -v attach <<<"$out")" "container create py1
container start py1
container die py1
container destroy py1" "docker-py events(decode=True)"

# strata events reads the journal the server wrote.
got=$(strata events --since 2m --until 0s --filter container=live1 --format '{{.Action}} {{.Actor.Attributes.name}}')
assert_eq "$got" "create live1
start live1
die live1" "strata events"
line=$(strata events --since 2m --until 0s --filter container=live1 --filter event=create)
[[ "$line" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\.[0-9]{9}(Z|[+-][0-9]{2}:[0-9]{2})\ container\ create\ [0-9a-f]{64}\ \(image=busybox,\ name=live1\)$ ]] ||
  fail "strata events' default line is not docker's: $line"
expect_fail "failed to parse value as time or duration" strata events --since yesterday

# The same times select log lines (strata logs and docker logs through the
# server): --until the first line's time keeps it alone, --since the
# second's keeps the second alone.
d run -d --name lg --network none busybox sh -c 'echo first; sleep 1.2; echo second' >/dev/null || fail "run lg"
d wait lg >/dev/null
t_first=$(strata logs -t lg | sed -n 1p | cut -d' ' -f1)
t_second=$(strata logs -t lg | sed -n 2p | cut -d' ' -f1)
[ -n "$t_first" ] && [ -n "$t_second" ] || fail "no timestamps from strata logs -t"
assert_eq "$(strata logs --until "$t_first" lg)" "first" "strata logs --until"
assert_eq "$(strata logs --since "$t_second" lg)" "second" "strata logs --since"
assert_eq "$(d logs --until "$t_first" lg)" "first" "docker logs --until"
assert_eq "$(d logs --since "$t_second" lg)" "second" "docker logs --since"
assert_eq "$(strata logs --since 10m lg | wc -l)" "2" "strata logs --since a duration"
assert_eq "$(strata logs --until 10m lg | wc -l)" "0" "strata logs --until a duration"
echo "PASS"
