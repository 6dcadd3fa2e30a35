"""What a checkpoint records beside the Trainer's state (the base model, the wall time up to it), and the
check, before any model loads, that a checkpoint can be resumed on the base model given.

Resuming loads the checkpoint's weights and optimizer state into the model built from `base_model`; a
model of another shape fails deep inside the Trainer, after screens of missing and unexpected keys.
"""

import logging
from pathlib import Path

from reranker_kit.basics.errors import CheckpointError
from reranker_kit.basics.files import DamagedFile, read_json_object, write_json_atomic
from reranker_kit.basics.model_files import describe_shape, model_shape, same_model

logger = logging.getLogger(__name__)

# Written into each checkpoint by the kit: what a resume needs that the Trainer does not keep.
PROGRESS_FILE = "run_progress.json"


def write_checkpoint_progress(checkpoint: Path, base_model: str, wall_time_s: float, kind: str) -> None:
    """Records in a checkpoint the model the run started from, the wall time up to it, and the job's kind."""
    write_json_atomic(checkpoint / PROGRESS_FILE, {"base_model": base_model, "wall_time_s": wall_time_s, "kind": kind})


def read_checkpoint_progress(checkpoint: Path | None) -> dict:
    """What `write_checkpoint_progress` recorded; empty for checkpoints written before it existed."""
    if checkpoint is None:
        return {}
    try:
        return read_json_object(Path(checkpoint) / PROGRESS_FILE, missing={})
    except DamagedFile as problem:
        logger.warning("ignoring %s (the wall time and base-model check start from scratch)", problem)
        return {}


def check_base_model(checkpoint: Path, base_model: str) -> None:
    """Refuses a `base_model` other than the one the checkpoint's run started from, naming that one.

    The same model by another name (its folder instead of its alias, say) is the same run: accepted, in one
    line. A checkpoint written before the base model was recorded is checked by shape.
    """
    started_from = read_checkpoint_progress(checkpoint).get("base_model")  # None for checkpoints before it was kept.
    if started_from is not None and same_model(started_from, base_model):
        if started_from != base_model:
            logger.info("resuming %s with `base_model` %s: the model its run started from (%s), by another name",
                        checkpoint, base_model, started_from)
        return
    expected, given = model_shape(str(checkpoint)), model_shape(base_model)
    if started_from is None and given in (None, expected):
        return
    use = f"`base_model` {started_from}" if started_from else "the `base_model` that run started from"
    raise CheckpointError(
        f"{checkpoint} continues a run that started from {started_from or 'another model'} ({describe_shape(expected)}), "
        f"but `base_model` {base_model} is {describe_shape(given) if given else 'another model'}; resume with {use}")
