#!/usr/bin/env bash
# Docker CLI parity without privileges: --format Go templates and tables for
# images, inspect and history; images' REPOSITORY argument and --filter;
# unknown commands and flags; --version; generated completion and man pages.
. "$(dirname "$0")/lib.sh"

strata bootstrap busybox >/dev/null || fail "bootstrap"
SOURCE_DATE_EPOCH=1000000000 strata bootstrap busybox -t old/bb:v1 >/dev/null || fail "bootstrap old"
mkdir -p "$WORK/rootfs" && echo hi >"$WORK/rootfs/hello"
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" . && strata import "$WORK/rootfs.tar" -t new/img:2 >/dev/null ||
  fail "import"
strata tag busybox bb-alias:1 || fail "tag"

# --- images --format
got=$(strata images --format '{{.Repository}}:{{.Tag}}' | sort | tr '\n' ' ')
assert_eq "$got" "bb-alias:1 busybox:latest new/img:2 old/bb:v1 " "images --format raw template"
# table: a header from the field names, through the tabwriter (min width 10, padding 3)
out=$(strata images --format 'table {{.Repository}}\t{{.Tag}}' busybox)
assert_eq "$out" "$(printf 'REPOSITORY   TAG\nbusybox      latest')" "images table template"
# the default table is docker's, newest first (the imported image)
out=$(strata images)
head=$(echo "$out" | head -1)
[[ "$head" =~ ^REPOSITORY\ +TAG\ +IMAGE\ ID\ +CREATED\ +SIZE$ ]] || fail "default header: $head"
echo "$out" | sed -n 2p | grep -qE '^new/img +2 +[0-9a-f]{12} +(Less than a second|[0-9]+ seconds?|About a minute) ago +[0-9.]+[kMG]?B$' ||
  fail "newest first with docker's columns: $out"
echo "$out" | grep -qE '^old/bb +v1 .* (2[0-9]) years ago ' || fail "old image N years ago: $out"
[ "$(strata images --format json busybox | python3 -c 'import json,sys; d=json.loads(sys.stdin.readline()); print(d["Repository"], d["Tag"], len(d["ID"]))')" = "busybox latest 12" ] ||
  fail "images --format json: a JSON object per line"
id=$(strata images -q busybox)
assert_eq "$(strata images --no-trunc -q busybox)" "sha256:$(strata inspect --format '{{slice .Id 7}}' busybox)" "--no-trunc full ID"
[[ "$(strata inspect --format '{{.Id}}' busybox)" == sha256:$id* ]] || fail "-q is the short ID"
strata images --digests | head -1 | grep -q 'DIGEST' || fail "--digests adds the DIGEST column"
expect_fail "can't evaluate field Nope" strata images --format '{{.Nope}}'
expect_fail "template parsing error" strata images --format '{{.ID'

# --- images REPOSITORY[:TAG] and --filter
assert_eq "$(strata images --format '{{.Repository}}' busybox)" "busybox" "REPOSITORY argument"
assert_eq "$(strata images --format '{{.Tag}}' old/bb:v1)" "v1" "REPOSITORY:TAG argument"
assert_eq "$(strata images --format '{{.Repository}}' 'old/*')" "old/bb" "pattern argument"
assert_eq "$(strata images --format '{{.Repository}}' --filter 'reference=bb*')" "bb-alias" "reference filter"
assert_eq "$(strata images --format '{{.Repository}}' --filter 'before=busybox')" "old/bb" "before filter"
assert_eq "$(strata images --format '{{.Repository}}' --filter 'since=busybox')" "new/img" "since filter"
assert_eq "$(strata images -q --filter dangling=true)" "" "no dangling images"
assert_eq "$(strata images -q --filter dangling=false | wc -l)" "4" "dangling=false lists the named"
assert_eq "$(strata images -q --filter label=no.such.label)" "" "label filter"
expect_fail "invalid filter 'colour'" strata images --filter colour=red
expect_fail "invalid filter 'dangling=maybe'" strata images --filter dangling=maybe

# --- inspect --format
assert_eq "$(strata inspect --format '{{.Config.Cmd}}' busybox)" "[sh]" "inspect field"
assert_eq "$(strata inspect --format '{{json .Config.Cmd}}' busybox)" '["sh"]' "inspect json"
assert_eq "$(strata inspect --format '{{index .RepoTags 0}} {{.Os}}/{{.Architecture}}' old/bb:v1)" \
  "old/bb:v1 linux/$(strata inspect --format '{{.Architecture}}' busybox)" "inspect index"
