"""The runner both jobs are: one fine-tuning run top to bottom, or one per fold, with the steps each job overrides.

As FlagEmbedding's abstract runner: `run` checks the data and the models, opens (or resumes) the run folder,
records the start, then `train_one` mines negatives the same way for both jobs and hands the job's own
steps what they need: `train_and_save` (its model, dataset, Trainer, training, judging and saved weights),
`write_outputs` (its metrics and model card, then training_info.json through `finetune.outputs`), and
the cross-validation hooks. A stop signal ends the run with a saved checkpoint and the command to resume.
"""

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from reranker_kit.basics.distributed import run_on_main
from reranker_kit.basics.errors import SettingError
from reranker_kit.basics.exits import StoppedWithCheckpoint
from reranker_kit.basics.model_files import resolve_model_name
from reranker_kit.data.loading import Query
from reranker_kit.data.splits import split_queries
from reranker_kit.finetune.cross_validation import cross_validate
from reranker_kit.finetune.data import LabelledData, TrainingQueries, load_labelled_data, training_queries
from reranker_kit.finetune.mining import MinedData, MiningSettings, check_first_stage_inputs, mine
from reranker_kit.finetune.outputs import remove_intermediate_checkpoints
from reranker_kit.finetune.progress import read_checkpoint_progress
from reranker_kit.finetune.run_folders import JobKind, open_run, removed_if_stopped_early
from reranker_kit.finetune.settings import JobSettings
from reranker_kit.finetune.starts import record_start
from reranker_kit.run_folder import EMBEDDER_PREFIX, checkpoints, newest_finished_run

logger = logging.getLogger(__name__)


LATEST = "latest"


def with_latest_embedder(settings: JobSettings) -> JobSettings:
    """`embedding_model` latest: the newest finished fine_tune_embedder.py run under `runs_root`, recorded by path."""
    if settings.negatives.embedding_model != LATEST:
        return settings
    run_dir = newest_finished_run(settings.output.runs_root, EMBEDDER_PREFIX)
    if run_dir is None:
        raise SettingError("embedding_model", f"`embedding_model` latest: no finished embedder run under "
                           f"{settings.output.runs_root}; run fine_tune_embedder.py first, or give a model")
    logger.info("embedding model: %s (the newest finished embedder run under %s)", run_dir, settings.output.runs_root)
    return settings.with_values({"embedding_model": str(run_dir.resolve())})  # Found again from any folder.


@dataclass(frozen=True)
class RunInputs:
    """What one run trains and is judged on, mined before torch is imported."""

    corpus: dict[int, str]
    queries: TrainingQueries
    dev_queries: list[Query]
    mined: MinedData
    in_fold: bool  # A cross-validation fold: its held-out queries measure, they never choose.


class FineTuneRunner(ABC):
    """One fine-tuning job; `training.runner.RerankerRunner` and `embedder.runner.EmbedderRunner` fill in its steps."""

    kind: ClassVar[JobKind]

    def __init__(self, settings: JobSettings):
        self.settings = settings

    def run(self) -> None:
        """The whole job: one run, a resumed run, or one run per fold under `cv_folds`."""
        settings = self.settings = with_latest_embedder(self.settings)
        # Data and models, checked before any folder is created.
        labelled = load_labelled_data(settings.data)
        resolve_model_name(settings.model.base_model)  # A mistyped model folder fails now.
        check_first_stage_inputs(MiningSettings.of(settings), labelled.corpus)
        self.check_before_training()
        if settings.evaluation.cv_folds > 1:
            cross_validate(self, labelled)
            return
        train_queries, dev_queries = split_queries(labelled.queries, settings.data.dev_ratio, settings.optimisation.seed)
        if not dev_queries:
            logger.warning("`dev_ratio` 0: training on all %d queries; nothing judges the trained weights, the last "
                           "step's are kept", len(labelled.queries))
        # Where this run writes: a new folder, or the folder of the run being resumed. Only the main process
        # opens it; under torchrun every process then uses that same folder.
        run_dir, checkpoint = run_on_main(lambda: open_run(settings.output, settings.model.base_model, self.kind))
        with removed_if_stopped_early(run_dir, keep_folder=settings.output.output_dir is not None, kind=self.kind):
            run_on_main(lambda: record_start(run_dir, settings, resuming=checkpoint is not None))
            self.train_one(labelled, train_queries, dev_queries, run_dir, checkpoint)

    def train_one(self, labelled: LabelledData, train_queries: list[Query], dev_queries: list[Query], run_dir: Path,
                  checkpoint: Path | None, in_fold: bool = False):
        """Mines negatives, trains, judges and writes one run's folder; returns the job's result."""
        # A resumed run's clock includes the time its earlier sessions spent up to the checkpoint.
        started = time.time() - read_checkpoint_progress(checkpoint).get("wall_time_s", 0.0)
        queries = training_queries(train_queries, labelled.corpus, self.settings.data)
        # Negatives and dev candidates: one first-stage index over the corpus, every query scored in one batch.
        mined = mine(MiningSettings.of(self.settings), labelled.corpus, queries.labelled, queries.all, dev_queries)
        self.describe_training_data(mined, queries)
        inputs = RunInputs(labelled.corpus, queries, dev_queries, mined, in_fold)
        result = self.train_and_save(inputs, run_dir, checkpoint, started)
        if result is None:  # A stop signal: the checkpoint it saved is where the run goes on from.
            raise StoppedWithCheckpoint(f"stopped with a checkpoint saved in {run_dir}; resume with: "
                                        f"{self.kind.resume_command()} {self.last_checkpoint(run_dir)}")
        if self.is_main_process(result):
            info = self.write_outputs(run_dir, result, inputs, started)
            remove_intermediate_checkpoints(run_dir, keep=self.settings.output.keep_checkpoints or in_fold)
            logger.info("finished: %s (%.1f s)", run_dir, info["wall_time_s"])
            self.after_finish(run_dir, result)
        return result

    @staticmethod
    def last_checkpoint(run_dir: Path) -> Path:
        found = checkpoints(run_dir)
        return found[-1] if found else run_dir

    # The steps each job fills in.

    def check_before_training(self) -> None:
        """What must hold before an hour of training (Hub access for a push, say); nothing by default."""

    @abstractmethod
    def describe_training_data(self, mined: MinedData, queries: TrainingQueries) -> None:
        """One log line with what the run trains on."""

    @abstractmethod
    def train_and_save(self, inputs: RunInputs, run_dir: Path, checkpoint: Path | None, started: float):
        """Loads the model, trains (from `checkpoint` when resuming), judges against the base and saves the kept
        weights in `run_dir`; returns the job's result, or None when a stop signal ended training."""

    @abstractmethod
    def write_outputs(self, run_dir: Path, result, inputs: RunInputs, started: float) -> dict:
        """The run's metrics, curves and model card, then training_info.json last; returns that info."""

    def is_main_process(self, result) -> bool:
        return True

    def after_finish(self, run_dir: Path, result) -> None:
        """What follows a finished run (a push to the Hub, say); nothing by default."""

    @abstractmethod
    def fold_result(self, result):
        """What cross-validation keeps of a finished fold (an object with `as_json()`)."""

    @abstractmethod
    def fold_from_json(self, payload: dict):
        """A fold result read back from its file."""

    @abstractmethod
    def write_cv_report(self, cv_dir: Path, results: list) -> None:
        """The cross-validation's tables and files, from every fold's result."""
