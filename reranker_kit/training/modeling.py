"""The reranker to train: the base cross-encoder, a fresh head seeded, word embeddings frozen or LoRA adapters
when the settings ask, and its token budget capped at what its positions allow."""

import logging

from transformers import set_seed

from reranker_kit.models.loading import load_cross_encoder_with_info
from reranker_kit.models.lora import apply_lora, parameter_counts
from reranker_kit.models.pair_encoding import position_limit
from reranker_kit.training.arguments import RerankerSettings

logger = logging.getLogger(__name__)


def load_base_model(settings: RerankerSettings):
    """(model, tokenizer, resolved name, loading info) of `base_model`, a fresh head seeded: the same weights every
    time; the loading info says whether the head came from the checkpoint (`head_was_trained`)."""
    set_seed(settings.optimisation.seed)  # Before loading: the fresh classification head is initialised from it.
    return load_cross_encoder_with_info(settings.model.base_model)


def load_tokenizer_and_model(settings: RerankerSettings):
    """(model, tokenizer, resolved name, max length) to train."""
    model, tokenizer, resolved, _ = load_base_model(settings)
    requested = settings.model.max_seq_length
    max_length = min(requested, position_limit(model.config))
    if max_length < requested:
        logger.warning("`max_seq_length` %d exceeds what %s supports; using %d", requested, settings.model.base_model,
                       max_length)
    if settings.model.freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    if settings.model.lora_r:
        model = apply_lora(model, r=settings.model.lora_r, alpha=settings.model.lora_alpha,
                           dropout=settings.model.lora_dropout)
        counts = parameter_counts(model)
        logger.info("LoRA rank %d: %d of %d parameters train (adapters and the classification head)",
                    settings.model.lora_r, counts.trainable, counts.total)
    return model, tokenizer, resolved, max_length


def model_summary(settings: RerankerSettings, model, resolved: str, max_length: int) -> dict:
    return {"name": settings.model.base_model, "resolved": resolved, "max_length": max_length,
            "parameters": sum(p.numel() for p in model.parameters()),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}
