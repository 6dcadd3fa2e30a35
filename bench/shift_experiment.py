"""The shift experiment: train and choose fusion on queries unlike those evaluated (bench/QUALITY.md).

Real club data showed it: labelled queries that are hard for BM25 tuned a fusion weight that trusted the
reranker too much on the easier queries users ask later. Here the sample's labelled queries are ordered
by how well the first stage ranks them (reciprocal rank of the first relevant document in BM25's top 20,
hardest first); one side trains the model and chooses its fusion, the other side is the unseen test:

- hard_to_easy: train (with its own 20% dev split) on the hardest 70%, evaluate on the easiest 30%;
- easy_to_hard: train on the easiest 70%, evaluate on the hardest 30%.

    python bench/shift_experiment.py train /tmp/shift --seeds 1 2 3     # one CPU-recipe run per side and seed
    python bench/shift_experiment.py evaluate /tmp/shift                # tables for QUALITY.md

`train` skips runs that already finished, so it can be stopped and started again.
"""

from pathlib import Path

import pandas as pd

from reranker_kit.data.loading import Query, load_corpus, load_queries
from reranker_kit.data.splits import merge_duplicate_queries
from reranker_kit.metrics import mrr_at_k
from reranker_kit.retrieval import LexicalIndex
from reranker_kit.retrieval.candidates import retrieve_candidates
from reranker_kit.run_folder import newest_finished_run
from reranker_kit.testing import CPU_QUICK_START, SAMPLE_CORPUS_CSV, SAMPLE_TRAIN_XLSX

from _common import run_kit_script, stage_arguments

DIRECTIONS = ("hard_to_easy", "easy_to_hard")
TRAIN_SHARE = 0.7
DEPTH = 20
CPU_RECIPE = [*CPU_QUICK_START, "--eval_batch_size", "64", "--logging_steps", "20"]


def hardest_first(corpus: dict[int, str], queries: list[Query]) -> list[Query]:
    """Queries ordered by BM25's reciprocal rank of their first relevant document, lowest first."""
    doc_ids = list(corpus)
    candidates = retrieve_candidates(LexicalIndex([corpus[i] for i in doc_ids]), doc_ids, queries, DEPTH)
    ease = {query.qid: mrr_at_k(candidates.ids[query.qid], query.relevant_ids, DEPTH) for query in queries}
    return sorted(queries, key=lambda query: (ease[query.qid], query.row))


def write_query_file(path: Path, queries: list[Query]) -> Path:
    pd.DataFrame({"Query": [query.text for query in queries],
                  "Ground truth document": [", ".join(map(str, query.relevant_ids)) for query in queries],
                  "Ground truth answer": [query.answer for query in queries],
                  "Difficulty": [query.difficulty for query in queries]}).to_excel(path, index=False)
    return path


def side_files(workdir: Path) -> dict[str, tuple[Path, Path]]:
    """{direction: (training file, evaluation file)}, written once into workdir."""
    corpus = load_corpus(SAMPLE_CORPUS_CSV)
    ordered = hardest_first(corpus, merge_duplicate_queries(load_queries(SAMPLE_TRAIN_XLSX, corpus)))
    large = round(len(ordered) * TRAIN_SHARE)
    small = len(ordered) - large
    return {"hard_to_easy": (write_query_file(workdir / "hard70.xlsx", ordered[:large]),
                             write_query_file(workdir / "easy30.xlsx", ordered[large:])),
            "easy_to_hard": (write_query_file(workdir / "easy70.xlsx", ordered[small:]),
                             write_query_file(workdir / "hard30.xlsx", ordered[:small]))}


def train(workdir: Path, seeds: list[int]) -> None:
    files = side_files(workdir)
    for direction in DIRECTIONS:
        for seed in seeds:
            runs_root = workdir / f"{direction}-seed{seed}"
            if newest_finished_run(runs_root):
                print(f"{runs_root.name}: finished already", flush=True)
                continue
            code = run_kit_script("fine_tune_reranker.py", "--corpus_csv", str(SAMPLE_CORPUS_CSV), "--train_xlsx",
                                  str(files[direction][0]), *CPU_RECIPE, "--seed", str(seed), "--runs_root",
                                  str(runs_root), log=workdir / f"{runs_root.name}.log")
            print(f"{runs_root.name}: exit {code}", flush=True)


def main() -> None:
    args = stage_arguments(__doc__, ("train", "evaluate"))
    if args.stage == "train":
        train(args.workdir, args.seeds)
    else:
        from shift_evaluation import evaluate

        evaluate(args.workdir, side_files(args.workdir), args.seeds)


if __name__ == "__main__":
    main()
