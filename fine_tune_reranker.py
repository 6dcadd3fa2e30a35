"""Fine-tune a cross-encoder reranker on the club's corpus and queries.

Example (offline, CPU):

    python fine_tune_reranker.py --base_model bundled-minilm --max_steps 20

Everything lands in outputs/reranker-finetuned-YYYYMMDD-HHMMSS/ (or --output_dir); `training_info.json`
is written last and marks the run as finished for `main.py`. `python fine_tune_reranker.py --help` lists
every flag; the job itself is `reranker_kit.training.job`.
"""

from reranker_kit.cli import run_cli
from reranker_kit.training.job import main

if __name__ == "__main__":
    run_cli(main)
