"""`fine_tune_reranker.py`: parse and check the flags, turn them into the typed settings, run the job."""

from reranker_kit.commands.common import flags_on_command_line, parse_arguments
from reranker_kit.commands.reranker_flags import build_parser, validate_args
from reranker_kit.training.config import TrainingConfig
from reranker_kit.training.cpu_defaults import RERANKER_ON_CPU, cpu_sized
from reranker_kit.training.job import run_training


def parse_config(argv: list[str] | None = None) -> TrainingConfig:
    """The checked flags as the job's typed settings (bad flags exit 2 with usage), sized for a CPU without a GPU."""
    parser = build_parser()
    args = parse_arguments(parser, validate_args, argv)
    arguments = cpu_sized(vars(args), flags_on_command_line(parser, argv), RERANKER_ON_CPU, args.base_model)
    return TrainingConfig.from_arguments(arguments)


def main(argv: list[str] | None = None) -> None:
    run_training(parse_config(argv))
