"""`python rerank.py export RUN --onnx [--int8]`: the ONNX export of a fine-tuned run, checked against torch."""

import argparse
import logging
from pathlib import Path

from reranker_kit.basics.errors import DataError, KitError
from reranker_kit.basics.model_files import resolve_model_name
from reranker_kit.commands.common import parse_arguments
from reranker_kit.data.loading import load_corpus, load_queries
from reranker_kit.models.onnx_export import CHECK_PAIRS, check_export, export_onnx
from reranker_kit.retrieval.candidates import retrieve_candidates
from reranker_kit.retrieval.lexical import LexicalIndex
from reranker_kit.run_folder import read_run_info, unusable_run_problem

logger = logging.getLogger("rerank")
# The export is checked on this many of the run's training queries, each against its BM25 top CHECK_TOP_N.
CHECK_QUERIES, CHECK_TOP_N = 10, 20


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rerank.py", description="Tools for a fine-tuned reranker.")
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="Export a model folder for CPU serving with ONNX Runtime.",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    export.add_argument("model_dir", help="A finished run folder (or any saved model folder with config.json).")
    export.add_argument("--onnx", action="store_true", required=True,
                        help="Export to ONNX: writes <model_dir>/onnx/model.onnx and leaves every other file alone.")
    export.add_argument("--int8", action="store_true",
                        help="Also write onnx/model_int8.onnx, dynamically quantized to int8 (faster on CPU).")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(build_parser(), lambda args, parser: None, argv)
    model_dir = Path(args.model_dir)
    if not model_dir.is_dir():
        raise KitError(f"{model_dir}: not a folder. Give a run folder such as outputs/reranker-finetuned-..., which "
                       "the export writes into (a Hub id cannot be exported in place)")
    problem = unusable_run_problem(model_dir)  # The same folders main.py refuses: an unfinished run is no model.
    if problem:
        raise KitError(problem)
    resolve_model_name(str(model_dir))  # A folder without config.json is not a model: say so before loading.
    written = export_onnx(model_dir, args.int8)
    logger.info("wrote %s", ", ".join(str(path) for path in written))
    pairs, group_sizes, source = check_pairs(model_dir)
    for name, check in check_export(model_dir, args.int8, pairs, group_sizes).items():
        logger.info("%s: scores within %.1e of torch on %d pairs (%s); the top %d of %.0f%% of the %d queries "
                    "unchanged", name, check.max_difference, check.pairs, source, check.top_k,
                    100 * check.top_k_agreement, len(group_sizes))
    logger.info("load it with Reranker(model_name=%r, backend=%r)", str(model_dir), "onnx_int8" if args.int8 else "onnx")


def check_pairs(model_dir: Path) -> tuple[list[tuple[str, str]], list[int], str]:
    """(pairs, pairs per query, what they are): the run's own training queries against their BM25 top
    CHECK_TOP_N documents of the run's corpus, as users will score; CHECK_PAIRS when those files are gone."""
    info = read_run_info(model_dir) or {}
    corpus_csv = (info.get("arguments") or {}).get("corpus_csv")
    train_xlsx = info.get("train_xlsx")
    if not (corpus_csv and train_xlsx and Path(corpus_csv).is_file() and Path(train_xlsx).is_file()):
        return CHECK_PAIRS, [len(CHECK_PAIRS)], "the built-in check pairs"
    try:
        corpus = load_corpus(corpus_csv)
        queries = load_queries(train_xlsx, corpus)[:CHECK_QUERIES]
    except DataError as problem:  # The files changed since training: the check is not worth failing for.
        logger.info("checking on the built-in pairs: %s", problem)
        return CHECK_PAIRS, [len(CHECK_PAIRS)], "the built-in check pairs"
    doc_ids = list(corpus)
    candidates = retrieve_candidates(LexicalIndex([corpus[doc_id] for doc_id in doc_ids]), doc_ids, queries,
                                     CHECK_TOP_N)
    pairs = [(query.text, corpus[doc_id]) for query in queries for doc_id in candidates.ids[query.qid]]
    return pairs, [len(candidates.ids[query.qid]) for query in queries], f"{Path(train_xlsx).name} x BM25 top {CHECK_TOP_N}"
