"""`fine_tune_embedder.py`: flags generated from the embedder's settings, checked, sized for a CPU, then the job."""

from reranker_kit.commands.settings_flags import job_parser, parse_job_settings
from reranker_kit.embedder.arguments import EmbedderSettings
from reranker_kit.embedder.runner import EmbedderRunner

DESCRIPTION = "Fine-tune the first stage: a sentence-transformers embedding model on the club's corpus and queries."


def build_parser():
    return job_parser(EmbedderSettings, DESCRIPTION)


def parse_settings_from(argv: list[str] | None = None) -> EmbedderSettings:
    return parse_job_settings(build_parser(), EmbedderSettings, argv)


def main(argv: list[str] | None = None) -> None:
    EmbedderRunner(parse_settings_from(argv)).run()
