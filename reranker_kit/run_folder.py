"""The run folder under `outputs/`: the one module that creates, writes, finds and reads run folders.

A run folder counts as a finished model only once `training_info.json` exists in it. It is written
last, atomically, after the model, tokenizer and metrics are on disk, so a run that crashed or was
killed (even in the middle of saving) is never taken for a finished model.
"""

import json
import logging
import os
import platform
import re
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path

from reranker_kit.training.result import DataSummary, TrainingResult

logger = logging.getLogger(__name__)

RUN_PREFIX = "reranker-finetuned-"
# Cross-validation folders get another prefix, so main.py never takes a fold for the finished model.
CV_PREFIX = "reranker-cv-"
REPORT_PREFIX = "eval-"
COMPLETION_MARKER = "training_info.json"
# The first-stage/reranker fusion weight chosen on held-out queries; main.py applies it.
FUSION_FILE = "fusion.json"
DEV_METRICS_FILE = "dev_metrics.json"
# The pretrained model's dev metrics, kept so a resumed run does not score them again.
BASELINE_FILE = "baseline_dev_metrics.json"
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
# Files a Trainer checkpoint holds; a folder without them is not one.
CHECKPOINT_FILES = ("trainer_state.json", "config.json")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


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


def run_dirs_newest_first(runs_root: str | Path) -> list[Path]:
    """All run folders, newest start time first (the timestamp, then the same-second suffix)."""
    def sort_key(path: Path):
        match = re.match(rf"^{RUN_PREFIX}(\d{{8}}-\d{{6}})(?:-(\d+))?$", path.name)
        return (match.group(1), int(match.group(2) or 1)) if match else ("", 0)

    runs_root = Path(runs_root)
    if not runs_root.is_dir():
        return []
    candidates = [path for path in runs_root.glob(f"{RUN_PREFIX}*") if path.is_dir() and sort_key(path)[0]]
    return sorted(candidates, key=sort_key, reverse=True)


def newest_finished_run(runs_root: str | Path) -> Path | None:
    """The newest run folder holding a finished model, skipping (and naming) unfinished ones."""
    for run_dir in run_dirs_newest_first(runs_root):
        if is_complete(run_dir):
            return run_dir
        logger.info("skipping %s: unfinished or crashed run (no %s)", run_dir, COMPLETION_MARKER)
    return None


def newest_unfinished_run_with_checkpoint(runs_root: str | Path) -> Path | None:
    unfinished = [path for path in run_dirs_newest_first(runs_root) if checkpoints(path) and not is_complete(path)]
    return unfinished[0] if unfinished else None


def checkpoints(run_dir: str | Path) -> list[Path]:
    """The `checkpoint-N` folders of a run that hold a Trainer state, lowest step first."""
    found = []
    for path in Path(run_dir).glob("checkpoint-*"):
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and path.is_dir() and is_checkpoint(path):
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def is_checkpoint(path: str | Path) -> bool:
    path = Path(path)
    has_weights = any((path / name).is_file() for name in WEIGHT_FILES)
    return has_weights and all((path / name).is_file() for name in CHECKPOINT_FILES)


def write_json_atomic(path: str | Path, payload: dict) -> None:
    """Writes JSON through a temporary file and a rename, so readers never see half a file."""
    path = Path(path)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, suffix=".tmp", delete=False) as handle:
        json.dump(payload, handle, ensure_ascii=False, indent=2, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, path)


def read_baseline(run_dir: Path) -> dict | None:
    path = run_dir / BASELINE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_baseline(run_dir: Path, metrics: dict) -> None:
    write_json_atomic(run_dir / BASELINE_FILE, metrics)


def read_run_info(run_dir: str | Path) -> dict | None:
    """A finished run's training_info.json, or None for a folder that is not one of our runs."""
    path = Path(run_dir) / COMPLETION_MARKER
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def base_model_name(run_dir: str | Path) -> str | None:
    """The --base_model a finished run started from."""
    info = read_run_info(run_dir)
    return info["base_model"]["name"] if info else None


