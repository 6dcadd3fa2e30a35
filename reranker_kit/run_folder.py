"""The run folder under `outputs/`: the one module that creates, writes, finds and reads run folders.

A run folder counts as a finished model only once `training_info.json` exists in it. It is written
last, atomically, after the model, tokenizer and metrics are on disk, so a run that crashed or was
killed (even in the middle of saving) is never taken for a finished model.
"""

import logging
import re
import shutil
from datetime import datetime
from pathlib import Path

from reranker_kit.basics.files import DamagedFile, read_json_object, write_json_atomic
from reranker_kit.basics.model_files import model_folder_problem
from reranker_kit.fusion import FUSION_METHODS

logger = logging.getLogger(__name__)

RUN_PREFIX = "reranker-finetuned-"
# Cross-validation folders get another prefix, so main.py never takes a fold for the finished model.
CV_PREFIX = "reranker-cv-"
# Fine-tuned first-stage encoders (fine_tune_embedder.py): main.py's dense and hybrid first stages look for these.
EMBEDDER_PREFIX = "embedder-finetuned-"
EMBEDDER_CV_PREFIX = "embedder-cv-"
# The hybrid first stage's dense weight an embedder run chose on its dev queries; main.py applies it.
HYBRID_FILE = "hybrid.json"
REPORT_PREFIX = "eval-"
COMPLETION_MARKER = "training_info.json"
# The first-stage/reranker fusion weight chosen on held-out queries; main.py applies it.
FUSION_FILE = "fusion.json"
# The dev metrics of the saved model and the other rankers, and the verdict against the base.
DEV_METRICS_FILE = "dev_metrics.json"
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
# Files a Trainer checkpoint holds; a folder without them is not one. The Trainer writes trainer_state.json
# last: a folder without it was cut short while saving. The optimizer, scheduler and random state make a resume
# continue the same run: without them it would go on with fresh state and end with other weights.
CHECKPOINT_FILES = ("trainer_state.json", "config.json", "optimizer.pt", "scheduler.pt")
RNG_STATE_PATTERN = "rng_state*.pth"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
RUN_STAMP_PATTERN = re.compile(r"(\d{8}-\d{6})(?:-(\d+))?")
FOLD_PATTERN = re.compile(r"^fold-(\d+)$")
# Written last by a cross-validation: without it, the folder is an unfinished one that can be resumed.
CV_RESULTS_FILE = "cv_results.json"


def create_run_dir(runs_root: str | Path, now: datetime | None = None, prefix: str = RUN_PREFIX) -> Path:
    """Creates `runs_root/<prefix>YYYYMMDD-HHMMSS`, with a suffix if that name is taken.

    `mkdir(exist_ok=False)` makes the claim atomic: two runs started in the same second get two folders.
    """
    runs_root = Path(runs_root)
    runs_root.mkdir(parents=True, exist_ok=True)
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        candidate = runs_root / (f"{prefix}{stamp}" if attempt == 1 else f"{prefix}{stamp}-{attempt}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new folder under {runs_root}")


def is_complete(run_dir: str | Path) -> bool:
    run_dir = Path(run_dir)
    return (run_dir / COMPLETION_MARKER).is_file() and (run_dir / "config.json").is_file()


def _name_order(path: Path, prefix: str = RUN_PREFIX) -> tuple[str, int]:
    """A run folder's start time from its name, then the same-second suffix; ("", 0) for other names."""
    match = RUN_STAMP_PATTERN.fullmatch(path.name[len(prefix):]) if path.name.startswith(prefix) else None
    return (match.group(1), int(match.group(2) or 1)) if match else ("", 0)


def run_dirs_newest_first(runs_root: str | Path, prefix: str = RUN_PREFIX) -> list[Path]:
    """All run folders, newest start time first (the timestamp in the name, then the same-second suffix)."""
    runs_root = Path(runs_root)
    if not runs_root.is_dir():
        return []
    candidates = [path for path in runs_root.glob(f"{prefix}*") if path.is_dir() and _name_order(path, prefix)[0]]
    return sorted(candidates, key=lambda path: _name_order(path, prefix), reverse=True)


