"""fine_tune_embedder.py's command line: its flags, their checks, and their conversion into typed settings.

The data and negatives flags are the reranker CLI's own (`training.arguments`), checked by the same
`validate_common_flags`; the Namespace becomes `EmbedderSettings` here and goes no further.
"""

import argparse
import importlib.util

from reranker_kit.basics.model_files import OFFLINE_MODEL_ALIAS
from reranker_kit.commands.common import flags_on_command_line, parse_arguments
from reranker_kit.commands.reranker_flags import (
    REPORT_TO_CHOICES,
    TRACKER_PACKAGES,
    add_data_flags,
    add_negatives_flags,
    add_optimiser_flags,
    validate_common_flags,
)
from reranker_kit.embedder.config import (
    DEFAULT_EMBEDDER_BASE,
    FIRST_STAGE_METRICS,
    LOSSES,
    DataSettings,
    EmbedderSettings,
    EvaluationSettings,
    ModelSettings,
    NegativeSettings,
    OptimisationSettings,
    OutputSettings,
)
from reranker_kit.metrics import CUTOFFS
from reranker_kit.run_folder import EMBEDDER_PREFIX
from reranker_kit.training.cpu_defaults import EMBEDDER_ON_CPU, cpu_sized

DESCRIPTION = "Fine-tune the first stage: a sentence-transformers embedding model on the club's corpus and queries."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = parser.add_argument_group("data")
    add_data_flags(data)
    add_negatives_flags(parser.add_argument_group("negatives"))
    # In-batch negatives already give every query the other rows' documents: one mined hard negative a row.
    parser.set_defaults(num_hard_negatives=1, num_random_negatives=0)
    _add_model_and_training_flags(parser.add_argument_group("model and training"))
    _add_evaluation_and_output_flags(parser.add_argument_group("evaluation, checkpoints and output"))
    return parser


def _add_model_and_training_flags(group) -> None:
    group.add_argument("--base_model", type=str, default=DEFAULT_EMBEDDER_BASE,
                       help=f"Sentence-transformers model to fine-tune: Hub id, folder, or '{OFFLINE_MODEL_ALIAS}' offline.")
    group.add_argument("--max_seq_length", type=int, default=512, help="Token budget of one query or document.")
    group.add_argument("--freeze_word_embeddings", action="store_true",
                       help="Keep the word-embedding matrix fixed: less memory and faster steps on large vocabularies.")
    group.add_argument("--loss", choices=LOSSES, default="mnrl",
                       help="mnrl: MultipleNegativesRankingLoss; cached_mnrl: its GradCache form, for large batches "
                            "on a small GPU (--mini_batch_size texts per forward pass).")
    group.add_argument("--mini_batch_size", type=int, default=16, help="Texts per forward pass of cached_mnrl.")
    group.add_argument("--batch_size", type=int, default=32,
                       help="Rows per device batch; each row's query sees every other row's documents as negatives.")
    group.add_argument("--gradient_accumulation_steps", type=int, default=1,
                       help="Batches per optimizer step (does not add in-batch negatives; use cached_mnrl for that).")
    group.add_argument("--epochs", type=float, default=3, help="Passes over the training rows.")
    add_optimiser_flags(group, seeds="the split, the negatives and the shuffling")


