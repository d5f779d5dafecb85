#!/usr/bin/env bash
# Every cache miss says which input changed, compared with the last build of
# the same step: the files a COPY reads (which, and how many), a build arg
# (secret-like ones redacted, on screen and on disk), the instruction text,
# an ENV before the step, the base image, and the earlier step that missed;
# --explain-cache prints a table of every step.
# Needs root and overlayfs (the ctest entry runs behind the overlay probe).
. "$(dirname "$0")/lib.sh"
[ -x /bin/busybox ] || skip "needs /bin/busybox (apt-get install busybox-static)"
strata bootstrap busybox >/dev/null || fail "bootstrap busybox"
strata tag busybox base:1 || fail "tag"

C=$WORK/ctx
mkdir -p "$C/src"
echo one >"$C/src/a.txt"
echo two >"$C/src/b.txt"
write_df() { # write_df MODE_VALUE REDIRECT
  cat >"$C/Dockerfile" <<DF
FROM base:1
ARG GREETING=hello
ARG API_TOKEN=default-token
COPY src/ /src/
RUN echo \$GREETING > /g
RUN echo \$API_TOKEN | wc -c > /t
ENV MODE=$1
RUN echo \$MODE $2 /m
DF
}
write_df one ">"
build() { strata build --progress plain -t explain "$@" "$C" >"$WORK/log" 2>&1 || { cat "$WORK/log" >&2; fail "build $*"; }; }
# reason STEP-TEXT: the "running:" line of the step whose name contains STEP-TEXT
reason() {
  local id
  id=$(grep -F -- "$1" "$WORK/log" | grep -o '^#[0-9]*' | head -1)
  [ -n "$id" ] || { cat "$WORK/log" >&2; fail "no step '$1' in the log"; }
  grep "^$id running: " "$WORK/log" | sed "s/^$id running: //"
}
cached() { local id; id=$(grep -F -- "$1" "$WORK/log" | grep -o '^#[0-9]*' | head -1); grep -q "^$id CACHED$" "$WORK/log"; }

build
assert_contains "$(reason 'COPY src/ /src/')" "no earlier build of this step" "first build"
build
assert_contains "$(cat "$WORK/log")" "(0 steps run" "no-change rebuild"

# Files: which ones, and how many.
echo ONE >"$C/src/a.txt"
build
assert_eq "$(reason 'COPY src/ /src/')" "1 file changed: modified src/a.txt" "a modified file is named"
assert_contains "$(reason 'RUN echo $GREETING')" "an earlier step missed: [4/8] COPY src/ /src/" "later steps name the step that missed"
echo new >"$C/src/new.txt"
rm "$C/src/b.txt"
build
assert_eq "$(reason 'COPY src/ /src/')" "2 files changed: removed src/b.txt, added src/new.txt" "added and removed files"

# A build arg (strata's keys chain the ARG values in scope, so the first
# step after the ARG misses and names it).
build --build-arg GREETING=bye
assert_eq "$(reason 'COPY src/ /src/')" 'build arg GREETING changed: was "hello", now "bye"' "a build arg change"
# A secret-like build arg is redacted, on screen and on disk.
build --build-arg GREETING=bye --build-arg API_TOKEN=tok3nValueTwo
assert_eq "$(reason 'COPY src/ /src/')" "build arg API_TOKEN changed: was <redacted>, now <redacted>" "secrets are redacted"
grep -q tok3nValue "$WORK/log" && fail "a secret value is in the build output"
grep -rq tok3nValue "$STRATA_ROOT/cache/explain" && fail "a secret value is stored with the step inputs"

# The instruction text.
write_df one ">>"
build --build-arg GREETING=bye --build-arg API_TOKEN=tok3nValueTwo
assert_eq "$(reason 'RUN echo $MODE')" 'the instruction changed: was `/bin/sh -c echo $MODE > /m`, now `/bin/sh -c echo $MODE >> /m`' \
  "an edited instruction shows the old and new text"
# An ENV before the step.
write_df two ">>"
build --build-arg GREETING=bye --build-arg API_TOKEN=tok3nValueTwo
assert_eq "$(reason 'RUN echo $MODE')" 'an earlier instruction changed: was `ENV MODE="one"`, now `ENV MODE="two"`' \
  "a changed ENV before the step"

# The base image: base:1 now names another image.
printf 'FROM busybox\nRUN echo v2 > /v2\n' >"$WORK/Dockerfile.base"
strata build -q -t base:1 -f "$WORK/Dockerfile.base" "$WORK" >/dev/null 2>&1 || fail "building the new base"
build --build-arg GREETING=bye --build-arg API_TOKEN=tok3nValueTwo
r=$(reason 'COPY src/ /src/')
assert_contains "$r" "the base image changed: was base:1 sha256:" "a new base image"
assert_contains "$(reason 'RUN echo $GREETING')" "an earlier step missed: [4/8] COPY src/ /src/" "after a base change"

# --explain-cache: a table of every step.
write_df two "| tee"
strata build --explain-cache -q --build-arg GREETING=bye --build-arg API_TOKEN=tok3nValueTwo -t explain "$C" \
  >/dev/null 2>"$WORK/table" || { cat "$WORK/table"; fail "--explain-cache"; }
t=$(cat "$WORK/table")
assert_contains "$t" "STEP" "table header"
grep -q '\[4/8\] COPY src/ /src/ *CACHED' "$WORK/table" || { echo "$t" >&2; fail "the table shows the cached COPY"; }
grep -q '\[8/8\] RUN echo \$MODE | tee /m *miss *the instruction changed: was `/bin/sh -c echo \$MODE >> /m`' "$WORK/table" ||
  { echo "$t" >&2; fail "the table shows the miss and its reason"; }
echo "build_explain: all checks passed"
