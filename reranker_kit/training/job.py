"""The training job as `fine_tune_reranker.py` runs it, top to bottom: data, split, run folder, negatives,
training, outputs; or the same once per fold under --cv_folds. It takes the checked, typed settings."""

import logging
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reranker_kit.basics.distributed import is_main_process, run_on_main
from reranker_kit.basics.errors import CheckpointError, DataError, KitError
from reranker_kit.basics.files import check_writable_folder
from reranker_kit.basics.interrupts import INTERRUPTED_EXIT_CODE
from reranker_kit.basics.model_files import resolve_model_name
from reranker_kit.data.augmentation import answers_as_queries, passages_as_queries
from reranker_kit.data.loading import Query, load_corpus, load_queries
from reranker_kit.data.splits import fold_splits, merge_duplicate_queries, split_queries
from reranker_kit.run_folder import (
    CHECKPOINT_PATTERN,
    CV_PREFIX,
    CV_RESULTS_FILE,
    checkpoint_folders,
    checkpoints,
    create_run_dir,
    describe_incomplete,
    discard_unstarted_run,
    fold_of,
    incomplete_checkpoints,
    is_checkpoint,
    is_complete,
    new_run_dir,
    newest_unfinished_cross_validation,
    newest_unfinished_run_with_checkpoint,
    remove_model_files,
    resume_advice,
)
from reranker_kit.training.config import OutputSettings, TrainingConfig
from reranker_kit.training.cross_validation import (
    FOLD_RESULT_FILE,
    pooled_comparisons,
    read_fold_result,
    summarize_folds,
    write_cv_report,
    write_fold_result,
)
from reranker_kit.training.hub import push_run, require_hub_access
from reranker_kit.training.mining import MiningSettings, check_first_stage_inputs, mine
from reranker_kit.training.outputs import write_finished_run
from reranker_kit.training.progress import read_checkpoint_progress
from reranker_kit.training.result import DataSummary, FoldResult, TrainingResult
from reranker_kit.training.resume import check_base_model
from reranker_kit.training.starts import read_starts, record_start

logger = logging.getLogger("fine_tune_reranker")


def run_training(config: TrainingConfig) -> None:
    """The whole job: one run, a resumed run, or one run per fold under --cv_folds."""
    # Data: the corpus and the labelled queries, validated before anything is written.
    corpus = load_corpus(config.data.corpus_csv)
    queries = merge_duplicate_queries(load_queries(config.data.train_xlsx, corpus, config.data.sheet))
    require_negatives(corpus, queries, config.data.corpus_csv)
    resolve_model_name(config.model.base_model)  # A mistyped model folder fails before any folder is created.
    check_first_stage_inputs(MiningSettings.of(config), corpus)
    if config.output.push_to_hub:
        require_hub_access(config.output.hub_model_id)  # Not after an hour of training.
    if config.evaluation.cv_folds > 1:
        cross_validate(config, corpus, queries)
        return
    train_queries, dev_queries = split_queries(queries, config.data.dev_ratio, config.optimisation.seed)
    if not dev_queries:
        logger.warning("--dev_ratio 0: training on all %d queries; no dev metric and no best-checkpoint "
                       "choice is possible, the last step's weights are kept", len(queries))

    # Where this run writes: a new folder, or the folder of the run being resumed. Only the main
    # process creates it; under torchrun every process then uses that same folder.
    run_dir, resume_checkpoint = run_on_main(lambda: resolve_run_dir(config.output, config.model.base_model))
    with removed_if_stopped_early(run_dir, keep_folder=config.output.output_dir is not None):
        run_on_main(lambda: record_start(run_dir, config, resuming=resume_checkpoint is not None))
        train_one(config, corpus, train_queries, dev_queries, run_dir, resume_checkpoint)


@contextmanager
def removed_if_stopped_early(run_dir: Path, keep_folder: bool) -> Iterator[None]:
    """An error or Ctrl-C before the first checkpoint removes what the new run wrote: nothing to resume is left.

    A folder with a checkpoint or a finished fold (a resumed run, a stop between two folds) is kept as it
    is, and the interruption's message says how to resume it.
    """
    try:
        yield
    except KeyboardInterrupt as interrupt:
        cause = f" ({interrupt})" if str(interrupt) else ""  # "interrupted by SIGTERM"; empty for Ctrl-C.
        if not is_main_process():
            raise
        if discard_unstarted_run(run_dir, keep_folder):
            raise KeyboardInterrupt(f"interrupted before the first checkpoint: removed what this run wrote in "
                                    f"{run_dir}; nothing to resume{cause}") from None
        if str(interrupt).startswith("interrupted by") or not str(interrupt):
            raise KeyboardInterrupt(f"interrupted{cause}: kept {run_dir}; {how_to_go_on(run_dir)}") from None
        raise
    except Exception:
        if is_main_process():
            discard_unstarted_run(run_dir, keep_folder)
        raise