def _add_evaluation_and_output_flags(group) -> None:
    group.add_argument("--metric_for_best_model", type=str, default="recall@20",
                       help="Dev first-stage metric that picks the checkpoint (the base encoder competes too): "
                            "hit@k, mrr@k or recall@k, k in 3, 5, 7 or --dev_top_n.")
    group.add_argument("--hybrid_metric", type=str, default="mrr@5",
                       help="Dev metric the hybrid's dense weight is chosen on (guarded, shrunk toward BM25).")
    group.add_argument("--dev_top_n", type=int, default=20,
                       help="The reranking depth (main.py's --top_n): dev recall is also reported at it.")
    group.add_argument("--eval_steps", type=int, default=100, help="Evaluate on the dev queries every N steps.")
    group.add_argument("--save_steps", type=int, default=100, help="Save a checkpoint every N steps.")
    group.add_argument("--save_total_limit", type=int, default=2, help="Checkpoints kept (the best is always kept).")
    group.add_argument("--logging_steps", type=int, default=10, help="Log the training loss every N steps.")
    group.add_argument("--early_stopping_patience", type=int, default=0, help="Stop after N evaluations without gain.")
    group.add_argument("--eval_batch_size", type=int, default=32, help="Pairs per batch of the false-negative teacher.")
    group.add_argument("--cv_folds", type=int, default=0,
                       help="Cross-validate instead: one encoder per query fold (N >= 2), each measured on its fold.")
    group.add_argument("--cv_keep_models", action="store_true", help="Keep each fold's weights and checkpoints.")
    group.add_argument("--output_dir", type=str, default=None,
                       help=f"Run folder; default: <runs_root>/{EMBEDDER_PREFIX}YYYYMMDD-HHMMSS. Must be new or empty.")
    group.add_argument("--runs_root", type=str, default="outputs", help="Where new run folders are created.")
    group.add_argument("--resume_from_checkpoint", type=str, default=None,
                       help="Continue an interrupted run: a checkpoint-N folder, or 'latest'.")
    group.add_argument("--report_to", choices=REPORT_TO_CHOICES, default="none", help="Send the loss and dev metrics "
                       "to a tracker (the Trainer's integrations).")


def _check_metric(parser, flag: str, value: str, ks: set[int]) -> None:
    name, _, k = value.partition("@")
    if name not in FIRST_STAGE_METRICS or not k.isdigit() or int(k) not in ks:
        parser.error(f"--{flag} must be one of {FIRST_STAGE_METRICS} at a k in {sorted(ks)} (such as recall@20), "
                     f"got {value!r}")


def validate_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """The reranker CLI's checks of the shared flags, then the embedder's own."""
    validate_common_flags(args, parser)
    _check_metric(parser, "metric_for_best_model", args.metric_for_best_model, {*CUTOFFS, args.dev_top_n})
    _check_metric(parser, "hybrid_metric", args.hybrid_metric, set(CUTOFFS))
    if args.mini_batch_size < 1:
        parser.error(f"--mini_batch_size must be 1 or more, got {args.mini_batch_size}")
    if args.mini_batch_size != 16 and args.loss != "cached_mnrl":
        parser.error("--mini_batch_size only matters with --loss cached_mnrl: add it, or drop --mini_batch_size")
    if args.filter_false_negatives and not args.teacher_model:
        parser.error("--filter_false_negatives needs --teacher_model: a reranker that already ranks (such as "
                     "namdp-ptit/ViRanker or a fine-tuned reranker run); a bi-encoder base is no judge of pairs")
    package = TRACKER_PACKAGES.get(args.report_to)
    if package and importlib.util.find_spec(package) is None:
        parser.error(f"--report_to {args.report_to} needs the package {package}: pip install {package}, or drop it")


def settings_from_args(args: argparse.Namespace) -> EmbedderSettings:
    """The command line's one conversion into typed settings."""
    def pick(cls):
        return cls(**{name: getattr(args, name) for name in cls.__dataclass_fields__ if hasattr(args, name)})

    return EmbedderSettings(data=pick(DataSettings), negatives=pick(NegativeSettings), model=pick(ModelSettings),
                            optimisation=pick(OptimisationSettings), evaluation=pick(EvaluationSettings),
                            output=pick(OutputSettings))


def main(argv: list[str] | None = None) -> None:
    from reranker_kit.embedder.job import run_embedder_job

    parser = build_parser()
    args = parse_arguments(parser, validate_args, argv)
    sized = cpu_sized(vars(args), flags_on_command_line(parser, argv), EMBEDDER_ON_CPU, args.base_model)
    run_embedder_job(settings_from_args(argparse.Namespace(**sized)))
