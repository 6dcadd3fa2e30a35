"""K-fold cross-validation over queries, the same loop for both jobs: folds, resuming a cross-validation as a
whole, the held-out choice of a fusion weight, and the report files.

With about 100 queries a single 20-query dev split is noisy; the mean and spread over folds say how much
of a difference between recipes is real. Each fold trains on the other folds' queries and is measured on
its own, which never picks its checkpoint nor its weights (a fold is `not judged`); a fusion weight is
chosen on the *other* folds' held-out queries, as a user would ship it blind. A finished fold's result is
kept in its folder, so an interrupted cross-validation goes on where it stopped.
"""

import logging
from collections.abc import Callable
from pathlib import Path

from reranker_kit.basics.files import DamagedFile, read_json_object, write_file_atomic, write_json_atomic
from reranker_kit.data.splits import fold_splits
from reranker_kit.finetune.run_folders import fold_checkpoint, open_cross_validation, removed_if_stopped_early
from reranker_kit.finetune.starts import record_start
from reranker_kit.fusion import FusionChoice, choose_fusion, setting_key
from reranker_kit.run_folder import CV_RESULTS_FILE, remove_model_files

logger = logging.getLogger(__name__)

# A finished fold's metrics with their per-query values: enough to rebuild the report when an interrupted
# cross-validation is resumed, after the fold's weights were removed.
FOLD_RESULT_FILE = "fold_result.json"


def cross_validate(runner, labelled) -> Path:
    """One model per query fold, each measured on its held-out fold; the report at the end. Resumable as a whole."""
    settings, kind = runner.settings, runner.kind
    # A refused fold count creates no folder. The seed is checked against the first start's on resume,
    # so a resumed cross-validation gets the same folds.
    folds = list(fold_splits(labelled.queries, settings.evaluation.cv_folds, settings.optimisation.seed))
    cv_dir, given = open_cross_validation(settings.output, kind)
    results = []
    with removed_if_stopped_early(cv_dir, keep_folder=False, kind=kind):
        record_start(cv_dir, settings, resuming=settings.output.resume_from_checkpoint is not None)
        for fold, (train_queries, held_out) in enumerate(folds, start=1):
            logger.info("fold %d/%d: %d training and %d held-out queries", fold, len(folds), len(train_queries),
                        len(held_out))
            fold_dir = cv_dir / f"fold-{fold}"
            saved = read_fold_result(fold_dir, runner.fold_from_json)
            if saved is not None:
                logger.info("%s finished already: its result is read back from %s", fold_dir.name, FOLD_RESULT_FILE)
                results.append(saved)
                continue
            checkpoint = fold_checkpoint(fold_dir, given, settings.model.base_model, kind)
            record_start(fold_dir, settings, resuming=checkpoint is not None)
            result = runner.fold_result(runner.train_one(labelled, train_queries, held_out, fold_dir, checkpoint,
                                                         in_fold=True))
            write_json_atomic(fold_dir / FOLD_RESULT_FILE, result.as_json())  # Before the weights go.
            if not settings.evaluation.cv_keep_models:
                remove_model_files(fold_dir)
            results.append(result)
    runner.write_cv_report(cv_dir, results)
    logger.info("cross-validation finished: %s", cv_dir)
    return cv_dir


def read_fold_result(fold_dir: Path, from_json: Callable):
    """A finished fold's result; None when the fold did not finish (or its file is damaged: it trains again)."""
    try:
        payload = read_json_object(fold_dir / FOLD_RESULT_FILE)
        return None if payload is None else from_json(payload)
    except (DamagedFile, KeyError, TypeError) as problem:
        logger.warning("ignoring %s (%s): the fold trains again", fold_dir / FOLD_RESULT_FILE, problem)
        return None


def held_out_fusion(fusions: list[FusionChoice], shrink: bool = True) -> list[tuple[str, dict[str, float]]]:
    """Each fold's fused metrics at the setting chosen on the *other* folds' held-out queries, pooled.

    A fold's own choice is tuned on the very queries it is scored on, which flatters fusion; the choice
    made on the other folds' queries is what a user would ship blind. `shrink` as the folds' own choice made it.
    """
    chosen = []
    for fold, fusion in enumerate(fusions):
        others = [other for position, other in enumerate(fusions) if position != fold] or [fusion]
        pooled = {key: {qid: row for other in others for qid, row in other.per_query_by_setting[key].items()}
                  for key in fusion.per_query_by_setting}
        pick = choose_fusion(pooled, fusion.metric, shrink=shrink)
        key = setting_key(pick.method, pick.weight)
        chosen.append((key, fusion.dev_metrics_by_setting[key]))
    return chosen


def write_cv_files(cv_dir: Path, title: str, table: str, payload: dict) -> None:
    """cv_results.md (the tables, also printed) and cv_results.json (written last: the cross-validation is done)."""
    print(f"\n{table}\n")
    write_file_atomic(cv_dir / "cv_results.md", lambda path: path.write_text(f"# {title}\n\n{table}\n", encoding="utf-8"))
    write_json_atomic(cv_dir / CV_RESULTS_FILE, payload)