def newest_finished_run(runs_root: str | Path, prefix: str = RUN_PREFIX) -> Path | None:
    """The finished run that finished last, skipping (and naming) unfinished and damaged runs.

    Runs are ordered by the `finished_at` their training_info.json records, not by folder name alone, so
    a folder dated by a wrong clock never hides newer runs. A damaged run (training_info.json that does
    not parse, weights cut short) is skipped with a warning naming the file, and the next one is used.
    """
    finished = []
    for run_dir in run_dirs_newest_first(runs_root, prefix):
        if not is_complete(run_dir):
            logger.info("skipping %s: unfinished or crashed run (no %s)", run_dir, COMPLETION_MARKER)
            continue
        problem = run_info_problem(run_dir)
        if problem:
            logger.warning("skipping %s: %s", run_dir, problem)
            continue
        finished.append((finished_time(run_dir, prefix), run_dir))
    for _, run_dir in sorted(finished, key=lambda pair: pair[0], reverse=True):  # Stable: ties keep name order.
        problem = model_folder_problem(run_dir)
        if problem is None:
            return run_dir
        logger.warning("skipping %s: %s", run_dir, problem)
    return None


def finished_time(run_dir: Path, prefix: str = RUN_PREFIX) -> datetime:
    """When a finished run finished, as recorded in it; its folder name's time for files that lack it."""
    try:
        return datetime.fromisoformat(read_run_info(run_dir)["finished_at"]).replace(tzinfo=None)
    except (KeyError, TypeError, ValueError):
        stamp = _name_order(run_dir, prefix)[0]
        return datetime.strptime(stamp, "%Y%m%d-%H%M%S") if stamp else datetime.min


def unusable_run_problem(path: str | Path) -> str | None:
    """Why a folder named like a run cannot be used as a model: unfinished, or its training_info.json is damaged."""
    path = Path(path)
    if path.is_dir() and path.name.startswith(RUN_PREFIX) and not is_complete(path):
        return (f"{path} is an unfinished run (no {COMPLETION_MARKER}); pick a finished run or one of its "
                "checkpoint-N folders, or resume it with `resume_from_checkpoint` latest")
    problem = run_info_problem(path) if path.is_dir() else None
    return f"{path}: {problem}; train that run again, or pick another run" if problem else None


def run_info_problem(run_dir: str | Path) -> str | None:
    """What is wrong with a run's training_info.json, or None when it is absent or a JSON object."""
    try:
        read_json_object(Path(run_dir) / COMPLETION_MARKER)
    except DamagedFile as problem:
        return str(problem)
    return None


def newest_unfinished_run_with_checkpoint(runs_root: str | Path, prefix: str = RUN_PREFIX) -> Path | None:
    """The unfinished run whose last checkpoint folder was saved most recently: the work `latest` should go on with.

    By the checkpoint's time, not the folder name: a run started earlier may have trained (and been
    resumed) since, and a folder dated by a wrong clock must not take its place. A checkpoint folder whose
    save was cut short counts too, so `latest` names that run and says what is wrong with it instead of
    passing over it to an older run.
    """
    saved = {path: checkpoint_folders(path) for path in run_dirs_newest_first(runs_root, prefix) if not is_complete(path)}
    unfinished = [path for path, found in saved.items() if found]
    return max(unfinished, key=lambda path: saved[path][-1].stat().st_mtime, default=None)  # Ties: newest name.


def newest_unfinished_cross_validation(runs_root: str | Path, prefix: str = CV_PREFIX) -> Path | None:
    """The newest cross-validation folder without its report that holds a fold checkpoint or a finished fold."""
    runs_root = Path(runs_root)
    found = sorted(runs_root.glob(f"{prefix}*"), reverse=True) if runs_root.is_dir() else []
    return next((path for path in found if path.is_dir() and not (path / CV_RESULTS_FILE).is_file()
                 and has_progress(path)), None)


def fold_of(run_dir: Path) -> tuple[Path, int] | None:
    """(the cross-validation folder, the fold number) when `run_dir` is a `fold-N` folder of one; else None."""
    match = FOLD_PATTERN.match(run_dir.name)
    is_cv = run_dir.parent.name.startswith((CV_PREFIX, EMBEDDER_CV_PREFIX))
    return (run_dir.parent, int(match.group(1))) if match and is_cv else None


def checkpoint_folders(run_dir: str | Path) -> list[Path]:
    """Every `checkpoint-N` folder of a run, complete or cut short while saving, lowest step first."""
    found = []
    for path in Path(run_dir).glob("checkpoint-*"):
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def checkpoints(run_dir: str | Path) -> list[Path]:
    """The `checkpoint-N` folders of a run that hold a complete Trainer checkpoint, lowest step first."""
    return [path for path in checkpoint_folders(run_dir) if is_checkpoint(path)]


def is_checkpoint(path: str | Path) -> bool:
    return not missing_checkpoint_files(path)


