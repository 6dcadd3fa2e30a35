"""The training CLI's flags: every one typed, defaulted and explained, and checked once, up front."""

import argparse
import importlib.util

from reranker_kit.basics.model_files import OFFLINE_MODEL_ALIAS
from reranker_kit.commands.common import given_flags
from reranker_kit.commands.embedding_flags import add_embedding_flags
from reranker_kit.metrics import CUTOFFS, DEV_RANKING_METRICS
from reranker_kit.retrieval import RETRIEVER_METHODS
from reranker_kit.retrieval.first_stage import EMBEDDING_METHODS
from reranker_kit.training.config import LOSS_NAMES

DESCRIPTION = "Fine-tune a cross-encoder reranker on the club's corpus and queries."
# --report_to choices and the package each tracker needs (the Trainer's own integrations).
TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}
REPORT_TO_CHOICES = ("none", *TRACKER_PACKAGES, "all")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=DESCRIPTION,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_flags(parser.add_argument_group("data"))
    add_negatives_flags(parser.add_argument_group("negatives"))
    _add_model_flags(parser.add_argument_group("model"))
    _add_training_flags(parser.add_argument_group("training"))
    _add_evaluation_flags(parser.add_argument_group("evaluation and checkpoints"))
    _add_output_flags(parser.add_argument_group("output"))
    _add_tracking_and_hub_flags(parser.add_argument_group("experiment tracking and the Hugging Face Hub"))
    return parser


def add_data_flags(data) -> None:
    """The query and corpus files, the dev split and the extra training queries: the same for every training CLI."""
    data.add_argument("--corpus_csv", type=str, default="CLB_PROPTIT.csv", help="Corpus CSV with columns STT, Văn bản.")
    data.add_argument("--train_xlsx", type=str, default="train_data_proptit.xlsx",
                      help="Query XLSX with columns Query, Ground truth document, Ground truth answer, Difficulty.")
    # --sheet (issue #32): a workbook with two sheets in the schema (a draft and the final) is refused without it.
    data.add_argument("--sheet", type=str, default=None,
                      help="Sheet of the query workbook to read when several sheets have the columns.")
    data.add_argument("--dev_ratio", type=float, default=0.2,
                      help="Share of queries held out to evaluate and pick the best checkpoint; 0 trains on all.")
    # On by default: answers add well-formed phrasings of the same facts (bench/QUALITY.md).
    data.add_argument("--augment_with_answers", action=argparse.BooleanOptionalAction, default=True,
                      help="Also train on each training query's ground-truth answer as an extra query "
                           "(--no-augment_with_answers turns it off).")
    # On by default: a head that starts from nothing needs more than ~100 labelled queries (bench/QUALITY.md).
    data.add_argument("--pseudo_queries_per_document", type=int, default=4,
                      help="Also train on up to N sentences of every corpus document, each as a query whose "
                           "relevant document is the one it came from (0: off).")


def add_negatives_flags(negatives) -> None:
    """How negatives are mined (first stage, counts, false-negative filter): the same for every training CLI."""
    negatives.add_argument("--num_hard_negatives", type=int, default=2, help="Hard negatives per positive pair.")
    negatives.add_argument("--num_random_negatives", type=int, default=1, help="Random negatives per positive pair.")
    negatives.add_argument("--hard_neg_top_k", type=int, default=50,
                           help="Hard negatives are sampled from this many top first-stage hits (positives excluded).")
    negatives.add_argument("--hard_neg_method", choices=RETRIEVER_METHODS, default="bm25",
                           help="First stage that mines hard negatives and picks dev candidates (as main.py's "
                                "--retriever): bm25, tfidf, dense (--embedding_model) or hybrid (BM25 + dense).")
    add_embedding_flags(negatives)
    negatives.add_argument("--expand_documents", action="store_true",
                           help="Index each document with the labelled training queries (and answers) that name it; "
                                "dev queries never.")
    negatives.add_argument("--candidates", type=str, default=None,
                           help="Mine from your own retriever's ranked lists (main.py's --candidates file); queries "
                                "it lacks use --hard_neg_method.")
    negatives.add_argument("--filter_false_negatives", action="store_true",
                           help="Drop a mined hard negative that --teacher_model scores within --false_negative_margin "
                                "of the query's positive: likely an unlabelled relevant document.")
    negatives.add_argument("--false_negative_margin", type=float, default=0.05,
                           help="Relative margin: a hard negative is kept only if its teacher probability is at most "
                                "(1 - margin) x the positive's.")
    negatives.add_argument("--max_false_negative_share", type=float, default=0.5,
                           help="Stop when the filter would drop more than this share of the hard negatives: a "
                                "teacher that drops most of them cannot tell relevant from hard.")
    negatives.add_argument("--teacher_model", type=str, default=None,
                           help="Reranker that judges false negatives (default: --base_model, useful only when it "
                                "already ranks, such as namdp-ptit/ViRanker).")


