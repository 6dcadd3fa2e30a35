"""Run directories under `outputs/`: naming, completeness, and finding checkpoints.

A run directory counts as a finished model only once `training_info.json` exists in it. The training
script writes that file last, atomically, after the model, tokenizer and metrics are on disk, so a run
that crashed or was killed (even in the middle of saving) is never taken for a finished model.
"""

import json
import os
import re
import tempfile
from datetime import datetime
from pathlib import Path

RUN_PREFIX = "reranker-finetuned-"
# Cross-validation folders get another prefix, so main.py never takes a fold for the finished model.
CV_PREFIX = "reranker-cv-"
REPORT_PREFIX = "eval-"
COMPLETION_MARKER = "training_info.json"
# The first-stage/reranker fusion weight chosen on the dev queries; main.py applies it.
FUSION_FILE = "fusion.json"
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
# Files a Trainer checkpoint holds; a folder without them is not one.
CHECKPOINT_FILES = ("trainer_state.json", "config.json")


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


def checkpoints(run_dir: str | Path) -> list[Path]:
    """The `checkpoint-N` folders of a run that hold a Trainer state, lowest step first."""
    run_dir = Path(run_dir)
    found = []
    for path in run_dir.glob("checkpoint-*"):
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and path.is_dir() and is_checkpoint(path):
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def is_checkpoint(path: str | Path) -> bool:
    path = Path(path)
    has_weights = any((path / name).is_file() for name in ("model.safetensors", "pytorch_model.bin"))
    return has_weights and all((path / name).is_file() for name in CHECKPOINT_FILES)


def write_json_atomic(path: str | Path, payload: dict) -> None:
    """Writes JSON through a temporary file and a rename, so readers never see half a file."""
    path = Path(path)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, suffix=".tmp", delete=False) as handle:
        json.dump(payload, handle, ensure_ascii=False, indent=2, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, path)