def missing_checkpoint_files(path: str | Path) -> list[str]:
    """What a complete Trainer checkpoint holds that `path` lacks (the Trainer writes trainer_state.json last)."""
    path = Path(path)
    missing = [name for name in CHECKPOINT_FILES if not (path / name).is_file()]
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        missing.insert(0, " or ".join(WEIGHT_FILES))
    if not any(path.glob(RNG_STATE_PATTERN)):
        missing.append("rng_state.pth")
    return missing


def was_cut_short(path: str | Path) -> bool:
    """A checkpoint folder whose save never finished (no trainer_state.json): the Trainer saves it again."""
    return not (Path(path) / "trainer_state.json").is_file()


def incomplete_checkpoints(run_dir: str | Path) -> list[Path]:
    """The `checkpoint-N` folders of a run whose save was cut short (a kill, a full disk), lowest step first."""
    return [path for path in checkpoint_folders(run_dir) if was_cut_short(path)]


def describe_incomplete(checkpoint: Path) -> str:
    missing = ", ".join(missing_checkpoint_files(checkpoint))
    if was_cut_short(checkpoint):
        return f"{checkpoint} is an incomplete checkpoint (no {missing}): its save was cut short"
    return (f"{checkpoint} is an incomplete checkpoint (no {missing}): its save finished, but those files are gone "
            "since, and a resume without them would go on with fresh optimizer, scheduler or random state, ending with "
            "other weights than the run it saved. Put the files back, or start a new run from its weights with "
            f"`base_model` {checkpoint}")


def resume_advice(run_dir: Path) -> str:
    """What to do with an unfinished run: resume from its last complete checkpoint, or delete it."""
    found = checkpoints(run_dir)
    if found:
        return f"resume from its last complete checkpoint with `resume_from_checkpoint` {found[-1]} (or latest)"
    return (f"{run_dir} has no complete checkpoint to resume from: delete the folder {run_dir} and start a new "
            "run")


def checkpoint_steps(checkpoint: Path) -> tuple[int, int]:
    """(the step a checkpoint was saved at, the step its run was to stop at), from its trainer_state.json."""
    state = read_json_object(Path(checkpoint) / "trainer_state.json", missing={})
    return int(state["global_step"]), int(state["max_steps"])


def has_progress(folder: Path) -> bool:
    """Whether a run folder holds work worth keeping: a checkpoint or a finished model, at any depth."""
    return any(folder.rglob("checkpoint-*")) or any(folder.rglob(COMPLETION_MARKER))


def discard_unstarted_run(folder: Path, keep_folder: bool) -> bool:
    """Removes what a run wrote before its first checkpoint; True when something was removed.

    `keep_folder` keeps the folder itself (one the user named as `output_dir`), emptied.
    """
    if not folder.is_dir() or has_progress(folder):
        return False
    if not keep_folder:
        shutil.rmtree(folder)
        return True
    for child in folder.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
    return True


def read_run_info(run_dir: str | Path) -> dict | None:
    """A finished run's training_info.json, or None for a folder that is not one of our runs (or a damaged one)."""
    try:
        return read_json_object(Path(run_dir) / COMPLETION_MARKER)
    except DamagedFile:
        return None


def run_kind(run_dir: str | Path) -> str | None:
    """"reranker" or "embedder" for a finished run (runs before the shared core recorded only "embedder")."""
    info = read_run_info(run_dir)
    return None if info is None else info.get("kind", "reranker")


def base_model_name(run_dir: str | Path) -> str | None:
    """The `base_model` a finished run started from."""
    info = read_run_info(run_dir)
    return (info.get("base_model") or {}).get("name") if info else None


def training_file(run_dir: str | Path) -> Path | None:
    """The query file a finished run trained on, where it can still be found."""
    info = read_run_info(run_dir)
    if not info:
        return None
    name = info.get("train_xlsx") or (info.get("arguments") or {}).get("train_xlsx")
    return Path(name) if name and Path(name).is_file() else None


