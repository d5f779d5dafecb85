#!/usr/bin/env bash
# 50 containers run -d at once: 50 records, 50 distinct names, all running,
# every state readable; then all removed at once.
. "$(dirname "$0")/lib.sh"
cleanup() {
  for id in $("$STRATA" ps -aq --no-trunc 2>/dev/null); do "$STRATA" rm -f "$id" >/dev/null 2>&1; done
}
on_exit cleanup
strata bootstrap busybox >/dev/null || fail "bootstrap"
for i in $(seq 50); do
  "$STRATA" run -d --name "c$i" busybox sleep 1000 > "$WORK/id.$i" 2>"$WORK/err.$i" &
done
wait
for i in $(seq 50); do
  [ -s "$WORK/id.$i" ] || fail "run -d c$i: $(cat "$WORK/err.$i")"
done
assert_eq "$(strata ps -q | wc -l)" "50" "50 running"
assert_eq "$(strata ps --format '{{.Names}}' | sort -u | wc -l)" "50" "50 distinct names"
for f in "$STRATA_ROOT"/containers/*/state.json; do
  python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$f" || fail "torn state: $f"
done
# Random names stay unique under concurrency too.
for i in $(seq 20); do "$STRATA" create busybox true > /dev/null & done
wait
assert_eq "$(strata ps -a --format '{{.Names}}' | sort -u | wc -l)" "70" "70 distinct names"
for i in $(seq 50); do "$STRATA" rm -f "c$i" > /dev/null & done
wait
assert_eq "$(strata ps -q | wc -l)" "0" "all removed"
pgrep -f "strata-monitor --root $STRATA_ROOT" >/dev/null && fail "a monitor survived rm -f"
echo "PASS"
