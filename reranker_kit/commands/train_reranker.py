"""`fine_tune_reranker.py`: parse and check the flags, turn them into the typed settings, run the job."""

from reranker_kit.commands.common import parse_arguments
from reranker_kit.commands.reranker_flags import build_parser, validate_args
from reranker_kit.training.config import TrainingConfig
from reranker_kit.training.job import run_training


def parse_config(argv: list[str] | None = None) -> TrainingConfig:
    """The checked flags as the job's typed settings (bad flags exit 2 with usage)."""
    args = parse_arguments(build_parser(), validate_args, argv)
    return TrainingConfig.from_arguments(vars(args))


def main(argv: list[str] | None = None) -> None:
    run_training(parse_config(argv))
