"""Fine-tune a cross-encoder reranker on the club's corpus and queries.

Example (offline, CPU):

    python fine_tune_reranker.py --base_model bundled-minilm --max_steps 20

Everything lands in outputs/reranker-finetuned-YYYYMMDD-HHMMSS/ (or --output_dir); `training_info.json`
is written last and marks the run as finished for `main.py`. `python fine_tune_reranker.py --help` lists
every flag; the flags are `reranker_kit.commands.reranker_flags`, the job `reranker_kit.training.job`.
"""

from reranker_kit.commands.common import run_cli
from reranker_kit.commands.train_reranker import main

if __name__ == "__main__":
    run_cli(main)
