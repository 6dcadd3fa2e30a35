"""`fine_tune_reranker.py`: flags generated from the reranker's settings, checked, sized for a CPU, then the job."""

from reranker_kit.commands.settings_flags import job_parser, parse_job_settings
from reranker_kit.training.arguments import RerankerSettings
from reranker_kit.training.runner import RerankerRunner

DESCRIPTION = "Fine-tune a cross-encoder reranker on the club's corpus and queries."


def build_parser():
    return job_parser(RerankerSettings, DESCRIPTION)


def parse_settings_from(argv: list[str] | None = None) -> RerankerSettings:
    return parse_job_settings(build_parser(), RerankerSettings, argv)


def main(argv: list[str] | None = None) -> None:
    RerankerRunner(parse_settings_from(argv)).run()
