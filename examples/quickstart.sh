#!/usr/bin/env bash
# The main job: a short benchmark of two baseline submissions on fmnist_mlp (AdamW and SGD,
# both with warmup + cosine), each timed to the workload's targets, then the result table.
# Results go to a fresh directory under results/ so earlier runs are never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
TP=${TP:-build/trainperf}
OUT=${1:-results/quickstart-$(date -u +%Y%m%d-%H%M%S)}

"$TP" run --workload fmnist_mlp --optimizer adamw --schedule warmup_cosine \
  --hparams learning_rate=0.002,one_minus_beta1=0.1,beta2=0.999,weight_decay=0.01,warmup_factor=0.05 \
  --seed 0 --results "$OUT" || true
"$TP" run --workload fmnist_mlp --optimizer sgd --schedule warmup_cosine \
  --hparams learning_rate=0.1,warmup_factor=0.05 \
  --seed 0 --results "$OUT" || true
echo
"$TP" results "$OUT"
