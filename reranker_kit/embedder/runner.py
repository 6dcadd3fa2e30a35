"""`fine_tune_embedder.py`'s job: the shared runner (`finetune.runner`) with the embedder's own steps.

What both jobs do alike (data, mining, the run folder, resume, cross-validation) is the runner's; here is
what a bi-encoder needs: the log line on its rows, the Trainer run (`embedder.run`, torch loads only then),
its outputs (with the hybrid weight main.py applies) and its cross-validation table.
"""

import logging
from pathlib import Path

from reranker_kit.embedder.arguments import EmbedderSettings
from reranker_kit.embedder.cross_validation import EmbedderFoldResult, write_embedder_cv_report
from reranker_kit.embedder.outputs import write_finished_embedder_run
from reranker_kit.embedder.result import EmbedderResult
from reranker_kit.finetune.data import TrainingQueries
from reranker_kit.finetune.mining import MinedData
from reranker_kit.finetune.run_folders import JobKind
from reranker_kit.finetune.runner import FineTuneRunner, RunInputs
from reranker_kit.run_folder import EMBEDDER_CV_PREFIX, EMBEDDER_PREFIX

logger = logging.getLogger("fine_tune_embedder")

EMBEDDER = JobKind(name="embedder", run_prefix=EMBEDDER_PREFIX, cv_prefix=EMBEDDER_CV_PREFIX,
                   script="fine_tune_embedder.py")


class EmbedderRunner(FineTuneRunner):
    kind = EMBEDDER
    settings: EmbedderSettings

    def describe_training_data(self, mined: MinedData, queries: TrainingQueries) -> None:
        report = mined.train_report
        logger.info("mined for %d queries: %d positive, %d hard negative and %d random negative pairs",
                    report.queries, report.positive_pairs, report.hard_negative_pairs, report.random_negative_pairs)

    def train_and_save(self, inputs: RunInputs, run_dir: Path, checkpoint: Path | None, started: float
                       ) -> EmbedderResult | None:
        from reranker_kit.embedder.run import train_embedder  # torch and sentence-transformers load only now.

        return train_embedder(self.settings, inputs, run_dir, checkpoint, started, self.kind)

    def write_outputs(self, run_dir: Path, result: EmbedderResult, inputs: RunInputs, started: float) -> dict:
        queries = inputs.queries
        counts = {"documents": len(inputs.corpus), "train_queries": len(queries.labelled),
                  "dev_queries": len(inputs.dev_queries), "answer_queries": len(queries.answers),
                  "corpus_sentence_queries": len(queries.sentences), "augmented_train_queries": len(queries.all),
                  "train_rows": result.train_rows, "rows_short_of_negatives": result.rows_short_of_negatives,
                  "pairs": inputs.mined.train_report.as_dict()}
        return write_finished_embedder_run(run_dir, self.settings, result, counts, started)

    def fold_result(self, result: EmbedderResult) -> EmbedderFoldResult:
        return EmbedderFoldResult(result.dev)

    def fold_from_json(self, payload: dict) -> EmbedderFoldResult:
        return EmbedderFoldResult.from_json(payload)

    def write_cv_report(self, cv_dir: Path, results: list[EmbedderFoldResult]) -> None:
        write_embedder_cv_report(cv_dir, results, self.settings.as_arguments())
