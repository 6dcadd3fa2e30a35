"""`fine_tune_reranker.py`'s job: the shared runner (`finetune.runner`) with the reranker's own steps.

What both jobs do alike (data, mining, the run folder, resume, cross-validation) is the runner's; here is
what a cross-encoder needs: the Hub check before training, the log line on its pairs, the Trainer run
(`training.run`, torch loads only then), its outputs and its cross-validation table.
"""

import logging
from pathlib import Path

from reranker_kit.finetune.data import TrainingQueries
from reranker_kit.finetune.mining import MinedData
from reranker_kit.finetune.run_folders import JobKind
from reranker_kit.finetune.runner import FineTuneRunner, RunInputs
from reranker_kit.run_folder import CV_PREFIX, RUN_PREFIX
from reranker_kit.training.arguments import RerankerSettings
from reranker_kit.training.cross_validation import write_reranker_cv_report
from reranker_kit.training.hub import push_run, require_hub_access
from reranker_kit.training.outputs import write_finished_run
from reranker_kit.training.result import DataSummary, FoldResult, TrainingResult

logger = logging.getLogger("fine_tune_reranker")

RERANKER = JobKind(name="reranker", run_prefix=RUN_PREFIX, cv_prefix=CV_PREFIX, script="fine_tune_reranker.py")


class RerankerRunner(FineTuneRunner):
    kind = RERANKER
    settings: RerankerSettings

    def check_before_training(self) -> None:
        if self.settings.output.push_to_hub:
            require_hub_access(self.settings.output.hub_model_id)  # Not after an hour of training.

    def describe_training_data(self, mined: MinedData, queries: TrainingQueries) -> None:
        report = mined.train_report
        logger.info("training pairs: %d positive, %d hard negative, %d random negative (%d queries)",
                    report.positive_pairs, report.hard_negative_pairs, report.random_negative_pairs, report.queries)

    def train_and_save(self, inputs: RunInputs, run_dir: Path, checkpoint: Path | None, started: float
                       ) -> TrainingResult | None:
        from reranker_kit.training.run import train_reranker  # torch and transformers load only now.

        return train_reranker(self.settings, inputs, run_dir, checkpoint, started, self.kind)

    def is_main_process(self, result: TrainingResult) -> bool:
        return result.is_main_process

    def write_outputs(self, run_dir: Path, result: TrainingResult, inputs: RunInputs, started: float) -> dict:
        mined, queries = inputs.mined, inputs.queries
        summary = DataSummary(documents=len(inputs.corpus), train_queries=len(queries.labelled),
                              augmented_train_queries=len(queries.all), dev_queries=len(inputs.dev_queries),
                              train_pairs=mined.train_report.as_dict(), dev_pairs=mined.dev_report.as_dict(),
                              answer_queries=len(queries.answers), corpus_sentence_queries=len(queries.sentences),
                              dev_candidates_from_file=mined.dev_from_file)
        info = write_finished_run(run_dir, self.settings, result, summary, started, inputs.in_fold)
        if result.dev is not None:
            metric = result.dev.metric_for_best_model
            logger.info("dev %s: %.4f before fine-tuning, %.4f after", metric, result.dev.pretrained[metric],
                        result.dev.fine_tuned[metric])
        if result.model_choice is not None:
            logger.info("%s", result.model_choice.verdict.log_line())
        return info

    def after_finish(self, run_dir: Path, result: TrainingResult) -> None:
        if self.settings.output.push_to_hub:
            push_run(run_dir, result.hub_model_id or self.settings.output.hub_model_id,
                     private=self.settings.output.hub_private_repo)

    def fold_result(self, result: TrainingResult) -> FoldResult:
        return FoldResult(dev=result.dev, fusion=result.fusion)

    def fold_from_json(self, payload: dict) -> FoldResult:
        return FoldResult.from_json(payload)

    def write_cv_report(self, cv_dir: Path, results: list[FoldResult]) -> None:
        write_reranker_cv_report(cv_dir, results, self.settings.as_arguments())
