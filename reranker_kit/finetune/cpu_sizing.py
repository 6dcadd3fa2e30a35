"""Settings sized for a CPU: what a training job uses instead of its GPU-sized defaults when no GPU is found.

The defaults of both training CLIs are the club's T4 recipe (512 tokens, several epochs). On 2 CPU cores
the embedder's default run took 83 s a step and was killed at 17.7 GB, so without a GPU each setting the
user did not give takes the CPU size its field declares (`setting(..., on_cpu=...)`), and a base model with a
large vocabulary gets its word embeddings frozen. A setting the user gave is never changed; one log line
names what was chosen. Figures: bench/RESULTS.md, section 9.
"""

import logging
from dataclasses import MISSING

from reranker_kit.basics.model_files import model_shape
from reranker_kit.finetune.settings import JobSettings

logger = logging.getLogger(__name__)

# A vocabulary this large makes the word-embedding matrix most of a small model (multilingual-e5-small: 96M of
# 118M parameters): freezing it takes its gradient and optimizer state out of every step.
LARGE_VOCABULARY = 100_000


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


def cpu_sized(settings: JobSettings, given: set[str]) -> JobSettings:
    """`settings` with the CPU size of each setting the user did not give, when no GPU is found; else as they are."""
    if gpu_available():
        return settings
    arguments = settings.as_arguments()
    chosen = {name: item.metadata["on_cpu"] for name, item in settings.setting_fields().items()
              if item.metadata["on_cpu"] is not MISSING and name not in given}
    if "freeze_word_embeddings" not in given and not getattr(settings.model, "lora_r", 0):
        vocabulary = (model_shape(settings.model.base_model) or {}).get("vocab_size", 0)
        if vocabulary >= LARGE_VOCABULARY:
            chosen["freeze_word_embeddings"] = True
    chosen = {name: value for name, value in chosen.items() if arguments[name] != value}
    if chosen:
        logger.info("no GPU found: CPU-sized settings %s (a setting you give is kept as given)",
                    ", ".join(f"`{name}` {_shown(value)}" for name, value in chosen.items()))
    return settings.with_values(chosen)


def _shown(value) -> str:
    return "on" if value is True else "off" if value is False else f"{value:g}" if isinstance(value, float) else str(value)