def _add_model_flags(model) -> None:
    model.add_argument("--base_model", type=str, default="namdp-ptit/ViRanker",
                       help=f"Hub id, local model folder, or '{OFFLINE_MODEL_ALIAS}' for the bundled offline model. "
                            "A checkpoint folder here warm-starts from its weights only.")
    model.add_argument("--max_seq_length", type=int, default=512, help="Token budget of a (query, document) pair.")
    model.add_argument("--freeze_word_embeddings", action="store_true",
                       help="Keep the word-embedding matrix fixed: less memory and much faster steps on large models.")
    model.add_argument("--weight_ensembling", choices=("auto", "off"), default="auto",
                       help="auto: after training, blend base and trained weights (WiSE-FT, a in 0, .25, .5, .75, 1) "
                            "when the base has a trained ranking head, and keep the blend the dev queries support; "
                            "off: only the base and the trained weights compete.")
    model.add_argument("--lora_r", type=int, default=0,
                       help="Train LoRA adapters of this rank (and the classification head in full) instead of every "
                            "weight; the saved run is an ordinary merged model folder. 0: full fine-tuning.")
    model.add_argument("--lora_alpha", type=float, default=16.0, help="LoRA scaling (alpha / r scales the update).")
    model.add_argument("--lora_dropout", type=float, default=0.1, help="Dropout on the LoRA adapters' input.")


def _add_training_flags(training) -> None:
    training.add_argument("--loss", choices=LOSS_NAMES, default="bce",
                          help="bce: each pair against a 0/1 label. listwise: softmax over a positive and its negatives.")
    training.add_argument("--batch_size", type=int, default=4,
                          help="Pairs per device batch (bce) or groups per device batch (listwise).")
    training.add_argument("--gradient_accumulation_steps", type=int, default=8, help="Batches per optimizer step.")
    training.add_argument("--epochs", type=float, default=5, help="Passes over the training pairs.")
    add_optimiser_flags(training, seeds="the split, the negatives, the head and the shuffling")


def add_optimiser_flags(group, seeds: str) -> None:
    """Learning rate, schedule, seed, precision and loader: the same for every training CLI."""
    group.add_argument("--lr", type=float, default=2e-5, help="Peak learning rate.")
    group.add_argument("--warmup_ratio", type=float, default=0.1, help="Share of steps with linear warm-up.")
    group.add_argument("--weight_decay", type=float, default=0.01, help="AdamW weight decay.")
    group.add_argument("--seed", type=int, default=42, help=f"Seeds {seeds}.")
    group.add_argument("--fp16", action="store_true", help="fp16 mixed precision (a T4); ignored with a warning on CPU.")
    group.add_argument("--bf16", action="store_true", help="bf16 mixed precision (Ampere or newer GPUs).")
    group.add_argument("--gradient_checkpointing", action="store_true", help="Recompute activations: less memory, slower.")
    group.add_argument("--max_steps", type=int, default=-1, help="Stop after this many optimizer steps (-1: use --epochs).")
    group.add_argument("--dataloader_num_workers", type=int, default=0, help="DataLoader worker processes.")


def _add_evaluation_flags(evaluation) -> None:
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


def _add_output_flags(output) -> None:
    output.add_argument("--output_dir", type=str, default=None,
                        help="Run folder; default: <runs_root>/reranker-finetuned-YYYYMMDD-HHMMSS. Must be new or empty.")
    output.add_argument("--runs_root", type=str, default="outputs", help="Where new run folders are created.")
    output.add_argument("--resume_from_checkpoint", type=str, default=None,
                        help="Continue an interrupted run: a checkpoint-N folder, or 'latest' (newest checkpoint of "
                             "--output_dir, else of the newest unfinished run under --runs_root).")


def _add_tracking_and_hub_flags(group) -> None:
    group.add_argument("--report_to", choices=REPORT_TO_CHOICES, default="none",
                       help="Send the training loss and dev metrics to a tracker (the Trainer's integrations): "
                            "tensorboard writes event files under <run folder>/runs; all: every installed tracker.")
    group.add_argument("--push_to_hub", action="store_true",
                       help="Push the finished run (weights, tokenizer, model card, metrics) to the Hugging Face Hub; "
                            "checkpoints are pushed as they are saved. Needs `huggingface-cli login` or HF_TOKEN.")
    group.add_argument("--hub_model_id", type=str, default=None,
                       help="Hub repository, such as your-name/viranker-proptit; default: the run folder's name under "
                            "your account. Also named in the model card.")
    group.add_argument("--hub_private_repo", action="store_true", help="Create the Hub repository as private.")
    group.add_argument("--hub_dataset_id", type=str, default=None,
                       help="Hub dataset id of the training data, listed under 'datasets' in the model card's metadata.")


