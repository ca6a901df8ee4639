#!/usr/bin/env bash
# Run every libFuzzer target for a fixed time: what CI calls (bash tests/fuzz/run.sh 20).
#
#   bash tests/fuzz/run.sh SECONDS [OUTDIR]     OUTDIR defaults to build-fuzz/ at the repo root
#
# Builds the targets when needed (build.sh), then runs them one after the other, each on a
# temporary copy of its seed corpus (tests/fuzz/corpus/<target>/, which must not grow) plus the
# inputs of its past bugs (tests/fuzz/crashes/<target>/, read only), with its dictionary.
# Prints per target the executions and executions per second. Exits 1 when any target finds a
# crash, a leak, undefined behaviour, a broken check or a hang (> 5 s); the input is left in
# OUTDIR as <target>-crash-..., <target>-leak-... or <target>-timeout-..., and its log as
# OUTDIR/<target>.log. README.md says how to reproduce one.
set -euo pipefail

if [ $# -lt 1 ] || ! [[ $1 =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: bash tests/fuzz/run.sh SECONDS [OUTDIR]" >&2
  exit 2
fi
seconds=$1
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${2:-$root/build-fuzz}

bash "$here/build.sh" "$out"
out=$(cd "$out" && pwd)

# The targets' temporary files (fuzz_common.c) and the corpus copies live here and go at exit.
work=$(mktemp -d "${TMPDIR:-/tmp}/tpfuzz-run.XXXXXX")
trap 'rm -rf "$work"' EXIT
export TMPDIR=$work

failed=()
for target in config searchspace events; do
  bin=$out/fuzz_$target
  corpus=$work/corpus_$target
  log=$out/fuzz_$target.log
  mkdir -p "$corpus"
  cp "$here/corpus/$target/"* "$corpus/"
  dirs=("$corpus")
  if [ -d "$here/crashes/$target" ] && [ -n "$(ls -A "$here/crashes/$target")" ]; then
    dirs+=("$here/crashes/$target")
  fi
  rm -f "$out/fuzz_$target-"{crash,leak,timeout,oom}-*
  set +e
  "$bin" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 \
    -dict="$here/$target.dict" -artifact_prefix="$out/fuzz_$target-" "${dirs[@]}" \
    </dev/null >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  size=$(find "$corpus" -type f | wc -l)
  artifact=$(find "$out" -maxdepth 1 -name "fuzz_$target-*-*" -type f | head -n 1)
  if [ $rc -ne 0 ] || [ -n "$artifact" ]; then
    echo "fuzz_$target: FAILED (exit $rc) after ${runs:-?} executions"
    # What failed, and the frames of trainperf's code (not libFuzzer's) in the stack.
    grep -E "ERROR:|^SUMMARY|fuzz check failed|^decoding in|^  (one|in two)|flex|#[0-9]+ .*$root/(core|tests)/" \
      "$log" | head -n 25 || true
    echo "  input: ${artifact:-none written}; full log: $log"
    failed+=("$target")
  else
    printf 'fuzz_%-12s %10s executions  %7s exec/s  corpus %d -> %d inputs\n' "$target" \
      "${runs:-?}" "${speed:-?}" "$(find "$here/corpus/$target" -type f | wc -l)" "$size"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (reproduce: $out/fuzz_<target> <input>; see tests/fuzz/README.md)"
  exit 1
fi
echo "fuzz: all targets ran ${seconds} s without a failure"
