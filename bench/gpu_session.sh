#!/usr/bin/env bash
# The GPU measurements bench/RESULTS.md could not make without a GPU: XLM-RoBERTa-large shape (random
# weights), training ours vs seed-style, the T4 recipe's peak memory, inference and a step profile. One call,
# about 7 minutes after the machine starts. Figures land in $OUT (or ./bench_gpu_out when OUT is unset).
#
# Before the device call, here in the project root (once):
#   bash ../shared/gpu-wheels.sh && echo /.whl/ >> .git/info/exclude
# Device call: command "bash bench/gpu_session.sh", carry [".whl"], timeout_s 540.
set -uo pipefail
OUT=${OUT:-bench_gpu_out}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site || exit 1
fi
# The package imports from the checkout without an install.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
XL="--device cuda --model xlmr-large-random --max_steps 20"

# 1. Throughput target (ours >= 8x seed-style): seed-style (pad 512, 4 x 8, fp16, checkpointing, eager attention,
#    as the CONTEXT.md anchors) against ours with the fast Ampere+ settings.
python3 bench/bench_training.py $XL --seed_attention eager --bf16 --batch_size 32 --gradient_accumulation_steps 1 \
  --freeze_word_embeddings --json "$OUT/train_fast.json" 2>&1 | tee "$OUT/train_fast.txt"

# 2. The README's T4 low-memory recipe (peak must stay under 14 GiB of a 15 GB T4; fp16, no bf16 on a T4),
#    and the project defaults (fp32, 4 x 8, no checkpointing), ours only: the seed-style figure is in 1.
python3 bench/bench_training.py $XL --paths ours --fp16 --gradient_checkpointing --batch_size 4 \
  --gradient_accumulation_steps 8 --freeze_word_embeddings --json "$OUT/train_t4.json" 2>&1 | tee "$OUT/train_t4.txt"
python3 bench/bench_training.py $XL --paths ours --fp16 --gradient_checkpointing --batch_size 4 \
  --gradient_accumulation_steps 8 --json "$OUT/train_t4_unfrozen.json" 2>&1 | tee "$OUT/train_t4_unfrozen.txt"

# 3. Inference over all 2,000 sample pairs (fp16, batch 32): length-sorted >= 1.3x padded.
python3 bench/bench_inference.py --model xlmr-large-random --device cuda --max_pairs 0 --repeats 3 2>&1 \
  | tee "$OUT/inference.txt"

# 4. The lead: where a batch-32 bf16 step goes with the word embeddings trainable vs frozen, with the fused
#    AdamW reranker_kit/training/run.py uses on a GPU and with the foreach AdamW (the Trainer's adamw_torch).
python3 bench/profile_step.py --device cuda --bf16 --batch_size 32 --json "$OUT/profile_fused.json" 2>&1 \
  | tee "$OUT/profile_fused.txt"
python3 bench/profile_step.py --device cuda --bf16 --batch_size 32 --optimizer foreach \
  --json "$OUT/profile_foreach.json" 2>&1 | tee "$OUT/profile_foreach.txt"
