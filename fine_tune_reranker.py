"""Fine-tune a cross-encoder reranker on the club's corpus and queries.

Reads top to bottom as the job runs: arguments, logging, data, train/dev split, negative mining,
model, Trainer, baseline evaluation, training, final evaluation, outputs. Example (offline, CPU):

    python fine_tune_reranker.py --base_model bundled-minilm --max_steps 20

Everything lands in outputs/reranker-finetuned-YYYYMMDD-HHMMSS/ (or --output_dir); `training_info.json`
is written last and marks the run as finished for `main.py`.
"""

import argparse
import logging
import platform
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from augmentation import answers_as_queries, passages_as_queries
from distributed import is_main_process, run_on_main
from errors import CheckpointError, KitError, run_cli
from data_loading import Query, load_corpus, load_queries
from model_loading import BUNDLED_MODEL_ALIAS, resolve_model_name
from negatives import mine_training_groups
from retrieval import RETRIEVER_METHODS, LexicalIndex
from run_dirs import (CV_PREFIX, FUSION_FILE, checkpoints, create_run_dir, is_checkpoint, is_complete,
                      run_dirs_newest_first, write_json_atomic)

logger = logging.getLogger("fine_tune_reranker")
KS = (3, 5, 7)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--corpus_csv", type=str, default="CLB_PROPTIT.csv", help="Corpus CSV with columns STT, Văn bản.")
    data.add_argument("--train_xlsx", type=str, default="train_data_proptit.xlsx",
                      help="Query XLSX with columns Query, Ground truth document, Ground truth answer, Difficulty.")
    data.add_argument("--dev_ratio", type=float, default=0.2,
                      help="Share of queries held out to evaluate and pick the best checkpoint; 0 trains on all.")
    # On by default: it won 4 of 5 folds on dev mrr@5 in bench/QUALITY.md's cross-validation.
    data.add_argument("--augment_with_answers", action=argparse.BooleanOptionalAction, default=True,
                      help="Also train on each training query's ground-truth answer as an extra query "
                           "(--no-augment_with_answers turns it off).")
    # 4 by default: with it the bundled model learns to rank at all (bench/QUALITY.md), without it it does not.
    data.add_argument("--pseudo_queries_per_document", type=int, default=4,
                      help="Also train on up to N sentences of every corpus document, each as a query whose "
                           "relevant document is the one it came from (0: off).")
    negatives = parser.add_argument_group("negatives")
    negatives.add_argument("--num_hard_negatives", type=int, default=2, help="Hard negatives per positive pair.")
    negatives.add_argument("--num_random_negatives", type=int, default=1, help="Random negatives per positive pair.")
    negatives.add_argument("--hard_neg_top_k", type=int, default=50,
                           help="Hard negatives are sampled from this many top lexical hits (positives excluded).")
    negatives.add_argument("--hard_neg_method", choices=RETRIEVER_METHODS, default="bm25",
                           help="Lexical index used to mine hard negatives and to pick dev candidates.")
    model = parser.add_argument_group("model")
    model.add_argument("--base_model", type=str, default="namdp-ptit/ViRanker",
                       help=f"Hub id, local model folder, or '{BUNDLED_MODEL_ALIAS}' for the bundled offline model. "
                            "A checkpoint folder here warm-starts from its weights only.")
    model.add_argument("--max_seq_length", type=int, default=512, help="Token budget of a (query, document) pair.")
    model.add_argument("--freeze_word_embeddings", action="store_true",
                       help="Keep the word-embedding matrix fixed: less memory and much faster steps on large models.")
    training = parser.add_argument_group("training")
    training.add_argument("--loss", choices=("bce", "listwise"), default="bce",
                          help="bce: each pair against a 0/1 label. listwise: softmax over a positive and its negatives.")
    training.add_argument("--batch_size", type=int, default=4,
                          help="Pairs per device batch (bce) or groups per device batch (listwise).")
    training.add_argument("--gradient_accumulation_steps", type=int, default=8, help="Batches per optimizer step.")
    training.add_argument("--epochs", type=float, default=5, help="Passes over the training pairs.")
    training.add_argument("--lr", type=float, default=2e-5, help="Peak learning rate.")
    training.add_argument("--warmup_ratio", type=float, default=0.1, help="Share of steps with linear warm-up.")
    training.add_argument("--weight_decay", type=float, default=0.01, help="AdamW weight decay.")
    training.add_argument("--seed", type=int, default=42, help="Seeds the split, the negatives, the head and the shuffling.")
    training.add_argument("--fp16", action="store_true", help="fp16 mixed precision (a T4); ignored with a warning on CPU.")
    training.add_argument("--bf16", action="store_true", help="bf16 mixed precision (Ampere or newer GPUs).")
    training.add_argument("--gradient_checkpointing", action="store_true", help="Recompute activations: less memory, slower.")
    training.add_argument("--max_steps", type=int, default=-1, help="Stop after this many optimizer steps (-1: use --epochs).")
    training.add_argument("--dataloader_num_workers", type=int, default=0, help="DataLoader worker processes.")
    evaluation = parser.add_argument_group("evaluation and checkpoints")
    evaluation.add_argument("--eval_steps", type=int, default=100,
                            help="Evaluate on the dev queries every N steps (at most once an epoch apart).")
    evaluation.add_argument("--save_steps", type=int, default=100, help="Save a checkpoint every N steps.")
    evaluation.add_argument("--save_total_limit", type=int, default=2, help="Checkpoints kept (the best is always kept).")
    evaluation.add_argument("--logging_steps", type=int, default=10, help="Log the training loss every N steps.")
    evaluation.add_argument("--metric_for_best_model", type=str, default="mrr@5",
                            help="Dev ranking metric that picks the checkpoint loaded at the end (hit@k, mrr@k, ndcg@k).")
    evaluation.add_argument("--early_stopping_patience", type=int, default=0,
                            help="Stop after N evaluations without improvement (0: off).")
    evaluation.add_argument("--dev_top_n", type=int, default=20,
                            help="First-stage candidates reranked per dev query (as main.py's --top_n).")
    evaluation.add_argument("--eval_batch_size", type=int, default=32, help="Pairs per batch when scoring dev pairs.")
    evaluation.add_argument("--cv_folds", type=int, default=0,
                            help="Cross-validate instead: train one model per query fold (N >= 2) and report the "
                                 "mean and spread of the dev metrics; --dev_ratio is then unused.")
    evaluation.add_argument("--cv_keep_models", action="store_true",
                            help="Keep each fold's weights and checkpoints (dropped by default: only metrics stay).")
    output = parser.add_argument_group("output")
    output.add_argument("--output_dir", type=str, default=None,
                        help="Run folder; default: <runs_root>/reranker-finetuned-YYYYMMDD-HHMMSS. Must be new or empty.")
    output.add_argument("--runs_root", type=str, default="outputs", help="Where new run folders are created.")
    output.add_argument("--resume_from_checkpoint", type=str, default=None,
                        help="Continue an interrupted run: a checkpoint-N folder, or 'latest' (newest checkpoint of "
                             "--output_dir, else of the newest unfinished run under --runs_root).")
    return parser