def training_file(run_dir: str | Path) -> Path | None:
    """The query file a finished run trained on, where it can still be found."""
    info = read_run_info(run_dir)
    if not info:
        return None
    path = Path(info.get("train_xlsx") or info["arguments"]["train_xlsx"])
    return path if path.is_file() else None


def stored_fusion(run_dir: str | Path) -> tuple[str, float] | None:
    """(method, weight) of the fusion a run chose on its held-out queries; None when it has none.

    A fusion.json that does not parse or holds something other than a weight in [0, 1] and a known
    method is ignored with a warning naming the file: a broken file must never steer the ranking.
    """
    from reranker_kit.fusion import FUSION_METHODS

    path = Path(run_dir) / FUSION_FILE
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        method, weight = stored.get("method", "minmax"), stored["weight"]  # Files before "method" used min-max.
        valid = method in FUSION_METHODS and not isinstance(weight, bool) and 0.0 <= float(weight) <= 1.0
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        valid = False
    if not valid:
        logger.warning("ignoring %s: not a fusion choice this kit wrote (it needs \"weight\" in [0, 1] and a "
                       "\"method\" among %s); no fused row unless --fusion_weight is given", path, FUSION_METHODS)
        return None
    return method, float(weight)


def remove_model_files(run_dir: Path) -> None:
    """Drops a run's weights and checkpoints (GBs for large models); its metrics stay."""
    for checkpoint in run_dir.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)
    for weights in WEIGHT_FILES:
        (run_dir / weights).unlink(missing_ok=True)


def dev_metrics_payload(result: TrainingResult) -> dict:
    """dev_metrics.json: the fine-tuned model's metrics at the top level, the other rankers beside them."""
    if result.dev is None:
        return {}
    return {**result.dev.fine_tuned, "baseline": result.dev.pretrained,
            "metric_for_best_model": result.dev.metric_for_best_model, "first_stage": result.dev.first_stage,
            "fused": result.dev.fused}


def write_finished_run(run_dir: Path, arguments: dict, result: TrainingResult, data: DataSummary, started: float
                       ) -> dict:
    """Writes the run's metrics, curves and model card, then `training_info.json` last; returns that info."""
    from reranker_kit.reports.model_card import write_model_card
    from reranker_kit.reports.plots import plot_training_curves

    dev_metrics = dev_metrics_payload(result)
    write_json_atomic(run_dir / DEV_METRICS_FILE, dev_metrics)
    write_json_atomic(run_dir / "train_results.json", result.train_metrics)
    if result.fusion:
        write_json_atomic(run_dir / FUSION_FILE, {**result.fusion.as_json(), "retriever": arguments["hard_neg_method"],
                                                  "top_n": arguments["dev_top_n"]})
    plot_training_curves(result.log_history, dev_metrics.get("baseline"), arguments["metric_for_best_model"],
                         run_dir / "training_curves.png")
    info = {
        "status": "complete",
        "finished_at": datetime.now().isoformat(timespec="seconds"),
        "arguments": arguments,
        "base_model": result.base_model,
        "data": data.as_dict(),
        # Absolute, so main.py can find the labelled queries again from any folder (overlap warnings).
        "train_xlsx": str(Path(arguments["train_xlsx"]).resolve()),
        "pairs": data.train_pairs,
        "best_checkpoint": result.best_checkpoint,
        "library_versions": library_versions(),
        "device": result.device,
        "processes": result.world_size,
        "wall_time_s": time.time() - started,
        "peak_memory_gib": result.peak_memory_gib,
    }
    write_model_card(run_dir / "README.md", info, dev_metrics)
    write_json_atomic(run_dir / COMPLETION_MARKER, info)
    return info


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("torch", "transformers", "FlagEmbedding", "scikit-learn", "numpy", "pandas"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions
