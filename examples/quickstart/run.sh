#!/usr/bin/env bash
# The main job: the short sweep of examples/quickstart/sweep.cfg (AdamW and SGD on fmnist_mlp
# at its calibrated targets and budget), scored as AlgoPerf scores, with the table printed, the performance
# profile plotted and the HTML report written. Results go to a fresh directory under results/
# so earlier runs are never touched; run it again with that directory to resume it.
set -euo pipefail
cd "$(dirname "$0")/../.."
TP=${TP:-build/trainperf}
OUT=${1:-results/quickstart-$(date -u +%Y%m%d-%H%M%S)}

"$TP" sweep examples/quickstart/sweep.cfg --results "$OUT"
echo
"$TP" score "$OUT"
"$TP" report "$OUT" -o "$OUT/report.html"
