#!/usr/bin/env bash
# Builds and registries: a build's FROM pulls a missing image (--pull
# always|missing|never), and the remote build cache (--cache-to /
# --cache-from type=registry) lets a clean store (a second machine) build
# without running a step. Against Debian's docker-registry on 127.0.0.1.
# Needs root and overlayfs (the ctest entry runs behind the overlay probe),
# busybox-static and docker-registry.
. "$(dirname "$0")/lib.sh"
need python3
need docker-registry
[ -x /bin/busybox ] || skip "needs /bin/busybox (apt-get install busybox-static)"
EX=$(cd "$(dirname "$0")/../../examples/Dockerfiles" && pwd)
unset SOURCE_DATE_EPOCH # the cache must carry the history times itself

# --- a registry on a free port of 127.0.0.1 (retries when the port is taken)
. "$(dirname "$0")/../support/docker_registry.sh"
registries=0
start_registry() {
  registries=$((registries + 1))
  local dir=$WORK/registry-$registries
  registry_start "$dir" || fail "docker-registry did not start"
  on_exit "registry_stop $dir"
}
start_registry

# sbuild STORE ARGS...: a build with plain progress into STORE; the log in $WORK/log
sbuild() {
  local store=$1; shift
  STRATA_ROOT=$store strata build --progress plain "$@" >"$WORK/log" 2>&1 ||
    { cat "$WORK/log" >&2; fail "build $* (store $store)"; }
}
fresh() { # fresh NAME: a new store with the busybox base
  STRATA_ROOT=$WORK/$1 strata bootstrap busybox >/dev/null || fail "bootstrap in $1"
  echo "$WORK/$1"
}
count() { grep -c -- "$1" "$WORK/log" || true; }
iid() { STRATA_ROOT=$1 strata inspect --format json "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"])'; }

# --- 1. remote cache: basics built on "machine" A, then on a clean B
A=$(fresh A)
sbuild "$A" -t ex/basics --cache-to "type=registry,ref=$REG/cache/basics:1" "$EX/basics"
assert_contains "$(cat "$WORK/log")" "exporting cache to $REG/cache/basics:1 done"
run_a=$(count ' running: ')
[ "$run_a" -ge 5 ] || fail "the first build should run its steps (ran $run_a)"
id_a=$(iid "$A" ex/basics)

sleep 1.1 # another second: a step that ran again would get another history time
B=$(fresh B)
sbuild "$B" -t ex/basics --cache-from "type=registry,ref=$REG/cache/basics:1" "$EX/basics"
[ "$(count ' running: ')" = 0 ] || { cat "$WORK/log" >&2; fail "a clean store with the remote cache ran steps"; }
# Every step shown after FROM (the ones that make layers) is CACHED.
steps=$(grep -c '^#[0-9]* \[' "$WORK/log")
[ "$steps" -ge 7 ] && [ "$(count ' CACHED$')" = $((steps - 1)) ] ||
  { cat "$WORK/log" >&2; fail "every step should be CACHED"; }
[ "$(count 'importing layer sha256:')" -ge 5 ] || { cat "$WORK/log" >&2; fail "layers should be imported from the cache"; }
assert_contains "$(cat "$WORK/log")" "0 steps run"
assert_eq "$(iid "$B" ex/basics)" "$id_a" "the image built from the remote cache differs from the first build"
STRATA_ROOT=$B strata verify >/dev/null || fail "store B does not verify"
# The imported records are local now: a rebuild in B needs no registry.
registry_stop "$REG_DIR"
sbuild "$B" -t ex/basics --cache-from "type=registry,ref=$REG/cache/basics:1" "$EX/basics"
assert_contains "$(cat "$WORK/log")" "WARNING: --cache-from $REG/cache/basics:1"
[ "$(count ' running: ')" = 0 ] || fail "the rebuild in B ran steps"
start_registry # a new (empty) registry from here on

# --- 2. a changed context file reruns the steps from the one that reads it
mkdir -p "$WORK/ctx"
cat >"$WORK/ctx/Dockerfile" <<'EOF'
FROM busybox:latest
RUN echo one >/one
COPY a.txt /a.txt
RUN cat /a.txt >/a.copy
COPY b.txt /b.txt
RUN echo done >/done
EOF
echo a >"$WORK/ctx/a.txt"; echo b >"$WORK/ctx/b.txt"
sbuild "$A" -t ctx --cache-to "type=registry,ref=$REG/cache/ctx:1" "$WORK/ctx"
echo b2 >"$WORK/ctx/b.txt"
C=$(fresh C)
sbuild "$C" -t ctx --cache-from "type=registry,ref=$REG/cache/ctx:1" "$WORK/ctx"
[ "$(count ' CACHED$')" = 3 ] || { cat "$WORK/log" >&2; fail "the three steps before COPY b.txt should be CACHED"; }
[ "$(count ' running: ')" = 2 ] || { cat "$WORK/log" >&2; fail "only COPY b.txt and the RUN after it should run"; }
grep -A1 'COPY b.txt' "$WORK/log" | grep -q ' running: ' || fail "COPY b.txt should run"
rm -rf "$WORK/u"; STRATA_ROOT=$C strata unpack ctx "$WORK/u" >/dev/null || fail "unpack ctx"
assert_eq "$(cat "$WORK/u/b.txt")" "b2" "the changed file"
assert_eq "$(cat "$WORK/u/a.copy")" "a" "the cached RUN's result"

