"""`main.py`: parse and check the flags, turn them into the typed settings, run the benchmark."""

from reranker_kit.benchmark.run import run_benchmark
from reranker_kit.benchmark.settings import BenchmarkSettings
from reranker_kit.commands.benchmark_flags import build_parser, validate_args
from reranker_kit.commands.common import parse_arguments


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(build_parser(), validate_args, argv)
    run_benchmark(BenchmarkSettings.from_arguments(vars(args)))
