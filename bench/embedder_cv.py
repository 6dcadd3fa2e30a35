"""Cross-validates the first stage on the shipped sample: BM25, the base and the fine-tuned encoder, alone and
in the hybrid (its dense weight chosen on the other folds), and prints the table with its spread.

    OMP_NUM_THREADS=2 python bench/embedder_cv.py --runs_root /tmp/embedder-cv

Runs `fine_tune_embedder.py --cv_folds 5` (one training per fold) with the CPU settings bench/QUALITY.md
records; any further flag is passed on (such as --epochs 3, or --base_model BAAI/bge-m3 on a GPU).
"""

import argparse
import logging
import time
from pathlib import Path

from reranker_kit.commands.train_embedder import main as train_embedder_main
from reranker_kit.run_folder import EMBEDDER_CV_PREFIX, run_dirs_newest_first

CPU_SETTINGS = ["--base_model", "bundled-minilm", "--max_seq_length", "128", "--epochs", "1", "--lr", "1e-4",
                "--batch_size", "16", "--pseudo_queries_per_document", "0", "--eval_steps", "1000", "--save_steps",
                "1000", "--logging_steps", "10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs_root", default="/tmp/embedder-cv", help="Where the CV folder is created.")
    parser.add_argument("--folds", type=int, default=5, help="Query folds.")
    known, passed_on = parser.parse_known_args()
    started = time.time()
    train_embedder_main([*CPU_SETTINGS, "--cv_folds", str(known.folds), "--runs_root", known.runs_root, *passed_on])
    cv_dir = run_dirs_newest_first(known.runs_root, EMBEDDER_CV_PREFIX)[0]
    logging.getLogger("bench").info("%d folds in %.0f s; table in %s", known.folds, time.time() - started,
                                    Path(cv_dir) / "cv_results.md")


if __name__ == "__main__":
    main()
