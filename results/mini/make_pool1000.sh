#!/usr/bin/env bash
# Memorisation on the old pool (issue #22): every method that trains, pretrained once (seed 0) on SynthVOC's
# own 1,000-image pool (`data.synth_pool: null`, the pool before the 12,800-image one) with the mini budget,
# so that REPORT.md's "Did pretraining learn?" shows the memorisation measures on both pools. knn is the one
# (cheap) task; these runs are not in the table. ~100-120 min of stage time on the AVX2 machine (one
# pretraining per method, 10-15 min each). An interrupted run continues where it stopped; afterwards
# results/mini/make_table.sh (any command) writes the joined report with these numbers beside the table's.
#
# Usage: results/mini/make_pool1000.sh            DRY_RUN=1 results/mini/make_pool1000.sh (stages, estimates)
set -euo pipefail
cd "$(dirname "$0")/../.."
BENCH=${BENCH:-.venv/bin/bench}
methods=(supervised context_encoder autoencoder rotation jigsaw colorization deepcluster relative_position)
sets=()
for m in "${methods[@]}"; do sets+=(--set "$m.data.synth_pool=null"); done
"$BENCH" reproduce --profile mini --seeds 1 --no-figures --methods "${methods[@]}" --tasks knn "${sets[@]}" \
  --out results/mini/pool-1000 ${DRY_RUN:+--dry-run}
