#!/usr/bin/env bash
# 5-fold cross-validation of the training recipes on the sample data with the bundled model (CPU).
# Usage: bash bench/quality_cv.sh [WORKDIR]   -- each recipe writes WORKDIR/<recipe>/reranker-cv-*/cv_results.json
# The shared settings are scaled for 2 CPU cores (max_seq_length 128, 2 epochs, 8 pairs a step); QUALITY.md reports them.
# RECIPES="bce listwise" bash bench/quality_cv.sh picks recipes.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
workdir="${1:-/tmp/quality}"
mkdir -p "$workdir"
common=(--corpus_csv "$repo/CLB_PROPTIT.csv" --train_xlsx "$repo/train_data_proptit.xlsx" --base_model bundled-minilm
        --cv_folds 5 --max_seq_length 128 --epochs 2 --lr 5e-5 --gradient_accumulation_steps 1 --dev_top_n 20
        --eval_batch_size 64 --logging_steps 20
        # Off unless a recipe turns it on, so the recipes mean the same whatever the script's defaults.
        --pseudo_queries_per_document 0)
declare -A recipes=(
  [bce]="--loss bce --batch_size 8 --no-augment_with_answers"
  [listwise]="--loss listwise --batch_size 2 --no-augment_with_answers"
  [bce_aug]="--loss bce --batch_size 8 --augment_with_answers"
  [listwise_aug]="--loss listwise --batch_size 2 --augment_with_answers"
  # A longer, hotter schedule: later flags override the shared ones.
  [bce_long]="--loss bce --batch_size 8 --epochs 5 --lr 1e-4 --no-augment_with_answers"
  # The answers plus the first four sentences of every document as extra training queries.
  [bce_aug_psg]="--loss bce --batch_size 8 --augment_with_answers --pseudo_queries_per_document 4"
  [listwise_aug_psg]="--loss listwise --batch_size 2 --augment_with_answers --pseudo_queries_per_document 4"
  # The default recipe (bce_aug_psg) on top of each first stage: it mines the negatives, picks each fold's
  # dev candidates and the fusion weight. Expansion uses each fold's training side only.
  [tfidf_aug_psg]="--loss bce --batch_size 8 --augment_with_answers --pseudo_queries_per_document 4 --hard_neg_method tfidf"
  [dense_aug_psg]="--loss bce --batch_size 8 --augment_with_answers --pseudo_queries_per_document 4 --hard_neg_method dense --embedding_model bundled-minilm"
  [hybrid_aug_psg]="--loss bce --batch_size 8 --augment_with_answers --pseudo_queries_per_document 4 --hard_neg_method hybrid --embedding_model bundled-minilm"
  [bm25x_aug_psg]="--loss bce --batch_size 8 --augment_with_answers --pseudo_queries_per_document 4 --hard_neg_method bm25 --expand_documents"
  [hybridx_aug_psg]="--loss bce --batch_size 8 --augment_with_answers --pseudo_queries_per_document 4 --hard_neg_method hybrid --embedding_model bundled-minilm --expand_documents"
)
for name in ${RECIPES:-bce listwise bce_aug listwise_aug}; do
  echo "=== $name: ${recipes[$name]}"
  # shellcheck disable=SC2086
  ( time python "$repo/fine_tune_reranker.py" "${common[@]}" ${recipes[$name]} --runs_root "$workdir/$name" ) \
    > "$workdir/$name.log" 2>&1
  tail -n 12 "$workdir/$name.log"
done