def validate_tracking_and_hub_flags(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """A tracker that is not installed or a Hub flag without --push_to_hub fails now, not after training."""
    package = TRACKER_PACKAGES.get(args.report_to)
    if package and importlib.util.find_spec(package) is None:
        parser.error(f"--report_to {args.report_to} needs the package {package}, which is not installed: "
                     f"pip install {package}, or pass --report_to none")
    if args.hub_private_repo and not args.push_to_hub:
        parser.error("--hub_private_repo only matters with --push_to_hub; add --push_to_hub or drop it")
    if args.push_to_hub and args.cv_folds:
        parser.error("--push_to_hub pushes one finished run; cross-validation (--cv_folds) keeps no model to push")


def validate_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Checks the flags once, up front; parser.error prints usage and exits with status 2."""
    validate_common_flags(args, parser)
    if args.num_hard_negatives + args.num_random_negatives == 0:
        parser.error("no negatives requested: set --num_hard_negatives or --num_random_negatives above 0")
    metric_name, _, k = args.metric_for_best_model.partition("@")
    if metric_name not in DEV_RANKING_METRICS or k not in {str(value) for value in CUTOFFS}:
        parser.error(f"--metric_for_best_model must be one of {DEV_RANKING_METRICS} at a k in {CUTOFFS} "
                     f"(such as mrr@5), got {args.metric_for_best_model!r}")
    if args.lora_r < 0 or not 0 <= args.lora_dropout < 1 or args.lora_alpha <= 0:
        parser.error("--lora_r must be 0 (off) or more, --lora_dropout in [0, 1) and --lora_alpha positive")
    if args.lora_r and args.freeze_word_embeddings:
        parser.error("--freeze_word_embeddings is implied by --lora_r (only adapters and the head train): drop it")
    validate_tracking_and_hub_flags(args, parser)
    refuse_unused_flags(args, parser)


def validate_common_flags(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """The checks of the flags every training CLI shares (data, negatives, optimisation, checkpoints)."""
    if args.fp16 and args.bf16:
        parser.error("--fp16 and --bf16 exclude each other: pick --fp16 on a T4, --bf16 on Ampere or newer")
    if not 0 <= args.dev_ratio < 1:
        parser.error(f"--dev_ratio must be in [0, 1), got {args.dev_ratio}")
    if not 0 <= args.warmup_ratio <= 1:
        parser.error(f"--warmup_ratio must be in [0, 1], got {args.warmup_ratio}")
    for flag in ("num_hard_negatives", "num_random_negatives", "dataloader_num_workers", "early_stopping_patience",
                 "pseudo_queries_per_document", "weight_decay", "seed"):
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
    if not 0 < args.max_false_negative_share <= 1:
        parser.error(f"--max_false_negative_share must be in (0, 1], got {args.max_false_negative_share}")
    if not 0 <= args.false_negative_margin < 1:
        parser.error(f"--false_negative_margin must be in [0, 1), got {args.false_negative_margin}")
    if args.teacher_model and not args.filter_false_negatives:
        parser.error("--teacher_model only judges false negatives: add --filter_false_negatives, or drop it")
    if args.dev_ratio > 0 and args.save_steps % args.eval_steps:
        parser.error(f"--save_steps ({args.save_steps}) must be a multiple of --eval_steps ({args.eval_steps}) "
                     "so the best checkpoint is always saved")


def refuse_unused_flags(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """A flag the run would ignore is refused: the user meant something by it that would not happen."""
    given = given_flags(args, parser)
    unused = {
        "early_stopping_patience": (args.dev_ratio == 0 and not args.cv_folds,
                                    "needs dev queries to watch, and --dev_ratio 0 holds none out"),
        "cv_keep_models": (not args.cv_folds, "keeps the models of cross-validation folds; add --cv_folds N"),
        "dev_ratio": (bool(args.cv_folds), "is unused with --cv_folds: each fold holds out its own queries"),
        "false_negative_margin": (not args.filter_false_negatives, "only matters with --filter_false_negatives"),
        "max_false_negative_share": (not args.filter_false_negatives, "only matters with --filter_false_negatives"),
        "lora_alpha": (not args.lora_r, "only matters with --lora_r N"),
        "lora_dropout": (not args.lora_r, "only matters with --lora_r N"),
        "embedding_model": (args.hard_neg_method not in EMBEDDING_METHODS,
                            f"is used by --hard_neg_method dense or hybrid, not {args.hard_neg_method}"),
    }
    for flag, (ignored, why) in unused.items():
        if flag in given and ignored:
            parser.error(f"--{flag} {why}: drop it, or add what it needs")
