#!/usr/bin/env bash
# Short libFuzzer run of the Dockerfile frontend (CTest entry fuzz.dockerfile_short).
# Builds tests/fuzz/fuzz_dockerfile with clang in its own build directory, seeds the
# corpus from the BuildKit conformance data, and fuzzes for STRATA_FUZZ_SECONDS
# (default 20). Exits 77 (CTest: Skipped) when clang or libFuzzer is missing.
# Usage: run_fuzz.sh SOURCE_DIR WORK_DIR
set -euo pipefail
src=$1
work=$2
seconds=${STRATA_FUZZ_SECONDS:-20}

clangxx=$(command -v clang++ || true)
clangc=$(command -v clang || true)
if [ -z "$clangxx" ] || [ -z "$clangc" ]; then
  echo "SKIPPED: clang is not installed (apt-get install clang) so libFuzzer is unavailable"
  exit 77
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }\n' > "$probe/p.cpp"
if ! "$clangxx" -fsanitize=fuzzer "$probe/p.cpp" -o "$probe/p" 2>/dev/null; then
  echo "SKIPPED: clang cannot link -fsanitize=fuzzer (libclang-rt / compiler-rt missing)"
  exit 77
fi

mkdir -p "$work"
cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER="$clangc" -DCMAKE_CXX_COMPILER="$clangxx" -DSTRATA_FUZZ=ON >/dev/null
cmake --build "$work/build" --target fuzz_dockerfile -j2 >/dev/null

corpus=$work/corpus
mkdir -p "$corpus" "$work/artifacts"
find "$src/tests/data/buildkit-parser" -name Dockerfile | while read -r f; do
  cp "$f" "$corpus/seed-$(echo "$f" | sha256sum | cut -c1-16)"
done
# One seed per envVarTest / wordsTest input.
i=0
for table in "$src/tests/data/buildkit-shell/envVarTest" "$src/tests/data/buildkit-shell/wordsTest"; do
  while IFS= read -r line; do
    case "$line" in \#*|'') continue ;; esac
    i=$((i + 1))
    printf '%s' "$line" | cut -d'|' -f2 > "$corpus/shell-$i"
  done < "$table"
done

fuzzer=$(find "$work/build" -name fuzz_dockerfile -type f -perm -u+x | head -1)
cd "$work"
"$fuzzer" "$corpus" -dict="$src/tests/fuzz/dockerfile.dict" -max_total_time="$seconds" \
  -timeout=5 -rss_limit_mb=2048 -max_len=70000 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" 2>&1 | tail -25
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo "fuzzing found a problem; see $work/artifacts/" >&2
  exit 1
fi
echo "fuzz run clean: no crash, leak or hang in ${seconds}s"
