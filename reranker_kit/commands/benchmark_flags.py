"""main.py's flags, checked once, up front."""

import argparse
import logging

from reranker_kit.basics.model_files import BUNDLED_MODEL_ALIAS
from reranker_kit.commands.common import given_flags
from reranker_kit.commands.embedding_flags import add_embedding_flags
from reranker_kit.fusion import FUSION_METHODS
from reranker_kit.metrics import CUTOFFS
from reranker_kit.retrieval import RETRIEVER_METHODS
from reranker_kit.retrieval.first_stage import EMBEDDING_METHODS

logger = logging.getLogger("main")
DESCRIPTION = "Benchmark retrieve-then-rerank with the club's metrics at k = 3, 5, 7."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=DESCRIPTION,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--corpus_csv", type=str, default="CLB_PROPTIT.csv", help="Corpus CSV (STT, Văn bản).")
    parser.add_argument("--eval_xlsx", type=str, action="append", default=None,
                        help="Query file to evaluate; repeat for several. Default: train_data_proptit.xlsx, and "
                             "test_data_proptit.xlsx when present.")
    # --sheet (issue #32): a workbook with two sheets in the schema (a draft and the final) is refused without it.
    parser.add_argument("--sheet", type=str, default=None,
                        help="Sheet to read in each query file that has several sheets with the columns; a file "
                             "without a sheet of that name is read from its only sheet with them.")
    parser.add_argument("--reranker", type=str, default="auto",
                        help="Fine-tuned model folder, 'auto' (newest finished run under --runs_root) or 'none'.")
    parser.add_argument("--pretrained_reranker", type=str, default="auto",
                        help="Reranker to compare before fine-tuning: 'auto' (the fine-tuned run's base model), "
                             f"a Hub id or folder, '{BUNDLED_MODEL_ALIAS}', or 'none'.")
    parser.add_argument("--retriever", choices=RETRIEVER_METHODS, default="bm25",
                        help="First-stage retriever: lexical (bm25, tfidf), a bi-encoder (dense: --embedding_model), "
                             "or BM25 and dense, min-max normalised and summed (hybrid).")
    add_embedding_flags(parser, default="auto", more_help=(
        " 'auto': the newest finished fine_tune_embedder.py run under --runs_root, shown beside its base encoder "
        "(else BAAI/bge-m3, or bundled-e5 where it cannot load); 'base': the base encoder alone."))
    parser.add_argument("--candidates", type=str, default=None,
                        help="Your own first stage instead of --retriever: a JSONL (or CSV) file with each evaluated "
                             "query's ranked document ids, best first (README: Your own candidates).")
    parser.add_argument("--expand_documents", action="store_true",
                        help="Index each document with the labelled training queries (and answers) that name it: the "
                             "fine-tuned run's training file, or --expansion_xlsx. Queries of the evaluated file are "
                             "always left out.")
    parser.add_argument("--expansion_xlsx", type=str, default=None,
                        help="Query file whose labelled queries expand the documents (default: the run's training file).")
    parser.add_argument("--top_n", type=int, default=20, help="First-stage candidates reranked per query.")
    parser.add_argument("--k", type=int, nargs="+", default=list(CUTOFFS), help="Cut-offs to report.")
    parser.add_argument("--fusion_weight", type=str, default="auto",
                        help="Weight of the reranker when fused with the first stage (0..1): 'auto' uses the weight "
                             "the training run chose on its dev queries; 'none' skips the fused row.")
    parser.add_argument("--fusion_method", choices=("auto", *FUSION_METHODS), default="auto",
                        help="How scores are normalised before fusion: 'auto' uses the training run's choice "
                             "(min-max for runs that recorded none).")
    parser.add_argument("--batch_size", type=int, default=32, help="Pairs per reranker forward pass.")
    parser.add_argument("--max_length", type=int, default=512, help="Token budget of a (query, document) pair.")
    parser.add_argument("--runs_root", type=str, default="outputs", help="Where fine-tuned runs are looked for.")
    parser.add_argument("--report_dir", type=str, default=None,
                        help="Where tables and the chart go: a new or empty folder; default: "
                             "<runs_root>/eval-YYYYMMDD-HHMMSS.")
    parser.add_argument("--overwrite_report", action="store_true",
                        help="Let --report_dir be an earlier evaluation's folder: its report (charts included) is "
                             "replaced. A folder holding anything main.py did not write is still refused.")
    parser.add_argument("--output_json", type=str, default=None,
                        help="Also write the JSON report here (default: metrics.json in --report_dir).")
    return parser


def refuse_unused_flags(args, parser) -> None:
    """A flag main.py would ignore is refused: the user meant something by it that would not happen."""
    given = given_flags(args, parser)
    if args.reranker == "none" and "fusion_weight" in given and args.fusion_weight != "none":
        parser.error("--fusion_weight fuses the fine-tuned reranker with the first stage, and --reranker none has "
                     "none: drop --fusion_weight, or give --reranker")
    if "fusion_method" in given and (args.fusion_weight == "none" or args.reranker == "none"):
        parser.error("--fusion_method only matters for the fused row, which --fusion_weight none / --reranker none "
                     "turn off: drop --fusion_method")
    if args.overwrite_report and args.report_dir is None:
        parser.error("--overwrite_report replaces the report in --report_dir, and without it every evaluation gets a new "
                     "eval-* folder: add --report_dir, or drop --overwrite_report")
    if "embedding_model" in given and args.retriever not in EMBEDDING_METHODS and not args.candidates:
        parser.error(f"--embedding_model is used by --retriever dense or hybrid, not {args.retriever}: add "
                     "--retriever hybrid (or dense), or drop --embedding_model")


def validate_args(args, parser) -> None:
    if args.top_n < 1 or args.batch_size < 1 or args.max_length < 16:
        parser.error("--top_n and --batch_size must be at least 1 and --max_length at least 16")
    if args.candidates and (args.expand_documents or args.expansion_xlsx):
        parser.error("--candidates replaces the kit's index, so there is nothing to expand: drop --expand_documents "
                     "(expand the documents in your own retriever instead)")
    if args.expansion_xlsx and not args.expand_documents:
        parser.error("--expansion_xlsx is read only with --expand_documents: add it, or drop --expansion_xlsx")
    if any(k < 1 for k in args.k):
        parser.error(f"--k values must be at least 1, got {args.k}")
    if len(set(args.k)) < len(args.k):
        logger.warning("--k %s repeats a value: reporting each once", " ".join(map(str, args.k)))
        args.k = list(dict.fromkeys(args.k))
    beyond = [k for k in args.k if k > args.top_n]
    if beyond:
        logger.warning("--k %s is above --top_n %d: only %d candidates are ranked, so those cut-offs equal @%d; "
                       "raise --top_n to measure them", " ".join(map(str, beyond)), args.top_n, args.top_n, args.top_n)
    refuse_unused_flags(args, parser)
    if args.fusion_weight not in ("auto", "none"):
        try:
            weight = float(args.fusion_weight)
        except ValueError:
            weight = -1.0
        if not 0 <= weight <= 1:
            parser.error(f"--fusion_weight must be 'auto', 'none' or a number in [0, 1], got {args.fusion_weight!r}")
