#!/usr/bin/env bash
# The one mini table (issue #22): 10 methods x 3 seeds, each seed pretrained, on cls det seg cls-linear knn
# (+ inpaint for the two inpainting rows). Weights are not committed, so each command must run to its end in one
# sitting; each is sized to at most 150 minutes of stage time on the slowest 2-core machine measured (AMD EPYC
# with AVX2 only, fp32 evaluations: per trunk cls ~8, det ~5.5, seg ~10, cls-linear + knn ~1.5 min), about half
# that on a CPU with AVX-512 BF16 or AMX. Check a command's estimate on your machine with --dry-run first.
# An interrupted command continues where it stopped (stage cache in its --out/stages). Then `bench table`
# joins every command's records into results/mini/table.{csv,md} and results/mini/REPORT.md (while some
# commands have not run: the table so far in results/mini/parts/).
# Done so far (records, REPORT and table of each part committed in results/mini/parts/<part>/): 2 (random, at
# git a44b774 on the AVX2 machine, 3,997 s), 1 (supervised, at git d20d28c on the same machine, 1.7 h of stage
# time; its s0 pretraining continued from its checkpoint after an interruption), 4 (context_encoder, at git
# 06e65c7 on an Intel Xeon with AVX-512 but no bf16, fp32, 86 min of stage time in one sitting), 5 (autoencoder,
# same commit and machine, 94 min; its s0 pretraining shared the machine with a test run), 3 (datainit, same
# commit and machine, 66 min; its s0 cls evaluation shared the machine with a test run; continued from its
# stage cache after a machine restart), 6 (rotation seeds 0 and 1, same commit and machine, 95 min, nothing else
# running), 7 (jigsaw seeds 0 and 1, same commit and machine, 80 min, nothing else running; its s0 pretraining
# continued from its checkpoint at step 117), 13 (relative_position seed 2, same commit and machine, 23 min,
# nothing else running: a third of its estimate), 10 (relative_position seeds 0 and 1, at git 631ed24 on an Intel
# Xeon with AMX, so bf16, 33 min; its seed-1 pretraining shared the machine with a test run), 8 (colorization
# seeds 0 and 1, same commit and machine, 31 min), 9 (deepcluster seeds 0 and 1, same commit and machine, 28 min),
# 12 (colorization + deepcluster seed 2, same commit and machine, 38 min beside a test run), 11 (rotation +
# jigsaw seed 2, at git d7433ce on an AMD EPYC with AVX-512 BF16, bf16, 53 min). All 13 have run: the join
# below wrote results/mini/table.{csv,md} and results/mini/REPORT.md.
#
# Usage: results/mini/make_table.sh [COMMAND_NUMBER ...]   (no argument: all, one after the other)
#        DRY_RUN=1 results/mini/make_table.sh [N ...]      (each command's --dry-run: stages, data, estimates)
#        JOIN_ONLY=1 results/mini/make_table.sh             (no command: only the join of the parts' records)
set -euo pipefail
cd "$(dirname "$0")/../.."
BENCH=${BENCH:-.venv/bin/bench}
R=(reproduce --profile mini --seeds 3 --pretrain-per-seed --no-figures)
T=(cls det seg cls-linear knn)
P=results/mini/parts
commands=(
  "--methods supervised --tasks ${T[*]} --out $P/supervised"                                   # ~110 (ran: 102)
  "--methods random --tasks ${T[*]} --out $P/random"                                           # ~75 (ran: 67)
  "--methods datainit --tasks ${T[*]} --out $P/datainit"                                       # ~80 (ran: 66, AVX-512)
  "--methods context_encoder --tasks ${T[*]} inpaint --out $P/context_encoder"                 # ~120 (ran: 86, AVX-512)
  "--methods autoencoder --tasks ${T[*]} inpaint --out $P/autoencoder"                         # ~125 (ran: 94, AVX-512)
  "--methods rotation --only-seeds 0 1 --tasks ${T[*]} --out $P/rotation-s01"                  # ~110 (ran: 95, AVX-512)
  "--methods jigsaw --only-seeds 0 1 --tasks ${T[*]} --out $P/jigsaw-s01"                      # ~115 (ran: 80, AVX-512)
  "--methods colorization --only-seeds 0 1 --tasks ${T[*]} --out $P/colorization-s01"          # ~100 (ran: 31, AMX bf16)
  "--methods deepcluster --only-seeds 0 1 --tasks ${T[*]} --out $P/deepcluster-s01"            # ~100 (ran: 28, AMX bf16)
  "--methods relative_position --only-seeds 0 1 --tasks ${T[*]} --out $P/relative_position-s01" # ~140 (ran: 33, AMX bf16)
  "--methods rotation jigsaw --only-seeds 2 --tasks ${T[*]} --out $P/rotation-jigsaw-s2"       # ~110 (ran: 53, AVX-512 BF16)
  "--methods colorization deepcluster --only-seeds 2 --tasks ${T[*]} --out $P/colorization-deepcluster-s2"  # ~100 (ran: 38, AMX bf16)
  "--methods relative_position --only-seeds 2 --tasks ${T[*]} --out $P/relative_position-s2"   # ~70 (ran: 23, AVX-512)
)
picks=("$@")
[ ${#picks[@]} -eq 0 ] && picks=($(seq 1 ${#commands[@]}))
[ -n "${JOIN_ONLY:-}" ] && picks=()
for i in ${picks[@]+"${picks[@]}"}; do
  # shellcheck disable=SC2086  # the command's words are split on purpose
  "$BENCH" "${R[@]}" ${commands[$((i - 1))]} ${DRY_RUN:+--dry-run}
done
[ -n "${DRY_RUN:-}" ] && exit 0
# The table joins every part's records (its runs/ folder: not its stage cache or its own table's files).
# Until every command has run, the table so far goes to parts/ (table.* and REPORT.md there), beside the
# parts; once all 13 have records, to results/mini/ itself.
results=() done=0
for c in "${commands[@]}"; do
  out=${c##*--out }
  if compgen -G "$out/runs/*.json" > /dev/null; then results+=(--results "$out/runs"); done=$((done + 1)); fi
done
dest=$P
[ "$done" -eq ${#commands[@]} ] && dest=results/mini
echo "make_table: $done of ${#commands[@]} parts have records; the table goes to $dest" >&2
[ "$done" -eq 0 ] && exit 0
for f in table.csv table.md; do
  "$BENCH" table "${results[@]}" --profile mini --tasks "${T[@]}" inpaint --out "$dest/$f"
done
# The memorisation measures on the old 1,000-image pool (results/mini/make_pool1000.sh), where they ran.
old_pool=()
compgen -G "results/mini/pool-1000/runs/*.json" > /dev/null && old_pool=(--evidence-from results/mini/pool-1000/runs)
"$BENCH" table "${results[@]}" --profile mini --tasks "${T[@]}" inpaint --report "$dest/REPORT.md" "${old_pool[@]}"