def how_to_go_on(run_dir: Path) -> str:
    """The resume command for a kept run folder: a cross-validation by `latest`, a run by its last checkpoint."""
    found = checkpoints(run_dir)
    if run_dir.name.startswith(CV_PREFIX) or found:
        return ("resume with: python fine_tune_reranker.py <same flags> --resume_from_checkpoint "
                f"{found[-1] if found else 'latest'}")
    return resume_advice(run_dir)


def require_negatives(corpus: dict[int, str], queries: list[Query], corpus_csv: str) -> None:
    """Every query needs a document that is not relevant to it, or it trains on positives alone."""
    widest = max(queries, key=lambda query: len(query.relevant_ids))
    if len(corpus) <= len(widest.relevant_ids):
        raise DataError(f"{corpus_csv}: {len(corpus)} document(s) leave no negative for {widest.source} row "
                        f"{widest.row}, which marks {len(widest.relevant_ids)} relevant; a reranker learns only from "
                        f"relevant and non-relevant pairs, so the corpus needs at least {len(widest.relevant_ids) + 1} "
                        "documents (a real one has about 100).")


def train_one(config: TrainingConfig, corpus: dict[int, str], train_queries: list[Query], dev_queries: list[Query],
              run_dir: Path, resume_checkpoint: Path | None = None) -> TrainingResult:
    """Mines negatives, trains, evaluates and writes one run's folder; returns its result."""
    # A resumed run's clock includes the time its earlier sessions spent up to the checkpoint.
    started = time.time() - read_checkpoint_progress(resume_checkpoint).get("wall_time_s", 0.0)
    labelled_train_queries = train_queries
    answer_queries = answers_as_queries(train_queries) if config.data.augment_with_answers else []
    # The corpus belongs to no split: its sentences may join the training side of every split and fold.
    sentence_queries = passages_as_queries(corpus, config.data.pseudo_queries_per_document)
    train_queries = train_queries + answer_queries + sentence_queries

    # Negatives and dev candidates: one first-stage index over the corpus, every query scored in one batch.
    mined = mine(MiningSettings.of(config), corpus, labelled_train_queries, train_queries, dev_queries)
    train_report, dev_report = mined.train_report, mined.dev_report
    logger.info("training pairs: %d positive, %d hard negative, %d random negative (%d queries)",
                train_report.positive_pairs, train_report.hard_negative_pairs, train_report.random_negative_pairs,
                train_report.queries)

    # Model, Trainer and training; torch and transformers load only now, after the cheap checks.
    from reranker_kit.training.run import TrainingData, train_reranker

    data = TrainingData(corpus, mined.train_groups, dev_queries, mined.dev_groups, mined.dev_candidates)
    result = train_reranker(config, data, run_dir, resume_checkpoint, started)
    if result is None:
        sys.exit(INTERRUPTED_EXIT_CODE)  # Interrupted: a checkpoint was saved and the run can be resumed.
    if result.is_main_process:
        summary = DataSummary(documents=len(corpus), train_queries=len(labelled_train_queries),
                              augmented_train_queries=len(train_queries), dev_queries=len(dev_queries),
                              train_pairs=train_report.as_dict(), dev_pairs=dev_report.as_dict(),
                              answer_queries=len(answer_queries), corpus_sentence_queries=len(sentence_queries),
                              dev_candidates_from_file=mined.dev_from_file)
        report_finished(write_finished_run(run_dir, config, result, summary, started), run_dir, result)
        if config.output.push_to_hub:
            push_run(run_dir, result.hub_model_id or config.output.hub_model_id, private=config.output.hub_private_repo)
    return result


def report_finished(info: dict, run_dir: Path, result: TrainingResult) -> None:
    logger.info("finished: %s (%.1f s)", run_dir, info["wall_time_s"])
    if result.dev is not None:
        metric = result.dev.metric_for_best_model
        logger.info("dev %s: %.4f before fine-tuning, %.4f after", metric, result.dev.pretrained[metric],
                    result.dev.fine_tuned[metric])
    if result.model_choice is not None:
        logger.info("%s", result.model_choice.log_line())