def validate_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Checks the flags once, up front; parser.error prints usage and exits with status 2."""
    if args.fp16 and args.bf16:
        parser.error("--fp16 and --bf16 exclude each other: pick --fp16 on a T4, --bf16 on Ampere or newer")
    if not 0 <= args.dev_ratio < 1:
        parser.error(f"--dev_ratio must be in [0, 1), got {args.dev_ratio}")
    if not 0 <= args.warmup_ratio <= 1:
        parser.error(f"--warmup_ratio must be in [0, 1], got {args.warmup_ratio}")
    for flag in ("num_hard_negatives", "num_random_negatives", "dataloader_num_workers", "early_stopping_patience",
                 "pseudo_queries_per_document"):
        if getattr(args, flag) < 0:
            parser.error(f"--{flag} must be 0 or more, got {getattr(args, flag)}")
    for flag in ("hard_neg_top_k", "batch_size", "gradient_accumulation_steps", "eval_steps", "save_steps",
                 "logging_steps", "save_total_limit", "dev_top_n", "eval_batch_size"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be 1 or more, got {getattr(args, flag)}")
    if args.max_seq_length < 16:
        parser.error(f"--max_seq_length must be at least 16 tokens, got {args.max_seq_length}")
    if args.epochs <= 0 or args.lr <= 0:
        parser.error("--epochs and --lr must be positive")
    if args.max_steps == 0 or args.max_steps < -1:
        parser.error(f"--max_steps must be -1 (use --epochs) or a positive step count, got {args.max_steps}")
    if args.cv_folds == 1 or args.cv_folds < 0:
        parser.error(f"--cv_folds must be 0 (off) or at least 2, got {args.cv_folds}")
    if args.num_hard_negatives + args.num_random_negatives == 0:
        parser.error("no negatives requested: set --num_hard_negatives or --num_random_negatives above 0")
    metric_name, _, k = args.metric_for_best_model.partition("@")
    if metric_name not in ("hit", "mrr", "ndcg") or k not in {str(value) for value in KS}:
        parser.error(f"--metric_for_best_model must be hit@k, mrr@k or ndcg@k with k in {KS}, "
                     f"got {args.metric_for_best_model!r}")
    if args.dev_ratio > 0 and args.save_steps % args.eval_steps:
        parser.error(f"--save_steps ({args.save_steps}) must be a multiple of --eval_steps ({args.eval_steps}) "
                     "so the best checkpoint is always saved")


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    validate_args(args, parser)
    setup_logging()

    # Data: the corpus and the labelled queries, validated before anything is written.
    corpus = load_corpus(args.corpus_csv)
    queries = load_queries(args.train_xlsx, corpus)
    resolve_model_name(args.base_model)  # A mistyped model folder fails before any folder is created.
    if args.cv_folds > 1:
        cross_validate(args, corpus, queries)
        return
    train_queries, dev_queries = split_queries(queries, args.dev_ratio, args.seed)
    if not dev_queries:
        logger.warning("--dev_ratio 0: training on all %d queries; no dev metric and no best-checkpoint "
                       "choice is possible, the last step's weights are kept", len(queries))

    # Where this run writes: a new folder, or the folder of the run being resumed. Only the main
    # process creates it; under torchrun every process then uses that same folder.
    run_dir, resume_checkpoint = run_on_main(lambda: resolve_run_dir(args))
    train_one(args, corpus, train_queries, dev_queries, run_dir, resume_checkpoint)


def train_one(args: argparse.Namespace, corpus: dict[int, str], train_queries: list[Query], dev_queries: list[Query],
              run_dir: Path, resume_checkpoint: Path | None = None) -> dict:
    """Mines negatives, trains, evaluates and writes one run's folder; returns its results."""
    started = time.time()
    labelled_train_queries = len(train_queries)
    if args.augment_with_answers:
        train_queries = train_queries + answers_as_queries(train_queries)
    # The corpus belongs to no split: its sentences may join the training side of every split and fold.
    train_queries = train_queries + passages_as_queries(corpus, args.pseudo_queries_per_document)

    # Negatives: one lexical index over the corpus, every query scored in one batch.
    doc_ids = list(corpus)
    index = LexicalIndex([corpus[doc_id] for doc_id in doc_ids], method=args.hard_neg_method)
    hard_top_k = effective_hard_top_k(args.hard_neg_top_k, len(doc_ids))
    train_groups, train_report = mine_training_groups(train_queries, index, doc_ids, args.num_hard_negatives,
                                                      args.num_random_negatives, hard_top_k, args.seed)
    dev_groups, dev_report = mine_training_groups(dev_queries, index, doc_ids, args.num_hard_negatives,
                                                  args.num_random_negatives, hard_top_k, args.seed + 1)
    logger.info("training pairs: %d positive, %d hard negative, %d random negative (%d queries)",
                train_report.positive_pairs, train_report.hard_negative_pairs, train_report.random_negative_pairs,
                train_report.queries)

    # Model, Trainer and training.
    from training_run import train_reranker  # Heavy imports (torch, transformers) after the cheap checks.

    try:
        results = train_reranker(args, corpus, train_groups, dev_queries, dev_groups, index, doc_ids, run_dir,
                                 resume_checkpoint)
    except KitError:
        if run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()  # Created for this run a moment ago and still empty: leave nothing behind.
        raise
    if results is None:
        sys.exit(130)  # Interrupted: a checkpoint was saved and the run can be resumed.
    results["data"] = {"documents": len(corpus), "train_queries": labelled_train_queries,
                       "augmented_train_queries": len(train_queries),
                       "dev_queries": len(dev_queries), "train_pairs": train_report.as_dict(),
                       "dev_pairs": dev_report.as_dict()}
    finish_run(args, run_dir, results, started)
    return results


