#!/bin/bash
# Tenth round, part 2: det with head_init: data (fc6/fc7 rescaled on training RoIs, as cls and seg do).
# Code: /work/repro at the commit printed in each record.
cd /work/repro
B=.venv/bin/bench
ev() { # tag trunk seed iterations step [more --set]
  local tag=$1 trunk=$2 seed=$3 it=$4 step=$5; shift 5
  echo "== $(date -u +%H:%M:%S) det $tag $trunk-s$seed it=$it step=$step $*"
  /usr/bin/time -f "%e s wall" $B eval --task det --profile mini --seed $seed --weights /work/exp/$trunk-s$seed/encoder.pt \
    --set iterations=$it --set "lr_steps=[$step]" --set head_init=data "$@" --out /work/exp/r10/records-$tag --no-progress 2>&1 | tail -1
  python3 -c "import json,glob,os; r=json.load(open(max(glob.glob('/work/exp/r10/records-$tag/*.json'),key=os.path.getmtime))); print(r['id'], round(100*r['metrics']['map_voc07_11point'],2), round(r['metrics']['train_loss'],3), r['extra']['train_loss_curve'])"
}
while read -r job; do [ -n "$job" ] && ev $job; done < "${1:-/dev/stdin}"
echo "== $(date -u +%H:%M:%S) done"
