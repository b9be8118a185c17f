#!/bin/bash
# Ninth round (issue #22): three pretraining seeds of supervised and random, committed mini recipes
# (cls 600 it dropout 0, det Fast R-CNN 2400 it, seg 600 it). Code: /work/repro at cae992b.
# Seed s trunk is evaluated with evaluation seed s. Seed-0 cls and det exist (eighth round K1, E2).
cd /work/repro
B=.venv/bin/bench
ev() { # task trunk seed
  echo "== $(date -u +%H:%M:%S) eval $1 $2-s$3"
  /usr/bin/time -f "%e s wall" $B eval --task $1 --profile mini --seed $3 --weights /work/exp/$2-s$3/encoder.pt \
    --out /work/exp/r9/records --no-progress 2>&1 | tail -2
}
for t in supervised random; do ev seg $t 0; done
for s in 1 2; do
  for t in random supervised; do
    echo "== $(date -u +%H:%M:%S) pretrain $t-s$s"
    /usr/bin/time -f "%e s wall" $B pretrain --method $t --profile mini --seed $s --out /work/exp/$t-s$s --overwrite --no-progress 2>&1 | tail -2
  done
  for task in cls det seg; do for t in supervised random; do ev $task $t $s; done; done
done
echo "== $(date -u +%H:%M:%S) done"
