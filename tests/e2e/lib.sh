# Shared helpers for the end-to-end tests of the strata CLI. Each test runs
# in a private work directory with its own store; on failure the directory
# is kept and named, so it can be inspected.
set -u
STRATA=${STRATA:?STRATA must point at the strata binary}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/strata-e2e.XXXXXX")
export STRATA_ROOT=$WORK/store
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH-}
[ -n "$SOURCE_DATE_EPOCH" ] || unset SOURCE_DATE_EPOCH
_cleanup_hooks=()
on_exit() { _cleanup_hooks+=("$1"); }
_finish() {
  local rc=$?
  for h in "${_cleanup_hooks[@]+"${_cleanup_hooks[@]}"}"; do eval "$h" || true; done
  if [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ]; then
    rm -rf "$WORK"
  else
    echo "work directory kept: $WORK" >&2
  fi
  exit "$rc"
}
trap _finish EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIPPED: $*"; exit 77; }
need() { command -v "$1" >/dev/null 2>&1 || skip "needs $1 (apt-get install ${2:-$1})"; }
strata() { "$STRATA" "$@"; }

# expect_fail "text" cmd...: the command must exit non-zero and print text on stderr.
expect_fail() {
  local want=$1; shift
  local out rc
  out=$("$@" 2>&1 >/dev/null) && fail "expected failure: $*"
  rc=$?
  [[ "$out" == *"$want"* ]] || fail "error of '$*' should mention '$want', got: $out"
  return 0
}
assert_eq() { [ "$1" = "$2" ] || fail "${3:-values differ}: '$1' != '$2'"; }
assert_contains() { [[ "$1" == *"$2"* ]] || fail "${3:-missing text}: '$2' not in '$1'"; }
# A line-per-entry dump of a tree (path type mode owner size hash/target).
tree_dump() {
  (cd "$1" && find . -mindepth 1 -printf '%p %y %m %U:%G %s %l\n' | LC_ALL=C sort |
    while read -r p t m o s l; do
      if [ "$t" = f ]; then h=$(sha256sum "$p" | cut -c1-16); else h=-; fi
      echo "$p $t $m $o $s $h $l"
    done)
}
