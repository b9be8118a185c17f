#!/bin/bash
# After the random table command: supervised det s0, s2 with the committed det recipe (contrast), then the
# README's test command in a fresh clone of main.
while pgrep -f "make_table.sh 2" > /dev/null; do sleep 20; done
echo "== $(date -u +%H:%M:%S) random table command done"
cd /work/repro
for s in 0 2; do
  echo "== $(date -u +%H:%M:%S) det supervised-s$s"
  /usr/bin/time -f "%e s wall" .venv/bin/bench eval --task det --profile mini --seed $s --weights /work/exp/supervised-s$s/encoder.pt \
    --out /work/exp/r10/records-committed --no-progress 2>&1 | tail -1
done
echo "== $(date -u +%H:%M:%S) fresh clone test"
rm -rf /work/fresh && git clone -q /work/main /work/fresh && cd /work/fresh && git log --oneline | head -1 && /usr/bin/time -f "%e s wall" make test > /work/fresh.log 2>&1; tail -3 /work/fresh.log
echo "== $(date -u +%H:%M:%S) done"