assert_eq "$(strata inspect --format '{{len .RootFS.Layers}} {{.RootFS.Type}}' busybox)" "1 layers" "inspect RootFS"
assert_eq "$(strata inspect --format '{{range .Config.Env}}{{.}};{{end}}' busybox | grep -c PATH=)" "1" "inspect range"
assert_eq "$(strata inspect --format '{{.Created}}' old/bb:v1)" "2001-09-09T01:46:40Z" "inspect Created"
assert_eq "$(strata inspect --format '{{.Id}}' busybox old/bb:v1 | wc -l)" "2" "a line per image"
expect_fail 'function "nosuch" not defined' strata inspect --format '{{nosuch .Id}}' busybox

# --- history --format
out=$(strata history --format 'table {{.ID}}\t{{.CreatedBy}}' old/bb:v1)
assert_eq "$(echo "$out" | head -1)" "IMAGE          CREATED BY" "history table header"
echo "$out" | sed -n 2p | grep -qE "^[0-9a-f]{12} +strata bootstrap busybox" || fail "history row: $out"
[ "$(strata history --format '{{.CreatedSince}}' old/bb:v1 | head -1)" != "" ] || fail "history CreatedSince"
strata history --format '{{.Size}}' busybox | grep -qE '^[0-9.]+(B|kB|MB)$' || fail "history Size human"

# --- unknown commands and flags, --version
expect_fail "'biuld' is not a strata command" strata biuld
out=$(strata biuld 2>&1); assert_contains "$out" "Did you mean this?" ; assert_contains "$out" "	build"
out=$(strata images --digest 2>&1) && fail "unknown flag accepted"
assert_contains "$out" "unknown flag: --digest" "unknown flag named"
assert_contains "$out" "--digests" "flag suggestion"
out=$(strata run --rm --bogus busybox true 2>&1) && fail "run --bogus accepted"
assert_contains "$out" "unknown flag: --bogus"
[[ "$out" != *"no such image"* ]] || fail "run --bogus must not look up an image named --bogus: $out"
assert_eq "$(strata --version)" "$(strata version)" "--version"
[[ "$(strata --version)" =~ ^strata\ version\ [0-9] ]] || fail "version text"

# --- completion and man pages from the command definitions
strata completion bash >"$WORK/c.bash" || fail "completion bash"
bash -n "$WORK/c.bash" || fail "bash completion syntax"
got=$(bash -c '. "$1"; COMP_WORDS=(strata boot); COMP_CWORD=1; _strata; echo "${COMPREPLY[*]}"' _ "$WORK/c.bash")
assert_eq "$got" "bootstrap" "bash completes commands"
got=$(bash -c '. "$1"; COMP_WORDS=(strata bui); COMP_CWORD=1; _strata; echo "${COMPREPLY[*]}"' _ "$WORK/c.bash")
assert_eq "$got" "build builder" "bash lists every command a prefix fits"
got=$(bash -c '. "$1"; COMP_WORDS=(strata --root /x images --dig); COMP_CWORD=4; _strata; echo "${COMPREPLY[*]}"' _ "$WORK/c.bash")
assert_eq "$got" "--digests" "bash completes a command's flags"
got=$(bash -c '. "$1"; COMP_WORDS=(strata layer cr); COMP_CWORD=2; _strata; echo "${COMPREPLY[*]}"' _ "$WORK/c.bash")
assert_eq "$got" "create" "bash completes nested commands"
strata completion zsh | grep -q '^#compdef strata' || fail "zsh completion"
if command -v zsh >/dev/null; then strata completion zsh | zsh -n || fail "zsh completion syntax"; fi
strata completion fish | grep -q "complete -c strata .* -l digests" || fail "fish completion"
if command -v fish >/dev/null; then strata completion fish | fish -n || fail "fish completion syntax"; fi
strata man "$WORK/man" || fail "man"
[ -f "$WORK/man/strata.1" ] && [ -f "$WORK/man/strata-build.1" ] && [ -f "$WORK/man/strata-layer-create.1" ] ||
  fail "a man page per command: $(ls "$WORK/man")"
grep -q '^\.SH OPTIONS' "$WORK/man/strata-images.1" && grep -q 'digests' "$WORK/man/strata-images.1" ||
  fail "man page lists the options"
if command -v groff >/dev/null; then
  groff -man -Tutf8 -ww -z "$WORK/man/strata-build.1" 2>"$WORK/groff.err" || fail "groff"
  [ ! -s "$WORK/groff.err" ] || fail "groff warnings: $(cat "$WORK/groff.err")"
fi
echo "cli_format: ok"