def stored_fusion(run_dir: str | Path) -> tuple[str, float] | None:
    """(method, weight) of the fusion a run chose on its held-out queries; None when it has none.

    A fusion.json that does not parse or holds something other than a weight in [0, 1] and a known
    method is ignored with a warning naming the file: a broken file must never steer the ranking.
    """
    path = Path(run_dir) / FUSION_FILE
    try:
        stored = read_json_object(path)
        if stored is None:
            return None
        method, weight = stored.get("method", "minmax"), stored["weight"]  # Files before "method" used min-max.
        valid = method in FUSION_METHODS and not isinstance(weight, bool) and 0.0 <= float(weight) <= 1.0
    except (DamagedFile, KeyError, TypeError, ValueError):
        valid = False
    if not valid:
        logger.warning("ignoring %s: not a fusion choice this kit wrote (it needs \"weight\" in [0, 1] and a "
                       "\"method\" among %s); no fused row unless `fusion_weight` is given", path, FUSION_METHODS)
        return None
    return method, float(weight)


def stored_verdict(run_dir: str | Path) -> dict | None:
    """{"verdict", "saved", "metric", "trained_vs_base", "detail"}: what the run's dev queries said of its weights
    against its base (dev_metrics.json, `finetune.verdict`'s words; older runs' "no gain" and embedder words read as
    they are); `trained_vs_base` is the paired comparison it recorded, or None.

    None for runs written before the verdict existed, or when the file does not parse. Any recorded word is
    passed on: main.py reads the kept weights and the interval, not the word (benchmark.verdicts).
    """
    try:
        dev = read_json_object(Path(run_dir) / DEV_METRICS_FILE)
    except DamagedFile:
        return None
    if not dev or not isinstance(dev.get("verdict"), str):
        return None
    metric = dev.get("metric_for_best_model", "mrr@5")
    pair = dev.get("trained_vs_base") or {}
    detail = (f"dev {metric} {dev.get(metric, float('nan')):.4f} against the base's "
              f"{(dev.get('baseline') or {}).get(metric, float('nan')):.4f}")
    if pair.get("ci_low") is not None and pair.get("ci_high") is not None:
        detail += f", trained - base {pair['mean_difference']:+.3f} [{pair['ci_low']:+.3f}, {pair['ci_high']:+.3f}]"
    if pair.get("n_queries"):
        detail += f" on {pair['n_queries']} queries"
    saved = dev.get("saved_weights") or {"base_kept": "base"}.get(dev["verdict"], "trained")
    return {"verdict": dev["verdict"], "saved": saved, "metric": metric,
            "trained_vs_base": pair if isinstance(pair, dict) and pair else None, "detail": detail}


def stored_fusion_first_stage(run_dir: str | Path) -> dict | None:
    """fusion.json's record of its dev candidates (`fusion_first_stage`); None when it has none."""
    try:
        stored = read_json_object(Path(run_dir) / FUSION_FILE)
    except DamagedFile:
        return None
    if not stored or not isinstance(stored.get("retriever"), str):
        return None
    return {key: stored[key] for key in ("retriever", "top_n", "expanded_documents", "embedding_model") if key in stored}


def remove_model_files(run_dir: Path) -> None:
    """Drops a run's weights and checkpoints (GBs for large models); its metrics stay."""
    for checkpoint in run_dir.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)
    for weights in WEIGHT_FILES:
        (run_dir / weights).unlink(missing_ok=True)






def write_completion_marker(run_dir: Path, info: dict) -> dict:
    """Writes `training_info.json`, the last file of any finished run (reranker or embedder); returns it.

    `status` and `finished_at` are stamped here, so every kind of run is found and ordered the same way.
    """
    info = {"status": "complete", "finished_at": datetime.now().isoformat(timespec="seconds"), **info}
    write_json_atomic(run_dir / COMPLETION_MARKER, info)
    return info


def write_hybrid_choice(run_dir: Path, choice: dict) -> None:
    """hybrid.json: the hybrid first stage's dense weight (and fusion) an embedder run chose on its dev queries."""
    write_json_atomic(run_dir / HYBRID_FILE, choice)


def stored_hybrid_weight(run_dir: str | Path, encoder: str = "run") -> float | None:
    """The dense weight hybrid.json records for `encoder` ("run": the run's saved model, or "base"); None without one.

    A file that does not parse or holds no weight in [0, 1] is ignored with a warning: main.py then uses
    the fixed weight.
    """
    path = Path(run_dir) / HYBRID_FILE
    try:
        stored = read_json_object(path)
        if stored is None:
            return None
        weight = stored["dense_weight"][encoder]
        valid = not isinstance(weight, bool) and 0.0 <= float(weight) <= 1.0
    except (DamagedFile, KeyError, TypeError, ValueError):
        valid = False
    if not valid:
        logger.warning("ignoring %s: no dense weight in [0, 1] for the %s encoder; the hybrid uses its fixed weight",
                       path, encoder)
        return None
    return float(weight)