def cross_validate(config: TrainingConfig, corpus: dict[int, str], queries: list[Query]) -> None:
    """Trains one model per query fold and reports each fold's dev metrics with their mean and spread.

    Resumable as a whole: finished folds are read back from their folders, the interrupted fold goes on
    from its last checkpoint, the remaining folds train, then the report is written.
    """
    if config.output.output_dir:
        raise KitError("--cv_folds runs in a folder of its own under --runs_root: drop --output_dir")
    # A refused fold count creates no folder. The seed is checked against the first start's on resume,
    # so a resumed cross-validation gets the same folds.
    folds = list(fold_splits(queries, config.evaluation.cv_folds, config.optimisation.seed))
    check_writable_folder(config.output.runs_root, "--runs_root")
    resuming = config.output.resume_from_checkpoint is not None
    cv_dir, given = (resumed_cross_validation(config.output) if resuming
                     else (create_run_dir(config.output.runs_root, prefix=CV_PREFIX), None))
    results = []
    with removed_if_stopped_early(cv_dir, keep_folder=False):
        record_start(cv_dir, config, resuming)
        for fold, (train_queries, dev_queries) in enumerate(folds, start=1):
            logger.info("fold %d/%d: %d training and %d dev queries", fold, len(folds), len(train_queries),
                        len(dev_queries))
            results.append(run_fold(config, corpus, cv_dir / f"fold-{fold}", train_queries, dev_queries, given))
    write_cv_report(cv_dir, summarize_folds(results), config.as_arguments(), pooled_comparisons(results))
    logger.info("cross-validation finished: %s", cv_dir)


def resumed_cross_validation(output: OutputSettings) -> tuple[Path, Path | None]:
    """(the cross-validation folder to go on with, the fold checkpoint given explicitly or None for latest)."""
    if output.resume_from_checkpoint == "latest":
        cv_dir = newest_unfinished_cross_validation(output.runs_root)
        if cv_dir is None:
            raise CheckpointError(f"--resume_from_checkpoint latest with --cv_folds: no unfinished cross-validation "
                                  f"under {output.runs_root} (a {CV_PREFIX}* folder without {CV_RESULTS_FILE} that "
                                  "holds a fold checkpoint or a finished fold); start a new one without "
                                  "--resume_from_checkpoint")
        given = None
    else:
        given = given_checkpoint(Path(output.resume_from_checkpoint), cross_validating=True)
        cv_dir = given.parent.parent
        if (cv_dir / CV_RESULTS_FILE).is_file():
            raise CheckpointError(f"{cv_dir} finished already (it holds {CV_RESULTS_FILE}); start a new "
                                  "cross-validation without --resume_from_checkpoint")
    logger.info("resuming the cross-validation %s", cv_dir)
    return cv_dir, given


def run_fold(config: TrainingConfig, corpus: dict[int, str], fold_dir: Path, train_queries: list[Query],
             dev_queries: list[Query], given: Path | None) -> FoldResult:
    """One fold's result: read back when the fold finished already, else trained (resumed if it can be)."""
    saved = read_fold_result(fold_dir)
    if saved is not None:
        logger.info("%s finished already: its result is read back from %s", fold_dir.name, FOLD_RESULT_FILE)
        return saved
    checkpoint = fold_checkpoint(fold_dir, given, config.model.base_model)
    record_start(fold_dir, config, resuming=checkpoint is not None)
    result = train_one(config, corpus, train_queries, dev_queries, fold_dir, checkpoint)
    fold_result = FoldResult(dev=result.dev, fusion=result.fusion)
    write_fold_result(fold_dir, fold_result)  # Before the weights go: the report can be rebuilt from it.
    if not config.evaluation.cv_keep_models:
        remove_model_files(fold_dir)
    return fold_result


def fold_checkpoint(fold_dir: Path, given: Path | None, base_model: str) -> Path | None:
    """The checkpoint an unfinished fold goes on from; a fold without one starts over in an emptied folder."""
    found = checkpoints(fold_dir) if fold_dir.is_dir() else []
    checkpoint = given if given is not None and given.parent == fold_dir else (found[-1] if found else None)
    if checkpoint is None:
        if fold_dir.exists():
            logger.warning("%s holds no complete checkpoint: the fold starts over", fold_dir)
            shutil.rmtree(fold_dir)
        fold_dir.mkdir()
        return None
    check_base_model(checkpoint, base_model)
    remove_cut_saves_after(checkpoint)
    logger.info("resuming %s from %s", fold_dir.name, checkpoint.name)
    return checkpoint


