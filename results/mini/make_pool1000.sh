#!/usr/bin/env bash
# Memorisation on the old pool (issue #22): every method with a held-out pretext measure, pretrained once
# (seed 0) on SynthVOC's own 1,000-image pool (`data.synth_pool: null`, the pool before the 12,800-image one)
# with the mini budget, so that REPORT.md's "Did pretraining learn?" shows the memorisation measures on both
# pools. knn is the one (cheap) task; these runs are not in the table. DeepCluster is left out: its targets
# (pseudo-labels per pool index) give no held-out measure (training/memorisation.py), so its pretraining here
# would measure nothing. One pretraining per method, as long as the table's (REPORT.md "Parts and stages":
# 7-27 min each in bf16 on an Intel AMX machine, about twice that in fp32). Give methods to run some of them
# now and the others later: each run's records land in results/mini/pool-1000/runs; an interrupted run
# continues where it stopped. Afterwards results/mini/make_table.sh (any command) writes the joined report
# with these numbers beside the table's.
#
# Usage: results/mini/make_pool1000.sh [METHOD ...]     (default: all seven)
#        DRY_RUN=1 results/mini/make_pool1000.sh [METHOD ...]   (stages, estimates)
set -euo pipefail
cd "$(dirname "$0")/../.."
BENCH=${BENCH:-.venv/bin/bench}
methods=("$@")
[ ${#methods[@]} -eq 0 ] && methods=(supervised context_encoder autoencoder colorization relative_position rotation jigsaw)
sets=()
for m in "${methods[@]}"; do sets+=(--set "$m.data.synth_pool=null"); done
"$BENCH" reproduce --profile mini --seeds 1 --no-figures --methods "${methods[@]}" --tasks knn "${sets[@]}" \
  --out results/mini/pool-1000 ${DRY_RUN:+--dry-run}
# Made in two calls (results/mini/EXPERIMENTS.md): `make_pool1000.sh supervised context_encoder autoencoder
# colorization relative_position`, then `make_pool1000.sh rotation jigsaw`; the folder's table and REPORT.md then
# re-made over all its records: `bench table --results results/mini/pool-1000/runs --profile mini --tasks knn
# --out results/mini/pool-1000/table.md` (and table.csv; `--report results/mini/pool-1000/REPORT.md`).
