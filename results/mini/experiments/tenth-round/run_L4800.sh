#!/bin/bash
# Tenth round (issue #22): det schedule for a random trunk, chosen on random's training loss (and the
# supervised-vs-random contrast) only. Code: /work/repro at ec025bf (records keep the loss curve).
cd /work/repro
B=.venv/bin/bench
ev() { # tag trunk seed iterations step
  echo "== $(date -u +%H:%M:%S) det $1 $2-s$3 it=$4 step=$5"
  /usr/bin/time -f "%e s wall" $B eval --task det --profile mini --seed $3 --weights /work/exp/$2-s$3/encoder.pt \
    --set iterations=$4 --set "lr_steps=[$5]" --out /work/exp/r10/records-$1 --no-progress 2>&1 | tail -2
}
for job in "$@"; do ev $job; done
echo "== $(date -u +%H:%M:%S) done"