def resolve_run_dir(output: OutputSettings, base_model: str) -> tuple[Path, Path | None]:
    """The run folder and, when resuming, the checkpoint to resume from.

    A new run always gets a folder of its own; resuming writes into the interrupted run's folder.
    """
    if output.resume_from_checkpoint is None:
        return new_run_dir(output.runs_root, output.output_dir), None
    if output.resume_from_checkpoint == "latest":
        run_dir = (Path(output.output_dir) if output.output_dir is not None
                   else newest_unfinished_run_with_checkpoint(output.runs_root))
        if run_dir is None:
            raise CheckpointError(f"--resume_from_checkpoint latest: no unfinished run with a checkpoint under "
                                  f"{output.runs_root}; start a new run instead")
        checkpoint = last_complete_checkpoint(run_dir, "--resume_from_checkpoint latest")
    else:
        checkpoint = given_checkpoint(Path(output.resume_from_checkpoint), cross_validating=False)
        run_dir = checkpoint.parent
        if output.output_dir is not None and Path(output.output_dir).resolve() != run_dir.resolve():
            raise CheckpointError(f"--output_dir {output.output_dir} differs from the folder of the checkpoint "
                                  f"({run_dir}); drop --output_dir, a resumed run continues in its own folder")
    if is_complete(run_dir):
        raise CheckpointError(f"{run_dir} finished already; to train further, start a new run with "
                              f"--base_model {run_dir}")
    check_base_model(checkpoint, base_model)
    remove_cut_saves_after(checkpoint)
    logger.info("resuming %s from %s", run_dir, checkpoint.name)
    return run_dir, checkpoint


def given_checkpoint(checkpoint: Path, cross_validating: bool) -> Path:
    """An explicit --resume_from_checkpoint, checked: a complete checkpoint, and a fold only under --cv_folds."""
    if checkpoint.is_dir() and CHECKPOINT_PATTERN.match(checkpoint.name) and not is_checkpoint(checkpoint):
        raise CheckpointError(f"--resume_from_checkpoint {describe_incomplete(checkpoint)}; "
                              f"{resume_advice(checkpoint.parent)}")
    if not is_checkpoint(checkpoint):
        raise CheckpointError(
            f"--resume_from_checkpoint {checkpoint} is not a Trainer checkpoint (a checkpoint-N folder with "
            "trainer_state.json, config.json and the weights). To start from a model's weights only, pass it "
            "as --base_model instead.")
    fold = fold_of(checkpoint.parent)
    if fold is not None and not cross_validating:
        cv_dir, number = fold
        folds = (read_starts(cv_dir)[:1] or [{}])[0].get("arguments", {}).get("cv_folds", "N")
        raise CheckpointError(f"{checkpoint} belongs to fold {number} of the cross-validation {cv_dir}, which "
                              f"resumes as a whole: keep --cv_folds {folds} and the other flags of that run, with "
                              f"--resume_from_checkpoint {checkpoint} (or latest)")
    if fold is None and cross_validating:
        raise CheckpointError(f"--cv_folds resumes a cross-validation: {checkpoint} is no fold-N checkpoint of a "
                              f"{CV_PREFIX}* folder; pass one, or --resume_from_checkpoint latest")
    return checkpoint


def last_complete_checkpoint(run_dir: Path, asked: str) -> Path:
    """The newest complete checkpoint of an unfinished run; refuses, saying what to do, when it has none."""
    found, folders = checkpoints(run_dir), checkpoint_folders(run_dir)
    if not found and folders:
        raise CheckpointError(f"{asked}: {describe_incomplete(folders[-1])}; {resume_advice(run_dir)}")
    if not found:
        raise CheckpointError(f"{asked}: {run_dir} holds no checkpoint-N folder; start a new run instead")
    return found[-1]


def remove_cut_saves_after(checkpoint: Path) -> None:
    """Removes the checkpoint folders after `checkpoint` whose save was cut short: the Trainer saves them again."""
    step = int(CHECKPOINT_PATTERN.match(checkpoint.name).group(1))
    for folder in incomplete_checkpoints(checkpoint.parent):
        if int(CHECKPOINT_PATTERN.match(folder.name).group(1)) > step:
            logger.warning("removing %s; resuming from %s", describe_incomplete(folder), checkpoint.name)
            shutil.rmtree(folder)

