"""The embedder job as `fine_tune_embedder.py` runs it, top to bottom: data, split, run folder, negatives,
training, outputs; or the same once per fold under --cv_folds. It takes the typed settings, never flags.

Loading, validation, duplicate merging, splitting, augmentation, mining and the run-folder life cycle are
the reranker job's own modules; only the model, its loss and its dev metric differ.
"""

import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

from reranker_kit.basics.distributed import run_on_main
from reranker_kit.basics.errors import KitError
from reranker_kit.basics.files import check_writable_folder
from reranker_kit.basics.interrupts import INTERRUPTED_EXIT_CODE
from reranker_kit.basics.model_files import resolve_model_name
from reranker_kit.data.augmentation import answers_as_queries, passages_as_queries
from reranker_kit.data.loading import Query, load_corpus, load_queries
from reranker_kit.data.splits import fold_splits, merge_duplicate_queries, split_queries
from reranker_kit.embedder.config import EmbedderSettings, mining_settings
from reranker_kit.embedder.dataset import build_triples
from reranker_kit.embedder.dev_evaluation import FirstStageDev
from reranker_kit.embedder.outputs import write_finished_embedder_run
from reranker_kit.embedder.result import EmbedderResult
from reranker_kit.run_folder import EMBEDDER_CV_PREFIX, EMBEDDER_PREFIX, create_run_dir, locate_run_dir, remove_model_files
from reranker_kit.training.job import removed_if_stopped_early, require_negatives
from reranker_kit.training.mining import check_first_stage_inputs, mine
from reranker_kit.training.progress import read_checkpoint_progress
from reranker_kit.training.resume import check_base_model

logger = logging.getLogger("fine_tune_embedder")


def run_embedder_job(settings: EmbedderSettings) -> None:
    # Data: the corpus and the labelled queries, validated before anything is written.
    data = settings.data
    corpus = load_corpus(data.corpus_csv)
    queries = merge_duplicate_queries(load_queries(data.train_xlsx, corpus, data.sheet))
    require_negatives(corpus, queries, data.corpus_csv)
    resolve_model_name(settings.model.base_model)  # A mistyped model folder fails before any folder is created.
    check_first_stage_inputs(mining_settings(settings), corpus)
    if data.cv_folds > 1:
        cross_validate(settings, corpus, queries)
        return
    train_queries, dev_queries = split_queries(queries, data.dev_ratio, settings.optimisation.seed)
    if not dev_queries:
        logger.warning("--dev_ratio 0: training on all %d queries; no dev metric, no checkpoint choice and no "
                       "hybrid weight: the last step's weights are kept", len(queries))
    run_dir, resume_checkpoint = run_on_main(lambda: resolve_embedder_run_dir(settings))
    with removed_if_stopped_early(run_dir, keep_folder=settings.output.output_dir is not None):
        train_one(settings, corpus, train_queries, dev_queries, run_dir, resume_checkpoint)


def resolve_embedder_run_dir(settings: EmbedderSettings) -> tuple[Path, Path | None]:
    output = settings.output
    run_dir, checkpoint = locate_run_dir(output.runs_root, output.output_dir, output.resume_from_checkpoint,
                                         prefix=EMBEDDER_PREFIX)
    if checkpoint is not None:
        check_base_model(checkpoint, settings.model.base_model)
        logger.info("resuming %s from %s", run_dir, checkpoint.name)
    return run_dir, checkpoint


def train_one(settings: EmbedderSettings, corpus: dict[int, str], train_queries: list[Query],
              dev_queries: list[Query], run_dir: Path, resume_checkpoint: Path | None = None) -> EmbedderResult:
    """Mines negatives, trains, evaluates and writes one run's folder; returns its result."""
    # A resumed run's clock includes the time its earlier sessions spent up to the checkpoint.
    started = time.time() - read_checkpoint_progress(resume_checkpoint).get("wall_time_s", 0.0)
    answer_queries = answers_as_queries(train_queries) if settings.data.augment_with_answers else []
    sentence_queries = passages_as_queries(corpus, settings.data.pseudo_queries_per_document)
    all_train_queries = train_queries + answer_queries + sentence_queries

    # Hard negatives: one first-stage index over the corpus (bm25 by default), every query in one batch.
    mined = mine(mining_settings(settings), corpus, train_queries, all_train_queries, [])
    negatives = settings.negatives
    triples = build_triples(mined.train_groups, corpus, negatives.num_hard_negatives + negatives.num_random_negatives)
    logger.info("training rows: %d (query, positive, %d negative) from %d queries; %d group(s) without a negative "
                "dropped", triples.rows, negatives.num_hard_negatives + negatives.num_random_negatives,
                len(all_train_queries), triples.dropped_without_negative)
    dev = FirstStageDev(corpus, dev_queries, settings.evaluation.cutoffs) if dev_queries else None

    from reranker_kit.embedder.run import EmbedderData, train_embedder  # torch loads only now.

    result = train_embedder(settings, EmbedderData(triples, dev), run_dir, resume_checkpoint, started)
    if result is None:
        sys.exit(INTERRUPTED_EXIT_CODE)  # Interrupted: a checkpoint was saved and the run can be resumed.
    counts = {"documents": len(corpus), "train_queries": len(train_queries), "dev_queries": len(dev_queries),
              "answer_queries": len(answer_queries), "corpus_sentence_queries": len(sentence_queries),
              "augmented_train_queries": len(all_train_queries), "train_rows": triples.rows,
              "rows_dropped_without_negative": triples.dropped_without_negative,
              "pairs": mined.train_report.as_dict()}
    info = write_finished_embedder_run(run_dir, settings, result, counts, started)
    logger.info("finished: %s (%.1f s)", run_dir, info["wall_time_s"])
    return result


def cross_validate(settings: EmbedderSettings, corpus: dict[int, str], queries: list[Query]) -> Path:
    """One encoder per query fold, each measured on its held-out fold (which never picks its checkpoint)."""
    from reranker_kit.embedder.cross_validation import summarize_folds, write_cv_report

    if settings.output.resume_from_checkpoint or settings.output.output_dir:
        raise KitError("--cv_folds runs in a new folder of its own: drop --resume_from_checkpoint and --output_dir")
    folds = list(fold_splits(queries, settings.data.cv_folds, settings.optimisation.seed))
    check_writable_folder(settings.output.runs_root, "--runs_root")
    cv_dir = create_run_dir(settings.output.runs_root, prefix=EMBEDDER_CV_PREFIX)
    fold_settings = replace(settings, evaluation=replace(settings.evaluation, select_on_dev=False))
    results = []
    with removed_if_stopped_early(cv_dir, keep_folder=False):
        for fold, (train_queries, dev_queries) in enumerate(folds, start=1):
            logger.info("fold %d/%d: %d training and %d held-out queries", fold, len(folds), len(train_queries),
                        len(dev_queries))
            fold_dir = cv_dir / f"fold-{fold}"
            fold_dir.mkdir()
            results.append(train_one(fold_settings, corpus, train_queries, dev_queries, fold_dir))
            if not settings.output.cv_keep_models:
                remove_model_files(fold_dir)
    write_cv_report(cv_dir, summarize_folds(results), settings.as_dict())
    logger.info("cross-validation finished: %s", cv_dir)
    return cv_dir