def cross_validate(args: argparse.Namespace, corpus: dict[int, str], queries: list[Query]) -> None:
    """Trains one model per query fold and reports each fold's dev metrics with their mean and spread."""
    from cross_validation import fold_splits, summarize_folds, write_cv_report

    if args.resume_from_checkpoint or args.output_dir:
        raise KitError("--cv_folds runs in a new folder of its own: drop --resume_from_checkpoint and --output_dir")
    cv_dir = create_run_dir(args.runs_root, prefix=CV_PREFIX)
    fold_metrics, fusions = [], []
    for fold, (train_queries, dev_queries) in enumerate(fold_splits(queries, args.cv_folds, args.seed), start=1):
        logger.info("fold %d/%d: %d training and %d dev queries", fold, args.cv_folds, len(train_queries),
                    len(dev_queries))
        fold_dir = cv_dir / f"fold-{fold}"
        fold_dir.mkdir()
        results = train_one(args, corpus, train_queries, dev_queries, fold_dir)
        fold_metrics.append(results["dev_metrics"])
        fusions.append(results["fusion"])
        if not args.cv_keep_models:
            remove_model_files(fold_dir)
    summary = summarize_folds(fold_metrics, fusions)
    write_cv_report(cv_dir, summary, vars(args))
    logger.info("cross-validation finished: %s", cv_dir)


