"""Benchmark retrieve-then-rerank with the club's metrics at k = 3, 5, 7.

Compares, per query file and per difficulty: the first stage alone (BM25 by default), the pretrained
reranker the fine-tuned model started from (when it can be loaded), the fine-tuned reranker (the newest
finished outputs/reranker-finetuned-* unless --reranker says otherwise), and the fine-tuned reranker
fused with the first stage. Prints tables and writes CSV, JSON and a chart under outputs/.

    python main.py
    python main.py --reranker outputs/reranker-finetuned-20261127-101500 --retriever tfidf
"""

import argparse
import json
import logging
from pathlib import Path

import pandas as pd

from data_loading import load_corpus, load_queries
from errors import KitError, ModelLoadError, run_cli
from metrics import evaluate_rankings
from model_loading import BUNDLED_MODEL_ALIAS, resolve_model_name
from pipeline import fused_scores, rank, rerank_scores, retrieve_candidates
from retrieval import RETRIEVER_METHODS, LexicalIndex
from run_dirs import (COMPLETION_MARKER, FUSION_FILE, REPORT_PREFIX, create_run_dir, is_complete, run_dirs_newest_first,
                      write_json_atomic)

logger = logging.getLogger("main")
DEFAULT_EVAL_FILES = ("train_data_proptit.xlsx", "test_data_proptit.xlsx")
TABLE_METRICS = ("hit", "recall", "precision", "f1", "map", "mrr", "ndcg", "context_precision", "context_recall")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--corpus_csv", type=str, default="CLB_PROPTIT.csv", help="Corpus CSV (STT, Văn bản).")
    parser.add_argument("--eval_xlsx", type=str, action="append", default=None,
                        help="Query file to evaluate; repeat for several. Default: train_data_proptit.xlsx, and "
                             "test_data_proptit.xlsx when present.")
    parser.add_argument("--reranker", type=str, default="auto",
                        help="Fine-tuned model folder, 'auto' (newest finished run under --runs_root) or 'none'.")
    parser.add_argument("--pretrained_reranker", type=str, default="auto",
                        help="Reranker to compare before fine-tuning: 'auto' (the fine-tuned run's base model), "
                             f"a Hub id or folder, '{BUNDLED_MODEL_ALIAS}', or 'none'.")
    parser.add_argument("--retriever", choices=RETRIEVER_METHODS, default="bm25", help="First-stage retriever.")
    parser.add_argument("--top_n", type=int, default=20, help="First-stage candidates reranked per query.")
    parser.add_argument("--k", type=int, nargs="+", default=[3, 5, 7], help="Cut-offs to report.")
    parser.add_argument("--fusion_weight", type=str, default="auto",
                        help="Weight of the reranker when fused with the first stage (0..1): 'auto' uses the weight "
                             "the training run chose on its dev queries; 'none' skips the fused row.")
    parser.add_argument("--batch_size", type=int, default=32, help="Pairs per reranker forward pass.")
    parser.add_argument("--max_length", type=int, default=512, help="Token budget of a (query, document) pair.")
    parser.add_argument("--runs_root", type=str, default="outputs", help="Where fine-tuned runs are looked for.")
    parser.add_argument("--report_dir", type=str, default=None,
                        help="Where tables and the chart go; default: <runs_root>/eval-YYYYMMDD-HHMMSS.")
    parser.add_argument("--output_json", type=str, default=None,
                        help="Also write the JSON report here (default: metrics.json in --report_dir).")
    return parser


