"""Settings sized for a CPU: what a training CLI uses instead of its GPU-sized defaults when no GPU is found.

The defaults of both training CLIs are the club's T4 recipe (512 tokens, several epochs). On 2 CPU cores
the embedder's default run took 83 s a step and was killed at 17.7 GB, so without a GPU each setting the
user did not give is replaced by its CPU size below (figures in bench/RESULTS.md, section 9). A setting
the user gave is never changed; one log line names what was chosen.
"""

import logging
from dataclasses import dataclass

from reranker_kit.basics.model_files import model_shape

logger = logging.getLogger(__name__)

# A vocabulary this large makes the word-embedding matrix most of a small model (multilingual-e5-small: 96M of
# 118M parameters): freezing it takes its gradient and optimizer state out of every step.
LARGE_VOCABULARY = 100_000


@dataclass(frozen=True)
class CpuSizing:
    """What replaces each default on a CPU; `freeze_large_vocabulary` freezes word embeddings of a large vocabulary."""

    settings: dict
    freeze_large_vocabulary: bool = True


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


def cpu_sized(arguments: dict, given: set[str], sizing: CpuSizing, base_model: str) -> dict:
    """`arguments` with the CPU sizes of the settings the user did not give, when no GPU is found; else as they are."""
    if gpu_available():
        return arguments
    chosen = {name: value for name, value in sizing.settings.items() if name not in given}
    if sizing.freeze_large_vocabulary and "freeze_word_embeddings" not in given:
        vocabulary = (model_shape(base_model) or {}).get("vocab_size", 0)
        if vocabulary >= LARGE_VOCABULARY:
            chosen["freeze_word_embeddings"] = True
    chosen = {name: value for name, value in chosen.items() if arguments.get(name) != value}
    if chosen:
        logger.info("no GPU found: CPU-sized settings %s (any flag you give is kept as given)",
                    ", ".join(f"{name} {_shown(value)}" for name, value in chosen.items()))
    return {**arguments, **chosen}


def _shown(value) -> str:
    return "on" if value is True else "off" if value is False else str(value)


# Measured on 2 CPU cores (bench/RESULTS.md, section 9; quality in bench/QUALITY.md, section 8): each stays
# under 6 GB peak, and README's quick start runs both stages in about 20 minutes. The reranker keeps two
# corpus sentences per document as extra queries (they are what lets a fresh head learn: QUALITY.md, section 5)
# at one epoch; the embedder is the recipe measured on the club's real files (the e5 issue): answers but no
# corpus sentences, 1 epoch, lr 3e-5.
RERANKER_ON_CPU = CpuSizing({"max_seq_length": 128, "batch_size": 16, "gradient_accumulation_steps": 1, "epochs": 1,
                             "lr": 5e-5, "pseudo_queries_per_document": 2})
EMBEDDER_ON_CPU = CpuSizing({"max_seq_length": 128, "batch_size": 16, "epochs": 1, "lr": 3e-5,
                             "pseudo_queries_per_document": 0})
