"""What a checkpoint records beside the Trainer's state: the base model and the wall time up to it.

A resume checks the base model against --base_model before loading, and adds the time to the run's total.
"""

import json
import logging
from pathlib import Path

from reranker_kit.basics.files import write_json_atomic

logger = logging.getLogger(__name__)

# Written into each checkpoint by the kit: what a resume needs that the Trainer does not keep.
PROGRESS_FILE = "run_progress.json"


def write_checkpoint_progress(checkpoint: Path, base_model: str, wall_time_s: float) -> None:
    """Records in a checkpoint the model the run started from and the wall time spent up to it."""
    write_json_atomic(checkpoint / PROGRESS_FILE, {"base_model": base_model, "wall_time_s": wall_time_s})


def read_checkpoint_progress(checkpoint: Path | None) -> dict:
    """What `write_checkpoint_progress` recorded; empty for checkpoints written before it existed."""
    path = Path(checkpoint) / PROGRESS_FILE if checkpoint else None
    try:
        progress = json.loads(path.read_text(encoding="utf-8")) if path and path.is_file() else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        logger.warning("ignoring %s: it does not parse (the wall time and base-model check start from scratch)", path)
        return {}
    return progress if isinstance(progress, dict) else {}