def remove_model_files(run_dir: Path) -> None:
    """Drops a fold's weights and checkpoints (GBs for large models); its metrics stay."""
    for checkpoint in run_dir.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)
    for weights in ("model.safetensors", "pytorch_model.bin"):
        (run_dir / weights).unlink(missing_ok=True)


def setup_logging() -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        level=logging.INFO if is_main_process() else logging.WARNING, force=True)


def split_queries(queries: list[Query], dev_ratio: float, seed: int) -> tuple[list[Query], list[Query]]:
    """A reproducible split by query (never by pair, so no query leaks into both sides)."""
    dev_count = round(len(queries) * dev_ratio)
    if dev_ratio > 0 and dev_count == 0:
        raise KitError(f"--dev_ratio {dev_ratio} leaves no dev query out of {len(queries)}; raise it "
                       f"(at least {1 / len(queries):.3f}) or pass 0 to train on everything")
    if dev_count >= len(queries):
        raise KitError(f"--dev_ratio {dev_ratio} leaves no training query out of {len(queries)}; lower it")
    order = np.random.default_rng(seed).permutation(len(queries))
    dev_positions = set(order[:dev_count].tolist())
    train = [query for position, query in enumerate(queries) if position not in dev_positions]
    dev = [query for position, query in enumerate(queries) if position in dev_positions]
    return train, dev


def effective_hard_top_k(requested: int, num_documents: int) -> int:
    if requested > num_documents:
        logger.warning("--hard_neg_top_k %d is larger than the corpus; using all %d documents", requested, num_documents)
        return num_documents
    return requested


