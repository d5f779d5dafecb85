#!/usr/bin/env bash
# Fails when a folder includes a folder above it (DESIGN.md's dependency
# direction: cli -> builder -> {runner, layerfs}; layerfs -> snapshot ->
# formats -> util; runner -> util; registry -> snapshot; cli -> containers ->
# {network, runner, layerfs, snapshot}; network -> util; cli -> api -> util:
# api is the HTTP plumbing of `strata serve`, its endpoints are in cli/). builder/dockerfile/ (the parser target)
# may include only util. Usage: check_includes.sh [SOURCE_ROOT]
set -u
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 2

allowed() {
  case "$1" in
    util) echo "util" ;;
    formats) echo "formats util" ;;
    snapshot) echo "snapshot formats util" ;;
    layerfs) echo "layerfs snapshot formats util" ;;
    runner) echo "runner util" ;;
    network) echo "network util" ;;
    registry) echo "registry snapshot formats util" ;;
    containers) echo "containers network runner layerfs snapshot formats util" ;;
    builder/dockerfile) echo "builder/dockerfile util" ;;
    builder) echo "builder builder/dockerfile registry runner layerfs snapshot formats util" ;;
    api) echo "api util" ;;
    cli) echo "cli api containers network builder builder/dockerfile registry runner layerfs snapshot formats util" ;;
  esac
}

bad=0
checked=0
for folder in util formats snapshot layerfs runner network registry containers builder cli; do
  [ -d "$folder" ] || continue
  while IFS= read -r -d '' file; do
    own=$folder
    case "$file" in builder/dockerfile/*) own=builder/dockerfile ;; esac
    ok=$(allowed "$own")
    checked=$((checked + 1))
    while IFS= read -r line; do
      inc=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1/' <<<"${line#*:}")
      target=${inc%%/*}
      case "$inc" in builder/dockerfile/*) target=builder/dockerfile ;; esac
      case " util formats snapshot layerfs runner network registry containers builder builder/dockerfile api cli " in
        *" $target "*) ;;
        *) continue ;;
      esac
      case " $ok " in
        *" $target "*) ;;
        *) echo "$file:${line%%:*}: $own may not include \"$inc\" ($target is not below $own)"; bad=1 ;;
      esac
    done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$file" || true)
  done < <(find "$folder" -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' -o -name '*.c' \) -print0)
done
if [ "$checked" -eq 0 ]; then
  echo "check_includes: no source files found under $root" >&2
  exit 2
fi
if [ "$bad" -ne 0 ]; then
  exit 1
fi
echo "check_includes: $checked files follow the dependency direction"