def validate_args(args, parser) -> None:
    if args.top_n < 1 or args.batch_size < 1 or args.max_length < 16:
        parser.error("--top_n and --batch_size must be at least 1 and --max_length at least 16")
    if any(k < 1 for k in args.k):
        parser.error(f"--k values must be at least 1, got {args.k}")
    if args.fusion_weight not in ("auto", "none"):
        try:
            weight = float(args.fusion_weight)
        except ValueError:
            weight = -1.0
        if not 0 <= weight <= 1:
            parser.error(f"--fusion_weight must be 'auto', 'none' or a number in [0, 1], got {args.fusion_weight!r}")


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    validate_args(args, parser)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        level=logging.INFO, force=True)

    # Data: every file validated before any model is loaded.
    corpus = load_corpus(args.corpus_csv)
    eval_files = args.eval_xlsx or [name for name in DEFAULT_EVAL_FILES if name == DEFAULT_EVAL_FILES[0] or Path(name).is_file()]
    datasets = {Path(path).stem: load_queries(path, corpus) for path in eval_files}

    # First stage: one index over the corpus, all queries of a file scored together.
    doc_ids = list(corpus)
    index = LexicalIndex([corpus[doc_id] for doc_id in doc_ids], method=args.retriever)
    candidates = {name: retrieve_candidates(index, doc_ids, queries, args.top_n) for name, queries in datasets.items()}

    # Rerankers to compare.
    fine_tuned_path = find_fine_tuned(args)
    pretrained_name = pretrained_reranker_name(args, fine_tuned_path)
    fusion_weight = resolve_fusion_weight(args, fine_tuned_path)

    rows = []
    for name, queries in datasets.items():
        rows += ranker_rows("first_stage", name, queries, rank(candidates[name].first_stage_scores, candidates[name]),
                            corpus, args.k)
    for label, model_name in (("pretrained", pretrained_name), ("fine_tuned", fine_tuned_path)):
        if model_name is None:
            continue
        reranker = load_reranker(model_name, args, required=label == "fine_tuned")
        if reranker is None:
            continue
        for name, queries in datasets.items():
            scores = rerank_scores(reranker.compute_score, queries, candidates[name], corpus)
            rows += ranker_rows(label, name, queries, rank(scores, candidates[name]), corpus, args.k)
            if label == "fine_tuned" and fusion_weight is not None:
                fused = fused_scores(candidates[name], scores, fusion_weight)
                rows += ranker_rows(f"fused_w{fusion_weight:.1f}", name, queries, rank(fused, candidates[name]),
                                    corpus, args.k)
        del reranker

    # Report: tables on screen, CSV/JSON/PNG on disk.
    report_dir = Path(args.report_dir) if args.report_dir else create_run_dir(args.runs_root, prefix=REPORT_PREFIX)
    report = {"corpus_csv": args.corpus_csv, "retriever": args.retriever, "top_n": args.top_n, "k": args.k,
              "fine_tuned_reranker": str(fine_tuned_path) if fine_tuned_path else None,
              "pretrained_reranker": pretrained_name, "fusion_weight": fusion_weight,
              "runs": [row for row in rows if row["difficulty"] is None],
              "by_difficulty": [row for row in rows if row["difficulty"] is not None]}
    print_tables(report["runs"], args.k)
    print_difficulty_tables(report["by_difficulty"], args.k)
    write_report(report, report_dir, Path(args.output_json) if args.output_json else None, args.k)


def find_fine_tuned(args) -> Path | None:
    if args.reranker == "none":
        return None
    if args.reranker != "auto":
        resolve_model_name(args.reranker)  # A missing folder fails now, before any model is loaded.
        path = Path(args.reranker)
        if path.is_dir() and path.name.startswith("reranker-finetuned-") and not is_complete(path):
            raise KitError(f"--reranker {path} is an unfinished run (no {COMPLETION_MARKER}); pick a finished run "
                           "or one of its checkpoint-N folders")
        return path
    for run_dir in run_dirs_newest_first(args.runs_root):
        if is_complete(run_dir):
            logger.info("fine-tuned reranker: %s (newest finished run under %s)", run_dir, args.runs_root)
            return run_dir
        logger.info("skipping %s: unfinished or crashed run (no %s)", run_dir, COMPLETION_MARKER)
    logger.warning("no finished run under %s: reporting the first stage%s only. Fine-tune first with "
                   "fine_tune_reranker.py, or pass --reranker PATH.", args.runs_root,
                   "" if args.pretrained_reranker == "none" else " and the pretrained reranker")
    return None


def pretrained_reranker_name(args, fine_tuned_path: Path | None) -> str | None:
    if args.pretrained_reranker == "none":
        return None
    if args.pretrained_reranker != "auto":
        return args.pretrained_reranker
    info_path = fine_tuned_path / COMPLETION_MARKER if fine_tuned_path else None
    if info_path and info_path.is_file():
        return json.loads(info_path.read_text(encoding="utf-8"))["base_model"]["name"]
    return None


def resolve_fusion_weight(args, fine_tuned_path: Path | None) -> float | None:
    if args.fusion_weight == "none" or fine_tuned_path is None:
        return None
    if args.fusion_weight != "auto":
        return float(args.fusion_weight)
    fusion_path = fine_tuned_path / FUSION_FILE
    if not fine_tuned_path.is_dir():
        return None  # A Hub model carries no fusion weight of ours.
    if not fusion_path.is_file():
        logger.info("%s has no %s (trained without dev queries): no fused row", fine_tuned_path, FUSION_FILE)
        return None
    return float(json.loads(fusion_path.read_text(encoding="utf-8"))["weight"])