# --- 3. mode=min exports the final stage's steps, mode=max every stage's
sbuild "$A" -t multi --cache-to "type=registry,ref=$REG/cache/multi:min" \
  --cache-to "type=registry,ref=$REG/cache/multi:max,mode=max" "$EX/multistage"
D=$(fresh D)
sbuild "$D" -t multi --cache-from "type=registry,ref=$REG/cache/multi:min" "$EX/multistage"
# The two build stages' RUNs and WORKDIR run again; the final COPYs then hit.
[ "$(count ' running: ')" = 3 ] || { cat "$WORK/log" >&2; fail "mode=min: the build stages should run"; }
E=$(fresh E)
sbuild "$E" -t multi --cache-from "type=registry,ref=$REG/cache/multi:max" "$EX/multistage"
[ "$(count ' running: ')" = 0 ] || { cat "$WORK/log" >&2; fail "mode=max: nothing should run"; }
assert_eq "$(iid "$E" multi)" "$(iid "$A" multi)" "mode=max image ID"

# --- 4. cache errors: --cache-from warns, --cache-to fails after the build
F=$(fresh F)
sbuild "$F" -t ctx --cache-from "type=registry,ref=$REG/cache/none:1" "$WORK/ctx"
assert_contains "$(cat "$WORK/log")" "WARNING: --cache-from $REG/cache/none:1"
sbuild "$F" -t ctx2 --cache-from "$REG/cache/ctx:1" --cache-to "type=registry,ref=127.0.0.1:1/c:1,ignore-error=true" "$WORK/ctx"
assert_contains "$(cat "$WORK/log")" "WARNING: --cache-to 127.0.0.1:1/c:1"
out=$(STRATA_ROOT=$F strata build --progress plain -t ctx3 --cache-to "type=registry,ref=127.0.0.1:1/c:1" "$WORK/ctx" 2>&1) &&
  fail "a failing --cache-to should fail the build command"
assert_contains "$out" "--cache-to 127.0.0.1:1/c:1: exporting the build cache failed"
STRATA_ROOT=$F strata inspect ctx3 >/dev/null || fail "the image is named even when the cache export fails"
expect_fail "only type=registry" env STRATA_ROOT="$F" "$STRATA" build --cache-to type=local,dest=/tmp/x "$WORK/ctx"
expect_fail "mode must be min or max" env STRATA_ROOT="$F" "$STRATA" build --cache-to "type=registry,ref=$REG/c,mode=all" "$WORK/ctx"
# An image pushed as a cache is refused with a clear message.
STRATA_ROOT=$A strata push -q ctx "$REG/notcache:1" >/dev/null || fail "push ctx"
sbuild "$F" -t ctx --cache-from "type=registry,ref=$REG/notcache:1" "$WORK/ctx"
assert_contains "$(cat "$WORK/log")" "is not a strata build cache"

# --- 5. FROM pulls from the registry: --pull missing (default), never, always
STRATA_ROOT=$A strata push -q busybox "$REG/base:1" >/dev/null || fail "push busybox"
mkdir -p "$WORK/pctx"
printf 'FROM %s/base:1\nRUN ls / >/list\n' "$REG" >"$WORK/pctx/Dockerfile"
G=$WORK/G # a store with nothing in it
sbuild "$G" -t pulled "$WORK/pctx"
assert_contains "$(cat "$WORK/log")" "pulling $REG/base:1"
STRATA_ROOT=$G strata inspect "$REG/base:1" >/dev/null || fail "the FROM image should be in the store"
expect_fail "image $REG/base:1 is not in the store, and --pull never" \
  env STRATA_ROOT="$WORK/H" "$STRATA" build --pull never "$WORK/pctx"
[ ! -e "$WORK/H/index.json" ] || ! grep -q "base" "$WORK/H/index.json" || fail "--pull never pulled"
expect_fail "--pull must be always, missing or never" env STRATA_ROOT="$G" "$STRATA" build --pull sometimes "$WORK/pctx"
# The tag moves to another image: missing keeps the store's, always pulls it.
new=$(STRATA_ROOT=$A strata push -q ex/basics "$REG/base:1") || fail "push basics as base:1"
sbuild "$G" -t pulled "$WORK/pctx"
[ "$(count 'pulling ')" = 0 ] || fail "--pull missing pulled an image the store has"
grep -q ' CACHED$' "$WORK/log" || fail "--pull missing: the old base should still hit the cache"
sbuild "$G" -t pulled --pull always "$WORK/pctx"
assert_contains "$(cat "$WORK/log")" "pulled $REG/base:1 $new"
grep -q ' running: ' "$WORK/log" || fail "--pull always: the RUN on the new base should run"
rm -rf "$WORK/u"; STRATA_ROOT=$G strata unpack pulled "$WORK/u" >/dev/null || fail "unpack pulled"
grep -qx app "$WORK/u/list" || fail "--pull always: the build should be on the new base"
echo ok
