#!/usr/bin/env bash
# Build the libFuzzer targets with clang (the project itself builds with gcc, which has no
# libFuzzer): each target is compiled in one clang call from its harness and the core sources
# it tests, with AddressSanitizer (leaks included) and UndefinedBehaviorSanitizer, plus
# gen_event_seeds, which writes the events seed corpus.
#
#   bash tests/fuzz/build.sh [OUTDIR]     OUTDIR defaults to build-fuzz/ at the repository root
#
# A target is rebuilt only when one of its inputs (its sources, the headers of core/, sdk/ and
# tests/fuzz/, this script) is newer than it. Environment: CC (default clang).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/build-fuzz}
cc=${CC:-clang}
mkdir -p "$out"

if ! command -v "$cc" >/dev/null; then
  echo "fuzz build: $cc not found; install clang and libclang-rt-14-dev" >&2
  exit 1
fi
deps_cflags=$(pkg-config --cflags libconfig jansson)
deps_libs=$(pkg-config --libs libconfig jansson)

# The project's warnings (CMakeLists.txt TP_WARNINGS, without gcc-only ones and -Werror: a clang
# warning in core/ is worth reading but must not stop the fuzzing).
warnings=(-Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter)
cflags=(-std=c11 -g -O1 -fno-omit-frame-pointer "${warnings[@]}" -I"$root" -I"$root/sdk/include")
sanitize=("-fsanitize=fuzzer,address,undefined" -fno-sanitize-recover=undefined)

headers=("$root"/core/*.h "$root"/core/nn/*.h "$root"/sdk/include/trainperf/*.h "$here"/*.h
  "$here/build.sh")

# build NAME EXTRA_FLAGS... -- SOURCES... (sources relative to the repository root)
build() {
  local name=$1
  shift
  local flags=()
  while [ "$1" != "--" ]; do
    flags+=("$1")
    shift
  done
  shift
  local srcs=()
  for s in "$@"; do srcs+=("$root/$s"); done
  local bin="$out/$name"
  if [ -x "$bin" ]; then
    local stale=0
    for f in "${srcs[@]}" "${headers[@]}"; do
      if [ "$f" -nt "$bin" ]; then
        stale=1
        break
      fi
    done
    [ $stale -eq 0 ] && return 0
  fi
  echo "fuzz build: $name"
  # shellcheck disable=SC2086 # pkg-config output is a list of flags
  "$cc" "${cflags[@]}" "${flags[@]}" $deps_cflags -o "$bin" "${srcs[@]}" $deps_libs -lm
}

build fuzz_config "${sanitize[@]}" -- \
  tests/fuzz/fuzz_config.c tests/fuzz/fuzz_common.c core/config.c core/error.c
build fuzz_searchspace "${sanitize[@]}" -- \
  tests/fuzz/fuzz_searchspace.c tests/fuzz/fuzz_common.c core/searchspace.c core/mt19937.c \
  core/config.c core/error.c
build fuzz_events "${sanitize[@]}" -- \
  tests/fuzz/fuzz_events.c tests/fuzz/fuzz_common.c core/events.c
build gen_event_seeds "-fsanitize=address,undefined" -- \
  tests/fuzz/gen_event_seeds.c core/events.c
