"""Fine-tune the first stage: a sentence-transformers embedding model on the club's corpus and queries.

Example (offline, CPU):

    python fine_tune_embedder.py --base_model bundled-minilm --max_seq_length 128 --epochs 2

Everything lands in outputs/embedder-finetuned-YYYYMMDD-HHMMSS/ (or --output_dir): a sentence-transformers
model folder, dev_metrics.json, hybrid.json, the model card and curves; `training_info.json` is written last
and marks the run as finished for `main.py --retriever dense|hybrid`. The command line is
`reranker_kit.commands.train_embedder`, the job `reranker_kit.embedder.job`.
"""

from reranker_kit.commands.common import run_cli
from reranker_kit.commands.train_embedder import main

if __name__ == "__main__":
    run_cli(main)