def load_reranker(model_name, args, required: bool):
    from rerank import Reranker  # torch and transformers only when a reranker is compared.

    try:
        reranker = Reranker(model_name=str(model_name), max_length=args.max_length, batch_size=args.batch_size)
    except ModelLoadError as problem:
        if required:
            raise
        logger.warning("skipping the pretrained reranker: %s", problem)
        return None
    logger.info("loaded reranker %s on %s", model_name, reranker.device)
    return reranker


def ranker_rows(ranker: str, dataset: str, queries, rankings, corpus, ks) -> list[dict]:
    """The ranker's metrics on the whole file, then on each difficulty level present."""
    def evaluate(subset):
        return evaluate_rankings({query.qid: rankings[query.qid] for query in subset},
                                 {query.qid: query.relevant_ids for query in subset}, ks, doc_texts=corpus,
                                 answers={query.qid: query.answer for query in subset}, metrics=TABLE_METRICS)

    rows = [{"name": ranker, "dataset": dataset, "difficulty": None, "queries": len(queries), "metrics": evaluate(queries)}]
    for level in sorted({query.difficulty for query in queries if query.difficulty is not None}):
        subset = [query for query in queries if query.difficulty == level]
        rows.append({"name": ranker, "dataset": dataset, "difficulty": level, "queries": len(subset),
                     "metrics": evaluate(subset)})
    return rows


def metrics_table(runs: list[dict], dataset: str, ks) -> pd.DataFrame:
    """Metrics as rows (hit@3, ...), rankers as columns, for one dataset."""
    columns = {run["name"]: run["metrics"] for run in runs if run["dataset"] == dataset}
    index = [f"{metric}@{k}" for metric in TABLE_METRICS for k in ks]
    return pd.DataFrame(columns, index=[key for key in index if key in next(iter(columns.values()))])


def print_tables(runs: list[dict], ks) -> None:
    for dataset in dict.fromkeys(run["dataset"] for run in runs):
        count = next(run["queries"] for run in runs if run["dataset"] == dataset)
        print(f"\n=== {dataset} ({count} queries) ===")
        print(metrics_table(runs, dataset, ks).to_string(float_format=lambda value: f"{value:.4f}"))


def print_difficulty_tables(rows: list[dict], ks) -> None:
    """hit and mrr at the middle k for each difficulty level, rankers side by side."""
    k = sorted(ks)[len(ks) // 2]
    for dataset in dict.fromkeys(row["dataset"] for row in rows):
        cells: dict[str, dict[str, float]] = {}
        for row in rows:
            if row["dataset"] != dataset:
                continue
            for metric in ("hit", "mrr"):
                label = f"difficulty {row['difficulty']} ({row['queries']} queries) {metric}@{k}"
                cells.setdefault(row["name"], {})[label] = row["metrics"][f"{metric}@{k}"]
        print(f"\n=== {dataset} by difficulty ===")
        print(pd.DataFrame(cells).to_string(float_format=lambda value: f"{value:.4f}"))


def write_report(report: dict, report_dir: Path, output_json: Path | None, ks) -> None:
    from run_report import plot_metrics_by_k

    report_dir.mkdir(parents=True, exist_ok=True)
    flat = [{"ranker": row["name"], "dataset": row["dataset"], "difficulty": row["difficulty"] or "all",
             "queries": row["queries"], **row["metrics"]} for row in report["runs"] + report["by_difficulty"]]
    pd.DataFrame(flat).to_csv(report_dir / "metrics.csv", index=False)
    write_json_atomic(report_dir / "metrics.json", report)
    if output_json is not None:
        output_json.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(output_json, report)
    for dataset in dict.fromkeys(run["dataset"] for run in report["runs"]):
        plot_metrics_by_k(metrics_table(report["runs"], dataset, ks), ks, dataset,
                          report_dir / f"metrics_by_k_{dataset}.png")
    logger.info("report written to %s (metrics.csv, metrics.json, metrics_by_k_*.png)%s", report_dir,
                f" and {output_json}" if output_json else "")


if __name__ == "__main__":
    run_cli(main)