def resolve_run_dir(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """The run folder and, when resuming, the checkpoint to resume from.

    A new run always gets a folder of its own; resuming writes into the interrupted run's folder.
    """
    if args.resume_from_checkpoint is None:
        if args.output_dir is None:
            return create_run_dir(args.runs_root), None
        run_dir = Path(args.output_dir)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise KitError(f"--output_dir {run_dir} already holds files; give a new folder, or resume that run "
                           "with --resume_from_checkpoint latest")
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir, None
    if args.resume_from_checkpoint == "latest":
        if args.output_dir is not None:
            run_dir = Path(args.output_dir)
        else:
            unfinished = [path for path in run_dirs_newest_first(args.runs_root) if checkpoints(path) and not is_complete(path)]
            if not unfinished:
                raise CheckpointError(f"--resume_from_checkpoint latest: no unfinished run with a checkpoint under "
                                      f"{args.runs_root}; start a new run instead")
            run_dir = unfinished[0]
        found = checkpoints(run_dir)
        if not found:
            raise CheckpointError(f"--resume_from_checkpoint latest: {run_dir} holds no checkpoint-N folder; "
                                  "start a new run instead")
        checkpoint = found[-1]
    else:
        checkpoint = Path(args.resume_from_checkpoint)
        if not is_checkpoint(checkpoint):
            raise CheckpointError(
                f"--resume_from_checkpoint {checkpoint} is not a Trainer checkpoint (a checkpoint-N folder with "
                "trainer_state.json, config.json and the weights). To start from a model's weights only, pass it "
                "as --base_model instead.")
        run_dir = checkpoint.parent
        if args.output_dir is not None and Path(args.output_dir).resolve() != run_dir.resolve():
            raise CheckpointError(f"--output_dir {args.output_dir} differs from the folder of the checkpoint "
                                  f"({run_dir}); drop --output_dir, a resumed run continues in its own folder")
    if is_complete(run_dir):
        raise CheckpointError(f"{run_dir} finished already; to train further, start a new run with "
                              f"--base_model {run_dir}")
    logger.info("resuming %s from %s", run_dir, checkpoint.name)
    return run_dir, checkpoint


def finish_run(args: argparse.Namespace, run_dir: Path, results: dict, started: float) -> None:
    """Writes the run's metrics, curves and model card, then `training_info.json` last, atomically."""
    from run_report import plot_training_curves, write_model_card

    if not results["is_main_process"]:
        return
    dev_metrics = results["dev_metrics"]
    write_json_atomic(run_dir / "dev_metrics.json", dev_metrics)
    write_json_atomic(run_dir / "train_results.json", results["train_metrics"])
    if results["fusion"]:
        write_json_atomic(run_dir / FUSION_FILE, {**results["fusion"], "retriever": args.hard_neg_method,
                                                  "top_n": args.dev_top_n})
    plot_training_curves(results["log_history"], dev_metrics.get("baseline"), args.metric_for_best_model,
                         run_dir / "training_curves.png")
    info = {
        "status": "complete",
        "finished_at": datetime.now().isoformat(timespec="seconds"),
        "arguments": vars(args),
        "base_model": results["base_model"],
        "data": results["data"],
        "pairs": results["data"]["train_pairs"],
        "best_checkpoint": results["best_checkpoint"],
        "library_versions": library_versions(),
        "device": results["device"],
        "processes": results["world_size"],
        "wall_time_s": time.time() - started,
        "peak_memory_gib": results["peak_memory_gib"],
    }
    write_model_card(run_dir / "README.md", info, dev_metrics)
    write_json_atomic(run_dir / "training_info.json", info)
    logger.info("finished: %s (%.1f s)", run_dir, info["wall_time_s"])
    if dev_metrics.get("baseline"):
        metric = args.metric_for_best_model
        logger.info("dev %s: %.4f before fine-tuning, %.4f after", metric, dev_metrics["baseline"][metric],
                    dev_metrics[metric])


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("torch", "transformers", "FlagEmbedding", "scikit-learn", "numpy", "pandas"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


if __name__ == "__main__":
    run_cli(main)
