"""Checking, before any model loads, that a checkpoint can be resumed on the --base_model given.

Resuming loads the checkpoint's weights and optimizer state into the model built from --base_model; a
model of another shape fails deep inside the Trainer, after screens of missing and unexpected keys.
"""

import logging
from pathlib import Path

from reranker_kit.basics.errors import CheckpointError
from reranker_kit.basics.model_files import describe_shape, model_shape
from reranker_kit.training.progress import read_checkpoint_progress

logger = logging.getLogger(__name__)


def check_base_model(checkpoint: Path, base_model: str) -> None:
    """Refuses a --base_model whose shape differs from the checkpoint's, naming the one the run started from.

    When the given model's shape cannot be read without downloading it (a Hub id not in the cache), a name
    other than the recorded one is refused too. Same shape, other name: a warning, since the checkpoint's
    weights replace the model's anyway.
    """
    started_from = read_checkpoint_progress(checkpoint).get("base_model")  # None for checkpoints before it was kept.
    expected = model_shape(str(checkpoint))
    given = model_shape(base_model)
    if (started_from is None or started_from == base_model) and given in (None, expected):
        return
    if given == expected:
        logger.warning("%s started from --base_model %s; resuming with %s, which has the same shape (the "
                       "checkpoint's weights are loaded either way)", checkpoint, started_from, base_model)
        return
    use = f"--base_model {started_from}" if started_from else "the --base_model that run started from"
    raise CheckpointError(
        f"{checkpoint} continues a run that started from {started_from or 'another model'} ({describe_shape(expected)}), "
        f"but --base_model {base_model} is {describe_shape(given) if given else 'another model'}; resume with {use}")
